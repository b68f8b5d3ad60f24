//! The send loop (Java's `sendDefaultImpl`, with its known flaws fixed), as a small state
//! machine shared by synchronous and asynchronous sends:
//!
//! - One deadline per send covers the route lookup and every attempt.
//! - Attempts = 1 + retries for sync **and** async sends (oneway: one attempt).
//! - While another broker can still be tried, an attempt is capped (by default at the time left
//!   divided by the brokers not yet tried), so one hung broker cannot eat the whole budget; with a
//!   single broker, or on the last attempt, an attempt gets all the time left (as in Java).
//! - Retry only when safe (see [`policy`](crate::policy)): transport errors and the configured
//!   broker codes; a short pause after `SYSTEM_BUSY`; a retry avoids the broker that just failed.
//! - Sends pinned to a queue (selector, `send_to_queue`) are never moved to another queue; they
//!   are retried on the same queue only when the message was certainly not stored.
//! - The fault table is updated after every attempt.
//!
//! The first attempt of an asynchronous send has two phases: [`SendState::launch`] resolves the
//! broker and hands the request to the transport in the caller's task (so sends from one task
//! are written in order and pipelined), [`SendState::finish`] awaits the answer on the send's
//! task. Every other attempt runs in one call (`invoke_sync`).
//!
//! What follows an attempt (its record and the send's final outcome) is in `settle.rs`; the
//! kinds of synchronous attempt ([`Ask`]) in `ask.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rmq_common::MessageQueue;
use rmq_nameserver_client::PublishRoute;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::instrument::Instrumented;
use tracing::{field::Empty, Instrument, Span};

use crate::config::ProducerConfig;
use crate::error::ErrorKind;
use crate::fault::LatencyFaultTolerance;
use crate::kernel::Outgoing;
use crate::policy::{attempt_budget, untried_brokers};
use crate::select::select_queue;
use crate::send_result::SendResult;
use crate::transport::{Attempt, Transport};

mod ask;
mod settle;

pub(crate) use ask::{Ask, AskOneway, AskReply};
pub(crate) use settle::Settled;
use settle::{timeout_error, Tally};

/// What every send of one producer shares: the transport, the settings, the fault table, and
/// shutdown's signal to give up (the round-robin counters live with the routes).
#[derive(Debug)]
pub(crate) struct Core<T> {
    pub(crate) transport: T,
    pub(crate) cfg: ProducerConfig,
    pub(crate) faults: LatencyFaultTolerance,
    /// Cancelled when shutdown stops waiting for in-flight sends (for the rare waits).
    pub(crate) abort: CancellationToken,
    /// The same as a flag, for the per-attempt check (no lock).
    aborted: AtomicBool,
    /// Wakes the attempts waiting in [`Core::aborted`].
    abort_wake: Notify,
    /// The message trace, when on.
    pub(crate) trace: Option<crate::trace::dispatcher::Tracer>,
    /// The client metrics (zero-sized without the `metrics` feature).
    pub(crate) metrics: crate::metrics::Metrics,
}

impl<T: Transport> Core<T> {
    pub(crate) fn new(transport: T, cfg: ProducerConfig) -> Self {
        Self {
            transport,
            cfg,
            faults: LatencyFaultTolerance::new(),
            abort: CancellationToken::new(),
            aborted: AtomicBool::new(false),
            abort_wake: Notify::new(),
            trace: None,
            metrics: crate::metrics::Metrics::off(),
        }
    }

    /// Whether shutdown gave up waiting for the sends in flight.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    /// Ends every send still in flight with [`ErrorKind::Cancelled`] at its next step.
    pub(crate) fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
        self.abort.cancel();
        self.abort_wake.notify_waiters();
    }

    /// Resolves once [`Core::abort`] was called: what every attempt waits on besides its answer.
    /// Cheaper than the token's `cancelled()` (a flag read, then one registration while the
    /// attempt is pending, instead of a lock at every poll).
    pub(crate) async fn aborted(&self) {
        // Created before the flag is read: a `notify_waiters` after the read still wakes it.
        let woken = self.abort_wake.notified();
        if self.is_aborted() {
            return;
        }
        woken.await;
    }
}

/// Where a send may go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Any queue of the topic (round-robin with fault avoidance).
    Any,
    /// This queue only (boxed: rare, and it keeps every send's state small).
    Queue(Box<MessageQueue>),
}

/// How the broker is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Wait for the broker's answer (sync and async sends).
    Reply,
    /// Oneway: resolves once queued on the connection, one attempt.
    Oneway,
}

/// One send, ready to run.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) out: Outgoing,
    pub(crate) target: Target,
    pub(crate) mode: Mode,
    /// Retries after the first attempt.
    pub(crate) retries: u32,
    /// When the send started (its deadline is `started + timeout`).
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
}

/// The outcome of a send: a result (`None` for oneway) or what went wrong (the caller hands the
/// message to the error).
pub(crate) type Outcome = Result<Option<SendResult>, ErrorKind>;

/// The queue of an attempt: one of the route's queues, by position (no copy per send), or a
/// queue of its own (pinned sends, static topics).
#[derive(Debug, Clone)]
pub(crate) enum Queue {
    Route(usize),
    Own(MessageQueue),
}

/// What comes next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Make an attempt to this queue within this budget.
    Attempt(Queue, Duration),
    /// The send is over.
    Done(Outcome),
}

/// An attempt handed to the transport, or one that already ended.
#[derive(Debug)]
pub(crate) enum Launched<P> {
    /// Written (or queued for writing); the answer is awaited by [`SendState::finish`].
    Waiting(P),
    /// Already over (oneway queued, or failed before being written).
    Over(Outcome),
}

/// Looks the route up within the send's deadline.
pub(crate) async fn publish_info<T: Transport>(
    core: &Core<T>,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Arc<PublishRoute>, ErrorKind> {
    // The common case: a cached route, without a timer or a future.
    if let Some(info) = core.transport.cached_route(topic, started) {
        return Ok(info);
    }
    Box::pin(load_publish_info(core, topic, started, timeout)).await
}

/// [`publish_info`] when the route is not cached: loads it within the send's deadline.
async fn load_publish_info<T: Transport>(
    core: &Core<T>,
    topic: &str,
    started: Instant,
    timeout: Duration,
) -> Result<Arc<PublishRoute>, ErrorKind> {
    let left = time_left(started, timeout);
    let lookup = core.transport.load_route(topic, left);
    // Shutdown's deadline also ends a lookup (the name servers may be unreachable).
    tokio::select! {
        biased;
        () = core.abort.cancelled() => Err(cancelled(false)),
        r = tokio::time::timeout(left, lookup) => match r {
            Err(_) => Err(timeout_error(timeout, &Tally::default(), None)),
            Ok(looked_up) => looked_up,
        },
    }
}

/// The state of one send across its attempts. Owns what it needs, so an asynchronous send can
/// move it to its task after the first launch.
#[derive(Debug)]
pub(crate) struct SendState<T> {
    core: Arc<Core<T>>,
    job: Job,
    /// The route, with its round-robin counter.
    info: Arc<PublishRoute>,
    total: u32,
    tally: Tally,
    span: Span,
    /// The current attempt's span (a child of `span`, at debug; none between attempts and when
    /// no subscriber wants it).
    attempt_span: Span,
    /// When the current attempt started (the clock read of [`SendState::next`]).
    attempt_t0: Instant,
    /// Whether the state was built after a wait (a route lookup, a selector): its first
    /// attempt then reads the clocks instead of taking the send's start and the prepare's
    /// wall-clock read ([`SendState::after_wait`]).
    waited: bool,
}

impl<T: Transport> SendState<T> {
    /// A send of `job` over the queues of `info`, recording into `span`.
    pub(crate) fn new(core: Arc<Core<T>>, job: Job, info: Arc<PublishRoute>, span: Span) -> Self {
        let total = match job.mode {
            Mode::Oneway => 1,
            // A proxy's later settings replace the attempts the send started with.
            Mode::Reply => core
                .transport
                .live_limits()
                .max_attempts
                .unwrap_or_else(|| job.retries.saturating_add(1)),
        };
        let job_started = job.started;
        if !span.is_disabled() {
            span.record("msg_id", job.out.msg_id.as_str());
        }
        Self {
            core,
            job,
            info,
            total,
            tally: Tally::default(),
            attempt_t0: job_started,
            waited: false,
            span,
            attempt_span: Span::none(),
        }
    }

    /// This state, built after the send waited (a route lookup, a selector, ...) since its start
    /// and its prepare: its first attempt reads the clocks (its time left is what the wait
    /// left, its `bornTimestamp` is fresh), as every later attempt does.
    #[must_use]
    pub(crate) fn after_wait(mut self) -> Self {
        self.waited = true;
        self
    }

    /// The next attempt's queue and budget, or the end of the send.
    pub(crate) fn next(&mut self) -> Next {
        if self.core.is_aborted() {
            return Next::Done(Err(cancelled(self.tally.maybe_stored)));
        }
        if self.tally.attempts >= self.total {
            return Next::Done(self.finish_exhausted());
        }
        // One clock read serves the deadline, the fault table and the attempt's latency; the
        // first attempt takes the send's start (read microseconds before) unless the state was
        // built after a wait.
        let (now, left) = if self.tally.attempts == 0 && !self.waited {
            (self.job.started, self.job.timeout)
        } else {
            let now = Instant::now();
            let spent = now.saturating_duration_since(self.job.started);
            (now, self.job.timeout.saturating_sub(spent))
        };
        self.attempt_t0 = now;
        if left.is_zero() {
            return Next::Done(self.finish_timeout());
        }
        let queue = match &self.job.target {
            Target::Queue(q) => Queue::Own(MessageQueue::clone(q)),
            Target::Any => {
                let faults = self
                    .core
                    .cfg
                    .latency_fault_tolerance
                    .then_some((&self.core.faults, now));
                let queues = &self.info.info().queues;
                let picked = select_queue(
                    queues,
                    &self.info.info().static_endpoints,
                    self.info.counter(),
                    self.tally.last_broker(),
                    faults,
                )
                .and_then(|q| queues.iter().position(|c| std::ptr::eq(c, q)));
                match picked {
                    Some(i) => Queue::Route(i),
                    None => return Next::Done(self.finish_exhausted()),
                }
            }
        };
        let attempts_left = self.total - self.tally.attempts;
        // Only an uncapped attempt with others after it splits the time by brokers.
        let splits = attempts_left > 1 && self.core.cfg.attempt_timeout.is_none();
        let untried = match self.job.target {
            Target::Queue(_) => 1,
            Target::Any if !splits => 1,
            // Nothing tried yet: every broker of the route (counted once per route).
            Target::Any if self.tally.brokers().is_empty() => self.info.brokers(),
            Target::Any => untried_brokers(
                &self.info.info().queues,
                &self.info.info().static_endpoints,
                self.tally.brokers(),
            ),
        };
        // A static topic's logical queue goes to its real broker, under its logical id (Java's
        // `sendKernelImpl` with `getBrokerNameFromMessageQueue`): from here on the queue names
        // the real broker (address, request `bname`, fault table, errors, result).
        let queue = if self.info.info().is_static() {
            let mq = self.queue(&queue);
            let real = self.info.info().broker_name_of(mq).to_owned();
            Queue::Own(MessageQueue::new(mq.topic.clone(), real, mq.queue_id))
        } else {
            queue
        };
        let budget = attempt_budget(left, attempts_left, untried, self.core.cfg.attempt_timeout);
        self.tally.attempts += 1;
        // A span no subscriber wants records nothing: skip looking its fields up.
        if !self.span.is_disabled() {
            let mq = self.queue(&queue);
            self.span.record("attempts", self.tally.attempts);
            self.span.record("broker", mq.broker_name.as_str());
            self.span.record("queue", mq.queue_id);
        }
        self.attempt_span = self.attempt_span(&queue, budget);
        Next::Attempt(queue, budget)
    }

    /// The span of the attempt about to be made to `queue` (at debug: per-message detail).
    fn attempt_span(&self, queue: &Queue, budget: Duration) -> Span {
        let span = tracing::debug_span!(
            parent: &self.span,
            "attempt",
            attempt = Empty,
            broker = Empty,
            queue = Empty,
            budget_ms = Empty,
            outcome = Empty,
            latency_ms = Empty,
        );
        if !span.is_disabled() {
            let mq = self.queue(queue);
            span.record("attempt", self.tally.attempts);
            span.record("broker", mq.broker_name.as_str());
            span.record("queue", mq.queue_id);
            span.record(
                "budget_ms",
                u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
            );
        }
        span
    }

    /// The send's prepared message, the rest of the state dropped (route, producer handle, span).
    pub(crate) fn into_outgoing(self) -> Outgoing {
        self.job.out
    }

    /// The send's prepared message, taken out of a state that is over (an empty one is left).
    pub(crate) fn take_outgoing(&mut self) -> Outgoing {
        let empty = Outgoing {
            code: self.job.out.code,
            body: bytes::Bytes::new(),
            sys_flag: 0,
            flag: 0,
            topic_bytes: bytestring::ByteString::new(),
            properties: bytestring::ByteString::new(),
            msg_id: String::new(),
            born_ms: 0,
            reconsume_times: 0,
            max_reconsume_times: None,
        };
        std::mem::replace(&mut self.job.out, empty)
    }

    /// The message queue `queue` stands for.
    pub(crate) fn queue<'a>(&'a self, queue: &'a Queue) -> &'a MessageQueue {
        match queue {
            Queue::Route(i) => &self.info.info().queues[*i],
            Queue::Own(mq) => mq,
        }
    }

    /// The attempt to `queue` within `budget`, for the transport.
    pub(crate) fn attempt<'a>(&'a self, queue: &'a Queue, budget: Duration) -> Attempt<'a> {
        Attempt {
            info: self.info.info(),
            mq: self.queue(queue),
            addr: match queue {
                Queue::Route(i) => self.info.queue_addr_shared(*i),
                Queue::Own(_) => None,
            },
            out: &self.job.out,
            budget,
            started: self.attempt_t0,
            // The first attempt made without a wait is born at the prepare's clock read (taken
            // microseconds before, with the message id); every other reads the clock.
            born_at_prepare: self.tally.attempts <= 1 && !self.waited,
            pinned: matches!(self.job.target, Target::Queue(_)),
        }
    }

    /// Phase 1: hands the attempt to the transport.
    pub(crate) async fn launch(&self, queue: &Queue, budget: Duration) -> Launched<T::Pending> {
        let attempt = self.attempt(queue, budget);
        let transport = &self.core.transport;
        let launch = async {
            match self.job.mode {
                Mode::Oneway => Launched::Over(transport.oneway(attempt).await.map(|()| None)),
                Mode::Reply => match transport.launch(attempt).await {
                    Ok(pending) => Launched::Waiting(pending),
                    Err(e) => Launched::Over(Err(e)),
                },
            }
        };
        let launched = async {
            tokio::select! {
                biased;
                launched = launch => launched,
                () = self.core.aborted() => Launched::Over(Err(cancelled(true))),
            }
        };
        launched.instrument(self.attempt_span.clone()).await
    }

    /// The span of the current attempt (a child of the send's, at debug).
    pub(crate) fn current_attempt_span(&self) -> &Span {
        &self.attempt_span
    }

    /// When the current attempt started (the clock read of [`SendState::next`]; the send's
    /// start for the first attempt).
    pub(crate) fn attempt_started(&self) -> Instant {
        self.attempt_t0
    }

    /// A whole attempt with a reply in one call (the synchronous path): the transport's future
    /// in the attempt's span, with no state around it (every await copies a future whole).
    #[inline]
    fn call<'a>(
        &'a self,
        queue: &'a Queue,
        budget: Duration,
    ) -> Instrumented<impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'a> {
        let attempt = self.attempt(queue, budget);
        self.core
            .transport
            .call(attempt)
            .instrument(self.attempt_span.clone())
    }

    /// A oneway attempt in one call.
    fn call_oneway<'a>(
        &'a self,
        queue: &'a Queue,
        budget: Duration,
    ) -> Instrumented<impl Future<Output = Result<(), ErrorKind>> + Send + 'a> {
        let attempt = self.attempt(queue, budget);
        self.core
            .transport
            .oneway(attempt)
            .instrument(self.attempt_span.clone())
    }

    /// Phase 2: awaits the answer of a launched attempt (borrowing it, so that an asynchronous
    /// send's completion stays one small allocation).
    pub(crate) async fn finish(&self, launched: &mut Launched<T::Pending>) -> Outcome {
        match launched {
            Launched::Over(outcome) => std::mem::replace(outcome, Err(cancelled(false))),
            Launched::Waiting(pending) => {
                let answer = async {
                    tokio::select! {
                        biased;
                        answer = pending => answer.map(Some),
                        () = self.core.aborted() => Err(cancelled(true)),
                    }
                };
                answer.instrument(self.attempt_span.clone()).await
            }
        }
    }

    /// Runs the remaining attempts to the end, after `pause` (see [`Settled::Again`]).
    // Not an `async fn`: one would hold `self` twice (its argument and its binding).
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn resume(mut self, pause: Duration) -> impl Future<Output = Outcome> + Send {
        // An async block using `self` in place: an `async fn` taking `self` would hold it twice.
        async move {
            if !pause.is_zero() && !pause_for(&self.core, pause).await {
                return Err(cancelled(self.tally.maybe_stored));
            }
            self.run_mut().await
        }
    }

    /// Runs the remaining attempts to the end.
    #[allow(clippy::manual_async_fn)] // as `resume`
    pub(crate) fn run(mut self) -> impl Future<Output = Outcome> + Send {
        // As in `resume`: the state is held once, and borrowed by the loop.
        async move { self.run_mut().await }
    }

    /// Runs the remaining attempts to the end, the state borrowed (its future holds a reference,
    /// not the state: issue 13). A oneway send's loop is boxed here: the synchronous sends pick
    /// their loop by type ([`SendState::run_as`]), so that a send with a reply does not carry a
    /// oneway attempt's larger future (and the other way round).
    pub(crate) async fn run_mut(&mut self) -> Outcome {
        match self.job.mode {
            Mode::Reply => self.run_as::<AskReply>().await,
            Mode::Oneway => Box::pin(self.run_as::<AskOneway>()).await,
        }
    }

    /// [`SendState::run_mut`] with the broker asked as `A` says (the job's mode).
    pub(crate) async fn run_as<A: Ask>(&mut self) -> Outcome {
        loop {
            let (queue, budget) = match self.next() {
                Next::Done(outcome) => return outcome,
                Next::Attempt(queue, budget) => (queue, budget),
            };
            let t0 = self.attempt_t0;
            // Shutdown's deadline ends an attempt wherever it is (connecting, writing, waiting);
            // the request may have been written by then.
            let outcome = tokio::select! {
                biased;
                answer = A::ask(self, &queue, budget) => A::outcome(answer),
                () = self.core.aborted() => Err(cancelled(true)),
            };
            match self.settle(&queue, t0, outcome) {
                Settled::Done(outcome) => return outcome,
                Settled::Again(pause) if !pause.is_zero() => {
                    if !pause_for(&self.core, pause).await {
                        return Err(cancelled(self.tally.maybe_stored));
                    }
                }
                Settled::Again(_) => {}
            }
        }
    }
}

/// Waits `pause` between attempts; false when shutdown gave up first. Boxed: rare (after
/// `SYSTEM_BUSY` or a reconnect backoff), and a timer would otherwise size every send's future.
async fn pause_for<T>(core: &Core<T>, pause: Duration) -> bool {
    let wait = Box::pin(async {
        tokio::select! {
            biased;
            () = core.abort.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    });
    wait.await
}

pub(crate) fn cancelled(maybe_stored: bool) -> ErrorKind {
    ErrorKind::Cancelled { maybe_stored }
}

/// What is left of `timeout` since `started`, without adding to an `Instant` (which panics on
/// overflow for huge timeouts).
pub(crate) fn time_left(started: Instant, timeout: Duration) -> Duration {
    timeout.saturating_sub(started.elapsed())
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "future_sizes_tests.rs"]
mod future_sizes;
