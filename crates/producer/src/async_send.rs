//! Asynchronous sends: admitted under back-pressure, then resolved exactly once through a
//! [`SendFuture`] or a callback.
//!
//! `send_async` runs the first phase of the first attempt in the caller's task (route lookup,
//! queue choice, handing the request to the transport), so the sends of one task are written in
//! order and pipelined on the connection. Over a transport that answers by callback (remoting),
//! the first answer settles the send where it arrives ([`callback`]), and only retries go to
//! the producer's [completion driver](crate::completion); otherwise (gRPC, `try_send_async`)
//! the driver awaits the answer and runs any retries.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use rmq_common::validate::validate_message;
use rmq_common::Message;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{Instrument, Span};

use crate::backpressure::Permit;
use crate::checks::check_message;
use crate::deliver::{Deliver, Delivered, Leftovers};
use crate::error::{ErrorKind, SendError, Unsent};
use crate::kernel::{prepare_single, Outgoing};
use crate::metrics::Wait;
use crate::options::SendOptions;
use crate::producer::Inner;
use crate::rendezvous::Rendezvous;
use crate::retry::{self, Job, Launched, Mode, Next, Outcome, Queue, SendState, Settled};
use crate::send::{
    check_final_size, log_outcome, prepare_batch_checked, resolve_target, send_span, timeout_of,
};
use crate::send_future::SendFuture;
use crate::transport::any::AnyTransport;
use crate::transport::Transport;
use crate::Producer;

#[path = "async_callback.rs"]
mod callback;

type State = SendState<AnyTransport>;

/// An asynchronous send's one shared allocation: its state while it waits for its first answer
/// by callback (its rendezvous), and its outcome until the [`SendFuture`] takes it.
pub(crate) type SendCell = Rendezvous<callback::Waiting>;

/// A send's cell with nothing parked (for tests of what reads it).
#[cfg(test)]
pub(crate) fn cell() -> Arc<SendCell> {
    callback::Waiting::cell()
}
type Pending = <AnyTransport as Transport>::Pending;

/// What an asynchronous send carries: one message or a batch.
enum Held {
    One(Message),
    Batch(Vec<Message>),
}

impl Held {
    fn size(&self) -> usize {
        match self {
            Self::One(m) => m.body().len(),
            Self::Batch(v) => v.iter().map(|m| m.body().len()).sum(),
        }
    }

    fn into_unsent(self) -> Unsent {
        match self {
            Self::One(m) => Unsent::one(m),
            Self::Batch(v) => Unsent::batch(v),
        }
    }

    /// The message a selector looks at (a batch's first).
    fn first(&self) -> Option<&Message> {
        match self {
            Self::One(m) => Some(m),
            Self::Batch(v) => v.first(),
        }
    }

    /// Empties the bodies in place (leftovers carry only memory of small strings).
    fn empty_bodies(&mut self) {
        match self {
            Self::One(m) => m.set_body(Bytes::new()),
            Self::Batch(v) => {
                for m in v {
                    m.set_body(Bytes::new());
                }
            }
        }
    }
}

/// An admitted asynchronous send's registrations and message, released when it resolves.
struct Admitted {
    token: TaskTrackerToken,
    permit: Option<Permit>,
    held: Held,
    started: Instant,
    /// Whether the send waited for back-pressure room after `started`: its first attempt then
    /// reads the clocks ([`SendState::after_wait`]), so that its budget and deadline are what
    /// the wait left.
    waited: bool,
}

/// Where the first attempt stands when the task takes over.
enum First {
    /// Nothing done yet (`try_send_async`): the task does it all.
    /// The prepared message, its options, and when the send started.
    NotStarted(Outgoing, SendOptions, Instant),
    /// The send ended before any answer was awaited (route error, nothing to try).
    Over(Outcome),
    /// The first attempt was handed to the transport (or failed doing so).
    Launched(Box<Flight>),
}

/// The first attempt of a send, handed to the transport: what its completion needs.
struct Flight {
    /// `None` once the send is over: what it held with an effect (producer handle, route, span)
    /// is dropped where the send completes; its prepared request moves to `out`.
    state: Option<State>,
    queue: Queue,
    t0: Instant,
    launched: Launched<Pending>,
    /// Once the send is over: the memory handed back as leftovers (bodies emptied).
    out: Option<Outgoing>,
    held: Option<Held>,
}

impl Producer {
    /// Starts an asynchronous send with `options` (deadline, target queue or selector): waits
    /// while the back-pressure bounds are reached, hands the first attempt to the transport,
    /// and returns a [`SendFuture`] that resolves exactly once with the outcome (the send goes
    /// on even if the future is dropped). Attempts and retries follow the same rules as
    /// [`Producer::send_with`]; one deadline covers the wait for room, the route lookup and
    /// every attempt (as Java's `tryAcquire(timeout)`): no room in time is
    /// [`ErrorKind::Timeout`] with no attempt, the message handed back.
    ///
    /// Two awaits, as async-nats' JetStream `publish`: the first is where back-pressure waits
    /// and where the request joins the connection, so that sends started one after the other
    /// from one task are written in that order and pipelined; the second is the broker's
    /// answer. A callback form is `tokio::spawn(async move { callback(future.await) })`.
    ///
    /// A task that keeps many sends in flight on tokio's multi-thread runtime does best to
    /// await them oldest first (a `VecDeque` of these futures, refilled as each resolves; the
    /// price is that a slow send holds up the refills behind it). A `FuturesUnordered` wakes
    /// its own task when one `poll_next` has polled as many pending futures as it holds (in
    /// such a loop: each time the whole window was answered and refilled since the task last
    /// waited); tokio puts a task that woke itself at the back of the run queue and wakes a
    /// parked worker, which may steal it, and the sends' path then moves between the cores
    /// (in `rmq bench` on two workers: about twice the CPU per send).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidMessage`] or [`ErrorKind::NotRunning`], with the message.
    // Not an `async fn`: one would hold the message and options twice, and nest the send's
    // future in another.
    #[allow(clippy::manual_async_fn)]
    pub fn send_async(
        &self,
        msg: Message,
        options: SendOptions,
    ) -> impl Future<Output = Result<SendFuture, SendError>> + Send + '_ {
        // One future, not an `Either` around it: every wrapper moves it whole (issue 13).
        self.start_async(Held::One(msg), options, true)
    }

    /// [`Producer::send_async`] for a batch (see [`Producer::send_batch`]).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidBatch`], [`ErrorKind::InvalidMessage`] or [`ErrorKind::NotRunning`],
    /// with the batch.
    pub fn send_batch_async(
        &self,
        msgs: Vec<Message>,
        options: SendOptions,
    ) -> impl Future<Output = Result<SendFuture, SendError>> + Send + '_ {
        self.start_async(Held::Batch(msgs), options, false)
    }

    /// Starts an asynchronous send if the back-pressure bounds leave room, without waiting.
    /// Everything else happens on the send's task.
    ///
    /// # Errors
    /// [`ErrorKind::Overloaded`] (with the message) when full; else as
    /// [`Producer::send_async`].
    pub fn try_send_async(
        &self,
        msg: Message,
        options: SendOptions,
    ) -> Result<SendFuture, SendError> {
        let started = Instant::now();
        let inner = self.inner();
        let (token, mut held) = admit(inner, Held::One(msg))?;
        // Room first: a refused send costs neither compression nor an id.
        let permit = match &inner.flow {
            None => None,
            Some(flow) => match flow.try_acquire(held.size()) {
                Some(p) => Some(p),
                None => {
                    inner.core.metrics.backpressure(Wait::Refused);
                    let (max_in_flight, max_bytes) = flow.limits();
                    return Err(SendError::new(
                        ErrorKind::Overloaded {
                            max_in_flight,
                            max_bytes,
                        },
                        held.into_unsent(),
                    ));
                }
            },
        };
        let (out, span) = match prepare_admitted(inner, &mut held) {
            Ok(prepared) => prepared,
            Err(kind) => return Err(SendError::new(kind, held.into_unsent())),
        };
        let admitted = Admitted {
            token,
            permit,
            held,
            started,
            waited: false,
        };
        let (deliver, future) = outlet();
        spawn(
            inner,
            admitted,
            First::NotStarted(out, options, started),
            span,
            deliver,
        );
        Ok(future)
    }

    /// Admission (waiting for room), first launch in the caller, then the task; a message goes
    /// to the auto-batcher first when `batching` and the producer has one.
    // Not an `async fn`: one would hold `held` and `options` twice.
    #[allow(clippy::manual_async_fn)]
    fn start_async(
        &self,
        mut held: Held,
        mut options: SendOptions,
        batching: bool,
    ) -> impl Future<Output = Result<SendFuture, SendError>> + Send + '_ {
        async move {
            let inner = self.inner();
            if batching && inner.batcher.is_some() {
                if let Held::One(msg) = held {
                    // Boxed: a send without auto-batching keeps its future as small as before.
                    let routed = Box::pin(crate::auto_batch::send_async(inner, msg, options)).await;
                    match routed {
                        crate::auto_batch::Routed::Done(outcome) => return outcome,
                        crate::auto_batch::Routed::Direct(msg, direct) => {
                            held = Held::One(msg);
                            options = direct;
                        }
                    }
                }
            }
            // One deadline covers the wait for room too (Java's `tryAcquire(timeout)`, whose cost
            // is taken off the send timeout).
            let started = Instant::now();
            let timeout = timeout_of(&inner.core, &options);
            let (token, mut held) = admit(inner, held)?;
            let size = held.size();
            let mut waited = false;
            let permit = match &inner.flow {
                None => None,
                // Fast path without registering a waiter anywhere; wait only when full.
                Some(flow) => match flow.try_acquire(size) {
                    Some(p) => Some(p),
                    None => {
                        waited = true;
                        let got = tokio::select! {
                            biased;
                            () = inner.core.abort.cancelled() => Ok(None),
                            p = tokio::time::timeout(timeout, flow.acquire(size)) => p,
                        };
                        match &got {
                            Ok(Some(_)) => inner.core.metrics.backpressure(Wait::Admitted),
                            Err(_) => inner.core.metrics.backpressure(Wait::TimedOut),
                            // Shutdown: not a back-pressure outcome.
                            Ok(None) => {}
                        }
                        match got {
                            Ok(Some(p)) => Some(p),
                            Ok(None) => {
                                return Err(SendError::new(
                                    ErrorKind::NotRunning,
                                    held.into_unsent(),
                                ))
                            }
                            Err(_) => {
                                tracing::debug!(
                                    ?timeout,
                                    "no back-pressure room before the deadline"
                                );
                                let kind = ErrorKind::Timeout {
                                    after: timeout,
                                    attempts: 0,
                                    maybe_stored: false,
                                    last: None,
                                };
                                return Err(SendError::new(kind, held.into_unsent()));
                            }
                        }
                    }
                },
            };
            if !inner.is_running() {
                return Err(SendError::new(ErrorKind::NotRunning, held.into_unsent()));
            }
            let (out, span) = match prepare_admitted(inner, &mut held) {
                Ok(prepared) => prepared,
                Err(kind) => return Err(SendError::new(kind, held.into_unsent())),
            };
            let admitted = Admitted {
                token,
                permit,
                held,
                started,
                waited,
            };
            if let AnyTransport::Remoting(transport) = &inner.core.transport {
                // The common case: the first answer settles the send where it arrives, in the
                // send's rendezvous, where its outcome then waits for the `SendFuture`.
                let cell = callback::start(inner, transport, out, &options, admitted, span).await;
                return cell.map(SendFuture::of).ok_or_else(|| {
                    // A launch resolves once (cannot happen).
                    SendError::bare(ErrorKind::Cancelled { maybe_stored: true })
                });
            }
            let (mut deliver, future) = outlet();
            // From here the request may be written: a drop of this future reports "maybe stored".
            deliver.may_be_stored();
            // A gRPC proxy's send (its answer awaited on the completion driver): boxed, so that
            // the remoting path's future stays small.
            let first = match admitted.held.first() {
                Some(first) => {
                    Box::pin(
                        launch_first(inner, out, &options, first, started).instrument(span.clone()),
                    )
                    .await
                }
                None => First::Over(Err(ErrorKind::InvalidBatch(
                    rmq_common::batch::BatchError::Empty,
                ))),
            };
            spawn(inner, admitted, first, span, deliver);
            Ok(future)
        }
    }
}

/// Registers a send as in flight and validates its message(s).
fn admit(inner: &Inner, held: Held) -> Result<(TaskTrackerToken, Held), SendError> {
    let Some(token) = inner.begin() else {
        return Err(SendError::new(ErrorKind::NotRunning, held.into_unsent()));
    };
    let max = inner.cfg().max_message_size;
    let valid = match &held {
        Held::One(m) => check_message(m, inner.cfg()),
        Held::Batch(v) => v.iter().try_for_each(|m| validate_message(m, max)),
    };
    match valid {
        Ok(()) => Ok((token, held)),
        Err(source) => Err(SendError::new(
            ErrorKind::InvalidMessage(source),
            held.into_unsent(),
        )),
    }
}

/// Prepares an admitted message (id, compression) or batch in place, once it has back-pressure
/// room.
fn prepare(inner: &Inner, held: &mut Held) -> Result<Outgoing, ErrorKind> {
    match held {
        Held::One(msg) => {
            let out = prepare_single(msg, inner.cfg(), &mut crate::kernel::ProcessIds);
            check_final_size(&out, inner.cfg().max_message_size)?;
            Ok(out)
        }
        Held::Batch(msgs) => prepare_batch_checked(inner, msgs),
    }
}

/// A deliverer and the [`SendFuture`] that receives what it delivers (a send whose state does
/// not wait in its rendezvous: over gRPC, or `try_send_async`).
fn outlet() -> (Deliver<callback::Waiting>, SendFuture) {
    let cell = callback::Waiting::cell();
    (Deliver::new(Arc::clone(&cell)), SendFuture::of(cell))
}

/// An admitted send with room, prepared in place ([`prepare`]): its request and its span, or
/// the error (the caller hands the message back in it). The caller builds the registrations
/// ([`Admitted`]) after, where they stay: nothing large is moved through a result (issue 13:
/// the request and the registrations were copied on the way).
fn prepare_admitted(inner: &Inner, held: &mut Held) -> Result<(Outgoing, Span), ErrorKind> {
    let out = prepare(inner, held)?;
    let span = send_span(out.topic());
    Ok((out, span))
}

/// The first attempt, ready to be handed to the transport, or the send already over.
// Built once per send and moved at once: boxing the state would cost an allocation.
#[allow(clippy::large_enum_variant)]
enum Ready {
    Attempt(State, Queue, std::time::Duration),
    Over(Outcome),
}

/// The caller's part up to the first attempt: target and route lookup, queue choice, within the
/// deadline of a send that started at `started`.
// Not an `async fn`: one would hold `out` twice.
#[allow(clippy::manual_async_fn)]
fn first_attempt<'a>(
    inner: &'a Arc<Inner>,
    out: Outgoing,
    options: &'a SendOptions,
    msg: &'a Message,
    started: Instant,
) -> impl Future<Output = Ready> + Send + 'a {
    async move {
        let core = &inner.core;
        let timeout = timeout_of(core, options);
        let target = match resolve_target(core, options, msg, out.topic(), started, timeout).await {
            Ok(target) => target,
            Err(e) => return Ready::Over(Err(e)),
        };
        let job = Job {
            out,
            target,
            mode: Mode::Reply,
            retries: core.cfg.retries_async,
            started,
            timeout,
        };
        let info = match retry::publish_info(core, job.out.topic(), job.started, job.timeout).await
        {
            Ok(info) => info,
            Err(e) => return Ready::Over(Err(e)),
        };
        let mut state = SendState::new(Arc::clone(core), job, info, Span::current()).after_wait();
        match state.next() {
            Next::Done(outcome) => Ready::Over(outcome),
            Next::Attempt(queue, budget) => Ready::Attempt(state, queue, budget),
        }
    }
}

/// The caller's part: [`first_attempt`], then handing it to the transport.
async fn launch_first(
    inner: &Arc<Inner>,
    out: Outgoing,
    options: &SendOptions,
    msg: &Message,
    started: Instant,
) -> First {
    match first_attempt(inner, out, options, msg, started).await {
        Ready::Over(outcome) => First::Over(outcome),
        Ready::Attempt(state, queue, budget) => {
            let t0 = Instant::now();
            let launched = state.launch(&queue, budget).await;
            First::Launched(Box::new(Flight {
                state: Some(state),
                queue,
                t0,
                launched,
                out: None,
                held: None,
            }))
        }
    }
}

/// The task's part: await the first answer, run the remaining attempts, deliver exactly once,
/// then release the send's registrations.
fn spawn(
    inner: &Arc<Inner>,
    admitted: Admitted,
    first: First,
    span: Span,
    mut deliver: Deliver<callback::Waiting>,
) {
    if !matches!(first, First::Over(_)) {
        deliver.may_be_stored();
    }
    let task_inner = Arc::clone(inner);
    let task = async move {
        let first = match first {
            // Only `try_send_async` starts here: boxed, so that the common path's completion
            // (one allocation per send) stays small.
            First::NotStarted(out, options, started) => {
                let msg = admitted.held.first();
                match msg {
                    Some(msg) => {
                        Box::pin(
                            launch_first(&task_inner, out, &options, msg, started)
                                .instrument(span.clone()),
                        )
                        .await
                    }
                    None => First::Over(Err(retry::cancelled(false))),
                }
            }
            other => other,
        };
        let (outcome, flight) = complete(first).instrument(span.clone()).await;
        conclude(&task_inner, admitted, &span, outcome, |held| {
            leftovers(held, flight)
        })
        .to(deliver);
    };
    hand_off(inner, task);
}

/// A send concluded: what to deliver, then its token to release (what `shutdown` waits for).
#[must_use = "deliver, then drop the token"]
struct Concluded {
    delivered: Delivered,
    token: TaskTrackerToken,
}

impl Concluded {
    /// Delivers with `deliver`, then releases the token.
    fn to(self, deliver: Deliver<callback::Waiting>) {
        let (outcome, leftovers) = self.delivered;
        deliver.call_with(outcome, leftovers);
        drop(self.token);
    }
}

/// Ends a send: records its outcome and frees its room; the caller delivers, then releases its
/// token ([`Concluded`]). `spent` makes the leftovers, given the message when the send
/// succeeded (else it goes back to the caller in the error).
fn conclude(
    inner: &Inner,
    admitted: Admitted,
    span: &Span,
    mut outcome: Outcome,
    spent: impl FnOnce(Option<Held>) -> Leftovers,
) -> Concluded {
    let topic = admitted.held.first().map_or("", Message::topic);
    log_outcome(&inner.core.metrics, topic, span, admitted.started, &outcome);
    crate::namespace::outcome_out(crate::namespace::of(&inner.core.cfg), &mut outcome);
    let Admitted {
        token,
        permit,
        held,
        ..
    } = admitted;
    // The room is free before the caller learns the outcome, so a caller that sends again
    // on its result never waits on its own finished send. The token (what `shutdown` waits
    // for) goes last.
    drop(permit);
    let (outcome, leftovers) = match outcome {
        Ok(Some(result)) => (Ok(result), spent(Some(held))),
        // A reply-mode send always yields a result.
        Ok(None) => (
            Err(SendError::new(retry::cancelled(true), held.into_unsent())),
            spent(None),
        ),
        Err(kind) => (Err(SendError::new(kind, held.into_unsent())), spent(None)),
    };
    Concluded {
        delivered: (outcome, leftovers),
        token,
    }
}

/// Hands the rest of a send to the completion driver.
fn hand_off(inner: &Inner, task: impl Future<Output = ()> + Send + 'static) {
    // The driver only stops after the producer's state is gone, which the send keeps alive;
    // should it be gone anyway (runtime shutting down), the send still gets its own task.
    if let Err(mpsc::error::SendError(task)) = inner.completions.send(Box::pin(task)) {
        inner.sends.spawn_on(task, &inner.runtime);
    }
}

/// What a send hands back to the receiver of its outcome to free: the memory the caller's task
/// allocated for it (the flight itself, message and prepared request, bodies emptied), nothing
/// with an effect (the producer handle, the route, the span and the transport's future are
/// dropped here), so a finished `SendFuture` that is not awaited yet holds a few small strings.
fn leftovers(held: Option<Held>, flight: Option<Box<Flight>>) -> Leftovers {
    let Some(mut flight) = flight else {
        return Leftovers::default();
    };
    flight.launched = Launched::Over(Ok(None));
    if let Some(state) = flight.state.take() {
        let mut out = state.into_outgoing();
        out.body = Bytes::new();
        flight.out = Some(out);
    }
    flight.held = held;
    if let Some(held) = &mut flight.held {
        held.empty_bodies();
    }
    Leftovers::new(flight)
}

/// The error of a flight without its state (cannot happen: see [`complete`]).
fn spent() -> ErrorKind {
    retry::cancelled(true)
}

/// Awaits the first attempt and runs the rest. The first answer is awaited in place; any
/// further attempt runs in a future of its own, allocated only then. The flight comes back when
/// the first attempt ended the send (to be freed by the receiver of the outcome).
async fn complete(first: First) -> (Outcome, Option<Box<Flight>>) {
    match first {
        First::NotStarted(..) => (Err(retry::cancelled(false)), None),
        First::Over(outcome) => (outcome, None),
        First::Launched(mut flight) => {
            let Flight {
                state: Some(state),
                queue,
                t0,
                launched,
                ..
            } = &mut *flight
            else {
                // A flight is built with its state; only `leftovers` takes it, after this.
                return (Err(spent()), None);
            };
            let outcome = state.finish(launched).await;
            match state.settle(queue, *t0, outcome) {
                Settled::Done(outcome) => (outcome, Some(flight)),
                Settled::Again(pause) => match flight.state.take() {
                    Some(state) => (Box::pin(state.resume(pause)).await, None),
                    None => (Err(spent()), None),
                },
            }
        }
    }
}
