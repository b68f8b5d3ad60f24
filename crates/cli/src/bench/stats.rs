//! What `rmq bench` measures: counters, HDR latency histograms (one for the last second, one for
//! the whole run), the live line and the final summary.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency tracked exactly (higher values are clamped): one minute, in microseconds.
const MAX_TRACKED_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
fn histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig <= 5).
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("valid constant histogram bounds")
}

/// The two histograms, under one lock.
#[derive(Debug)]
struct Hists {
    interval: Histogram<u64>,
    total: Histogram<u64>,
}

/// Shared by every sending task and the ticker.
#[derive(Debug)]
pub(crate) struct Recorder {
    hists: Mutex<Hists>,
    /// Messages whose send started (handed to the producer).
    started: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    maybe_stored: AtomicU64,
    /// Failed messages the broker refused with a response code (Java's "Response Failed").
    refused: AtomicU64,
    in_flight: AtomicI64,
    /// The latencies of the successful sends added up, in µs (Java's average RT).
    latency_sum_us: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            hists: Mutex::new(Hists {
                interval: histogram(),
                total: histogram(),
            }),
            started: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            maybe_stored: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            latency_sum_us: AtomicU64::new(0),
        }
    }
}

/// What happened in one interval (the live line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Interval {
    /// Seconds since the start.
    pub(crate) at_secs: u64,
    /// Messages stored per second in the interval.
    pub(crate) sent_per_sec: f64,
    /// Failed messages since the start.
    pub(crate) failed: u64,
    /// Latency percentiles of the interval (µs; 0 when nothing completed).
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    /// Sends in flight now.
    pub(crate) in_flight: i64,
    /// Since the start: messages stored, their latencies added up (µs), the highest latency
    /// (µs), and the failed messages the broker refused (Java's periodic line).
    pub(crate) sent_total: u64,
    pub(crate) latency_sum_us: u64,
    pub(crate) max_us: u64,
    pub(crate) refused: u64,
}

impl Interval {
    /// The live line printed on stderr.
    pub(crate) fn line(&self) -> String {
        format!(
            "[{:>4}s] sent/s {:>9.0}  failures {:>6}  p50 {:>7}us  p99 {:>7}us  in flight {:>6}",
            self.at_secs, self.sent_per_sec, self.failed, self.p50_us, self.p99_us, self.in_flight
        )
    }
}

/// The final JSON object on stdout.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct Summary {
    pub(crate) mode: &'static str,
    pub(crate) size: u32,
    pub(crate) concurrency: u32,
    /// Messages stored (oneway: written).
    pub(crate) sent: u64,
    /// Messages that failed.
    pub(crate) failed: u64,
    /// Messages whose send started but had not resolved when the bench stopped waiting (a
    /// second stop signal, or the bounded wait at the end ran out): their outcome is unknown,
    /// they may have been stored. `sent + failed + abandoned` is every message sent.
    pub(crate) abandoned: u64,
    pub(crate) secs: f64,
    /// `sent / secs`.
    pub(crate) tps: f64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    /// Stopped early by Ctrl-C or SIGTERM (written only when true).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) interrupted: bool,
    /// Transaction mode: what the transactions came to (written only in that mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transaction: Option<super::TxSummary>,
}

/// Rounds to 3 decimals (for readable JSON).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Recorder {
    fn hists(&self) -> std::sync::MutexGuard<'_, Hists> {
        // A panic while holding the lock cannot leave a histogram half-updated in a way that
        // matters for a report.
        self.hists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A send of `msgs` messages starts.
    pub(crate) fn begin(&self, msgs: u64) {
        self.started.fetch_add(msgs, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A send of `msgs` messages succeeded after `latency`.
    pub(crate) fn ok(&self, msgs: u64, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_US);
        {
            let mut h = self.hists();
            h.interval.saturating_record(us);
            h.total.saturating_record(us);
        }
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.sent.fetch_add(msgs, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// A send of `msgs` messages failed.
    pub(crate) fn failed(&self, msgs: u64, maybe_stored: bool) {
        self.failed.fetch_add(msgs, Ordering::Relaxed);
        if maybe_stored {
            self.maybe_stored.fetch_add(msgs, Ordering::Relaxed);
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Of the failed messages, `msgs` were refused by the broker with a response code (counted
    /// once more in [`Recorder::refused`]; [`Recorder::failed`] counts them as failures).
    pub(crate) fn refused_by_broker(&self, msgs: u64) {
        self.refused.fetch_add(msgs, Ordering::Relaxed);
    }

    /// Failed messages that the broker refused with a response code.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A copy of the whole run's latency histogram (µs).
    pub(crate) fn latency(&self) -> Histogram<u64> {
        self.hists().total.clone()
    }

    /// Messages whose send started so far.
    #[cfg(test)]
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Messages stored so far.
    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Messages failed so far, and how many of them may have been stored.
    pub(crate) fn failures(&self) -> (u64, u64) {
        (
            self.failed.load(Ordering::Relaxed),
            self.maybe_stored.load(Ordering::Relaxed),
        )
    }

    /// Sends in flight.
    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Closes an interval of length `elapsed` in which `sent_before` was the count at its start,
    /// and resets the interval histogram.
    pub(crate) fn interval(&self, at_secs: u64, sent_before: u64, elapsed: Duration) -> Interval {
        let (p50_us, p99_us, max_us) = {
            let mut h = self.hists();
            let p = if h.interval.is_empty() {
                (0, 0)
            } else {
                (
                    h.interval.value_at_quantile(0.5),
                    h.interval.value_at_quantile(0.99),
                )
            };
            h.interval.reset();
            let max = if h.total.is_empty() { 0 } else { h.total.max() };
            (p.0, p.1, max)
        };
        let secs = elapsed.as_secs_f64().max(1e-9);
        Interval {
            at_secs,
            sent_per_sec: self.sent().saturating_sub(sent_before) as f64 / secs,
            failed: self.failures().0,
            p50_us,
            p99_us,
            in_flight: self.in_flight(),
            sent_total: self.sent(),
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
            max_us,
            refused: self.refused(),
        }
    }

    /// The summary of the whole run, which took `elapsed`. The sends not resolved yet are
    /// counted as abandoned: a send resolving while this is taken counts as abandoned rather
    /// than twice or not at all.
    pub(crate) fn summary(
        &self,
        mode: &'static str,
        size: u32,
        concurrency: u32,
        elapsed: Duration,
    ) -> Summary {
        let h = self.hists();
        let q = |x: f64| {
            if h.total.is_empty() {
                0
            } else {
                h.total.value_at_quantile(x)
            }
        };
        let secs = elapsed.as_secs_f64();
        // The outcomes first, then the starts: a send is counted as started before it resolves,
        // so what was started and is not among the outcomes read is still unresolved.
        let sent = self.sent();
        let failed = self.failures().0;
        let abandoned = self
            .started
            .load(Ordering::Relaxed)
            .saturating_sub(sent + failed);
        Summary {
            mode,
            size,
            concurrency,
            sent,
            failed,
            abandoned,
            secs: round3(secs),
            tps: if secs > 0.0 {
                round3(sent as f64 / secs)
            } else {
                0.0
            },
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: if h.total.is_empty() { 0 } else { h.total.max() },
            interrupted: false,
            transaction: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn summary_percentiles_come_from_the_histogram() {
        let r = Recorder::default();
        // 1000 sends: 1..=1000 ms, so p50 ~ 500 ms, p99 ~ 990 ms, max 1000 ms.
        for i in 1..=1000 {
            r.begin(1);
            r.ok(1, ms(i));
        }
        r.begin(1);
        r.failed(1, true);
        let s = r.summary("sync", 128, 4, Duration::from_secs(2));
        assert_eq!((s.sent, s.failed, s.concurrency, s.size), (1000, 1, 4, 128));
        assert_eq!(r.failures(), (1, 1));
        assert_eq!(s.secs, 2.0);
        assert_eq!(s.tps, 500.0);
        let near = |v: u64, want: u64| v.abs_diff(want) <= want / 100 + 1;
        assert!(near(s.p50_us, 500_000), "{s:?}");
        assert!(near(s.p99_us, 990_000), "{s:?}");
        assert!(near(s.p999_us, 999_000), "{s:?}");
        assert!(near(s.max_us, 1_000_000), "{s:?}");
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn summary_json_has_exactly_the_documented_keys() {
        let r = Recorder::default();
        r.begin(16);
        r.ok(16, Duration::from_micros(250));
        let s = r.summary("batch", 1024, 1, Duration::from_millis(500));
        let v = serde_json::to_value(&s).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "mode",
            "size",
            "concurrency",
            "sent",
            "failed",
            "abandoned",
            "secs",
            "tps",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["mode"], "batch");
        assert_eq!(v["sent"], 16);
        assert_eq!(v["abandoned"], 0);
        assert_eq!(v["tps"], 32.0);
        assert!(v["p50_us"].as_u64().unwrap().abs_diff(250) <= 1, "{v}");
    }

    #[test]
    fn sends_not_resolved_are_abandoned() {
        let r = Recorder::default();
        for _ in 0..5 {
            r.begin(1);
        }
        r.begin(16); // a batch
        r.ok(1, ms(1));
        r.failed(1, false);
        let s = r.summary("sync", 1, 6, Duration::from_secs(1));
        assert_eq!((s.sent, s.failed, s.abandoned), (1, 1, 19), "{s:?}");
        assert_eq!(s.sent + s.failed + s.abandoned, r.started());
        assert_eq!(r.in_flight(), 4);
        // Once resolved, nothing is abandoned.
        for _ in 0..3 {
            r.ok(1, ms(1));
        }
        r.ok(16, ms(1));
        let s = r.summary("sync", 1, 6, Duration::from_secs(1));
        assert_eq!((s.sent, s.failed, s.abandoned), (20, 1, 0), "{s:?}");
    }

    #[test]
    fn an_empty_run_reports_zeros() {
        let s = Recorder::default().summary("oneway", 1, 1, Duration::ZERO);
        assert_eq!(
            (s.sent, s.failed, s.abandoned, s.p50_us, s.max_us),
            (0, 0, 0, 0, 0)
        );
        assert_eq!(s.tps, 0.0);
    }

    #[test]
    fn intervals_reset_their_histogram_but_not_the_totals() {
        let r = Recorder::default();
        for _ in 0..10 {
            r.begin(1);
            r.ok(1, ms(2));
        }
        r.begin(1); // still in flight
        let first = r.interval(1, 0, Duration::from_secs(1));
        assert_eq!(first.sent_per_sec, 10.0);
        assert!(first.p50_us.abs_diff(2000) <= 2, "{first:?}");
        assert_eq!(first.in_flight, 1);
        let second = r.interval(2, r.sent(), Duration::from_secs(1));
        assert_eq!(
            (second.sent_per_sec, second.p50_us, second.p99_us),
            (0.0, 0, 0)
        );
        assert_eq!(r.summary("sync", 1, 1, Duration::from_secs(2)).sent, 10);
        let line = first.line();
        for part in ["[   1s]", "sent/s", "failures", "p50", "p99", "in flight"] {
            assert!(line.contains(part), "{line}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let r = Recorder::default();
        r.begin(1);
        r.ok(1, Duration::from_secs(3600));
        let s = r.summary("sync", 1, 1, Duration::from_secs(1));
        assert_eq!(s.sent, 1);
        assert!(s.max_us >= MAX_TRACKED_US - MAX_TRACKED_US / 1000, "{s:?}");
    }
}
