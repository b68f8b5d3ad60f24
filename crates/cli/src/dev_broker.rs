//! `rmq dev-broker`: the in-memory dev cluster as a standalone process, until Ctrl-C or SIGTERM.

use std::time::Duration;

use crate::cli::DevBrokerArgs;
use crate::dev_cluster::DevCluster;
use crate::fatal::Fatal;
use crate::output::exit;

/// Bound on stopping the cluster after the signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the dev broker until a stop signal.
pub(crate) async fn run(args: &DevBrokerArgs) -> Result<u8, Fatal> {
    let dev = DevCluster::start(usize::from(args.brokers), Some(args.port))
        .await
        .map_err(|e| Fatal::failed(format!("cannot start the dev broker: {e}")))?;
    let brokers: Vec<String> = dev
        .brokers()
        .into_iter()
        .map(|(name, addr)| format!("{name}={addr}"))
        .collect();
    eprintln!(
        "rmq dev-broker: name server on {} (in memory; brokers {}; topics are created on first send)",
        dev.namesrv_addr(),
        brokers.join(", ")
    );
    eprintln!(
        "rmq dev-broker: NAMESRV_ADDR={}  (Ctrl-C to stop)",
        dev.namesrv_addr()
    );
    let signal = stop_signal().await;
    eprintln!("rmq dev-broker: {signal}, stopping");
    if tokio::time::timeout(STOP_TIMEOUT, dev.shutdown())
        .await
        .is_err()
    {
        return Err(Fatal::failed("the dev broker did not stop in time"));
    }
    Ok(exit::OK)
}

/// Waits for Ctrl-C (SIGINT) or, on Unix, SIGTERM; returns which.
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "interrupted",
                _ = term.recv() => "terminated",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                ctrl_c().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c().await
    }
}

async fn ctrl_c() -> &'static str {
    match tokio::signal::ctrl_c().await {
        Ok(()) => "interrupted",
        // Without a signal handler the process can only be killed; wait for that.
        Err(_) => std::future::pending().await,
    }
}
