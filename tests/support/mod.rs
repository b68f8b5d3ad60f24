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

pub mod admin;
pub mod commit_log;
pub mod load;
pub mod proxy;

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

pub use rmq_testkit::interop::{unique_topic, AclCluster, RealCluster};

/// Runs `scripts/rocketmq-dev.sh <args>` of `cluster` (e.g. `["stop-broker", "broker-b"]`).
pub fn run_script(cluster: &RealCluster, args: &[&str]) -> std::process::Output {
    let script = cluster
        .script
        .as_deref()
        .expect("RMQ_INTEROP_SCRIPT is not set");
    std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("run rocketmq-dev.sh")
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

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// The real cluster from the environment, `None` (skip) when not configured outside CI.
///
/// # Panics
/// When `CI` is set and the cluster is not configured.
pub fn real_cluster(test: &str) -> Option<RealCluster> {
    rmq_testkit::interop::require(test, RealCluster::from_vars(env), env("CI").is_some())
}

/// The ACL cluster (a broker requiring authentication), `None` (skip) when not configured
/// outside CI.
///
/// # Panics
/// When `CI` is set and it is not configured.
pub fn acl_cluster(test: &str) -> Option<AclCluster> {
    rmq_testkit::interop::require(test, AclCluster::from_vars(env), env("CI").is_some())
}

/// A generous bound for any single await in an interop test.
pub const INTEROP_TIMEOUT: Duration = Duration::from_secs(30);

/// The pid of a running process of `cluster` (`rocketmq-dev.sh status` prints
/// `broker-b running (pid 1234)`), `None` when it is not running.
pub fn cluster_pid(cluster: &RealCluster, name: &str) -> Option<u32> {
    let out = run_script(cluster, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("{name} running (pid ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Kills broker `name` of `cluster` with SIGKILL (no graceful shutdown: its connections reset, it
/// does not unregister from the name server) and waits, at most `limit`, until it is gone. The
/// pid comes from the script's own pid file (through `status`), so only the broker the script
/// started is killed; `start-broker` starts it again.
pub fn kill_broker_hard(cluster: &RealCluster, name: &str, limit: Duration) -> Result<(), String> {
    let pid = cluster_pid(cluster, name).ok_or_else(|| format!("{name} is not running"))?;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .map_err(|e| format!("kill -KILL {pid}: {e}"))?;
    if !status.success() {
        return Err(format!("kill -KILL {pid}: {status}"));
    }
    let deadline = Instant::now() + limit;
    while cluster_pid(cluster, name).is_some() {
        if Instant::now() >= deadline {
            return Err(format!("{name} (pid {pid}) still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
