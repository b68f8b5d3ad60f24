//! The command tree (clap derive): `rmq send | route | bench | dev-broker | request`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rmq_producer::TransactionState;

use crate::args::{parse_keys, parse_property, parse_queue, Keys, QueueArg};

/// The exit codes, shown after the help.
const EXIT_CODES: &str =
    "Exit codes: 0 every message succeeded (with --transaction: and every transaction was \
decided); 1 a send failed and was certainly not stored, or the command failed; 2 bad usage; 3 a \
send failed and may have been stored (a retry may duplicate it), or a transaction was left \
undecided: its half message waits on the broker, which asks the producer group again later.";

/// How long `--transaction` waits for check-backs when `--check-wait` is not given, in seconds.
pub(crate) const DEFAULT_CHECK_WAIT_SECS: u64 = 90;

/// Send to, inspect and benchmark Apache RocketMQ over the remoting protocol.
#[derive(Debug, Parser)]
#[command(name = "rmq", version, about, propagate_version = true, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Tracing output on stderr: -v info, -vv debug, -vvv trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Send messages and print one JSON line per result on stdout.
    #[command(after_help = EXIT_CODES)]
    Send(SendArgs),
    /// Print a topic's route and publish info (queues, master addresses) as JSON.
    Route(RouteArgs),
    /// Measure throughput and latency; one JSON summary on stdout at the end (also after Ctrl-C,
    /// which stops new sends and waits for those in flight, not for transaction check-backs; a
    /// second Ctrl-C stops waiting).
    #[command(after_help = EXIT_CODES)]
    Bench(BenchArgs),
    /// Run an in-memory name server and broker(s) on 127.0.0.1 until Ctrl-C (transactions
    /// undecided for a second are checked back every second).
    DevBroker(DevBrokerArgs),
    /// Send a request and print its reply as JSON (request/reply; --echo answers it from this
    /// process, as --embedded does).
    #[command(after_help = EXIT_CODES)]
    Request(crate::request::RequestArgs),
    /// Recall (withdraw) a timer message before its time, by the handle `send` printed.
    Recall(crate::recall::RecallArgs),
}

/// Where the name servers are: `--namesrv`, else `NAMESRV_ADDR`, or an embedded dev broker.
#[derive(Debug, Clone, Args)]
pub(crate) struct NameServerArgs {
    /// Name server address(es), `host:port[;host:port...]`.
    #[arg(long, env = "NAMESRV_ADDR", value_name = "ADDR")]
    pub(crate) namesrv: Option<String>,

    #[command(flatten)]
    pub(crate) tls: crate::tls_args::TlsArgs,

    #[command(flatten)]
    pub(crate) proxy: crate::proxy_args::ProxyArgs,
}

/// Either a name server or an in-process dev broker.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) namesrv: NameServerArgs,

    /// Start an in-memory dev broker in this process and use it instead of --namesrv.
    #[arg(long)]
    pub(crate) embedded: bool,

    #[command(flatten)]
    pub(crate) namespace: crate::namespace_args::NamespaceArgs,
}

/// How `rmq send` sends each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SendMode {
    /// Wait for each answer before the next send.
    Sync,
    /// Start every send, then print the results in order.
    Async,
    /// Write each message without waiting for an answer.
    Oneway,
}

/// What the local transaction of `rmq send --transaction` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TxDecision {
    /// COMMIT_MESSAGE: the message becomes visible to consumers.
    Commit,
    /// ROLLBACK_MESSAGE: the half message is discarded.
    Rollback,
    /// UNKNOW: the broker checks back later; this process answers COMMIT (see --check-wait).
    Unknown,
}

impl From<TxDecision> for TransactionState {
    fn from(d: TxDecision) -> Self {
        match d {
            TxDecision::Commit => Self::Commit,
            TxDecision::Rollback => Self::Rollback,
            TxDecision::Unknown => Self::Unknown,
        }
    }
}

/// The help of `--check-wait` (send and bench).
const CHECK_WAIT_HELP: &str = "How long to stay up for the broker's check-backs of undecided \
transactions (default 90; 0: do not wait). A broker checks a half message once it is older than \
its transactionTimeout (6 s), at its next check pass (transactionCheckInterval: 60 s on Java \
brokers, 30 s on rocketmq-rust, 1 s on --embedded and rmq dev-broker). The run ends as soon as \
every undecided transaction was answered (Ctrl-C ends the wait); any still undecided then make the \
exit code 3.";

/// The help of `rmq bench --check-wait`.
const BENCH_CHECK_WAIT_HELP: &str = "Transaction mode: how long to wait, after the sends, for \
the broker's check-backs of the unknown transactions (default 90; 0: do not wait; Ctrl-C ends \
the wait). A broker checks a half message once it is older than its transactionTimeout (6 s), at \
its next check pass (transactionCheckInterval: 60 s on Java brokers, 30 s on rocketmq-rust, 1 s \
on --embedded and rmq dev-broker). Those not checked back by then are counted as \
\"unchecked\" and make the exit code 3.";

/// `rmq send`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// The topic.
    #[arg(long, short = 't')]
    pub(crate) topic: String,

    /// The message tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,

    /// Message keys, comma-separated (`K1,K2`).
    #[arg(long, value_parser = parse_keys, value_name = "K1,K2")]
    pub(crate) keys: Option<Keys>,

    /// A user property `k=v` (repeatable).
    #[arg(long = "property", short = 'p', value_parser = parse_property, value_name = "K=V")]
    pub(crate) properties: Vec<(String, String)>,

    /// The message body.
    #[arg(long, conflicts_with = "body_file")]
    pub(crate) body: Option<String>,

    /// Read the body from a file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) body_file: Option<PathBuf>,

    /// How many messages to send.
    #[arg(long, short = 'n', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: u64,

    /// Send mode.
    #[arg(long, value_enum, default_value_t = SendMode::Sync)]
    pub(crate) mode: SendMode,

    /// Send the messages in batches of N (one result line per batch).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..),
          conflicts_with = "queue")]
    pub(crate) batch: Option<u32>,

    /// Send to this queue only: `BROKER:ID` (e.g. `broker-a:0`).
    #[arg(long, value_parser = parse_queue, value_name = "BROKER:ID")]
    pub(crate) queue: Option<QueueArg>,

    /// Send deadline per message (route lookup and every attempt).
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) timeout_ms: u64,

    /// Producer group.
    #[arg(long, default_value = "rmq_cli")]
    pub(crate) group: String,

    /// Send each message in a transaction (a half message, then END_TRANSACTION): the local
    /// transaction decides STATE. With `unknown`, the process then stays up (see --check-wait)
    /// and answers the broker's check-back of each of its messages with COMMIT; checks about
    /// half messages it did not send (e.g. a previous run's, same --group) are answered UNKNOW
    /// and logged. Sync sends only: not with --mode async|oneway nor --batch.
    #[arg(long, value_enum, value_name = "STATE")]
    pub(crate) transaction: Option<TxDecision>,

    #[arg(long, value_name = "SECS", requires = "transaction", help = CHECK_WAIT_HELP,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) check_wait: Option<u64>,
    #[command(flatten)]
    pub(crate) trace: crate::trace_args::TraceArgs,
    #[command(flatten)]
    pub(crate) extras: crate::send_extras::SendExtras,
}

/// `rmq route`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RouteArgs {
    #[command(flatten)]
    pub(crate) namesrv: NameServerArgs,

    /// The topic.
    pub(crate) topic: String,

    /// Deadline for the name server's answer.
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) timeout_ms: u64,
}

/// What `rmq bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BenchMode {
    /// Each task waits for each answer.
    Sync,
    /// Each task pipelines sends (bounded by the producer's back-pressure).
    Async,
    /// Each task writes without waiting for answers.
    Oneway,
    /// Each task sends batches of --batch messages.
    Batch,
    /// Each task sends transactional messages (half message, local transaction, END_TRANSACTION);
    /// the local transaction commits, or rolls back / answers unknown at --tx-rollback-rate /
    /// --tx-unknown-rate; unknown ones are committed when the broker checks back.
    Transaction,
}

impl BenchMode {
    /// The name used in the JSON summary.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Async => "async",
            Self::Oneway => "oneway",
            Self::Batch => "batch",
            Self::Transaction => "transaction",
        }
    }
}

/// `rmq bench`. Ctrl-C or SIGTERM stops it early: no new sends, those in flight are awaited (a
/// second signal stops waiting: those are reported as `"abandoned"` and the exit code is 3), and
/// the summary is printed with `"interrupted":true`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("bound").required(true).multiple(true).args(["count", "duration"])))]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,

    /// The topic.
    #[arg(long, short = 't', default_value = "BenchmarkTest")]
    pub(crate) topic: String,

    /// Send mode.
    #[arg(long, value_enum, default_value_t = BenchMode::Sync)]
    pub(crate) mode: BenchMode,

    /// Body size in bytes.
    #[arg(long, default_value_t = 128, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(1..=4 * 1024 * 1024))]
    pub(crate) size: u32,

    /// Concurrent sending tasks (async mode: sends kept in flight, at most the producer's
    /// back-pressure bound).
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) concurrency: u32,

    /// Stop after N messages (with --duration: whichever comes first).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,

    /// Stop after SECS seconds (with --count: whichever comes first).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub(crate) duration: Option<u64>,

    /// Messages per batch (batch mode).
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) batch: u32,

    /// Send deadline per message.
    #[arg(long, default_value_t = 3000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub(crate) timeout_ms: u64,

    /// Producer group.
    #[arg(long, default_value = "rmq_cli_bench")]
    pub(crate) group: String,

    /// Transaction mode: the share of local transactions that roll back, in [0, 1] (default 0).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) tx_rollback_rate: Option<f64>,

    /// Transaction mode: the share of local transactions that answer unknown, in [0, 1] (default
    /// 0); the broker checks them back and this process commits them. With
    /// --tx-rollback-rate, at most 1 in all.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub(crate) tx_unknown_rate: Option<f64>,

    #[arg(long, value_name = "SECS", help = BENCH_CHECK_WAIT_HELP,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub(crate) check_wait: Option<u64>,

    #[command(flatten)]
    pub(crate) trace: crate::trace_args::TraceArgs,

    #[command(flatten)]
    pub(crate) auto_batch: crate::bench::AutoBatchArgs,

    #[command(flatten)]
    pub(crate) report: crate::bench::ReportArgs,

    #[command(flatten)]
    pub(crate) live: crate::bench::LiveArgs,
}

/// Parses a rate in [0, 1].
fn parse_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("{rate} is not in [0, 1]"));
    }
    Ok(rate)
}

/// `rmq dev-broker`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DevBrokerArgs {
    /// Name server port on 127.0.0.1 (0 picks a free port).
    #[arg(long, default_value_t = 9876)]
    pub(crate) port: u16,

    /// How many brokers (`broker-a`, `broker-b`, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=26))]
    pub(crate) brokers: u8,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("rmq").chain(args.iter().copied()))
    }

    fn send(args: &[&str]) -> SendArgs {
        let mut all = vec!["send"];
        all.extend_from_slice(args);
        match parse(&all).map(|c| c.command) {
            Ok(Command::Send(s)) => s,
            other => panic!("not a send: {other:?}"),
        }
    }

    #[test]
    fn the_command_tree_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn send_takes_every_documented_option() {
        let s = send(&[
            "--namesrv",
            "127.0.0.1:9876",
            "--topic",
            "T",
            "--tag",
            "TagA",
            "--keys",
            "K1,K2",
            "--property",
            "a=1",
            "--property",
            "b=x=y",
            "--body",
            "hi",
            "--count",
            "3",
            "--mode",
            "async",
            "--queue",
            "broker-a:2",
            "--timeout-ms",
            "500",
        ]);
        assert_eq!(s.target.namesrv.namesrv.as_deref(), Some("127.0.0.1:9876"));
        assert!(!s.target.embedded);
        assert_eq!(s.topic, "T");
        assert_eq!(s.tag.as_deref(), Some("TagA"));
        assert_eq!(s.keys, Some(Keys(vec!["K1".to_owned(), "K2".to_owned()])));
        assert_eq!(
            s.properties,
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x=y".to_owned())
            ]
        );
        assert_eq!(s.body.as_deref(), Some("hi"));
        assert_eq!((s.count, s.mode, s.timeout_ms), (3, SendMode::Async, 500));
        assert_eq!(
            s.queue,
            Some(QueueArg {
                broker: "broker-a".into(),
                queue_id: 2
            })
        );
        assert_eq!(s.batch, None);
    }

    #[test]
    fn send_defaults() {
        let s = send(&["--topic", "T", "--embedded"]);
        assert!(s.target.embedded);
        assert_eq!((s.count, s.mode, s.timeout_ms), (1, SendMode::Sync, 3000));
        assert!(s.properties.is_empty() && s.keys.is_none() && s.queue.is_none());
    }

    #[test]
    fn send_rejects_bad_combinations_and_values() {
        let bad: &[&[&str]] = &[
            &["send"],
            &["send", "--topic", "T", "--body", "a", "--body-file", "f"],
            &["send", "--topic", "T", "--batch", "2", "--queue", "b:0"],
            &["send", "--topic", "T", "--count", "0"],
            &["send", "--topic", "T", "--batch", "0"],
            &["send", "--topic", "T", "--mode", "fast"],
            &["send", "--topic", "T", "--queue", "broker-a"],
            &["send", "--topic", "T", "--property", "novalue"],
            &["send", "--topic", "T", "--keys", ",,"],
            &["send", "--topic", "T", "--timeout-ms", "-1"],
            &["send", "--topic", "T", "--timeout-ms", "0"],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn send_transaction_takes_a_state_and_a_check_wait() {
        let s = send(&["--topic", "T", "--transaction", "unknown"]);
        assert_eq!(s.transaction, Some(TxDecision::Unknown));
        assert_eq!(s.check_wait, None, "the default is applied at run time");
        let s = send(&[
            "--topic",
            "T",
            "--transaction",
            "commit",
            "--check-wait",
            "0",
        ]);
        assert_eq!(
            (s.transaction, s.check_wait),
            (Some(TxDecision::Commit), Some(0))
        );
        assert_eq!(
            TransactionState::from(TxDecision::Rollback),
            TransactionState::Rollback
        );
        for bad in [
            &["send", "--topic", "T", "--transaction", "maybe"][..],
            &["send", "--topic", "T", "--check-wait", "5"],
            &[
                "send",
                "--topic",
                "T",
                "--transaction",
                "commit",
                "--check-wait",
                "-1",
            ],
            &[
                "send",
                "--topic",
                "T",
                "--transaction",
                "commit",
                "--check-wait",
                "90s",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn route_takes_the_topic_positionally() {
        let cli = parse(&["-v", "route", "--namesrv", "h:1", "TopicA"]).unwrap();
        assert_eq!(cli.verbose, 1);
        match cli.command {
            Command::Route(r) => {
                assert_eq!(r.topic, "TopicA");
                assert_eq!(r.namesrv.namesrv.as_deref(), Some("h:1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            parse(&["route", "--namesrv", "h:1"]).is_err(),
            "topic required"
        );
    }

    #[test]
    fn bench_needs_a_bound_and_accepts_each_mode() {
        assert!(
            parse(&["bench", "--embedded"]).is_err(),
            "no --count nor --duration"
        );
        for mode in ["sync", "async", "oneway", "batch", "transaction"] {
            let cli = parse(&["bench", "--embedded", "--mode", mode, "--count", "10"]).unwrap();
            let Command::Bench(b) = cli.command else {
                panic!("not bench")
            };
            assert_eq!(b.mode.as_str(), mode);
            assert_eq!(
                (b.count, b.duration, b.size, b.concurrency),
                (Some(10), None, 128, 1)
            );
        }
        let cli = parse(&[
            "bench",
            "--namesrv",
            "h:1",
            "--duration",
            "5",
            "--count",
            "7",
            "--size",
            "1024",
            "--concurrency",
            "64",
            "--batch",
            "8",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 2);
        let Command::Bench(b) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(
            (b.count, b.duration, b.size, b.concurrency, b.batch),
            (Some(7), Some(5), 1024, 64, 8)
        );
        assert!(parse(&["bench", "--embedded", "--count", "1", "--size", "0"]).is_err());
        assert!(parse(&["bench", "--embedded", "--count", "1", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn dev_broker_port_defaults_to_9876() {
        let Command::DevBroker(d) = parse(&["dev-broker"]).unwrap().command else {
            panic!()
        };
        assert_eq!((d.port, d.brokers), (9876, 1));
        let Command::DevBroker(d) = parse(&["dev-broker", "--port", "0", "--brokers", "2"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!((d.port, d.brokers), (0, 2));
    }
}
