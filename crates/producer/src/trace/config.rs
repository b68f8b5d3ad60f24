//! [`TraceConfig`]: where and how a producer's message trace goes.

use std::time::Duration;

/// The default trace topic (Java `TopicValidator.RMQ_SYS_TRACE_TOPIC`).
pub const DEFAULT_TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// The most records one trace message carries (Java caps `traceMsgBatchNum` at 20).
pub const MAX_TRACE_BATCH: usize = 20;

/// Settings of a producer's message trace (Java `DefaultMQProducer(enableMsgTrace,
/// customizedTraceTopic)` and `AsyncTraceDispatcher`); turned on with
/// [`ProducerBuilder::enable_trace`](crate::ProducerBuilder::enable_trace).
///
/// Every stored send yields a `Pub` record, every transaction end an `EndTransaction` record,
/// in Java's text format; records wait in a bounded queue (a full queue drops them and counts
/// the drops: tracing never slows or fails a send) and go to the trace topic in batches, from
/// an internal producer on its own client instance (one per process, as in Java).
///
/// ```
/// use std::time::Duration;
/// use rmq_producer::TraceConfig;
/// let cfg = TraceConfig::default().with_topic("MyTrace").with_batch_size(50);
/// assert_eq!(cfg.topic, "MyTrace");
/// assert_eq!(cfg.batch_size, 20); // capped, as in Java
/// assert_eq!(TraceConfig::default().topic, "RMQ_SYS_TRACE_TOPIC");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceConfig {
    /// The trace topic (default [`DEFAULT_TRACE_TOPIC`]). Sends of this producer to a topic
    /// starting with it are not traced (as in Java).
    pub topic: String,
    /// Records waiting to be sent at most (Java: 2048); beyond, records are dropped and counted.
    pub queue_capacity: usize,
    /// Records per trace message at most, 1 to [`MAX_TRACE_BATCH`] (Java
    /// `traceMsgBatchNum`, default 10).
    pub batch_size: usize,
    /// The longest a record waits for its batch to fill before it goes anyway.
    pub max_delay: Duration,
    /// Body bytes of one trace message at most (Java: 128 000); a batch over it is split.
    pub max_body_bytes: usize,
    /// Deadline of each trace message's send (Java: 5 s).
    pub send_timeout: Duration,
    /// Trace messages in flight at most; while that many wait for their answer, records stay
    /// in the queue (and are dropped once it is full).
    pub max_in_flight: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            topic: DEFAULT_TRACE_TOPIC.to_owned(),
            queue_capacity: 2048,
            batch_size: 10,
            max_delay: Duration::from_millis(500),
            max_body_bytes: 128_000,
            send_timeout: Duration::from_secs(5),
            max_in_flight: 16,
        }
    }
}

impl TraceConfig {
    /// Sends the trace to `topic` instead of [`DEFAULT_TRACE_TOPIC`] (Java
    /// `customizedTraceTopic`); an empty one keeps the default, as in Java.
    #[must_use]
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        let topic = topic.into();
        if !topic.trim().is_empty() {
            self.topic = topic;
        }
        self
    }

    /// Records per trace message, capped to 1..=[`MAX_TRACE_BATCH`].
    #[must_use]
    pub fn with_batch_size(mut self, records: usize) -> Self {
        self.batch_size = records.clamp(1, MAX_TRACE_BATCH);
        self
    }

    /// Records waiting at most (at least 1).
    #[must_use]
    pub fn with_queue_capacity(mut self, records: usize) -> Self {
        self.queue_capacity = records.max(1);
        self
    }

    /// The longest a record waits for its batch to fill.
    #[must_use]
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// The batch size as used: within 1..=[`MAX_TRACE_BATCH`] whatever was set.
    pub(crate) fn batch(&self) -> usize {
        self.batch_size.clamp(1, MAX_TRACE_BATCH)
    }
}
