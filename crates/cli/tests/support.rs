//! Shared helpers of the CLI integration tests: run the built `rmq` binary with a bounded wait,
//! and find the real cluster started by `scripts/rocketmq-dev.sh` (same contract as the
//! workspace's `tests/support/mod.rs`: `RMQ_INTEROP_NAMESRV` / `RMQ_INTEROP_BROKERS`; skipped
//! locally when unset, a failure when `CI` is set).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `rmq` binary built by cargo for this test run.
pub(crate) const RMQ: &str = env!("CARGO_BIN_EXE_rmq");

/// Bound on one `rmq` run in a test.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished `rmq` run printed and returned.
#[derive(Debug)]
pub(crate) struct Run {
    /// The exit code (`None`: killed by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The stdout lines parsed as JSON (panics on a line that is not JSON).
    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{self:?}"))
            })
            .collect()
    }

    /// The whole stdout parsed as one JSON document.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:?}"))
    }
}

/// A command for `rmq args...` with a clean environment for the things the CLI reads.
pub(crate) fn rmq(args: &[&str]) -> Command {
    let mut cmd = Command::new(RMQ);
    cmd.args(args)
        .env_remove("NAMESRV_ADDR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd`, killing it after `timeout`.
///
/// # Panics
/// When it cannot be started or did not finish in time (after killing it).
pub(crate) fn run_with(mut cmd: Command, timeout: Duration) -> Run {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start rmq");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, timeout);
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    match status {
        Some(status) => Run {
            code: status.code(),
            stdout,
            stderr,
        },
        None => panic!("rmq did not finish within {timeout:?}\nstdout: {stdout}\nstderr: {stderr}"),
    }
}

/// Runs `rmq args...` with [`RUN_TIMEOUT`].
pub(crate) fn run(args: &[&str]) -> Run {
    run_with(rmq(args), RUN_TIMEOUT)
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` at most `timeout`; kills and reaps it when late (returns `None`).
pub(crate) fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A long-running `rmq` process (the dev broker, a long bench) whose stderr is read line by
/// line and whose stdout is collected; killed and reaped on drop.
#[derive(Debug)]
pub(crate) struct Background {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: Option<thread::JoinHandle<String>>,
}

impl Background {
    /// Starts `cmd` with stdout and stderr piped.
    pub(crate) fn start(mut cmd: Command) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start rmq");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().map(drain);
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
            stdout,
        }
    }

    /// The first stderr line containing `needle`, waiting at most `timeout`.
    pub(crate) fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no stderr line with {needle:?} within {timeout:?}: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Sends SIGTERM (through `kill`) and waits for the exit at most `timeout`.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal("-TERM");
        wait_bounded(&mut self.child, timeout)
    }

    /// Sends `signal` (a `kill` option such as `-INT`) to the process.
    pub(crate) fn signal(&mut self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status();
        assert!(
            sent.as_ref().is_ok_and(|s| s.success()),
            "kill {signal} {pid}: {sent:?}"
        );
    }

    /// Everything the process wrote on stdout (call after it exited).
    pub(crate) fn stdout(&mut self) -> String {
        self.stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An address on 127.0.0.1 where nothing listens (a port bound then released).
pub(crate) fn closed_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    addr.to_string()
}

// Not every test binary that includes this file uses both.
#[allow(unused_imports)]
pub(crate) use rmq_testkit::interop::{unique_topic, RealCluster};

/// The real cluster from the environment; `None` (skip, with a note) when not configured outside
/// CI.
///
/// # Panics
/// When `CI` is set and the cluster is not configured.
pub(crate) fn real_cluster(test: &str) -> Option<RealCluster> {
    let env = |k: &str| std::env::var(k).ok();
    rmq_testkit::interop::require(test, RealCluster::from_vars(env), env("CI").is_some())
}
