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

use std::time::Duration;

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
