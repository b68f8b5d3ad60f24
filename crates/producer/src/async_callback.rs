//! The first attempt of an asynchronous send over a transport that answers by callback: the
//! answer settles the send where it arrives (the connection's reader, timer or writer task):
//! the attempt is recorded ([`SendState::settle`]: fault table, latency, trace, span), and a
//! final outcome is delivered there ([`conclude`]: metrics, room and token released). Only a
//! retry (which awaits: back-off, `SYSTEM_BUSY` pause, the next attempts) goes to the
//! completion driver.
//!
//! The answer may come before the launch returns (the state is still borrowed by it), so both
//! meet in a [`Rendezvous`]; the producer's [`Registry`](crate::rendezvous::Registry) lists the
//! sends waiting there, for shutdown to cancel once it stops waiting.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use super::{conclude, first_attempt, hand_off, spawn, Admitted, First, Held, Ready, State};
use crate::deliver::{Deliver, Leftovers, SendOutcome};
use crate::error::ErrorKind;
use crate::kernel::Outgoing;
use crate::options::SendOptions;
use crate::producer::Inner;
use crate::rendezvous::{Cancel, Rendezvous, Settle};
use crate::retry::{self, Queue, Settled};
use crate::send_result::SendResult;

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

/// Starts an admitted send: the caller's part of its first attempt ([`first_attempt`]), then
/// hands the attempt to the transport and leaves the send to its answer. Returns once the
/// attempt is written or queued (or failed); the send may be over by then. A send over before
/// any attempt goes to the completion driver as before ([`spawn`]).
// Not an `async fn`: one would hold every by-value argument twice (the send's state, message
// and deliverer are moved into and out of this future).
#[allow(clippy::manual_async_fn)]
pub(super) fn start<'a, D>(
    inner: &'a Arc<Inner>,
    out: Outgoing,
    options: &'a SendOptions,
    started: Instant,
    admitted: Admitted,
    span: Span,
    deliver: Deliver<D, (SendOutcome, Leftovers)>,
) -> impl Future<Output = ()> + Send + 'a
where
    D: FnOnce((SendOutcome, Leftovers)) + Send + 'static,
{
    async move {
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
        let (state, queue, budget) = match ready {
            Ready::Attempt(state, queue, budget) => (state, queue, budget),
            Ready::Over(outcome) => {
                return spawn(inner, admitted, First::Over(outcome), span, deliver)
            }
        };
        let meeting = Rendezvous::<Waiting<D>>::new();
        // Listed before the launch: a shutdown that stops waiting from now on cancels it.
        let key = inner
            .waiting
            .insert(Arc::clone(&meeting) as Arc<dyn Cancel>);
        // Should the caller drop this future during the launch, the send ends there (its
        // deliverer reports the cancellation) and leaves the list.
        let mut listed = Listed { inner, key };
        // The first attempt's clock read is the send's own (as the synchronous path's).
        let t0 = state.attempt_started();
        if key.is_some() {
            let answer = Answer(Some(Arc::clone(&meeting)));
            state
                .launch_with(&queue, budget, move |a| answer.give(a))
                .instrument(span.clone())
                .await;
        } else {
            // The producer is shutting down: the attempt was never handed to the transport.
            meeting.answer(Err(retry::cancelled(false)));
        }
        listed.key = None;
        drop(listed);
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
    }
}

/// Takes a send off the producer's list when its launch is dropped.
struct Listed<'a> {
    inner: &'a Inner,
    key: Option<usize>,
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.inner.waiting.remove(key);
        }
    }
}
