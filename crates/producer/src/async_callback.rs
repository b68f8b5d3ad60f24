//! The first attempt of an asynchronous send over a transport that answers by callback: the
//! answer settles the send where it arrives (the connection's reader, timer or writer task):
//! the attempt is recorded ([`SendState::settle`]: fault table, latency, trace, span), and a
//! final outcome is delivered there ([`conclude`]: metrics, room and token released). Only a
//! retry (which awaits: back-off, `SYSTEM_BUSY` pause, the next attempts) goes to the
//! completion driver.
//!
//! The request is built first (it borrows the send's state); then the state waits in a
//! [`Rendezvous`] before the request goes to the connection, so that the answer, however early,
//! finds it there, and the launch's future holds the transport's alone. The producer's
//! [`Registry`](crate::rendezvous::Registry) lists the sends waiting there, for shutdown to
//! cancel once it stops waiting.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::{conclude, first_attempt, hand_off, spawn, Admitted, First, Held, Ready, State};
use crate::deliver::{Deliver, Leftovers, SendOutcome};
use crate::error::ErrorKind;
use crate::kernel::Outgoing;
use crate::launching::{Before, Launching};
use crate::options::{SendOptions, To};
use crate::producer::Inner;
use crate::rendezvous::{Cancel, Rendezvous, Settle};
use crate::retry::{self, Job, Mode, Next, Queue, SendState, Settled, Target};
use crate::send::timeout_of;
use crate::send_result::SendResult;
use crate::transport::remoting::RemotingTransport;
use crate::transport::Transport;
use rmq_nameserver_client::PublishRoute;
use rmq_remoting::RemotingError;
use std::time::Duration;

/// A send waiting for its first answer. Settled in place ([`Settle::settle`] through `&mut`):
/// only what leaves it is moved (the deliverer, the registrations; the state only for a
/// retry), not the whole (issue 13: it is ~700 bytes). Once settled, it keeps only what the
/// caller's task allocated ([`Spent`]), freed with its rendezvous by the last handle: the
/// receiver of the outcome, which holds one as the send's [`Leftovers`].
struct Waiting<D>
where
    D: FnOnce((SendOutcome, Leftovers)),
{
    /// `None` once settled (nothing with an effect outlives the settlement).
    inner: Option<Arc<Inner>>,
    /// The send's state until settled, then what is left of it.
    phase: Phase,
    queue: Queue,
    /// When the attempt was handed to the transport.
    t0: Instant,
    admitted: Option<Admitted>,
    span: Span,
    deliver: Option<Deliver<D, (SendOutcome, Leftovers)>>,
    /// Its entry in the producer's registry.
    key: Option<usize>,
}

/// Where a [`Waiting`] send is.
// The state is large and built in its place (never moved while it waits).
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Waiting for its first answer.
    Waiting(State),
    /// Settled by its first answer: what the receiver of the outcome frees.
    Spent { _left: Spent },
    /// Gone on (a retry) or settled without leftovers.
    Gone,
}

/// What a send settled in a callback leaves to be freed by the receiver of its outcome (see
/// [`Leftovers`]): its prepared request and message, bodies emptied.
struct Spent {
    _out: Outgoing,
    _held: Option<Held>,
}

impl<D> Settle for Waiting<D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    type Answer = Result<SendResult, ErrorKind>;

    fn cancelled() -> Self::Answer {
        // Shutdown's abort: the request may have been written.
        Err(retry::cancelled(true))
    }

    fn settle(&mut self, answer: Self::Answer, meeting: &Arc<Rendezvous<Self>>) {
        let Self {
            inner,
            phase,
            queue,
            t0,
            admitted,
            span,
            deliver,
            key,
        } = self;
        // Taken first: a settlement that panicked is never run twice. What has an effect (the
        // producer handle, the state's route and spans) is dropped here, by the end.
        let Some(inner) = inner.take() else {
            return;
        };
        if let Some(key) = key.take() {
            inner.waiting.remove(key);
        }
        let (Some(deliver), Some(admitted)) = (deliver.take(), admitted.take()) else {
            return;
        };
        let Phase::Waiting(running) = phase else {
            return;
        };
        let settled = span.in_scope(|| running.settle(queue, *t0, answer.map(Some)));
        match settled {
            Settled::Done(outcome) => {
                let mut kept = None;
                let entered = span.enter();
                conclude(&inner, admitted, span, deliver, outcome, |held| {
                    kept = held.map(Held::emptied);
                    // No allocation: the receiver holds this rendezvous, where the leftovers
                    // stay (set below, under its lock, before anyone can read them).
                    Leftovers::shared(Arc::clone(meeting) as Arc<dyn Send + Sync>)
                });
                drop(entered);
                let mut out = running.take_outgoing();
                out.body = Bytes::new();
                // The rest of the state (route, producer handle, spans) is dropped here.
                *phase = Phase::Spent {
                    _left: Spent {
                        _out: out,
                        _held: kept,
                    },
                };
                *span = Span::none();
            }
            Settled::Again(pause) => {
                let Phase::Waiting(state) = std::mem::replace(phase, Phase::Gone) else {
                    return;
                };
                tracing::debug!(parent: &*span, ?pause, "retrying on the completion driver");
                let task_inner = Arc::clone(&inner);
                let span = std::mem::replace(span, Span::none());
                let task = async move {
                    let outcome = Box::pin(state.resume(pause)).instrument(span.clone()).await;
                    conclude(&task_inner, admitted, &span, deliver, outcome, |_| {
                        Leftovers::default()
                    });
                };
                hand_off(&inner, task);
            }
        }
    }
}

/// The transport's callback: hands the answer to the rendezvous; dropped uncalled (the launch
/// was dropped before the transport took it), it hands a cancellation.
struct Answer<D>(Option<Arc<Rendezvous<Waiting<D>>>>)
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static;

impl<D> Answer<D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    fn give(mut self, answer: Result<SendResult, ErrorKind>) {
        if let Some(meeting) = self.0.take() {
            let answer = match answer {
                // The launch was given up before the request was queued (the caller dropped
                // its `send_async` future, or shutdown's abort): the send ends cancelled, not
                // retried. A `Shutdown` otherwise (the client closed) is the transport's error.
                Err(ErrorKind::Transport {
                    source: RemotingError::Shutdown,
                    ..
                }) if meeting.abandoned() => Waiting::<D>::cancelled(),
                other => other,
            };
            meeting.answer(answer);
        }
    }
}

impl<D> Drop for Answer<D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    fn drop(&mut self) {
        if let Some(meeting) = self.0.take() {
            meeting.answer(Waiting::<D>::cancelled());
        }
    }
}

/// Starts an admitted send: the caller's part of its first attempt (at once when the route
/// is cached and no selector runs, else [`first_attempt`] in a boxed future), then hands the
/// attempt to the transport and leaves the send to its answer. Returns once the attempt is
/// written or queued (or failed); the send may be over by then. A send over before any attempt
/// goes to the completion driver as before ([`spawn`]).
pub(super) fn start<'a, D>(
    inner: &'a Arc<Inner>,
    transport: &'a RemotingTransport,
    out: Outgoing,
    options: &'a SendOptions,
    admitted: Admitted,
    span: Span,
    deliver: Deliver<D, (SendOutcome, Leftovers)>,
) -> impl Future<Output = ()> + Send + 'a
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    let started = admitted.started;
    let aborted = inner.core.aborted();
    let Some(info) = route_now(inner, options, &out, started) else {
        // Boxed: the common case's future stays small.
        return Launching::before(
            aborted,
            Box::pin(async move {
                let ready = match admitted.held.first() {
                    Some(msg) => {
                        first_attempt(inner, out, options, msg, started)
                            .instrument(span.clone())
                            .await
                    }
                    None => Ready::Over(Err(ErrorKind::InvalidBatch(
                        rmq_common::batch::BatchError::Empty,
                    ))),
                };
                let parked = match ready {
                    Ready::Attempt(state, queue, budget) => Some((
                        Rendezvous::parked(Waiting::new(
                            inner, state, queue, admitted, span, deliver,
                        )),
                        budget,
                    )),
                    Ready::Over(outcome) => {
                        spawn(inner, admitted, First::Over(outcome), span, deliver);
                        None
                    }
                };
                if let Some((meeting, budget)) = parked {
                    park(inner, transport, meeting, budget, inner.core.aborted()).await;
                }
            }),
        );
    };
    ready_now(
        inner, transport, out, info, options, admitted, span, deliver, aborted,
    )
}

impl<D> Waiting<D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    /// A send about to make its first attempt to `queue`.
    #[inline]
    fn new(
        inner: &Arc<Inner>,
        state: State,
        queue: Queue,
        admitted: Admitted,
        span: Span,
        deliver: Deliver<D, (SendOutcome, Leftovers)>,
    ) -> Self {
        Self {
            inner: Some(Arc::clone(inner)),
            t0: state.attempt_started(),
            phase: Phase::Waiting(state),
            queue,
            admitted: Some(admitted),
            span,
            deliver: Some(deliver),
            key: None,
        }
    }
}

/// The launch of a first attempt (see [`Launching`]): what of it must wait, boxed.
type Launch<'a, A, D> = Launching<'a, Before<'a>, A, Waiting<D>>;

/// Hands a first attempt to the transport. Its state waits in `meeting` already (built there,
/// not moved in: it is large, issue 13); the request is built from it there, then the
/// rendezvous is listed in the producer's registry, before the request goes to the connection
/// ([`Launching`]): the answer, however early, finds the state waiting. Nothing to launch when
/// the send is settled already.
fn park<'a, D, A>(
    inner: &Arc<Inner>,
    transport: &'a RemotingTransport,
    meeting: Arc<Rendezvous<Waiting<D>>>,
    budget: Duration,
    aborted: A,
) -> Launch<'a, A, D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
    A: Future<Output = ()>,
{
    // Under the rendezvous' lock: nothing can answer yet (the request is not sent, and the
    // registry lists it only in here), so this waits for nobody.
    let listed = meeting.with_parked(|waiting| {
        let Phase::Waiting(state) = &waiting.phase else {
            return None;
        };
        let prepared = transport.prepare(&state.attempt(&waiting.queue, budget));
        let attempt_span = state.current_attempt_span().clone();
        // Listed before the launch: a shutdown that stops waiting from now on cancels it.
        let key = inner
            .waiting
            .insert(Arc::clone(&meeting) as Arc<dyn Cancel>);
        waiting.key = key;
        Some((key.is_some(), prepared, attempt_span))
    });
    let Some(Some((listed, prepared, attempt_span))) = listed else {
        return Launching::none(aborted);
    };
    if !listed {
        // The producer is shutting down: the attempt is never handed to the transport.
        meeting.answer(Err(retry::cancelled(false)));
        return Launching::none(aborted);
    }
    match prepared {
        Ok(prepared) => {
            // Dropped before it is called (the launch dropped early), it answers with a
            // cancellation.
            let answer = Answer(Some(Arc::clone(&meeting)));
            // Queued here when nothing needs a wait: then nothing of the launch is held across
            // the caller's await (only what must wait is, boxed).
            let rest = {
                let _entered = attempt_span.enter();
                transport.try_launch_prepared(prepared, move |a| answer.give(a))
            };
            match rest {
                Some(rest) => Launching::new(rest, aborted, meeting, attempt_span),
                None => Launching::none(aborted),
            }
        }
        Err(e) => {
            meeting.answer(Err(e));
            Launching::none(aborted)
        }
    }
}

/// The route of a send that needs no wait before its first attempt (no selector or queue
/// target, the route cached).
fn route_now(
    inner: &Inner,
    options: &SendOptions,
    out: &Outgoing,
    started: Instant,
) -> Option<Arc<PublishRoute>> {
    if !matches!(options.target(), To::Any) {
        return None;
    }
    inner.core.transport.cached_route(out.topic(), started)
}

/// The first attempt of a send whose route is at hand ([`route_now`]), in the send's span: its
/// state built where it waits, in its [`Waiting`] (moving it was a tenth of the send's copies,
/// issue 13), then [`park`]ed; `None` when the send is over before any attempt (handed to the
/// completion driver).
#[allow(clippy::too_many_arguments)]
fn ready_now<'a, D, A>(
    inner: &Arc<Inner>,
    transport: &'a RemotingTransport,
    out: Outgoing,
    info: Arc<PublishRoute>,
    options: &SendOptions,
    admitted: Admitted,
    span: Span,
    deliver: Deliver<D, (SendOutcome, Leftovers)>,
    aborted: A,
) -> Launch<'a, A, D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
    A: Future<Output = ()>,
{
    let core = &inner.core;
    let job = Job {
        out,
        target: Target::Any,
        mode: Mode::Reply,
        retries: core.cfg.retries_async,
        started: admitted.started,
        timeout: timeout_of(core, options),
    };
    let mut state = SendState::new(Arc::clone(core), job, info, span.clone());
    if admitted.waited {
        // Its first attempt gets what the wait for room left, not the whole timeout.
        state = state.after_wait();
    }
    match state.next() {
        Next::Attempt(queue, budget) => {
            // Built where it waits (moving it was a tenth of the send's copies, issue 13). The
            // first attempt's clock read is the send's own (as the synchronous path's).
            let meeting =
                Rendezvous::parked(Waiting::new(inner, state, queue, admitted, span, deliver));
            park(inner, transport, meeting, budget, aborted)
        }
        Next::Done(outcome) => {
            spawn(inner, admitted, First::Over(outcome), span, deliver);
            Launching::none(aborted)
        }
    }
}

#[cfg(test)]
mod sizes {
    //! The sizes of what an asynchronous send moves (issue 13, seventh pass: `memcpy` was a
    //! fifth of its instructions): its waiting state (settled in place, built in its
    //! rendezvous) and the launch that `send_async` holds across its await. Bounds with some
    //! room over the sizes measured (debug build: waiting 720, state 440, admitted 128, start
    //! 160; before the ninth pass, start was 1,392: it held the remoting call's future), so
    //! that a change that grows them again fails here.

    #![allow(unreachable_code, unused_variables, clippy::diverging_sub_expression)]

    use std::future::Future;
    use std::mem::size_of;

    use super::*;

    /// The deliverer's receiver of `send_async` (a closure holding a oneshot sender): a word.
    type Receiver = fn((SendOutcome, Leftovers));

    fn size<F: Future, C: FnOnce() -> F>(_: C) -> usize {
        size_of::<F>()
    }

    #[test]
    fn the_moved_state_stays_small() {
        let waiting = size_of::<Waiting<Receiver>>();
        let state = size_of::<State>();
        let admitted = size_of::<Admitted>();
        let start = size(|| {
            let inner: &Arc<Inner> = unreachable!();
            let transport: &RemotingTransport = unreachable!();
            let options: &SendOptions = unreachable!();
            let deliver: Deliver<Receiver, (SendOutcome, Leftovers)> = unreachable!();
            start(
                inner,
                transport,
                unreachable!(),
                options,
                unreachable!(),
                Span::none(),
                deliver,
            )
        });
        let sizes = format!("waiting {waiting}, state {state}, admitted {admitted}, start {start}");
        eprintln!("{sizes}");
        assert!(waiting <= state + admitted + 200, "{sizes}");
        // The launch holds boxes and the abort's wait, never the request or the state.
        assert!(start <= 320, "{sizes}");
    }
}
