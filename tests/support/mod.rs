//! Shared helpers for the top-level integration tests.
//!
//! Interop tests talk to a real RocketMQ name server and brokers started by
//! `scripts/rocketmq-dev.sh start`, which prints the environment below (and `.ci/run` exports it):
//!
//! - `RMQ_INTEROP_NAMESRV`: the name server address, e.g. `127.0.0.1:9876`;
//! - `RMQ_INTEROP_BROKERS`: `name=addr` pairs separated by `;`, e.g.
//!   `broker-a=127.0.0.1:10911;broker-b=127.0.0.1:10921`;
//! - `RMQ_INTEROP_SCRIPT` (optional): path of the script, so a test can stop and restart a broker.
//!
//! When those are absent the interop tests are skipped locally (with a note on stderr), but when
//! `CI` is set their absence is a failure: CI must never silently skip them.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Serializes the tests of one binary that use the real cluster against those that stop a
/// broker: the tests of a binary run in parallel, test binaries one after the other, so a
/// process-wide lock suffices.
static CLUSTER_LOCK: RwLock<()> = RwLock::const_new(());

/// Held by a test that only uses the cluster (many at once).
pub async fn cluster_shared() -> RwLockReadGuard<'static, ()> {
    CLUSTER_LOCK.read().await
}

/// Held by a test that stops brokers (alone).
pub async fn cluster_exclusive() -> RwLockWriteGuard<'static, ()> {
    CLUSTER_LOCK.write().await
}

/// The longest `start-broker` may take when a [`BrokerRestart`] restarts a broker.
pub const RESTART_TIMEOUT: Duration = Duration::from_secs(180);

/// A real cluster started by `scripts/rocketmq-dev.sh`.
#[derive(Debug, Clone)]
pub struct RealCluster {
    /// Name server address.
    pub namesrv: String,
    /// `(broker name, master address)` pairs.
    pub brokers: Vec<(String, String)>,
    /// The script that started the cluster, when known.
    pub script: Option<String>,
}

impl RealCluster {
    /// Address of a broker by name.
    pub fn broker_addr(&self, name: &str) -> Option<&str> {
        self.brokers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
    }

    /// Runs `scripts/rocketmq-dev.sh <args>` (e.g. `["stop-broker", "broker-b"]`).
    pub fn script(&self, args: &[&str]) -> std::process::Output {
        let script = self
            .script
            .as_deref()
            .expect("RMQ_INTEROP_SCRIPT is not set");
        std::process::Command::new("bash")
            .arg(script)
            .args(args)
            .output()
            .expect("run rocketmq-dev.sh")
    }
}

/// Stops a broker and starts it again when dropped (also when the test panics), so a failing
/// test never leaves the cluster short of a broker for the next ones.
#[derive(Debug)]
pub struct BrokerRestart {
    cluster: RealCluster,
    broker: String,
    stopped: bool,
}

impl BrokerRestart {
    /// A guard for `broker`; nothing is stopped yet.
    pub fn new(cluster: &RealCluster, broker: &str) -> Self {
        Self {
            cluster: cluster.clone(),
            broker: broker.to_owned(),
            stopped: false,
        }
    }

    /// Marks the broker as stopped (call before running `stop-broker`): from now on, the drop
    /// starts it again.
    pub fn mark_stopped(&mut self) {
        self.stopped = true;
    }

    /// Starts the broker again now (bounded by [`RESTART_TIMEOUT`]); the drop then does nothing.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stopped = false;
        run_bounded(
            &self.cluster,
            &["start-broker", &self.broker],
            RESTART_TIMEOUT,
        )
    }
}

impl Drop for BrokerRestart {
    fn drop(&mut self) {
        if self.stopped {
            self.stopped = false;
            eprintln!("restarting {} after an interrupted test", self.broker);
            if let Err(e) = run_bounded(
                &self.cluster,
                &["start-broker", &self.broker],
                RESTART_TIMEOUT,
            ) {
                eprintln!("start-broker {}: {e}", self.broker);
            }
        }
    }
}

/// Runs the cluster script with `args`, killed after `limit`.
fn run_bounded(cluster: &RealCluster, args: &[&str], limit: Duration) -> Result<(), String> {
    let script = cluster
        .script
        .as_deref()
        .ok_or("RMQ_INTEROP_SCRIPT is not set")?;
    let mut child = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("run {script}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{args:?}: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{args:?}: still running after {limit:?}, killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{args:?}: {e}")),
        }
    }
}

/// The real cluster from the environment, `None` (skip) when not configured outside CI.
///
/// # Panics
/// When `CI` is set and the cluster is not configured.
pub fn real_cluster(test: &str) -> Option<RealCluster> {
    let namesrv = std::env::var("RMQ_INTEROP_NAMESRV")
        .ok()
        .filter(|s| !s.is_empty());
    let brokers = std::env::var("RMQ_INTEROP_BROKERS")
        .ok()
        .filter(|s| !s.is_empty());
    match (namesrv, brokers) {
        (Some(namesrv), Some(brokers)) => {
            let brokers = brokers
                .split(';')
                .filter_map(|pair| {
                    let (n, a) = pair.split_once('=')?;
                    Some((n.trim().to_owned(), a.trim().to_owned()))
                })
                .collect();
            let script = std::env::var("RMQ_INTEROP_SCRIPT")
                .ok()
                .filter(|s| !s.is_empty());
            Some(RealCluster {
                namesrv,
                brokers,
                script,
            })
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: CI is set but RMQ_INTEROP_NAMESRV / RMQ_INTEROP_BROKERS are not: \
             the real cluster must be started by scripts/rocketmq-dev.sh (see .ci/run)"
        ),
        _ => {
            eprintln!(
                "{test}: skipped: no real cluster (run `eval \"$(scripts/rocketmq-dev.sh start)\"` first)"
            );
            None
        }
    }
}

/// The ACL cluster of `scripts/rocketmq-dev.sh` (a name server and a broker requiring
/// authentication): `(name server, access key, secret key)`, `None` (skip) when not configured
/// outside CI.
///
/// # Panics
/// When `CI` is set and it is not configured.
pub fn acl_cluster(test: &str) -> Option<(String, String, String)> {
    let namesrv = std::env::var("RMQ_INTEROP_ACL_NAMESRV")
        .ok()
        .filter(|s| !s.is_empty());
    let credentials = std::env::var("RMQ_INTEROP_ACL_CREDENTIALS").ok();
    match (
        namesrv,
        credentials.as_deref().and_then(|c| c.split_once(':')),
    ) {
        (Some(namesrv), Some((ak, sk))) => Some((namesrv, ak.to_owned(), sk.to_owned())),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: CI is set but RMQ_INTEROP_ACL_NAMESRV / RMQ_INTEROP_ACL_CREDENTIALS are not: \
             the ACL cluster must be started by scripts/rocketmq-dev.sh (see .ci/run)"
        ),
        _ => {
            eprintln!("{test}: skipped: no ACL cluster (run `eval \"$(scripts/rocketmq-dev.sh start)\"` first)");
            None
        }
    }
}

/// A generous bound for any single await in an interop test.
pub const INTEROP_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic name unique to this test run.
pub fn unique_topic(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}
