//! `rmq`: send to, inspect and benchmark Apache RocketMQ from a terminal, and run an in-memory
//! dev broker.
//!
//! ```text
//! rmq dev-broker [--port 9876] [--brokers N]
//! rmq send  (--namesrv ADDR | --embedded) --topic T [--tag TAG] [--keys K1,K2] [--property k=v]...
//!           [--body TEXT | --body-file F] [--count N] [--mode sync|async|oneway] [--batch N]
//!           [--queue BROKER:ID] [--timeout-ms MS] [--deliver-after-ms MS | --deliver-at-ms EPOCH_MS]
//!           [--compress zlib|lz4|zstd]
//!           [--transaction commit|rollback|unknown [--check-wait SECS]]
//! rmq recall --namesrv ADDR --topic T HANDLE
//! rmq route (--namesrv ADDR | --proxy HOST:PORT) TOPIC
//! rmq request (--namesrv ADDR | --embedded) --topic T [--body TEXT] [--echo] [--timeout-ms MS]
//! rmq bench (--namesrv ADDR | --embedded) --topic T --mode sync|async|oneway|batch|transaction
//!           --size BYTES --concurrency N (--count N | --duration SECS) [--batch N]
//!           [--tx-rollback-rate R] [--tx-unknown-rate R] [--check-wait SECS]
//! ```
//!
//! `send`, `bench`, `route` and `recall` take `--proxy HOST:PORT` (or `RMQ_PROXY`) instead of
//! `--namesrv`: they then go through a RocketMQ 5 gRPC proxy.
//!
//! `NAMESRV_ADDR` is used when `--namesrv` is absent. Results go to stdout as JSON; diagnostics,
//! live lines and errors (one line each) to stderr; `-v` turns tracing on.
//!
//! Exit codes: 0 every message succeeded; 1 a failure after which no message may have been stored
//! (or the command failed); 2 bad usage; 3 a failure after which a message may have been stored,
//! or a transaction left undecided (its half message waits on the broker).

mod args;
mod bench;
mod cli;
mod dev_broker;
mod dev_cluster;
mod fatal;
mod namespace_args;
mod output;
mod proxy_args;
mod recall;
mod request;
mod request_echo;
mod route;
mod send;
mod send_extras;
mod send_tx;
mod signals;
mod tls_args;
mod trace_args;
mod tx_ledger;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, TargetArgs};
use crate::dev_cluster::DevCluster;
use crate::fatal::Fatal;
use crate::output::exit;

/// Bound on stopping an embedded dev broker at the end of a command.
const EMBEDDED_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            eprintln!("{}", usage_line(&e));
            return ExitCode::from(exit::USAGE);
        }
    };
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return fail(&Fatal::failed(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(fatal) => fail(&fatal),
    }
}

fn fail(fatal: &Fatal) -> ExitCode {
    eprintln!("{fatal}");
    ExitCode::from(fatal.code)
}

/// clap's error in one line: everything before its `Usage:` block (e.g. the names of the
/// missing arguments, which clap puts on the following lines), plus where to look.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let message = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    let message = if message.is_empty() {
        "invalid usage"
    } else {
        message
    };
    format!("rmq: error: {message} (see `rmq --help`)")
}

/// Tracing on stderr when `-v` is given (or `RUST_LOG` is set, which then decides the filter).
fn init_tracing(verbose: u8) {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    if verbose == 0 && !from_env {
        return;
    }
    let level = match verbose {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = if from_env {
        EnvFilter::from_default_env()
    } else {
        EnvFilter::new(level)
    };
    // Fails only when a subscriber is already set, which this process never does.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

async fn run(command: Command) -> Result<u8, Fatal> {
    match command {
        Command::Send(args) => {
            // Usage errors before an embedded broker starts.
            send::check_combinations(&args)?;
            let (namesrv, embedded) = resolve(&args.target).await?;
            let result = send::run(&args, &namesrv).await;
            stop(embedded).await;
            result
        }
        Command::Bench(args) => {
            bench::Plan::try_from(&args)?;
            let (namesrv, embedded) = resolve(&args.target).await?;
            let result = bench::command(&args, &namesrv).await;
            stop(embedded).await;
            result
        }
        Command::Route(args) => {
            if let Some(proxy) = &args.namesrv.proxy.proxy {
                return proxy_args::route(&args, proxy).await;
            }
            let namesrv = args.namesrv.namesrv.clone().ok_or_else(no_namesrv)?;
            route::run(&args, &namesrv).await
        }
        Command::DevBroker(args) => dev_broker::run(&args).await,
        Command::Request(args) => {
            if args.target.namesrv.proxy.proxy.is_some() {
                // Replies are pushed by brokers over remoting connections; a proxy relays none.
                return Err(Fatal::usage("rmq request does not support --proxy"));
            }
            let (namesrv, embedded) = resolve(&args.target).await?;
            let result = request::run(&args, &namesrv).await;
            stop(embedded).await;
            result
        }
        Command::Recall(args) => {
            let namesrv = match &args.namesrv.proxy.proxy {
                Some(_) => args.namesrv.namesrv.clone().unwrap_or_default(),
                None => args.namesrv.namesrv.clone().ok_or_else(no_namesrv)?,
            };
            recall::run(&args, &namesrv).await
        }
    }
}

/// The name server to use: an embedded dev broker's with `--embedded`, else `--namesrv` /
/// `NAMESRV_ADDR`.
async fn resolve(target: &TargetArgs) -> Result<(String, Option<DevCluster>), Fatal> {
    if target.embedded {
        let dev = DevCluster::start(1, None).await.map_err(|e| {
            Fatal::failed(format!(
                "cannot start the embedded dev broker: {}",
                output::one_line(&e)
            ))
        })?;
        eprintln!(
            "rmq: embedded dev broker, name server on {}",
            dev.namesrv_addr()
        );
        return Ok((dev.namesrv_addr().to_owned(), Some(dev)));
    }
    if target.namesrv.proxy.proxy.is_some() {
        // Through a gRPC proxy: no name server.
        return Ok((target.namesrv.namesrv.clone().unwrap_or_default(), None));
    }
    let namesrv = target.namesrv.namesrv.clone().ok_or_else(no_namesrv)?;
    Ok((namesrv, None))
}

fn no_namesrv() -> Fatal {
    Fatal::usage("no name server: pass --namesrv ADDR or set NAMESRV_ADDR (or use --embedded)")
}

async fn stop(embedded: Option<DevCluster>) {
    if let Some(dev) = embedded {
        if tokio::time::timeout(EMBEDDED_STOP_TIMEOUT, dev.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("the embedded dev broker did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fit_on_one_line() {
        let e = Cli::try_parse_from(["rmq", "send", "--topic", "T", "--bogus"]).unwrap_err();
        let line = usage_line(&e);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("rmq: error: "), "{line}");
        assert!(line.contains("--bogus"), "{line}");
    }

    #[test]
    fn missing_arguments_are_named() {
        for (args, missing) in [
            (&["rmq", "route"][..], "<TOPIC>"),
            (&["rmq", "send", "--embedded"][..], "--topic"),
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            let line = usage_line(&e);
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains(missing), "{args:?}: {line}");
            assert!(!line.contains("Usage:"), "{line}");
        }
    }
}
