//! `rmq dev-broker`: the in-memory dev cluster as a standalone process, until Ctrl-C or SIGTERM.

use std::time::Duration;

use crate::cli::DevBrokerArgs;
use crate::dev_cluster::DevCluster;
use crate::fatal::Fatal;
use crate::output::exit;
use crate::signals::stop_signal;

/// Bound on stopping the cluster after the signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the dev broker until a stop signal.
pub(crate) async fn run(args: &DevBrokerArgs) -> Result<u8, Fatal> {
    let dev = DevCluster::start(usize::from(args.brokers), Some(args.port))
        .await
        .map_err(|e| {
            Fatal::failed(format!(
                "cannot start the dev broker: {}",
                crate::output::one_line(&e)
            ))
        })?;
    let brokers: Vec<String> = dev
        .brokers()
        .into_iter()
        .map(|(name, addr)| format!("{name}={addr}"))
        .collect();
    eprintln!(
        "rmq dev-broker: name server on {} (in memory; brokers {}; topics are created on first \
         send; undecided transactions are checked back every {}s once {}s old)",
        dev.namesrv_addr(),
        brokers.join(", "),
        crate::dev_cluster::TRANSACTION_CHECK.interval.as_secs(),
        crate::dev_cluster::TRANSACTION_CHECK.min_age.as_secs()
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
