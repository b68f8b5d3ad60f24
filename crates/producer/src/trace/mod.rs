//! Message trace (Java's `AsyncTraceDispatcher` with `SendMessageTraceHookImpl` and
//! `EndTransactionTraceHookImpl`), off by default and turned on per producer with
//! [`ProducerBuilder::enable_trace`](crate::ProducerBuilder::enable_trace).
//!
//! - [`record`]: what a stored send attempt (`Pub`) or a transaction end (`EndTransaction`)
//!   records, built by hooks in the send loop and the transaction flow;
//! - [`encoder`]: Java's text format of a record and how records become trace messages;
//! - [`dispatcher`]: the bounded queue, the worker and the internal trace producer.

mod config;
pub(crate) mod dispatcher;
pub(crate) mod encoder;
pub(crate) mod record;

pub use config::{TraceConfig, DEFAULT_TRACE_TOPIC, MAX_TRACE_BATCH};

use crate::Producer;

/// Counters of a producer's message trace ([`Producer::trace_stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TraceStats {
    /// Records waiting in the queue.
    pub queued: usize,
    /// Records dropped because the queue was full (or the trace already stopped).
    pub dropped: u64,
    /// Records in trace messages the broker stored.
    pub records_sent: u64,
    /// Trace messages the broker stored.
    pub messages_sent: u64,
    /// Trace messages that failed (their records are lost).
    pub messages_failed: u64,
    /// Trace messages awaiting their answer.
    pub in_flight: usize,
    /// The internal trace producer's group (`_INNER_TRACE_PRODUCER-<group>-PRODUCE-<n>`).
    pub group: String,
    /// The trace topic.
    pub topic: String,
}

impl Producer {
    /// The message trace's counters, `None` when trace is off.
    #[must_use]
    pub fn trace_stats(&self) -> Option<TraceStats> {
        self.inner().core.trace.as_ref().map(|t| t.stats())
    }
}

#[cfg(test)]
mod tests;
