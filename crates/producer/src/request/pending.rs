//! [`PendingReply`]: a request stored by its broker, awaiting its reply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::Message;
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{Instrument, Span};

use super::table::Waiting;
use crate::error::{ErrorKind, SendError, Unsent};
use crate::producer::Inner;
use crate::retry;
use crate::send_result::SendResult;

/// A request its broker stored ([`Producer::send_request`](crate::Producer::send_request)),
/// waiting for the reply within the request's deadline: [`PendingReply::reply`] waits.
///
/// Dropping it gives up the request: its entry leaves the client instance's reply table at once
/// and a reply that comes later is answered and dropped. Shutdown waits for pending replies as
/// for sends in flight (then ends them with [`ErrorKind::Cancelled`]).
#[must_use = "a request's reply is only waited for by `reply()`"]
pub struct PendingReply {
    pub(super) inner: Arc<Inner>,
    pub(super) waiting: Waiting,
    pub(super) sent: SendResult,
    pub(super) started: Instant,
    pub(super) timeout: Duration,
    /// The request, for the id an error reports (never handed back: it is stored).
    pub(super) request: Message,
    pub(super) span: Span,
    /// Holds shutdown until the reply came or the request ended.
    pub(super) _token: TaskTrackerToken,
}

impl fmt::Debug for PendingReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingReply")
            .field("correlation_id", &self.waiting.id())
            .field("msg_id", &self.sent.msg_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PendingReply {
    /// The request's send result (its id, queue and offset: where the broker stored it).
    #[must_use]
    pub fn send_result(&self) -> &SendResult {
        &self.sent
    }

    /// The request's `CORRELATION_ID`, which its reply carries.
    #[must_use]
    pub fn correlation_id(&self) -> &str {
        self.waiting.id()
    }

    /// What is left of the request's deadline.
    #[must_use]
    pub fn time_left(&self) -> Duration {
        self.timeout.saturating_sub(self.started.elapsed())
    }

    /// Waits for the reply until the request's deadline.
    ///
    /// # Errors
    /// [`ErrorKind::ReplyTimeout`] when none came in time, [`ErrorKind::InvalidReply`] when its
    /// body cannot be read, [`ErrorKind::Cancelled`] when shutdown stopped waiting; each with the
    /// request's id ([`SendError::msg_id`]) and [`SendError::maybe_stored`] true (it is stored).
    pub async fn reply(mut self) -> Result<MessageExt, SendError> {
        let span = self.span.clone();
        async move {
            let deadline = self.started + self.timeout;
            let correlation_id = self.waiting.id().to_owned();
            let kind = tokio::select! {
                biased;
                () = self.inner.core.abort.cancelled() => retry::cancelled(true),
                r = tokio::time::timeout_at(deadline, self.waiting.reply()) => match r {
                    Ok(Some(Ok(reply))) => {
                        let latency_ms = self.started.elapsed().as_millis();
                        tracing::debug!(latency_ms, "reply received");
                        return Ok(reply);
                    }
                    Ok(Some(Err(source))) => ErrorKind::InvalidReply { correlation_id, source },
                    Ok(None) | Err(_) => ErrorKind::ReplyTimeout { after: self.timeout, correlation_id },
                },
            };
            tracing::debug!(error = %kind, "request failed");
            Err(SendError::new(kind, Unsent::one(self.request)))
        }
        .instrument(span)
        .await
    }
}
