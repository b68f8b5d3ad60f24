//! The line Java's benchmark producer (`benchmark/producer.sh`, `example/benchmark/Producer.java`
//! in RocketMQ 5.x) prints every second while it runs, so that operators can watch an rmq run
//! as they watch a Java one:
//!
//! ```text
//! Current Time: 2026-12-06 12:55:19,123 | Send TPS: 4812 | Max RT(ms): 23 | Average RT(ms):   0.412 | Send Failed: 0 | Response Failed: 0
//! ```
//!
//! As in Java: a snapshot every second, TPS and average RT over the last ten seconds (the
//! oldest and newest of at most ten snapshots), the highest RT and the failures since the start
//! ("Send Failed": no answer; "Response Failed": the broker refused with a response code).
//! Unlike Java: the time is UTC (Java's is the JVM's local time zone), RTs come from
//! microsecond measurements (the maximum from the HDR histogram, 3 significant digits), and an
//! average over no successful send prints 0.000 (Java prints NaN).

use std::collections::VecDeque;

use super::Interval;

/// Java keeps this many snapshots (`snapshotList.size() > 10` drops the oldest).
const WINDOW: usize = 10;

/// One second's totals.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at_ms: u64,
    sent: u64,
    latency_sum_us: u64,
}

/// The last ten snapshots, and the line they make.
#[derive(Debug)]
pub(crate) struct JavaLive {
    window: VecDeque<Snapshot>,
}

impl JavaLive {
    /// A window whose first snapshot is the start of the run, at `start_ms` (ms since the Unix
    /// epoch), so that the first line already has a rate.
    pub(crate) fn new(start_ms: u64) -> Self {
        let mut window = VecDeque::with_capacity(WINDOW + 1);
        window.push_back(Snapshot {
            at_ms: start_ms,
            sent: 0,
            latency_sum_us: 0,
        });
        Self { window }
    }

    /// Takes the snapshot of `interval` at `now_ms` (ms since the Unix epoch) and returns the
    /// `Current Time:` line.
    pub(crate) fn line(&mut self, now_ms: u64, interval: &Interval) -> String {
        self.window.push_back(Snapshot {
            at_ms: now_ms,
            sent: interval.sent_total,
            latency_sum_us: interval.latency_sum_us,
        });
        if self.window.len() > WINDOW {
            self.window.pop_front();
        }
        let (first, last) = match (self.window.front(), self.window.back()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => unreachable!("a snapshot was just pushed"),
        };
        let sent = last.sent.saturating_sub(first.sent);
        let ms = last.at_ms.saturating_sub(first.at_ms);
        // Java: `(long) ((sent / (double) ms) * 1000)`; a single snapshot spans no time: 0.
        let tps = if ms == 0 {
            0
        } else {
            (sent as f64 / ms as f64 * 1000.0) as u64
        };
        let avg_ms = if sent == 0 {
            0.0
        } else {
            last.latency_sum_us.saturating_sub(first.latency_sum_us) as f64 / sent as f64 / 1000.0
        };
        let send_failed = interval.failed.saturating_sub(interval.refused);
        format!(
            "Current Time: {} | Send TPS: {tps} | Max RT(ms): {} | Average RT(ms): {avg_ms:7.3} | Send Failed: {send_failed} | Response Failed: {}",
            human_time(now_ms),
            interval.max_us / 1000,
            interval.refused
        )
    }
}

/// `yyyy-MM-dd HH:mm:ss,SSS` in UTC (Java's `UtilAll.timeMillisToHumanString2` layout).
pub(crate) fn human_time(epoch_ms: u64) -> String {
    let ms = epoch_ms % 1000;
    let secs = epoch_ms / 1000;
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let (y, mo, d) = civil_from_days(secs / 86_400);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02},{ms:03}")
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::Recorder;

    #[test]
    fn human_time_has_javas_layout_in_utc() {
        for (ms, want) in [
            (0, "1970-01-01 00:00:00,000"),
            (951_782_400_000, "2000-02-29 00:00:00,000"),
            (1_796_561_719_123, "2026-12-06 12:55:19,123"),
            (4_107_542_399_999, "2100-02-28 23:59:59,999"),
        ] {
            assert_eq!(human_time(ms), want, "{ms}");
        }
    }

    #[test]
    fn tps_and_average_come_from_the_last_ten_snapshots_failures_from_the_start() {
        let r = Recorder::default();
        let t0 = 1_796_561_719_000;
        let mut live = JavaLive::new(t0 - 1000);
        // The first second: nothing sent.
        let first = live.line(t0, &r.interval(0, 0, Duration::from_secs(1)));
        assert_eq!(
            first,
            "Current Time: 2026-12-06 12:55:19,000 | Send TPS: 0 | Max RT(ms): 0 | Average RT(ms):   0.000 | Send Failed: 0 | Response Failed: 0"
        );
        // Each of the next 12 seconds: 100 sends of 2 ms, then one of 30 ms in second 12;
        // two failures, one refused by the broker.
        let mut line = String::new();
        for sec in 1..=12u64 {
            for _ in 0..100 {
                r.begin(1);
                r.ok(1, Duration::from_millis(2));
            }
            if sec == 12 {
                r.begin(1);
                r.ok(1, Duration::from_millis(30));
                for refused in [true, false] {
                    r.begin(1);
                    r.failed(1, false);
                    if refused {
                        r.refused_by_broker(1);
                    }
                }
            }
            line = live.line(t0 + sec * 1000, &r.interval(sec, 0, Duration::from_secs(1)));
        }
        // The start and 13 snapshots since; the window: seconds 3..=12, 9 s apart, 901 sends: 100.1 per second; average
        // (900 * 2 + 30) / 901 ms.
        assert_eq!(
            line,
            "Current Time: 2026-12-06 12:55:31,000 | Send TPS: 100 | Max RT(ms): 30 | Average RT(ms):   2.031 | Send Failed: 1 | Response Failed: 1"
        );
    }
}
