//! The dev broker: the testkit's in-memory name server and brokers, with topic auto-creation on,
//! for `rmq dev-broker` and `--embedded`.
//!
//! The name server listens on `127.0.0.1:port` when a port is asked for (`rmq dev-broker --port
//! 9876`), otherwise on an ephemeral port; the brokers always use ephemeral ports (the name server
//! tells clients where they are). The brokers keep recent messages only: their stores are cleared
//! every [`TRIM_EVERY_REQUESTS`] send requests, so a long benchmark does not grow memory without
//! bound (pending half messages stay until their transaction ends).
//!
//! Transactions are checked back as a broker does, with short timers ([`TRANSACTION_CHECK`]):
//! a half message still undecided one second after it was born is checked at the next pass,
//! every second, at most 15 times; `rmq send --transaction unknown` ends in seconds.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::RequestCode;
use rmq_testkit::{MockCluster, TransactionCheck};
use tokio::task::JoinHandle;

/// Send requests a broker answers between two clears of its store.
pub(crate) const TRIM_EVERY_REQUESTS: usize = 20_000;

/// The dev brokers' transaction check: every second, half messages older than a second, at most
/// 15 checks each (a broker's defaults: every 30 or 60 s, older than 6 s, 15).
pub(crate) const TRANSACTION_CHECK: TransactionCheck = TransactionCheck {
    interval: Duration::from_secs(1),
    min_age: Duration::from_secs(1),
    max_checks: 15,
};

/// How often the stores are checked.
const TRIM_CHECK: Duration = Duration::from_millis(500);

/// The send request codes a broker stores messages for.
const SEND_CODES: [RequestCode; 3] = [
    RequestCode::SEND_MESSAGE,
    RequestCode::SEND_MESSAGE_V2,
    RequestCode::SEND_BATCH_MESSAGE,
];

/// A running dev cluster; [`DevCluster::shutdown`] stops it (dropping it stops the trimmer too).
#[derive(Debug)]
pub(crate) struct DevCluster {
    cluster: Arc<MockCluster>,
    addr: String,
    trimmer: JoinHandle<()>,
}

impl DevCluster {
    /// Starts a name server and `brokers` brokers with auto-creation on. With `port`, the name
    /// server is reachable on `127.0.0.1:port` (0: any free port); without, on the mock's own
    /// ephemeral port.
    ///
    /// # Errors
    /// A bind error (e.g. the port is taken).
    pub(crate) async fn start(brokers: usize, port: Option<u16>) -> io::Result<Self> {
        let cluster = match port {
            None => MockCluster::start(brokers).await?,
            Some(port) => MockCluster::start_on((Ipv4Addr::LOCALHOST, port), brokers)
                .await
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on 127.0.0.1:{port}: {e}"))
                })?,
        };
        let cluster = Arc::new(cluster);
        cluster.set_auto_create(true);
        cluster.set_transaction_check(Some(TRANSACTION_CHECK));
        let addr = cluster.namesrv_addr();
        let trimmer = tokio::spawn(trim(Arc::clone(&cluster)));
        tracing::info!(namesrv = %addr, brokers, "dev cluster started");
        Ok(Self {
            cluster,
            addr,
            trimmer,
        })
    }

    /// The name server address clients use.
    pub(crate) fn namesrv_addr(&self) -> &str {
        &self.addr
    }

    /// `(broker name, address)` of every broker.
    pub(crate) fn brokers(&self) -> Vec<(String, String)> {
        self.cluster
            .brokers()
            .iter()
            .map(|b| (b.name().to_owned(), b.addr()))
            .collect()
    }

    /// Stops the trimmer, the brokers and the name server.
    pub(crate) async fn shutdown(mut self) {
        self.stop_tasks();
        self.cluster.shutdown().await;
        tracing::info!("dev cluster stopped");
    }

    fn stop_tasks(&mut self) {
        self.trimmer.abort();
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

/// Clears a broker's store whenever it answered [`TRIM_EVERY_REQUESTS`] more send requests.
async fn trim(cluster: Arc<MockCluster>) {
    let sends = |b: &rmq_testkit::MockBroker| -> usize {
        SEND_CODES.iter().map(|&c| b.request_count(c)).sum()
    };
    let mut at_last_clear: Vec<usize> = cluster.brokers().iter().map(sends).collect();
    loop {
        tokio::time::sleep(TRIM_CHECK).await;
        for (b, last) in cluster.brokers().iter().zip(at_last_clear.iter_mut()) {
            let now = sends(b);
            if now.saturating_sub(*last) >= TRIM_EVERY_REQUESTS {
                b.clear_messages();
                *last = now;
                tracing::debug!(broker = b.name(), "dev broker store cleared");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rmq_nameserver_client::NameServerClient;
    use rmq_remoting::{RemotingClient, RemotingConfig};

    use super::*;

    const T: Duration = Duration::from_secs(10);

    async fn route_brokers(addr: &str, topic: &str) -> Vec<String> {
        let remoting = RemotingClient::new(RemotingConfig::default());
        let client = NameServerClient::new(remoting.clone(), vec![addr.to_owned()]);
        let route = tokio::time::timeout(T, client.topic_route(topic, T))
            .await
            .unwrap()
            .unwrap();
        remoting.shutdown().await;
        route
            .broker_datas
            .iter()
            .map(|b| b.broker_name.clone())
            .collect()
    }

    #[tokio::test]
    async fn the_name_server_listens_on_the_fixed_port() {
        // Ask the OS for a free port, then ask the dev cluster for exactly that port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dev = tokio::time::timeout(T, DevCluster::start(2, Some(port)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(dev.namesrv_addr(), format!("127.0.0.1:{port}"));
        let mut brokers = route_brokers(dev.namesrv_addr(), rmq_testkit::AUTO_CREATE_TOPIC).await;
        brokers.sort();
        assert_eq!(brokers, vec!["broker-a", "broker-b"]);
        assert_eq!(dev.brokers().len(), 2);
        tokio::time::timeout(T, dev.shutdown()).await.unwrap();
        // The port is free again.
        let again = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
        assert!(again.is_ok(), "{again:?}");
    }

    #[tokio::test]
    async fn a_taken_port_is_a_readable_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = tokio::time::timeout(T, DevCluster::start(1, Some(port)))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn without_a_port_the_mock_address_is_used() {
        let dev = tokio::time::timeout(T, DevCluster::start(1, None))
            .await
            .unwrap()
            .unwrap();
        assert!(dev.namesrv_addr().starts_with("127.0.0.1:"));
        assert_eq!(
            route_brokers(dev.namesrv_addr(), rmq_testkit::AUTO_CREATE_TOPIC).await,
            vec!["broker-a"]
        );
        tokio::time::timeout(T, dev.shutdown()).await.unwrap();
    }
}
