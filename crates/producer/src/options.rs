//! [`SendOptions`]: what varies between sends (the deadline and the target queue), passed as a
//! value to every send form.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::MessageQueue;

use crate::select::QueueSelector;

/// How one send goes: its deadline and where it may go. The default is the producer's send
/// timeout and any queue of the topic (round-robin with fault avoidance).
///
/// ```
/// use std::time::Duration;
/// use rmq_common::MessageQueue;
/// use rmq_producer::{JavaHashSelector, SendOptions};
///
/// let quick = SendOptions::new().timeout(Duration::from_millis(500));
/// assert_eq!(quick.get_timeout(), Some(Duration::from_millis(500)));
///
/// let pinned = SendOptions::new().queue(MessageQueue::new("Orders", "broker-a", 3));
/// let ordered = SendOptions::new().selector(JavaHashSelector::new("order-1001"));
/// # let _ = (pinned, ordered);
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct SendOptions {
    timeout: Option<Duration>,
    target: To,
}

/// Where a send may go.
#[derive(Clone, Default)]
pub(crate) enum To {
    /// Any queue of the topic.
    #[default]
    Any,
    /// This queue only (Java's `send(msg, mq)`).
    Queue(MessageQueue),
    /// The queue the selector picks among the topic's writable queues (Java's
    /// `send(msg, selector, arg)`).
    Selector(Arc<dyn QueueSelector>),
}

impl SendOptions {
    /// The defaults: the producer's send timeout, any queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// The deadline of this send, covering the route lookup and every attempt, and for an
    /// asynchronous send the wait for back-pressure room too; capped at
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends to `queue` only (it must be of the message's topic). Retried, on that queue, only
    /// when certainly not stored.
    pub fn queue(mut self, queue: MessageQueue) -> Self {
        self.target = To::Queue(queue);
        self
    }

    /// Sends to the queue `selector` picks (ordered messages). The queue is never changed;
    /// retried on it only when certainly not stored.
    pub fn selector(self, selector: impl QueueSelector + 'static) -> Self {
        self.shared_selector(Arc::new(selector))
    }

    /// [`SendOptions::selector`] with a selector shared by many sends.
    pub fn shared_selector(mut self, selector: Arc<dyn QueueSelector>) -> Self {
        self.target = To::Selector(selector);
        self
    }

    /// The deadline set with [`SendOptions::timeout`].
    #[must_use]
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    pub(crate) fn target(&self) -> &To {
        &self.target
    }
}

impl fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            To::Any => "any queue".to_owned(),
            To::Queue(q) => q.to_string(),
            To::Selector(_) => "selector".to_owned(),
        };
        f.debug_struct("SendOptions")
            .field("timeout", &self.timeout)
            .field("target", &target)
            .finish()
    }
}
