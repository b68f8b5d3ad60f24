//! The pool's reconnect backoff table: per address, the consecutive failed connects, the end
//! of the current window and the last failure (see [`BackoffConfig`]).

use std::fmt::Write as _;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::backoff::BackoffConfig;
use crate::error::RemotingError;
use crate::error_duplicate::copy_io;

/// Above this many addresses, a failure also forgets the ones whose window ended more than
/// `max` ago, so addresses tried once do not pile up.
const PRUNE_ABOVE: usize = 64;

#[derive(Debug)]
struct Entry {
    failures: u32,
    retry_at: Instant,
    last: Arc<RemotingError>,
}

/// Addresses whose last connect failed; an address leaves it when a connect succeeds.
#[derive(Debug, Default)]
pub(super) struct Backoffs {
    map: DashMap<String, Entry>,
}

impl Backoffs {
    /// [`RemotingError::Backoff`] while `addr` is inside its window; `Ok` when no window is
    /// open (the call may connect: after a failure, that is the probe).
    pub(super) fn check(&self, addr: &str) -> Result<(), RemotingError> {
        let Some(entry) = self.map.get(addr) else {
            return Ok(());
        };
        let now = Instant::now();
        if now >= entry.retry_at {
            return Ok(());
        }
        let retry_in = entry.retry_at - now;
        tracing::trace!(addr, ?retry_in, "connect backed off; failing at once");
        Err(RemotingError::Backoff {
            addr: addr.to_owned(),
            retry_in,
            last: Arc::clone(&entry.last),
        })
    }

    /// Records a failed connect to `addr` (`err`: `Connect`, `ConnectTimeout` or `Tls`; other
    /// errors are not connect failures and record nothing): opens the next, longer window.
    pub(super) fn failed(&self, addr: &str, cfg: &BackoffConfig, err: &RemotingError) {
        if cfg.is_disabled() {
            return;
        }
        let Some(last) = duplicate(err) else {
            return;
        };
        let now = Instant::now();
        let spread = fastrand::f64().mul_add(2.0, -1.0);
        let last = Arc::new(last);
        let (failures, window) = {
            let mut entry = self.map.entry(addr.to_owned()).or_insert_with(|| Entry {
                failures: 0,
                retry_at: now,
                last: Arc::clone(&last),
            });
            entry.failures = entry.failures.saturating_add(1);
            let window = cfg.window(entry.failures, spread);
            entry.retry_at = now.checked_add(window).unwrap_or(entry.retry_at);
            entry.last = last;
            (entry.failures, window)
        };
        if failures == 1 {
            tracing::warn!(addr, ?window, error = %chain(err), "connect failed; backing off");
        } else {
            tracing::debug!(addr, failures, ?window, error = %chain(err), "connect failed again; backing off longer");
        }
        if self.map.len() > PRUNE_ABOVE {
            let max = cfg.max.min(crate::backoff::MAX_WINDOW);
            self.map
                .retain(|_, e| e.retry_at.checked_add(max).is_none_or(|until| now < until));
        }
    }

    /// A connect to `addr` succeeded: its backoff starts over.
    pub(super) fn succeeded(&self, addr: &str) {
        if let Some((_, entry)) = self.map.remove(addr) {
            tracing::info!(
                addr,
                failed_connects = entry.failures,
                "connected again; reconnect backoff reset"
            );
        }
    }

    /// Addresses in the table.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}

/// A copy of a connect failure, for the table (the caller keeps the original).
fn duplicate(err: &RemotingError) -> Option<RemotingError> {
    Some(match err {
        RemotingError::Connect { addr, source } => RemotingError::Connect {
            addr: addr.clone(),
            source: copy_io(source),
        },
        RemotingError::ConnectTimeout { addr, after } => RemotingError::ConnectTimeout {
            addr: addr.clone(),
            after: *after,
        },
        RemotingError::Tls { addr, source } => RemotingError::Tls {
            addr: addr.clone(),
            source: copy_io(source),
        },
        _ => return None,
    })
}

/// `err` and its sources, joined by ": ", for a log line.
fn chain(err: &RemotingError) -> String {
    let mut text = err.to_string();
    let mut next = std::error::Error::source(err);
    while let Some(e) = next {
        let _ = write!(text, ": {e}");
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::io;
    use std::time::Duration;

    use super::*;

    fn refused(addr: &str) -> RemotingError {
        RemotingError::Connect {
            addr: addr.into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        }
    }

    fn exact(initial_ms: u64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            multiplier: 2.0,
            jitter: 0.0,
            max: Duration::from_secs(1),
        }
    }

    fn retry_in(r: Result<(), RemotingError>) -> Duration {
        match r {
            Err(RemotingError::Backoff { retry_in, .. }) => retry_in,
            other => panic!("expected Backoff, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_opens_a_window_that_grows_and_a_success_resets() {
        let t = Backoffs::default();
        let cfg = exact(100);
        let a = "10.0.0.1:9876";
        assert!(t.check(a).is_ok(), "nothing failed yet");
        t.failed(a, &cfg, &refused(a));
        assert_eq!(retry_in(t.check(a)), Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(60)).await;
        let err = t.check(a).expect_err("still in the window");
        assert_eq!(retry_in(Err(err)), Duration::from_millis(40));
        assert!(t.check("10.0.0.2:9876").is_ok(), "per address");
        tokio::time::advance(Duration::from_millis(40)).await;
        assert!(
            t.check(a).is_ok(),
            "the window passed: the next call probes"
        );
        // The probe fails: twice as long.
        t.failed(a, &cfg, &refused(a));
        assert_eq!(retry_in(t.check(a)), Duration::from_millis(200));
        tokio::time::advance(Duration::from_millis(200)).await;
        for _ in 0..5 {
            t.failed(a, &cfg, &refused(a));
        }
        assert_eq!(retry_in(t.check(a)), Duration::from_secs(1), "capped");
        tokio::time::advance(Duration::from_secs(1)).await;
        t.succeeded(a);
        assert_eq!(t.len(), 0);
        t.failed(a, &cfg, &refused(a));
        assert_eq!(
            retry_in(t.check(a)),
            Duration::from_millis(100),
            "started over"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_backoff_error_is_typed_and_carries_the_last_failure() {
        let t = Backoffs::default();
        let a = "10.0.0.1:10911";
        t.failed(a, &exact(100), &refused(a));
        let err = t.check(a).expect_err("backed off");
        assert!(err.is_connection() && !err.maybe_delivered() && !err.is_timeout());
        let last = err.source().expect("the last failure");
        assert!(last
            .to_string()
            .contains("connect to 10.0.0.1:10911 failed"));
        let io = last.source().expect("its cause");
        assert!(io.to_string().contains("refused"), "{io}");
        assert!(!err.to_string().contains("refused"), "not repeated: {err}");
    }

    #[tokio::test(start_paused = true)]
    async fn only_connect_failures_count_and_disabled_records_nothing() {
        let t = Backoffs::default();
        let a = "10.0.0.1:1";
        t.failed(a, &exact(100), &RemotingError::Shutdown);
        t.failed(a, &BackoffConfig::DISABLED, &refused(a));
        assert_eq!(t.len(), 0);
        let timeout = RemotingError::ConnectTimeout {
            addr: a.into(),
            after: Duration::from_secs(3),
        };
        t.failed(a, &exact(100), &timeout);
        assert!(matches!(
            t.check(a),
            Err(RemotingError::Backoff { last, .. })
                if matches!(*last, RemotingError::ConnectTimeout { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_long_past_their_window_are_forgotten() {
        let t = Backoffs::default();
        let cfg = exact(100);
        for i in 0..=PRUNE_ABOVE {
            let a = format!("10.0.1.{i}:1");
            t.failed(&a, &cfg, &refused(&a));
        }
        assert_eq!(t.len(), PRUNE_ABOVE + 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        t.failed("10.0.2.1:1", &cfg, &refused("10.0.2.1:1"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn copies_keep_the_os_error_and_the_kind() {
        let os = io::Error::from_raw_os_error(111);
        assert_eq!(copy_io(&os).raw_os_error(), Some(111));
        let custom = io::Error::new(io::ErrorKind::InvalidData, "odd");
        let copy = copy_io(&custom);
        assert_eq!(copy.kind(), io::ErrorKind::InvalidData);
        assert_eq!(copy.to_string(), "odd");
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::General("bad".into()),
        );
        let copy = copy_io(&tls);
        assert!(copy
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .is_some());
    }
}
