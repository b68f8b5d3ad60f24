//! The sends that the caller awaits to the end: sync, with a timeout, oneway, pinned to a queue,
//! chosen by a selector, and batches. Every send runs in one `send` span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmq_common::validate::{validate_message, ValidationError};
use rmq_common::{Message, MessageQueue};
use tracing::{field::Empty, Instrument, Span};

use crate::config::MAX_TIMEOUT;
use crate::error::{ProducerError, Unsent};
use crate::kernel::{prepare_batch, prepare_single, Outgoing};
use crate::producer::Inner;
use crate::retry::{self, Job, Mode, Outcome, SendState, Target};
use crate::select::QueueSelector;
use crate::send_result::SendResult;
use crate::{identity, Producer};

impl Producer {
    /// Sends `msg` and waits for the broker's answer, within the configured send timeout.
    ///
    /// # Errors
    /// A [`ProducerError`]; [`ProducerError::maybe_stored`] tells whether the message may have
    /// been stored, [`ProducerError::into_message`] hands it back when it certainly was not.
    pub async fn send(&self, msg: Message) -> Result<SendResult, ProducerError> {
        self.send_with_timeout(msg, self.inner().cfg.send_timeout)
            .await
    }

    /// [`Producer::send`] with its own deadline (covering the route lookup and every attempt),
    /// capped at [`MAX_TIMEOUT`](crate::MAX_TIMEOUT).
    ///
    /// # Errors
    /// As [`Producer::send`].
    pub async fn send_with_timeout(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<SendResult, ProducerError> {
        let timeout = timeout.min(MAX_TIMEOUT);
        let inner = self.inner();
        let retries = inner.cfg.retries;
        send_single(inner, msg, Target::Any, Mode::Reply, retries, timeout)
            .await
            .and_then(expect_result)
    }

    /// Sends `msg` once without waiting for an answer (resolves once written). No retry.
    ///
    /// # Errors
    /// As [`Producer::send`], for the route lookup and the write.
    pub async fn send_oneway(&self, msg: Message) -> Result<(), ProducerError> {
        let inner = self.inner();
        let timeout = inner.cfg.send_timeout;
        send_single(inner, msg, Target::Any, Mode::Oneway, 0, timeout)
            .await
            .map(|_| ())
    }

    /// Sends `msg` to `queue` only. Retried (on that queue) only when certainly not stored.
    ///
    /// # Errors
    /// [`ProducerError::QueueUnavailable`] when the queue's topic is not the message's; else as
    /// [`Producer::send`].
    pub async fn send_to_queue(
        &self,
        msg: Message,
        queue: &MessageQueue,
    ) -> Result<SendResult, ProducerError> {
        if queue.topic != msg.topic() {
            return Err(ProducerError::QueueUnavailable {
                topic: msg.topic().to_owned(),
                queue: queue.to_string(),
                unsent: Unsent::one(msg),
            });
        }
        let inner = self.inner();
        let (retries, timeout) = (inner.cfg.retries, inner.cfg.send_timeout);
        send_single(
            inner,
            msg,
            Target::Queue(queue.clone()),
            Mode::Reply,
            retries,
            timeout,
        )
        .await
        .and_then(expect_result)
    }

    /// Sends `msg` to the queue `selector` picks among the topic's writable queues for `arg`
    /// (ordered messages). The queue is never changed; retried on it only when certainly not
    /// stored.
    ///
    /// # Errors
    /// [`ProducerError::QueueUnavailable`] when the selector picks no valid index; else as
    /// [`Producer::send`].
    pub async fn send_with_selector<S, A>(
        &self,
        msg: Message,
        selector: &S,
        arg: &A,
    ) -> Result<SendResult, ProducerError>
    where
        S: QueueSelector<A> + ?Sized,
        A: ?Sized + Sync,
    {
        let inner = self.inner();
        if !inner.is_running() {
            return Err(ProducerError::not_running(Unsent::one(msg)));
        }
        let started = Instant::now();
        let timeout = inner.cfg.send_timeout;
        let info = match retry::publish_info(inner, msg.topic(), started, timeout).await {
            Ok(info) => info,
            Err(e) => return Err(e.with_unsent(Unsent::one(msg))),
        };
        let pick = selector.select(&info.queues, &msg, arg);
        let Some(queue) = pick.and_then(|i| info.queues.get(i)) else {
            return Err(ProducerError::QueueUnavailable {
                topic: msg.topic().to_owned(),
                queue: format!("selector index {pick:?} of {}", info.queues.len()),
                unsent: Unsent::one(msg),
            });
        };
        let target = Target::Queue(queue.clone());
        let left = timeout.saturating_sub(started.elapsed());
        send_single(inner, msg, target, Mode::Reply, inner.cfg.retries, left)
            .await
            .and_then(expect_result)
    }

    /// Sends `msgs` as one batch (`SEND_BATCH_MESSAGE`): one topic, same `WAIT`, no delay, never
    /// compressed. Retried as [`Producer::send`].
    ///
    /// # Errors
    /// [`ProducerError::InvalidBatch`] / [`ProducerError::InvalidMessage`] before anything is
    /// sent; else as [`Producer::send`] ([`ProducerError::into_batch`] hands the batch back).
    pub async fn send_batch(&self, mut msgs: Vec<Message>) -> Result<SendResult, ProducerError> {
        let inner = self.inner();
        let Some(_token) = inner.begin() else {
            return Err(ProducerError::not_running(Unsent::batch(msgs)));
        };
        let max = inner.cfg.max_message_size;
        if let Err(source) = msgs.iter().try_for_each(|m| validate_message(m, max)) {
            return Err(ProducerError::InvalidMessage {
                source,
                unsent: Unsent::batch(msgs),
            });
        }
        let out = match prepare_batch(&mut msgs, &mut || identity::uniq_ids().next_id()) {
            Ok(out) if out.body.len() > max => {
                let source = ValidationError::BodyTooLarge {
                    size: out.body.len(),
                    max,
                };
                return Err(ProducerError::InvalidMessage {
                    source,
                    unsent: Unsent::batch(msgs),
                });
            }
            Ok(out) => out,
            Err(source) => {
                return Err(ProducerError::InvalidBatch {
                    source,
                    unsent: Unsent::batch(msgs),
                })
            }
        };
        let job = job(
            out,
            Target::Any,
            Mode::Reply,
            inner.cfg.retries,
            inner.cfg.send_timeout,
        );
        run_job(inner, job)
            .await
            .and_then(expect_result)
            .map_err(|e| e.with_unsent(Unsent::batch(msgs)))
    }
}

/// Validates, prepares and runs one message (sync, oneway, queue-pinned).
async fn send_single(
    inner: &Arc<Inner>,
    mut msg: Message,
    target: Target,
    mode: Mode,
    retries: u32,
    timeout: Duration,
) -> Outcome {
    let Some(_token) = inner.begin() else {
        return Err(ProducerError::not_running(Unsent::one(msg)));
    };
    if let Err(source) = validate_message(&msg, inner.cfg.max_message_size) {
        return Err(ProducerError::InvalidMessage {
            source,
            unsent: Unsent::one(msg),
        });
    }
    let out = prepare_single(&mut msg, &inner.cfg, &mut || identity::uniq_ids().next_id());
    let job = job(out, target, mode, retries, timeout);
    run_job(inner, job)
        .await
        .map_err(|e| e.with_unsent(Unsent::one(msg)))
}

/// A job starting now.
pub(crate) fn job(
    out: Outgoing,
    target: Target,
    mode: Mode,
    retries: u32,
    timeout: Duration,
) -> Job {
    Job {
        out,
        target,
        mode,
        retries,
        started: Instant::now(),
        timeout,
    }
}

/// The span of one send: topic, then attempts, broker, queue and latency as they are known.
pub(crate) fn send_span(topic: &str) -> Span {
    tracing::info_span!(
        "send",
        topic,
        attempts = Empty,
        broker = Empty,
        queue = Empty,
        latency_ms = Empty,
    )
}

/// Records the latency and logs the outcome of a send in its span.
pub(crate) fn log_outcome(span: &Span, started: Instant, outcome: &Outcome) {
    span.record(
        "latency_ms",
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    );
    let _entered = span.enter();
    match outcome {
        Ok(Some(r)) => {
            tracing::debug!(status = %r.status, offset_msg_id = %r.offset_msg_id, "sent")
        }
        Ok(None) => tracing::debug!("sent oneway"),
        Err(e) => tracing::debug!(error = %e, maybe_stored = e.maybe_stored(), "send failed"),
    }
}

/// Looks the route up and runs every attempt of `job`, in one `send` span.
async fn run_job(inner: &Arc<Inner>, job: Job) -> Outcome {
    let span = send_span(job.out.topic());
    let started = job.started;
    let outcome = async {
        let info = retry::publish_info(inner, job.out.topic(), job.started, job.timeout).await?;
        SendState::new(Arc::clone(inner), job, info, Span::current())
            .run()
            .await
    }
    .instrument(span.clone())
    .await;
    log_outcome(&span, started, &outcome);
    outcome
}

/// A reply-mode job always yields a result; `None` only comes from oneway jobs.
pub(crate) fn expect_result(r: Option<SendResult>) -> Result<SendResult, ProducerError> {
    r.ok_or(ProducerError::Cancelled {
        maybe_stored: true,
        unsent: Unsent::none(),
    })
}
