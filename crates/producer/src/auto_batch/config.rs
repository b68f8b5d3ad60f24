//! [`AutoBatchConfig`]: when held sends go out, and how much may be held.

use std::time::Duration;

/// Auto-batching settings ([`ProducerBuilder::auto_batch`](crate::ProducerBuilder::auto_batch);
/// Java 5.1.4+ `DefaultMQProducer.setAutoBatch(true)` with `batchMaxDelayMs`, `batchMaxBytes`
/// and `totalBatchMaxBytes`). Java's defaults and bounds.
///
/// Sizes count a message as it is encoded in the batch: body, properties (its `UNIQ_KEY`
/// included) and 22 bytes of record fields (Java counts bodies only).
///
/// What changes for a send when auto-batching is on:
///
/// - `send` / `send_with` / `send_async` of one message are held; `send_oneway`,
///   `send_batch`, `send_batch_async` and `try_send_async` never are. Never held either (sent
///   the usual way): delayed or timed messages, `%RETRY%` topics, transactional messages,
///   bodies at or over the compression threshold (a batch is never compressed), messages of
///   `max_batch_bytes` or more, and sends with no more than twice `hold_time` left.
/// - The messages of one batch share a topic, a queue (sends with a queue target or a selector,
///   whose queue is chosen before holding, as Java does), the `WAIT` flag, and the caller kind
///   (sync and async are held apart, as in Java); tags and keys may differ.
/// - `send_async` returns its future once the message is held (not written yet). Held
///   asynchronous sends are bounded by `max_total_bytes`, not by the asynchronous
///   back-pressure.
/// - The messages of a batch are stored in the order they joined it, at consecutive offsets;
///   two batches of one key may be in flight at once, so a stream that must stay in order
///   awaits each send before the next (as Java requires of ordered messages).
/// - A synchronous caller that drops its future before its batch leaves withdraws its message;
///   an asynchronous send goes on whether or not its future is awaited.
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::AutoBatchConfig;
///
/// let cfg = AutoBatchConfig::default();
/// assert_eq!(cfg.hold_time, Duration::from_millis(10));
/// assert_eq!((cfg.max_batch_bytes, cfg.max_total_bytes), (32 * 1024, 32 * 1024 * 1024));
/// let quick = AutoBatchConfig::default().with_hold_time(Duration::from_millis(2));
/// assert_eq!(quick.hold_time, Duration::from_millis(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoBatchConfig {
    /// How long the first message of a batch waits for others (Java `batchMaxDelayMs`, 10 ms;
    /// 1 ms ..= 30 s).
    pub hold_time: Duration,
    /// A batch goes as soon as its messages reach this many bytes (Java `batchMaxBytes`,
    /// 32 KiB; 1 ..= 2 MiB). A message this large or larger is sent alone.
    pub max_batch_bytes: usize,
    /// Bytes of held and in-flight batched messages, all batches together (Java
    /// `totalBatchMaxBytes`, 32 MiB; at least `max_batch_bytes`). When it is reached, a send
    /// waits for room within its own deadline (Java sends it alone instead).
    pub max_total_bytes: usize,
    /// Send a batch at once when no batch of its key is being sent, instead of holding it: the
    /// first message goes without waiting, and the messages that come while a batch is in
    /// flight go together as soon as it is answered (or at the hold time or size, whichever
    /// comes first). Many tasks each waiting for their own `send` then fill a batch per round
    /// trip without tuning the hold time to their number. An rmq extension: off by default
    /// (Java always holds).
    pub send_when_idle: bool,
}

/// Java's bounds.
const MIN_HOLD: Duration = Duration::from_millis(1);
const MAX_HOLD: Duration = Duration::from_secs(30);
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

impl Default for AutoBatchConfig {
    fn default() -> Self {
        Self {
            hold_time: Duration::from_millis(10),
            max_batch_bytes: 32 * 1024,
            max_total_bytes: 32 * 1024 * 1024,
            send_when_idle: false,
        }
    }
}

impl AutoBatchConfig {
    /// Sets [`hold_time`](Self::hold_time).
    #[must_use]
    pub fn with_hold_time(mut self, hold: Duration) -> Self {
        self.hold_time = hold;
        self
    }

    /// Sets [`max_batch_bytes`](Self::max_batch_bytes).
    #[must_use]
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Sets [`max_total_bytes`](Self::max_total_bytes).
    #[must_use]
    pub fn with_max_total_bytes(mut self, bytes: usize) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Sets [`send_when_idle`](Self::send_when_idle).
    #[must_use]
    pub fn with_send_when_idle(mut self, on: bool) -> Self {
        self.send_when_idle = on;
        self
    }

    /// The first setting out of range, if any.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        [
            (
                self.hold_time < MIN_HOLD || self.hold_time > MAX_HOLD,
                "auto_batch hold_time must be 1 ms ..= 30 s",
            ),
            (
                self.max_batch_bytes == 0 || self.max_batch_bytes > MAX_BATCH_BYTES,
                "auto_batch max_batch_bytes must be 1 ..= 2 MiB",
            ),
            (
                self.max_total_bytes < self.max_batch_bytes
                    || self.max_total_bytes > tokio::sync::Semaphore::MAX_PERMITS,
                "auto_batch max_total_bytes must be at least max_batch_bytes",
            ),
        ]
        .into_iter()
        .find_map(|(bad, reason)| bad.then_some(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_bounds() {
        assert_eq!(AutoBatchConfig::default().invalid(), None);
        let ms = Duration::from_millis;
        let cases = [
            (AutoBatchConfig::default().with_hold_time(ms(0)), true),
            (AutoBatchConfig::default().with_hold_time(ms(1)), false),
            (AutoBatchConfig::default().with_hold_time(ms(30_000)), false),
            (AutoBatchConfig::default().with_hold_time(ms(30_001)), true),
            (AutoBatchConfig::default().with_max_batch_bytes(0), true),
            (AutoBatchConfig::default().with_max_batch_bytes(1), false),
            (
                AutoBatchConfig::default().with_max_batch_bytes(2 << 20),
                false,
            ),
            (
                AutoBatchConfig::default().with_max_batch_bytes((2 << 20) + 1),
                true,
            ),
            (
                AutoBatchConfig::default()
                    .with_max_batch_bytes(1000)
                    .with_max_total_bytes(999),
                true,
            ),
            (
                AutoBatchConfig::default()
                    .with_max_batch_bytes(1000)
                    .with_max_total_bytes(1000),
                false,
            ),
        ];
        for (cfg, bad) in cases {
            assert_eq!(cfg.invalid().is_some(), bad, "{cfg:?}");
        }
    }
}
