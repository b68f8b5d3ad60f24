//! Latency fault tolerance: Java 5.1.4+ `MQFaultStrategy` tables and `LatencyFaultToleranceImpl`.
//!
//! After every send attempt the producer records how long the broker took and whether the attempt
//! failed. A slow or failing broker is *isolated* (not chosen first) for a while that depends on the
//! latency, using the Java 5.1.4+ tables:
//!
//! | latency ≥ (ms) | 50 | 100 | 550 | 1800 | 3000 | 5000 | 15000 |
//! |---|---|---|---|---|---|---|---|
//! | isolated for (ms) | 0 | 0 | 2000 | 5000 | 6000 | 10000 | 30000 |
//!
//! A failed attempt counts as a latency of [`ISOLATION_LATENCY`] (10 s), i.e. 10 s of isolation.
//! Isolation ends on its own: availability is a comparison with the clock, so once the window has
//! passed the broker is chosen again without any background task. Every function takes `now`
//! explicitly, so the tables are testable with an injected clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

/// Lower latency bounds of the Java 5.1.4+ table (`MQFaultStrategy.latencyMax`), in milliseconds.
pub const LATENCY_MAX_MS: [u64; 7] = [50, 100, 550, 1800, 3000, 5000, 15000];

/// Isolation windows matching [`LATENCY_MAX_MS`] (`MQFaultStrategy.notAvailableDuration`), in ms.
pub const NOT_AVAILABLE_MS: [u64; 7] = [0, 0, 2000, 5000, 6000, 10000, 30000];

/// The latency a failed attempt counts as (Java: `isolation ? 10000 : currentLatency`).
pub const ISOLATION_LATENCY: Duration = Duration::from_millis(10_000);

/// How long a broker is isolated after an attempt that took `latency`: the window of the highest
/// table row whose bound `latency` reaches (`computeNotAvailableDuration`).
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::fault::not_available_duration;
/// assert_eq!(not_available_duration(Duration::from_millis(10)), Duration::ZERO);
/// assert_eq!(not_available_duration(Duration::from_millis(550)), Duration::from_secs(2));
/// assert_eq!(not_available_duration(Duration::from_millis(10_000)), Duration::from_secs(10));
/// assert_eq!(not_available_duration(Duration::from_secs(60)), Duration::from_secs(30));
/// ```
#[must_use]
pub fn not_available_duration(latency: Duration) -> Duration {
    let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    LATENCY_MAX_MS
        .iter()
        .zip(NOT_AVAILABLE_MS.iter())
        .rev()
        .find(|(max, _)| ms >= **max)
        .map_or(Duration::ZERO, |(_, d)| Duration::from_millis(*d))
}

/// What is known about one broker (Java `FaultItem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FaultItem {
    /// Latency of the last attempt.
    latency: Duration,
    /// The broker is available again from this instant (`startTimestamp`); `None` = never isolated.
    available_from: Option<Instant>,
    /// Whether the last attempt reached the broker (`reachableFlag`).
    reachable: bool,
}

/// The fault table shared by every send of one producer, keyed by broker name
/// (Java `LatencyFaultToleranceImpl`).
///
/// ```
/// use std::time::Duration;
/// use tokio::time::Instant;
/// use rmq_producer::fault::LatencyFaultTolerance;
///
/// let faults = LatencyFaultTolerance::new();
/// let t0 = Instant::now();
/// faults.record("broker-a", Duration::from_millis(3), true, true, t0); // a failed attempt
/// assert!(!faults.is_available("broker-a", t0 + Duration::from_secs(9)));
/// assert!(faults.is_available("broker-a", t0 + Duration::from_secs(10))); // ends on its own
/// assert!(faults.is_available("broker-b", t0)); // never seen: available
/// ```
///
/// A broker with nothing to remember (reachable, and its isolation over) has no entry: a healthy
/// table is empty, and then every question is answered without a lookup.
#[derive(Debug, Default)]
pub struct LatencyFaultTolerance {
    items: DashMap<String, FaultItem>,
    /// How many entries `items` holds (read without locking a shard).
    held: AtomicUsize,
}

impl LatencyFaultTolerance {
    /// An empty table: every broker is available and reachable.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one attempt against `broker` (`MQFaultStrategy.updateFaultItem`): the isolation
    /// window is computed from `latency`, or from [`ISOLATION_LATENCY`] when `isolation` is set;
    /// a window only ever extends the current one (`updateNotAvailableDuration`); `reachable` is
    /// stored as given.
    pub fn record(
        &self,
        broker: &str,
        latency: Duration,
        isolation: bool,
        reachable: bool,
        now: Instant,
    ) {
        let window = not_available_duration(if isolation {
            ISOLATION_LATENCY
        } else {
            latency
        });
        let healthy = window.is_zero() && reachable;
        // Fast path: an unseen broker with nothing to remember stays unseen (same selection).
        if healthy && (self.held.load(Ordering::Relaxed) == 0 || !self.items.contains_key(broker)) {
            return;
        }
        // A broker back to health (reachable, window over) is forgotten: absent means the same.
        if healthy
            && self
                .items
                .remove_if(broker, |_, item| {
                    item.available_from.is_none_or(|from| from <= now)
                })
                .is_some()
        {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // A known broker is updated in place (no key allocated for every send).
        let mut entry = match self.items.get_mut(broker) {
            Some(entry) => entry,
            None => self.items.entry(broker.to_owned()).or_insert_with(|| {
                self.held.fetch_add(1, Ordering::Relaxed);
                FaultItem {
                    latency,
                    available_from: None,
                    reachable,
                }
            }),
        };
        let item = entry.value_mut();
        item.latency = latency;
        item.reachable = reachable;
        if !window.is_zero() {
            let until = now + window;
            if item.available_from.is_none_or(|from| until > from) {
                if item.available_from.is_none_or(|from| from <= now) {
                    tracing::debug!(broker, ?latency, ?window, "broker isolated");
                }
                item.available_from = Some(until);
            }
        }
    }

    /// Whether `broker` may be chosen first: never seen, or its isolation window has passed.
    #[must_use]
    pub fn is_available(&self, broker: &str, now: Instant) -> bool {
        self.held.load(Ordering::Relaxed) == 0
            || self
                .items
                .get(broker)
                .is_none_or(|item| item.available_from.is_none_or(|from| now >= from))
    }

    /// Whether the last attempt reached `broker` (never seen: true).
    #[must_use]
    pub fn is_reachable(&self, broker: &str) -> bool {
        self.held.load(Ordering::Relaxed) == 0
            || self.items.get(broker).is_none_or(|item| item.reachable)
    }

    /// The latency of the last attempt recorded against `broker`, while the table holds it (a
    /// broker back to health is forgotten: `None`).
    #[must_use]
    pub fn last_latency(&self, broker: &str) -> Option<Duration> {
        self.items.get(broker).map(|item| item.latency)
    }

    /// Forgets `broker` (e.g. it left the routes).
    pub fn remove(&self, broker: &str) {
        if self.items.remove(broker).is_some() {
            self.held.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many brokers the table holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether the table holds no broker.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn latency_to_window_table() {
        // (latency ms, expected isolation ms): each row boundary, just below it, and beyond.
        let cases: &[(u64, u64)] = &[
            (0, 0),
            (49, 0),
            (50, 0),
            (99, 0),
            (100, 0),
            (549, 0),
            (550, 2000),
            (1799, 2000),
            (1800, 5000),
            (2999, 5000),
            (3000, 6000),
            (4999, 6000),
            (5000, 10000),
            (10_000, 10000),
            (14_999, 10000),
            (15_000, 30000),
            (u64::MAX / 2, 30000),
        ];
        for &(latency, window) in cases {
            assert_eq!(
                not_available_duration(MS(latency)),
                MS(window),
                "latency {latency} ms"
            );
        }
    }

    #[test]
    fn availability_after_attempts_with_injected_clock() {
        // (latency ms, isolation, probe offset ms, expected available at t0 + offset)
        let cases: &[(u64, bool, u64, bool)] = &[
            (10, false, 0, true),
            (600, false, 0, false),
            (600, false, 1999, false),
            (600, false, 2000, true),
            (2000, false, 4999, false),
            (2000, false, 5000, true),
            (3, true, 9999, false),
            (3, true, 10_000, true),
            (20_000, false, 29_999, false),
            (20_000, false, 30_000, true),
        ];
        let t0 = Instant::now();
        for &(latency, isolation, probe, expected) in cases {
            let faults = LatencyFaultTolerance::new();
            faults.record("b", MS(latency), isolation, true, t0);
            assert_eq!(
                faults.is_available("b", t0 + MS(probe)),
                expected,
                "latency {latency} isolation {isolation} probe +{probe} ms"
            );
            assert!(
                faults.is_available("other", t0),
                "unrelated broker untouched"
            );
        }
    }

    #[test]
    fn windows_only_extend() {
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        faults.record("b", MS(1), true, true, t0); // until t0 + 10 s
        faults.record("b", MS(600), false, true, t0 + MS(1000)); // t0 + 3 s: shorter, ignored
        assert!(!faults.is_available("b", t0 + MS(9_999)));
        assert!(faults.is_available("b", t0 + MS(10_000)));
        faults.record("b", MS(1), true, true, t0 + MS(5000)); // extends to t0 + 15 s
        assert!(!faults.is_available("b", t0 + MS(14_999)));
        assert!(faults.is_available("b", t0 + MS(15_000)));
    }

    #[test]
    fn success_does_not_end_isolation_early() {
        // Java: a fast success records a zero window, which never shortens the current one.
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        faults.record("b", MS(1), true, false, t0);
        faults.record("b", MS(2), false, true, t0 + MS(1));
        assert!(!faults.is_available("b", t0 + MS(2)));
        assert!(faults.is_reachable("b"));
        assert_eq!(faults.last_latency("b"), Some(MS(2)));
    }

    #[test]
    fn reachable_flag_follows_last_attempt() {
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        assert!(faults.is_reachable("b"));
        faults.record("b", MS(5), true, false, t0);
        assert!(!faults.is_reachable("b"));
        faults.record("b", MS(5), false, true, t0 + MS(20_000));
        assert!(faults.is_reachable("b"));
        assert!(faults.is_available("b", t0 + MS(20_000)));
    }

    #[test]
    fn fast_success_on_unknown_broker_adds_nothing() {
        let faults = LatencyFaultTolerance::new();
        faults.record("b", MS(5), false, true, Instant::now());
        assert!(faults.is_empty());
        faults.record("b", MS(700), false, true, Instant::now());
        assert_eq!(faults.len(), 1);
        faults.remove("b");
        assert!(faults.is_empty());
    }

    #[test]
    fn a_broker_back_to_health_is_forgotten() {
        let faults = LatencyFaultTolerance::new();
        let t0 = Instant::now();
        faults.record("a", MS(700), false, true, t0); // isolated until t0 + 2 s
        faults.record("b", MS(5), true, false, t0); // unreachable
        assert_eq!(faults.len(), 2);
        faults.record("a", MS(5), false, true, t0 + MS(1_999)); // window not over: kept
        assert!(!faults.is_available("a", t0 + MS(1_999)));
        faults.record("a", MS(5), false, true, t0 + MS(2_000));
        assert_eq!(faults.len(), 1);
        assert_eq!(faults.last_latency("a"), None);
        assert!(faults.is_available("a", t0 + MS(2_000)));
        assert!(!faults.is_reachable("b"));
        faults.record("b", MS(5), false, true, t0 + MS(10_000));
        assert!(faults.is_empty());
        assert!(faults.is_reachable("b"));
        faults.remove("b");
        assert!(
            faults.is_empty(),
            "removing an absent broker keeps the count"
        );
    }
}
