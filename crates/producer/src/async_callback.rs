//! The first attempt of an asynchronous send over a transport that answers by callback: the
//! answer settles the send where it arrives (the connection's reader, timer or writer task):
//! the attempt is recorded ([`SendState::settle`]: fault table, latency, trace, span), and a
//! final outcome is delivered there ([`conclude`]: metrics, room and token released). Only a
//! retry (which awaits: back-off, `SYSTEM_BUSY` pause, the next attempts) goes to the
//! completion driver.
//!
//! The request is built first (it borrows the send's state); then the state waits in a
//! [`Rendezvous`] before the request goes to the connection, so that the answer, however early,
//! finds it there, and the launch's future holds the transport's alone. The rendezvous is the
//! send's one shared allocation ([`SendCell`]): the outcome waits there too, for the
//! [`SendFuture`](crate::SendFuture) that the launch's caller makes of it (no channel). The
//! producer's [`Registry`](crate::rendezvous::Registry) lists the sends waiting there, for
//! shutdown to cancel once it stops waiting.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::{
    conclude, first_attempt, hand_off, spawn, Admitted, First, Held, Ready, SendCell, State,
};
use crate::deliver::{Deliver, Delivered, Leftovers};
use crate::error::{ErrorKind, SendError};
use crate::kernel::Outgoing;
use crate::launching::{Launching, Rest};
use crate::options::{SendOptions, To};
use crate::producer::Inner;
use crate::rendezvous::{Cancel, Rendezvous, Settle};
use crate::retry::{self, Job, Mode, Next, Outcome, Queue, SendState, Settled, Target};
use crate::send::timeout_of;
use crate::send_result::SendResult;
use crate::transport::remoting::RemotingTransport;
use crate::transport::Transport;
use rmq_nameserver_client::PublishRoute;
use rmq_remoting::RemotingError;
use std::time::Duration;

/// A send's state in its rendezvous (the send's [`SendCell`]), which exists from the send's
/// admission (the [`SendFuture`](crate::SendFuture) reads the outcome there): empty until the
/// first attempt is ready, then waiting for its first answer. Settled in place
/// ([`Settle::settle`] through `&mut`): only what leaves it is moved (the registrations; the
/// state only for a retry), not the whole (issue 13: it is ~700 bytes). Once settled, it keeps
/// only what the caller's task allocated ([`Spent`]), freed with its rendezvous by the last
/// handle: usually the receiver of the outcome.
pub(crate) struct Waiting {
    /// `None` until parked, and once settled (nothing with an effect outlives the settlement).
    inner: Option<Arc<Inner>>,
    /// The send's state while it waits, then what is left of it.
    phase: Phase,
    admitted: Option<Admitted>,
    span: Span,
    /// Its entry in the producer's registry.
    key: Option<usize>,
}

/// Where a [`Waiting`] send is.
// The state is large and never moved while it waits.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Not parked yet, gone on (a retry), or settled without leftovers.
    Empty,
    /// Waiting for its first answer.
    Waiting {
        state: State,
        queue: Queue,
        /// When the attempt was handed to the transport.
        t0: Instant,
    },
    /// Settled by its first answer: what the receiver of the outcome frees.
    Spent { _left: Spent },
}

/// What a send settled in a callback leaves to be freed by the receiver of its outcome (see
/// [`Leftovers`]): its prepared request and message, bodies emptied.
struct Spent {
    _out: Outgoing,
    _held: Option<Held>,
}

impl Waiting {
    /// Nothing parked yet: the send's rendezvous as its admission makes it.
    pub(crate) fn cell() -> Arc<SendCell> {
        Rendezvous::parked(Self {
            inner: None,
            phase: Phase::Empty,
            admitted: None,
            span: Span::none(),
            key: None,
        })
    }
}

impl Settle for Waiting {
    type Answer = Result<SendResult, ErrorKind>;
    type Outcome = Delivered;

    fn cancelled() -> Self::Answer {
        // Shutdown's abort: the request may have been written.
        Err(retry::cancelled(true))
    }

    fn settle(&mut self, answer: Self::Answer, meeting: &Arc<Rendezvous<Self>>) {
        let Self {
            inner,
            phase,
            admitted,
            span,
            key,
        } = self;
        // Taken first: a settlement that panicked is never run twice. What has an effect (the
        // producer handle, the state's route and spans) is dropped here, by the end.
        let Some(inner) = inner.take() else {
            return;
        };
        // From here the send's outcome is delivered once, whatever happens (a panic too).
        let mut unsettled = Unsettled(Some(&**meeting));
        if let Some(key) = key.take() {
            inner.waiting.remove(key);
        }
        let Some(admitted) = admitted.take() else {
            return;
        };
        let Phase::Waiting { state, queue, t0 } = phase else {
            return;
        };
        let settled = span.in_scope(|| state.settle(queue, *t0, answer.map(Some)));
        match settled {
            Settled::Done(outcome) => {
                let mut kept = None;
                let entered = span.enter();
                let delivery = conclude(&inner, admitted, span, outcome, |held| {
                    // Kept here, where the receiver frees it (set below, under this lock,
                    // before anyone can read it): no allocation for the trip.
                    kept = held;
                    if let Some(held) = &mut kept {
                        held.empty_bodies();
                    }
                    Leftovers::default()
                });
                unsettled.0 = None;
                meeting.deliver(delivery.delivered);
                drop(delivery.token);
                drop(entered);
                let mut out = state.take_outgoing();
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
                let Phase::Waiting { state, .. } = std::mem::replace(phase, Phase::Empty) else {
                    return;
                };
                tracing::debug!(parent: &*span, ?pause, "retrying on the completion driver");
                let task_inner = Arc::clone(&inner);
                let span = std::mem::replace(span, Span::none());
                let mut deliver = Deliver::new(Arc::clone(meeting));
                deliver.may_be_stored();
                // The deliverer delivers from now on (a cancellation if dropped undelivered).
                unsettled.0 = None;
                let task = async move {
                    let outcome = Box::pin(state.resume(pause)).instrument(span.clone()).await;
                    conclude(&task_inner, admitted, &span, outcome, |_| {
                        Leftovers::default()
                    })
                    .to(deliver);
                };
                hand_off(&inner, task);
            }
        }
    }
}

/// Delivers a cancellation (the request may have been written) when dropped armed: a
/// settlement that ended without delivering (a panic, or a state not parked as it should be),
/// so that its [`SendFuture`](crate::SendFuture) never waits forever.
struct Unsettled<'a>(Option<&'a SendCell>);

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(cell) = self.0.take() {
            tracing::debug!("asynchronous send settled without an outcome: delivering Cancelled");
            cell.deliver((
                Err(SendError::bare(retry::cancelled(true))),
                Leftovers::default(),
            ));
        }
    }
}

/// The transport's callback: hands the answer to the rendezvous; dropped uncalled (the launch
/// was dropped before the transport took it, or a panic on the way), it hands a cancellation.
struct Answer(Option<Arc<SendCell>>);

impl Answer {
    fn give(mut self, mut answer: Result<SendResult, ErrorKind>) {
        if let Some(meeting) = self.0.take() {
            // The launch was given up before the request was queued (the caller dropped its
            // `send_async` future, or shutdown's abort): the send ends cancelled, not retried.
            // A `Shutdown` otherwise (the client closed) is the transport's error. Replaced in
            // place: the answer is not moved through a match (issue 13).
            if matches!(
                answer,
                Err(ErrorKind::Transport {
                    source: RemotingError::Shutdown,
                    ..
                })
            ) && meeting.abandoned()
            {
                answer = Waiting::cancelled();
            }
            meeting.answer(answer);
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(meeting) = self.0.take() {
            meeting.answer(Waiting::cancelled());
        }
    }
}

/// Starts an admitted send: the caller's part of its first attempt (at once when the route
/// is cached and no selector runs, else [`first_attempt`] in a boxed future), then hands the
/// attempt to the transport and leaves the send to its answer. Resolves once the attempt is
/// written or queued (or failed), to the send's rendezvous, where its outcome will be; the
/// send may be over by then. A send over before any attempt goes to the completion driver as
/// before ([`spawn`]), its outcome to a rendezvous of its own.
pub(super) fn start<'a>(
    inner: &'a Arc<Inner>,
    transport: &'a RemotingTransport,
    out: Outgoing,
    options: &'a SendOptions,
    admitted: Admitted,
    span: Span,
) -> impl Future<Output = Option<Arc<SendCell>>> + Send + 'a {
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
                match ready {
                    Ready::Attempt(state, queue, budget) => {
                        let meeting =
                            Rendezvous::parked(Waiting::new(inner, state, queue, admitted, span));
                        park(inner, transport, meeting, budget, inner.core.aborted()).await
                    }
                    Ready::Over(outcome) => Some(over(inner, admitted, outcome, span)),
                }
            }),
        );
    };
    ready_now(
        inner, transport, out, info, options, admitted, span, aborted,
    )
}

/// A send over before any attempt: concluded on the completion driver ([`spawn`]), its outcome
/// delivered to a rendezvous of its own (nothing parked there).
fn over(inner: &Arc<Inner>, admitted: Admitted, outcome: Outcome, span: Span) -> Arc<SendCell> {
    let cell = Waiting::cell();
    let mut deliver = Deliver::new(Arc::clone(&cell));
    // Dropped undelivered (runtime shutdown): as a send that may have been written.
    deliver.may_be_stored();
    spawn(inner, admitted, First::Over(outcome), span, deliver);
    cell
}

impl Waiting {
    /// A send about to make its first attempt to `queue`.
    #[inline]
    fn new(inner: &Arc<Inner>, state: State, queue: Queue, admitted: Admitted, span: Span) -> Self {
        Self {
            inner: Some(Arc::clone(inner)),
            phase: Phase::Waiting {
                t0: state.attempt_started(),
                state,
                queue,
            },
            admitted: Some(admitted),
            span,
            key: None,
        }
    }
}

/// The launch of a first attempt (see [`Launching`]): what of it must wait, boxed.
type Launch<'a, A> = Launching<'a, Rest<'a>, A, Waiting>;

/// Hands a first attempt to the transport. Its state waits in `meeting` already (built there,
/// not moved in: it is large, issue 13); the request is built from it there, then the
/// rendezvous is listed in the producer's registry, before the request goes to the connection
/// ([`Launching`]): the answer, however early, finds the state waiting. Nothing to launch when
/// the send is settled already.
fn park<'a, A>(
    inner: &Arc<Inner>,
    transport: &'a RemotingTransport,
    meeting: Arc<SendCell>,
    budget: Duration,
    aborted: A,
) -> Launch<'a, A>
where
    A: Future<Output = ()>,
{
    // From here, whatever happens (a panic too), the send is answered: dropped uncalled, this
    // answers with a cancellation.
    let answer = Answer(Some(Arc::clone(&meeting)));
    // Written by the lock's closure into this local, not returned through it: each hop of a
    // return value copies it (a prepared request is 272 bytes, issue 13).
    let mut prepared = None;
    // Under the rendezvous' lock: nothing can answer yet (the request is not sent, and the
    // registry lists it only in here), so this waits for nobody.
    let listed = meeting.with_parked(|waiting| {
        let Phase::Waiting { state, queue, .. } = &waiting.phase else {
            return None;
        };
        prepared = Some(transport.prepare(&state.attempt(queue, budget)));
        let attempt_span = state.current_attempt_span().clone();
        // Listed before the launch: a shutdown that stops waiting from now on cancels it.
        let key = inner
            .waiting
            .insert(Arc::clone(&meeting) as Arc<dyn Cancel>);
        waiting.key = key;
        Some((key.is_some(), attempt_span))
    });
    let Some(Some((listed, attempt_span))) = listed else {
        return Launching::none(aborted, meeting);
    };
    if !listed {
        // The producer is shutting down: the attempt is never handed to the transport.
        answer.give(Err(retry::cancelled(false)));
        return Launching::none(aborted, meeting);
    }
    match prepared {
        Some(Ok(prepared)) => {
            // Queued here when nothing needs a wait: then nothing of the launch is held across
            // the caller's await (only what must wait is, boxed).
            let rest = {
                let _entered = attempt_span.enter();
                transport.try_launch_prepared(prepared, move |a| answer.give(a))
            };
            match rest {
                Some(rest) => Launching::new(rest, aborted, meeting, attempt_span),
                None => Launching::none(aborted, meeting),
            }
        }
        Some(Err(e)) => {
            answer.give(Err(e));
            Launching::none(aborted, meeting)
        }
        // Cannot happen: the closure that lists the send also prepares its request.
        None => Launching::none(aborted, meeting),
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
/// state built where it waits, in its rendezvous (moving it was a tenth of the send's copies,
/// issue 13), then [`park`]ed; when the send is over before any attempt, handed to the
/// completion driver ([`over`]).
#[allow(clippy::too_many_arguments)]
fn ready_now<'a, A>(
    inner: &Arc<Inner>,
    transport: &'a RemotingTransport,
    out: Outgoing,
    info: Arc<PublishRoute>,
    options: &SendOptions,
    admitted: Admitted,
    span: Span,
    aborted: A,
) -> Launch<'a, A>
where
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
            let meeting = Rendezvous::parked(Waiting::new(inner, state, queue, admitted, span));
            park(inner, transport, meeting, budget, aborted)
        }
        Next::Done(outcome) => Launching::none(aborted, over(inner, admitted, outcome, span)),
    }
}

#[cfg(test)]
mod unsettled {
    use super::*;

    #[test]
    fn a_settlement_that_ends_without_an_outcome_delivers_a_cancellation() {
        let cell = Waiting::cell();
        drop(Unsettled(Some(&*cell)));
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(matches!(
            cell.poll_outcome(&mut cx),
            std::task::Poll::Ready(Some((Err(e), _)))
                if matches!(e.kind(), ErrorKind::Cancelled { maybe_stored: true })
        ));
        let delivered = Waiting::cell();
        let mut armed = Unsettled(Some(&*delivered));
        armed.0 = None;
        drop(armed);
        assert!(!delivered.delivered(), "disarmed: the settlement delivered");
    }
}

#[cfg(test)]
mod sizes {
    //! The sizes of what an asynchronous send moves (issue 13, seventh pass: `memcpy` was a
    //! fifth of its instructions): its waiting state (settled in place, built in its
    //! rendezvous) and the launch that `send_async` holds across its await. Bounds with some
    //! room over the sizes measured (debug build: waiting 712, state 440, admitted 136, start
    //! 168, the launch now holding the send's rendezvous for its `SendFuture`; before the ninth
    //! pass, start was 1,392: it held the remoting call's future), so that a change that grows
    //! them again fails here.

    #![allow(unreachable_code, unused_variables, clippy::diverging_sub_expression)]

    use std::future::Future;
    use std::mem::size_of;

    use super::*;

    fn size<F: Future, C: FnOnce() -> F>(_: C) -> usize {
        size_of::<F>()
    }

    #[test]
    fn the_moved_state_stays_small() {
        let waiting = size_of::<Waiting>();
        let state = size_of::<State>();
        let admitted = size_of::<Admitted>();
        let start = size(|| {
            let inner: &Arc<Inner> = unreachable!();
            let transport: &RemotingTransport = unreachable!();
            let options: &SendOptions = unreachable!();
            start(
                inner,
                transport,
                unreachable!(),
                options,
                unreachable!(),
                Span::none(),
            )
        });
        let sizes = format!("waiting {waiting}, state {state}, admitted {admitted}, start {start}");
        eprintln!("{sizes}");
        assert!(waiting <= state + admitted + 200, "{sizes}");
        // The launch holds boxes and the abort's wait, never the request or the state.
        assert!(start <= 320, "{sizes}");
    }
}
