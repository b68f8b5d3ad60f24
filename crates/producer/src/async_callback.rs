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
use futures_util::future::Either;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::{conclude, first_attempt, hand_off, spawn, Admitted, First, Held, Ready, State};
use crate::deliver::{Deliver, Leftovers, SendOutcome};
use crate::error::ErrorKind;
use crate::kernel::Outgoing;
use crate::options::{SendOptions, To};
use crate::producer::Inner;
use crate::rendezvous::{Cancel, Rendezvous, Settle};
use crate::retry::{self, Job, Mode, Next, Queue, SendState, Settled, Target};
use crate::send::timeout_of;
use crate::send_result::SendResult;
use crate::transport::remoting::RemotingTransport;
use crate::transport::Transport;
use rmq_remoting::RemotingError;

/// A send waiting for its first answer.
struct Waiting<D>
where
    D: FnOnce((SendOutcome, Leftovers)),
{
    inner: Arc<Inner>,
    state: State,
    queue: Queue,
    /// When the attempt was handed to the transport.
    t0: Instant,
    admitted: Admitted,
    span: Span,
    deliver: Deliver<D, (SendOutcome, Leftovers)>,
    /// Its entry in the producer's registry.
    key: Option<usize>,
}

/// What a send settled in a callback hands back to be freed by the receiver of its outcome
/// (see [`Leftovers`]): its prepared request and message, bodies emptied.
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

    fn settle(self, answer: Self::Answer) {
        let Self {
            inner,
            mut state,
            queue,
            t0,
            admitted,
            span,
            deliver,
            key,
        } = self;
        if let Some(key) = key {
            inner.waiting.remove(key);
        }
        let settled = span.in_scope(|| state.settle(&queue, t0, answer.map(Some)));
        match settled {
            Settled::Done(outcome) => {
                let _entered = span.enter();
                conclude(&inner, admitted, &span, deliver, outcome, |held| {
                    let mut out = state.into_outgoing();
                    out.body = Bytes::new();
                    Leftovers::new(Box::new(Spent {
                        _out: out,
                        _held: held.map(Held::emptied),
                    }))
                });
            }
            Settled::Again(pause) => {
                tracing::debug!(parent: &span, ?pause, "retrying on the completion driver");
                let task_inner = Arc::clone(&inner);
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
    match ready_now(inner, out, options, started, &span) {
        Ok(ready) => Either::Left(launch(inner, transport, ready, admitted, span, deliver)),
        // Boxed: the common case's future stays small.
        Err(out) => Either::Right(Box::pin(async move {
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
            launch(inner, transport, ready, admitted, span, deliver).await;
        })),
    }
}

/// Hands a ready first attempt to the transport. The request is built at once (it borrows the
/// send's state), then the state waits for its answer in a [`Rendezvous`], listed in the
/// producer's registry, before the request goes to the connection: the answer, however early,
/// finds it there. The future returned holds the transport's launch alone.
fn launch<'a, D>(
    inner: &'a Arc<Inner>,
    transport: &'a RemotingTransport,
    ready: Ready,
    admitted: Admitted,
    span: Span,
    deliver: Deliver<D, (SendOutcome, Leftovers)>,
) -> impl Future<Output = ()> + Send + 'a
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    let (state, queue, budget) = match ready {
        Ready::Attempt(state, queue, budget) => (state, queue, budget),
        Ready::Over(outcome) => {
            spawn(inner, admitted, First::Over(outcome), span, deliver);
            return Either::Right(std::future::ready(()));
        }
    };
    let prepared = transport.prepare(&state.attempt(&queue, budget));
    let attempt_span = state.current_attempt_span().clone();
    let meeting = Rendezvous::<Waiting<D>>::new();
    // Listed before the launch: a shutdown that stops waiting from now on cancels it.
    let key = inner
        .waiting
        .insert(Arc::clone(&meeting) as Arc<dyn Cancel>);
    // The first attempt's clock read is the send's own (as the synchronous path's).
    let t0 = state.attempt_started();
    meeting.park(Waiting {
        inner: Arc::clone(inner),
        state,
        queue,
        t0,
        admitted,
        span,
        deliver,
        key,
    });
    let prepared = match (key, prepared) {
        (Some(_), Ok(prepared)) => prepared,
        (Some(_), Err(e)) => {
            meeting.answer(Err(e));
            return Either::Right(std::future::ready(()));
        }
        // The producer is shutting down: the attempt is never handed to the transport.
        (None, _) => {
            meeting.answer(Err(retry::cancelled(false)));
            return Either::Right(std::future::ready(()));
        }
    };
    // Dropped before it is called (this future dropped early), it answers with a cancellation.
    let answer = Answer(Some(Arc::clone(&meeting)));
    let core = &inner.core;
    Either::Left(
        async move {
            // Declared before the guard, so dropped after it: a launch given up marks the
            // meeting before its callback answers `Shutdown`.
            let launch = transport.launch_prepared(prepared, move |a| answer.give(a));
            let mut launch = std::pin::pin!(launch);
            let mut given_up = GivenUp(Some(&meeting));
            // Shutdown's abort ends the wait for the connection or room: the launch is
            // dropped, and answers with a cancellation.
            tokio::select! {
                biased;
                () = &mut launch => given_up.0 = None,
                () = core.aborted() => {}
            }
        }
        .instrument(attempt_span),
    )
}

/// Marks a launch given up (dropped or aborted before it resolved) when dropped armed.
struct GivenUp<'a, D>(Option<&'a Rendezvous<Waiting<D>>>)
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static;

impl<D> Drop for GivenUp<'_, D>
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    fn drop(&mut self) {
        if let Some(meeting) = self.0 {
            meeting.set_abandoned();
        }
    }
}

/// The first attempt without waiting when nothing needs a wait (no selector or queue target,
/// the route cached), in the send's span; else `out` back, for [`first_attempt`].
// The `Err` is the prepared message handed back by value, as it came (boxing it would allocate).
#[allow(clippy::result_large_err)]
fn ready_now(
    inner: &Arc<Inner>,
    out: Outgoing,
    options: &SendOptions,
    started: Instant,
    span: &Span,
) -> Result<Ready, Outgoing> {
    let core = &inner.core;
    if !matches!(options.target(), To::Any) {
        return Err(out);
    }
    let Some(info) = core.transport.cached_route(out.topic()) else {
        return Err(out);
    };
    let job = Job {
        out,
        target: Target::Any,
        mode: Mode::Reply,
        retries: core.cfg.retries_async,
        started,
        timeout: timeout_of(core, options),
    };
    let mut state = SendState::new(Arc::clone(core), job, info, span.clone());
    Ok(match state.next() {
        Next::Done(outcome) => Ready::Over(outcome),
        Next::Attempt(queue, budget) => Ready::Attempt(state, queue, budget),
    })
}
