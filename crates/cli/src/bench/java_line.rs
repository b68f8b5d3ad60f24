//! The line Java's benchmark producer (`benchmark/producer.sh`, `example/benchmark/Producer.java`
//! in RocketMQ 5.x) prints when it completes, so that operators can set an rmq run beside a
//! Java one:
//!
//! ```text
//! [Complete] Send Total: 10000 | Send TPS: 4812 | Max RT(ms): 23 | Average RT(ms):   0.412 | Send Failed: 0 | Response Failed: 0
//! ```
//!
//! Printed on stderr: stdout carries the JSON summary alone. What differs from Java: the TPS is
//! over the whole run (Java's is over its last ten seconds), the RTs come from the latency
//! histogram (3 significant digits, µs, shown in ms) rather than from millisecond clock reads,
//! and `Send Total` counts every message sent (stored, failed and abandoned; Java's leaves out
//! the broker's refusals).

use hdrhistogram::Histogram;

use super::Summary;

/// The `[Complete]` line of a run summed up by `summary`, whose latencies (µs) are in
/// `latency`, `refused` of whose failed messages the broker refused with a response code.
pub(crate) fn complete_line(summary: &Summary, latency: &Histogram<u64>, refused: u64) -> String {
    let total = summary.sent + summary.failed + summary.abandoned;
    // Java: sends that got no answer ("Send Failed") and sends the broker answered with an error
    // (`MQBrokerException`, "Response Failed").
    let send_failed = summary.failed.saturating_sub(refused);
    // Java truncates the TPS to a whole number (`(long)`).
    let tps = summary.tps.max(0.0).floor() as u64;
    let (max_ms, avg_ms) = if latency.is_empty() {
        (0, 0.0)
    } else {
        (latency.max() / 1000, latency.mean() / 1000.0)
    };
    format!(
        "[Complete] Send Total: {total} | Send TPS: {tps} | Max RT(ms): {max_ms} | Average RT(ms): {avg_ms:7.3} | Send Failed: {send_failed} | Response Failed: {refused}"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::Recorder;

    #[test]
    fn the_line_has_javas_fields_in_javas_order() {
        let r = Recorder::default();
        for ms in [1_u64, 2, 3, 26] {
            r.begin(1);
            r.ok(1, Duration::from_millis(ms));
        }
        for refused in [true, false, true] {
            r.begin(1);
            r.failed(1, false);
            if refused {
                r.refused_by_broker(1);
            }
        }
        r.begin(1); // abandoned
        let s = r.summary("sync", 128, 2, Duration::from_millis(1500));
        let line = complete_line(&s, &r.latency(), r.refused());
        assert_eq!(
            line,
            "[Complete] Send Total: 8 | Send TPS: 2 | Max RT(ms): 26 | Average RT(ms):   8.002 | Send Failed: 1 | Response Failed: 2"
        );
    }

    #[test]
    fn an_empty_run_prints_zeros() {
        let r = Recorder::default();
        let s = r.summary("oneway", 1, 1, Duration::ZERO);
        let line = complete_line(&s, &r.latency(), 0);
        assert_eq!(
            line,
            "[Complete] Send Total: 0 | Send TPS: 0 | Max RT(ms): 0 | Average RT(ms):   0.000 | Send Failed: 0 | Response Failed: 0"
        );
    }
}
