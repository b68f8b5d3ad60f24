//! Asynchronous sends: admitted under back-pressure, then resolved exactly once through a
//! [`SendFuture`] or a callback.
//!
//! `send_async` runs the first phase of the first attempt in the caller's task (route lookup,
//! queue choice, handing the request to the transport), so the sends of one task are written in
//! order and pipelined on the connection; the producer's [completion driver](crate::completion)
//! awaits the answer and runs any retries.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rmq_common::validate::validate_message;
use rmq_common::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{Instrument, Span};

use crate::backpressure::Permit;
use crate::deliver::{offload, Deliver, Delivered, Leftovers, SendOutcome};
use crate::error::{ProducerError, Unsent};
use crate::kernel::{prepare_single, Outgoing};
use crate::producer::Inner;
use crate::retry::{self, Launched, Mode, Next, Outcome, Queue, SendState, Settled, Target};
use crate::send::{expect_result, job, log_outcome, send_span};
use crate::send_future::SendFuture;
use crate::send_result::SendResult;
use crate::{identity, Producer};

/// An admitted asynchronous send's registrations and message, released when it resolves.
struct Admitted {
    token: TaskTrackerToken,
    permit: Option<Permit>,
    msg: Message,
    started: Instant,
}

/// Where the first attempt stands when the task takes over.
enum First {
    /// Nothing done yet (`try_send_async`): the task does it all.
    NotStarted(Outgoing),
    /// The send ended before any answer was awaited (route error, nothing to try).
    Over(Outcome),
    /// The first attempt was handed to the transport (or failed doing so).
    Launched(Box<Flight>),
}

/// The first attempt of a send, handed to the transport: what its completion needs.
struct Flight {
    /// `None` once the send is over: what it held with an effect (producer handle, route, span)
    /// is dropped where the send completes; its prepared request moves to `out`.
    state: Option<SendState>,
    queue: Queue,
    t0: Instant,
    launched: Launched,
    /// Once the send is over: the memory handed back as leftovers (bodies emptied).
    out: Option<Outgoing>,
    msg: Option<Message>,
}

impl Producer {
    /// Starts an asynchronous send. Waits while the back-pressure bounds are reached, hands the
    /// first attempt to the transport, and returns a [`SendFuture`] that resolves exactly once
    /// with the outcome (the send goes on even if the future is dropped). Attempts and retries
    /// follow the same rules as [`Producer::send`]; the deadline starts once the send is
    /// admitted. Sends started one after the other from one task are written in that order.
    ///
    /// # Errors
    /// [`ProducerError::InvalidMessage`] or [`ProducerError::NotRunning`], with the message.
    pub async fn send_async(&self, msg: Message) -> Result<SendFuture, ProducerError> {
        let (tx, rx) = oneshot::channel();
        let deliver = Deliver::new(move |delivered: (SendOutcome, Leftovers)| {
            // The receiver may be gone (the caller dropped the future): the outcome is discarded.
            let _ = tx.send(delivered);
        });
        if let Err((e, deliver)) = self.start_async(msg, deliver).await {
            deliver.disarm();
            return Err(e);
        }
        Ok(SendFuture::new(rx))
    }

    /// [`Producer::send_async`] with a callback instead of a future: `callback` runs exactly
    /// once, with the outcome or with the error that prevented the send; also when this future
    /// is dropped before the send was admitted, or when the runtime shuts down first (then with
    /// [`ProducerError::Cancelled`]).
    ///
    /// The callback runs on a small task of its own, never on the task that completes the
    /// sends: a slow callback does not delay other sends, and a panicking one is caught (and
    /// logged) without affecting any other send.
    pub async fn send_async_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult, ProducerError>) + Send + 'static,
    {
        let mut user = Deliver::new(callback);
        // Should the callback's own task be dropped unrun, what happened is unknown.
        user.may_be_stored();
        let sends = self.inner().sends.clone();
        let deliver = Deliver::new(move |outcome| offload(&sends, user, outcome));
        if let Err((e, deliver)) = self.start_async(msg, deliver).await {
            deliver.call(Err(e));
        }
    }

    /// Starts an asynchronous send if the back-pressure bounds leave room, without waiting.
    /// Everything else happens on the send's task.
    ///
    /// # Errors
    /// [`ProducerError::Overloaded`] (with the message) when full; else as
    /// [`Producer::send_async`].
    pub fn try_send_async(&self, msg: Message) -> Result<SendFuture, ProducerError> {
        let inner = self.inner();
        let (token, msg) = admit(inner, msg)?;
        // Room first: a refused send costs neither compression nor an id.
        let permit = match &inner.flow {
            None => None,
            Some(flow) => match flow.try_acquire(msg.body().len()) {
                Some(p) => Some(p),
                None => {
                    let (max_in_flight, max_bytes) = flow.limits();
                    return Err(ProducerError::Overloaded {
                        max_in_flight,
                        max_bytes,
                        unsent: Unsent::one(msg),
                    });
                }
            },
        };
        let (out, msg) = prepare(inner, msg);
        let (tx, rx) = oneshot::channel();
        let span = send_span(out.topic());
        let admitted = Admitted {
            token,
            permit,
            msg,
            started: Instant::now(),
        };
        let deliver = Deliver::new(move |delivered: (SendOutcome, Leftovers)| {
            let _ = tx.send(delivered);
        });
        spawn(inner, admitted, First::NotStarted(out), span, deliver);
        Ok(SendFuture::new(rx))
    }

    /// Admission (waiting for room), first launch in the caller, then the task. On an error the
    /// deliverer comes back uncalled.
    async fn start_async<D, T>(
        &self,
        msg: Message,
        mut deliver: Deliver<D, T>,
    ) -> Result<(), (ProducerError, Deliver<D, T>)>
    where
        D: FnOnce(T) + Send + 'static,
        T: Delivered + 'static,
    {
        let inner = self.inner();
        let (token, msg) = match admit(inner, msg) {
            Ok(admitted) => admitted,
            Err(e) => return Err((e, deliver)),
        };
        let size = msg.body().len();
        let permit = match &inner.flow {
            None => None,
            // Fast path without registering a waiter anywhere; wait only when full.
            Some(flow) => match flow.try_acquire(size) {
                Some(p) => Some(p),
                None => {
                    let got = tokio::select! {
                        biased;
                        () = inner.abort.cancelled() => None,
                        p = flow.acquire(size) => p,
                    };
                    match got {
                        Some(p) => Some(p),
                        None => {
                            return Err((ProducerError::not_running(Unsent::one(msg)), deliver))
                        }
                    }
                }
            },
        };
        if !inner.is_running() {
            return Err((ProducerError::not_running(Unsent::one(msg)), deliver));
        }
        let (out, msg) = prepare(inner, msg);
        let span = send_span(out.topic());
        let admitted = Admitted {
            token,
            permit,
            msg,
            started: Instant::now(),
        };
        // From here the request may be written: a drop of this future reports "maybe stored".
        deliver.may_be_stored();
        let first = launch_first(inner, out).instrument(span.clone()).await;
        spawn(inner, admitted, first, span, deliver);
        Ok(())
    }
}

/// Registers one message for an asynchronous send as in flight and validates it.
fn admit(inner: &Inner, msg: Message) -> Result<(TaskTrackerToken, Message), ProducerError> {
    let Some(token) = inner.begin() else {
        return Err(ProducerError::not_running(Unsent::one(msg)));
    };
    if let Err(source) = validate_message(&msg, inner.cfg.max_message_size) {
        return Err(ProducerError::InvalidMessage {
            source,
            unsent: Unsent::one(msg),
        });
    }
    Ok((token, msg))
}

/// Prepares an admitted message (id, compression), once it has back-pressure room.
fn prepare(inner: &Inner, mut msg: Message) -> (Outgoing, Message) {
    let out = prepare_single(&mut msg, &inner.cfg, &mut || identity::uniq_ids().next_id());
    (out, msg)
}

/// The caller's part: route lookup, queue choice, handing the first attempt to the transport.
async fn launch_first(inner: &Arc<Inner>, out: Outgoing) -> First {
    let (retries, timeout) = (inner.cfg.retries_async, inner.cfg.send_timeout);
    let job = job(out, Target::Any, Mode::Reply, retries, timeout);
    let info = match retry::publish_info(inner, job.out.topic(), job.started, job.timeout).await {
        Ok(info) => info,
        Err(e) => return First::Over(Err(e)),
    };
    let mut state = SendState::new(Arc::clone(inner), job, info, Span::current());
    match state.next() {
        Next::Done(outcome) => First::Over(outcome),
        Next::Attempt(queue, budget) => {
            let t0 = Instant::now();
            let launched = state.launch(&queue, budget).await;
            First::Launched(Box::new(Flight {
                state: Some(state),
                queue,
                t0,
                launched,
                out: None,
                msg: None,
            }))
        }
    }
}

/// The task's part: await the first answer, run the remaining attempts, deliver exactly once,
/// then release the send's registrations.
fn spawn<D, T>(
    inner: &Arc<Inner>,
    admitted: Admitted,
    first: First,
    span: Span,
    mut deliver: Deliver<D, T>,
) where
    D: FnOnce(T) + Send + 'static,
    T: Delivered + 'static,
{
    if !matches!(first, First::Over(_)) {
        deliver.may_be_stored();
    }
    let task_inner = Arc::clone(inner);
    let task = async move {
        let first = match first {
            // Only `try_send_async` starts here: boxed, so that the common path's completion
            // (one allocation per send) stays small.
            First::NotStarted(out) => {
                Box::pin(launch_first(&task_inner, out).instrument(span.clone())).await
            }
            other => other,
        };
        let (outcome, flight) = complete(first).instrument(span.clone()).await;
        log_outcome(&span, admitted.started, &outcome);
        let Admitted {
            token, permit, msg, ..
        } = admitted;
        // The room is free before the caller learns the outcome, so a caller that sends again
        // on its result never waits on its own finished send. The token (what `shutdown` waits
        // for) goes last.
        drop(permit);
        let (outcome, leftovers) = match outcome.and_then(expect_result) {
            Ok(result) => (Ok(result), leftovers(Some(msg), flight)),
            Err(e) => (
                Err(e.with_unsent(Unsent::one(msg))),
                leftovers(None, flight),
            ),
        };
        deliver.call_with(outcome, leftovers);
        drop(token);
    };
    // The driver only stops after the producer's state is gone, which `inner` keeps alive here;
    // should it be gone anyway (runtime shutting down), the send still gets its own task.
    if let Err(mpsc::error::SendError(task)) = inner.completions.send(Box::pin(task)) {
        inner.sends.spawn_on(task, &inner.runtime);
    }
}

/// What a send hands back to the receiver of its outcome to free: the memory the caller's task
/// allocated for it (the flight itself, message and prepared request, bodies emptied), nothing
/// with an effect (the producer handle, the route, the span and the transport's future are
/// dropped here), so a finished `SendFuture` that is not awaited yet holds a few small strings.
fn leftovers(msg: Option<Message>, flight: Option<Box<Flight>>) -> Leftovers {
    let Some(mut flight) = flight else {
        return Leftovers::default();
    };
    flight.launched = Launched::Over(Ok(None));
    if let Some(state) = flight.state.take() {
        let mut out = state.into_outgoing();
        out.body = Bytes::new();
        flight.out = Some(out);
    }
    flight.msg = msg.map(|mut m| {
        m.set_body(Bytes::new());
        m
    });
    Leftovers::new(flight)
}

/// The error of a flight without its state (cannot happen: see [`complete`]).
fn spent() -> ProducerError {
    ProducerError::Cancelled {
        maybe_stored: true,
        unsent: Unsent::none(),
    }
}

/// Awaits the first attempt and runs the rest. The first answer is awaited in place; any
/// further attempt runs in a future of its own, allocated only then. The flight comes back when
/// the first attempt ended the send (to be freed by the receiver of the outcome).
async fn complete(first: First) -> (Outcome, Option<Box<Flight>>) {
    match first {
        First::NotStarted(_) => (
            Err(ProducerError::Cancelled {
                maybe_stored: false,
                unsent: Unsent::none(),
            }),
            None,
        ),
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
            let outcome = state.finish(queue, launched).await;
            match state.settle(queue, t0.elapsed(), outcome) {
                Settled::Done(outcome) => (outcome, Some(flight)),
                Settled::Again(pause) => match flight.state.take() {
                    Some(state) => (Box::pin(state.resume(pause)).await, None),
                    None => (Err(spent()), None),
                },
            }
        }
    }
}
