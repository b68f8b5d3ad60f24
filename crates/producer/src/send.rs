//! The sends that the caller awaits to the end: one message (with a reply, or oneway) and
//! batches, each with [`SendOptions`]. Every send runs in one `send` span.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, FutureExt};
use rmq_common::validate::{validate_message, ValidationError};
use rmq_common::Message;
use tokio::time::Instant;
use tracing::{field::Empty, Instrument, Span};

use crate::checks::check_message;
use crate::config::MAX_TIMEOUT;
use crate::error::{ErrorKind, SendError, Unsent};
use crate::kernel::{prepare_batch, prepare_single, Outgoing};
use crate::options::{SendOptions, To};
use crate::producer::Inner;
use crate::retry::{self, Ask, AskOneway, AskReply, Core, Job, Mode, Outcome, SendState, Target};
use crate::send_result::SendResult;
use crate::transport::Transport;
use crate::Producer;

impl Producer {
    /// Sends `msg` and waits for the broker's answer, within the configured send timeout, to any
    /// queue of the topic. The same as [`Producer::send_with`] with the default options.
    ///
    /// # Errors
    /// A [`SendError`]; [`SendError::maybe_stored`] tells whether the message may have been
    /// stored, [`SendError::into_message`] hands it back when it certainly was not.
    // Not an `async fn`: `send_with`'s future as it is, with no state of its own around it
    // (every await copies a future whole: issue 13).
    pub fn send(
        &self,
        msg: Message,
    ) -> impl Future<Output = Result<SendResult, SendError>> + Send + '_ {
        self.send_with(msg, SendOptions::new())
    }

    /// Sends `msg` and waits for the broker's answer, with `options` (deadline, target queue or
    /// selector).
    ///
    /// # Errors
    /// As [`Producer::send`]; [`ErrorKind::QueueUnavailable`] when the target queue is of
    /// another topic or the selector picks none.
    // Not an `async fn`: one would hold `msg` and `options` twice, around the send's future.
    // Without auto-batching this is the send's future itself; with it, the whole send is boxed
    // (one allocation, as the accumulator's part was before).
    pub fn send_with(
        &self,
        msg: Message,
        options: SendOptions,
    ) -> impl Future<Output = Result<SendResult, SendError>> + Send + '_ {
        let inner = self.inner();
        let retries = inner.cfg().retries;
        match inner.batcher {
            None => Either::Left(
                send_single::<AskReply>(inner, msg, options, retries)
                    .map(|r| r.and_then(expect_result)),
            ),
            Some(_) => Either::Right(Box::pin(async move {
                let (msg, options) = match crate::auto_batch::send_sync(inner, msg, options).await {
                    crate::auto_batch::Routed::Done(outcome) => return outcome,
                    crate::auto_batch::Routed::Direct(msg, options) => (msg, options),
                };
                send_single::<AskReply>(inner, msg, options, retries)
                    .await
                    .and_then(expect_result)
            })),
        }
    }

    /// Sends `msg` once without waiting for an answer. No retry.
    ///
    /// Resolves once the request is queued on the broker's connection, not once written (as
    /// Java's `sendOneway`, which returns once the request is handed to the channel): the
    /// connection's writer writes it then, and a write failing after that is only logged (with
    /// the broker address and the request's opaque). The oneway in-flight bound
    /// ([`RemotingConfig::max_oneway_in_flight`](rmq_remoting::RemotingConfig)) counts a request
    /// until it is written, so sends wait (or fail, per the overload policy) while that many are
    /// queued. [`Producer::shutdown`] writes what is queued before the connections close (for
    /// at most 4 s when the broker reads nothing).
    ///
    /// # Errors
    /// As [`Producer::send_with`], for the route lookup, the connect and the waits for room (an
    /// in-flight permit, the connection's queue budget).
    pub async fn send_oneway(&self, msg: Message, options: SendOptions) -> Result<(), SendError> {
        send_single::<AskOneway>(self.inner(), msg, options, 0)
            .await
            .map(|_| ())
    }

    /// Sends `msgs` as one batch (`SEND_BATCH_MESSAGE`): one topic, same `WAIT`, no delay, never
    /// compressed. Retried as [`Producer::send`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidBatch`] / [`ErrorKind::InvalidMessage`] before anything is sent; else
    /// as [`Producer::send_with`] ([`SendError::into_batch`] hands the batch back).
    pub async fn send_batch(
        &self,
        mut msgs: Vec<Message>,
        options: SendOptions,
    ) -> Result<SendResult, SendError> {
        let inner = self.inner();
        let Some(_token) = inner.begin() else {
            return Err(SendError::new(ErrorKind::NotRunning, Unsent::batch(msgs)));
        };
        let out = match prepare_batch_checked(inner, &mut msgs) {
            Ok(out) => out,
            Err(kind) => return Err(SendError::new(kind, Unsent::batch(msgs))),
        };
        let retries = inner.cfg().retries;
        // A prepared batch has a first message (an empty one is refused).
        let outcome = match msgs.first() {
            Some(first) => run_sync(&inner.core, out, first, options, Mode::Reply, retries).await,
            None => Err(ErrorKind::InvalidBatch(
                rmq_common::batch::BatchError::Empty,
            )),
        };
        match outcome {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(SendError::bare(retry::cancelled(true))),
            Err(kind) => Err(SendError::new(kind, Unsent::batch(msgs))),
        }
    }
}

/// The body that goes on the wire (compressed or not) within the size limit, checked before
/// anything is sent (compression only keeps a smaller body, so this holds for every valid
/// message; the check keeps it so).
pub(crate) fn check_final_size(out: &Outgoing, max: usize) -> Result<(), ErrorKind> {
    if out.body.len() > max {
        return Err(ErrorKind::InvalidMessage(ValidationError::BodyTooLarge {
            size: out.body.len(),
            max,
        }));
    }
    Ok(())
}

/// Validates and prepares a batch.
pub(crate) fn prepare_batch_checked(
    inner: &Inner,
    msgs: &mut [Message],
) -> Result<Outgoing, ErrorKind> {
    let max = inner.cfg().max_message_size;
    msgs.iter()
        .try_for_each(|m| validate_message(m, max))
        .map_err(ErrorKind::InvalidMessage)?;
    match prepare_batch(msgs, &mut crate::kernel::ProcessIds) {
        Ok(mut out) if out.body.len() <= max => {
            crate::namespace::apply(&mut out, crate::namespace::of(inner.cfg()));
            Ok(out)
        }
        Ok(out) => Err(ErrorKind::InvalidMessage(ValidationError::BodyTooLarge {
            size: out.body.len(),
            max,
        })),
        Err(source) => Err(ErrorKind::InvalidBatch(source)),
    }
}

/// Validates, prepares and runs one message. An async block using `msg` and `options` in place
/// (an `async fn` would hold them twice).
// Not an `async fn`: one would hold `msg` and `options` twice.
#[allow(clippy::manual_async_fn)]
#[inline]
pub(crate) fn send_single<A: Ask>(
    inner: &Arc<Inner>,
    mut msg: Message,
    options: SendOptions,
    retries: u32,
) -> impl Future<Output = Result<Option<SendResult>, SendError>> + Send + '_ {
    async move {
        let Some(_token) = inner.begin() else {
            return Err(SendError::new(ErrorKind::NotRunning, Unsent::one(msg)));
        };
        if let Err(source) = check_message(&msg, inner.cfg()) {
            return Err(SendError::new(
                ErrorKind::InvalidMessage(source),
                Unsent::one(msg),
            ));
        }
        let out = prepare_single(&mut msg, inner.cfg(), &mut crate::kernel::ProcessIds);
        let outcome = run_sync_as::<A, _>(&inner.core, out, &msg, options, retries).await;
        outcome.map_err(|kind| SendError::new(kind, Unsent::one(msg)))
    }
}

/// The deadline of a send with `options`.
pub(crate) fn timeout_of<T>(core: &Core<T>, options: &SendOptions) -> Duration {
    options
        .get_timeout()
        .unwrap_or(core.cfg.send_timeout)
        .min(MAX_TIMEOUT)
}

/// The loop's target for `options`: a selector picks its queue from the route, looked up within
/// the send's deadline.
pub(crate) async fn resolve_target<T: Transport>(
    core: &Core<T>,
    options: &SendOptions,
    msg: &Message,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Target, ErrorKind> {
    let ns = crate::namespace::of(&core.cfg);
    match options.target() {
        To::Any => Ok(Target::Any),
        To::Queue(queue) => target_queue(ns, queue, topic),
        To::Selector(selector) => {
            let route = retry::publish_info(core, topic, started, timeout).await?;
            let info = route.info();
            let pick = crate::namespace::select(ns, &**selector, &info.queues, msg);
            match pick.and_then(|i| info.queues.get(i)) {
                Some(queue) => Ok(Target::Queue(Box::new(queue.clone()))),
                None => Err(ErrorKind::QueueUnavailable {
                    topic: topic.to_owned(),
                    queue: format!("selector index {pick:?} of {}", info.queues.len()),
                }),
            }
        }
    }
}

/// Resolves the target, looks the route up and runs every attempt, in one `send` span.
///
/// A plain function returning one async block: in the common case (no selector, the route
/// cached) the send's state is made here, synchronously, and the block borrows it; the rest
/// (a route to load, a selector to run) is one boxed future. Every await copies its future
/// whole, so the block holds no second copy of the message or the state (issue 13).
#[inline]
pub(crate) fn run_sync<'a, T: Transport>(
    core: &'a Arc<Core<T>>,
    out: Outgoing,
    msg: &'a Message,
    options: SendOptions,
    mode: Mode,
    retries: u32,
) -> impl Future<Output = Outcome> + Send + 'a {
    match mode {
        Mode::Reply => Either::Left(run_sync_as::<AskReply, T>(core, out, msg, options, retries)),
        Mode::Oneway => Either::Right(run_sync_as::<AskOneway, T>(
            core, out, msg, options, retries,
        )),
    }
}

/// [`run_sync`] with the broker asked as `A` says: the send's future holds the future of its
/// own kind of attempt only.
#[inline]
pub(crate) fn run_sync_as<'a, A: Ask, T: Transport>(
    core: &'a Arc<Core<T>>,
    out: Outgoing,
    msg: &'a Message,
    options: SendOptions,
    retries: u32,
) -> impl Future<Output = Outcome> + Send + 'a {
    let mode = A::MODE;
    let span = send_span(out.topic());
    let started = Instant::now();
    let timeout = timeout_of(core, &options);
    let job = Job {
        out,
        target: Target::Any,
        mode,
        retries,
        started,
        timeout,
    };
    let mut first = start(core, job, msg, options, &span);
    async move {
        let mut outcome = async {
            match &mut first {
                First::Ready(state) => state.run_as::<A>().await,
                First::Slow(slow) => slow.await,
                First::Failed(kind) => Err(std::mem::replace(kind, retry::cancelled(false))),
            }
        }
        .instrument(span.clone())
        .await;
        drop(first);
        log_outcome(&core.metrics, msg.topic(), &span, started, &outcome);
        crate::namespace::outcome_out(crate::namespace::of(&core.cfg), &mut outcome);
        outcome
    }
}

/// How a synchronous send starts.
// The large variant is the common case: boxing it would allocate per send.
#[allow(clippy::large_enum_variant)]
enum First<'a, T> {
    /// Its state, ready to run (the common case).
    Ready(SendState<T>),
    /// The route must be loaded or a selector run first: the whole send, boxed.
    Slow(Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>),
    /// Over before any attempt (a queue of another topic).
    Failed(ErrorKind),
}

/// The send's state when its target and route are known without waiting, else the boxed rest
/// of the send.
fn start<'a, T: Transport>(
    core: &'a Arc<Core<T>>,
    mut job: Job,
    msg: &'a Message,
    options: SendOptions,
    span: &Span,
) -> First<'a, T> {
    let ns = crate::namespace::of(&core.cfg);
    let target = match options.target() {
        To::Any => Target::Any,
        To::Queue(queue) => match target_queue(ns, queue, job.out.topic()) {
            Ok(target) => target,
            Err(kind) => return First::Failed(kind),
        },
        To::Selector(_) => return slow_start(core, job, msg, options, span),
    };
    let Some(info) = core.transport.cached_route(job.out.topic(), job.started) else {
        return slow_start(core, job, msg, options, span);
    };
    job.target = target;
    First::Ready(SendState::new(Arc::clone(core), job, info, span.clone()))
}

/// [`start`] when the send must wait before its first attempt: the route lookup and the
/// selector, within the send's deadline.
fn slow_start<'a, T: Transport>(
    core: &'a Arc<Core<T>>,
    mut job: Job,
    msg: &'a Message,
    options: SendOptions,
    span: &Span,
) -> First<'a, T> {
    let span = span.clone();
    First::Slow(Box::pin(async move {
        let topic = job.out.topic();
        job.target = resolve_target(core, &options, msg, topic, job.started, job.timeout).await?;
        let info = retry::publish_info(core, job.out.topic(), job.started, job.timeout).await?;
        SendState::new(Arc::clone(core), job, info, span)
            .after_wait()
            .run()
            .await
    }))
}

/// The target of a send pinned to `queue` (the user's name), which must be of `topic`.
fn target_queue(
    ns: Option<&str>,
    queue: &rmq_common::MessageQueue,
    topic: &str,
) -> Result<Target, ErrorKind> {
    let queue = crate::namespace::queue_in(ns, queue);
    if queue.topic == topic {
        Ok(Target::Queue(Box::new(queue)))
    } else {
        Err(ErrorKind::QueueUnavailable {
            topic: topic.to_owned(),
            queue: queue.to_string(),
        })
    }
}

/// The span of one send: topic, then message id, attempts, broker, queue (of the last
/// attempt), outcome and latency as they are known. Each attempt is a child `attempt` span (at
/// debug; see [`SendState`]).
pub(crate) fn send_span(topic: &str) -> Span {
    tracing::info_span!(
        "send",
        topic,
        msg_id = Empty,
        attempts = Empty,
        broker = Empty,
        queue = Empty,
        outcome = Empty,
        latency_ms = Empty,
    )
}

/// The `outcome` field of a send or attempt span: the broker's status (`SEND_OK`, ...),
/// `written` for oneway, else the error kind (`timeout`, `broker`, ...).
pub(crate) fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(Some(r)) => r.status.as_str(),
        Ok(None) => "written",
        Err(e) => crate::metrics::error_label(e),
    }
}

/// Ends a send of `topic` (the user's name) that started at `started`: records its cost and
/// outcome in the metrics and in its span, and logs the outcome at debug.
pub(crate) fn log_outcome(
    metrics: &crate::metrics::Metrics,
    topic: &str,
    span: &Span,
    started: Instant,
    outcome: &Outcome,
) {
    // No clock read for a span no subscriber wants and no metrics.
    if !span.is_disabled() || metrics.is_on() {
        let cost = started.elapsed();
        metrics.send_done(topic, cost, outcome.as_ref().err());
        if !span.is_disabled() {
            span.record(
                "latency_ms",
                u64::try_from(cost.as_millis()).unwrap_or(u64::MAX),
            );
            span.record("outcome", outcome_label(outcome));
        }
    }
    let _entered = span.enter();
    match outcome {
        Ok(Some(r)) => {
            tracing::debug!(status = %r.status, offset_msg_id = %r.offset_msg_id, "sent")
        }
        Ok(None) => tracing::debug!("sent oneway"),
        Err(e) => tracing::debug!(error = %e, maybe_stored = e.maybe_stored(), "send failed"),
    }
}

/// A reply-mode job always yields a result; `None` only comes from oneway jobs.
pub(crate) fn expect_result(r: Option<SendResult>) -> Result<SendResult, SendError> {
    r.ok_or_else(|| SendError::bare(retry::cancelled(true)))
}

/// [`expect_result`] before the message is handed back.
pub(crate) fn expect_result_kind(r: Option<SendResult>) -> Result<SendResult, ErrorKind> {
    r.ok_or_else(|| retry::cancelled(true))
}
