//! The future of [`RemotingClient::invoke_sync`]: with the connection up and room in its queue,
//! the request is prepared, registered and queued in one synchronous step at the first poll,
//! and the future then waits on the reply's channel alone. Only a call that must wait (connect,
//! queue room, a resend after `GO_AWAY`) builds the future that waits, boxed and in the call's
//! span (issue 13: a sync send's nested futures, and the copies of them at every await, cost
//! more than the call's own work).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{field, Instrument, Span};

use super::{close_after_sync_timeout, go_away, RemotingClient};
use crate::command::RemotingCommand;
use crate::connection::{Connection, PendingGuard, Reply};
use crate::error::RemotingError;
use crate::processor::RpcHook;

/// The waiting rest of a call, boxed (rare).
type Slow<'a> = Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// [`RemotingClient::invoke_sync`]'s future. The request stays in place (no state is moved
/// from step to step, issue 13); it moves out only to a boxed slow path.
pub(super) struct SyncCall<'a> {
    client: &'a RemotingClient,
    addr: &'a str,
    /// The caller's deadline, else `timeout` from the first poll.
    deadline: Option<Instant>,
    timeout: Duration,
    /// The request; `None` once handed to a slow path.
    req: Option<RemotingCommand>,
    step: Step<'a>,
}

enum Step<'a> {
    /// Not polled yet: nothing done.
    Start,
    /// Queued on its connection; the reply (or the timer's timeout, or the connection's
    /// failure) comes through the channel.
    Waiting(Waiting),
    /// Waiting for a connection, queue room or a resend.
    Slow(Slow<'a>),
    /// Resolved.
    Done,
}

/// A request queued on its connection (the request itself stays in [`SyncCall`], kept for a
/// resend after `GO_AWAY`).
struct Waiting {
    rx: oneshot::Receiver<Reply>,
    /// Removes the correlation entry when the call is dropped before its answer.
    guard: PendingGuard,
    conn: Connection,
    hook: Option<Arc<dyn RpcHook>>,
    deadline: Instant,
    span: Span,
}

impl<'a> SyncCall<'a> {
    pub(super) const fn new(
        client: &'a RemotingClient,
        addr: &'a str,
        req: RemotingCommand,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Self {
        Self {
            client,
            addr,
            deadline,
            timeout,
            req: Some(req),
            step: Step::Start,
        }
    }

    /// The call's first step, as far as it goes without a wait: the next step, or the error
    /// that ends the call.
    fn start(&mut self) -> Result<Step<'a>, RemotingError> {
        let (client, addr, timeout) = (self.client, self.addr, self.timeout);
        let Some(req) = self.req.as_mut() else {
            return Err(RemotingError::Shutdown);
        };
        let span = tracing::debug_span!(
            "rmq.invoke_sync",
            addr,
            code = req.code,
            opaque = field::Empty
        );
        let entered = span.enter();
        let deadline = self
            .deadline
            .unwrap_or_else(|| crate::deadline_after(timeout));
        // A live connection leaves all the time (no second clock read).
        let Some(conn) = client.live_connection(addr) else {
            drop(entered);
            let req = self.req.take().ok_or(RemotingError::Shutdown)?;
            let call = connect_and_call(client, addr, req, deadline, timeout);
            return Ok(Step::Slow(Box::pin(call.instrument(span))));
        };
        let close =
            client.inner.config.close_on_timeout && close_after_sync_timeout(timeout, timeout);
        let hook = client.hook();
        client.prepare_in_place(addr, req, &conn, hook.as_deref());
        span.record("opaque", req.opaque);
        match conn.try_send_request(req, deadline, timeout, close) {
            Some(Ok((rx, guard))) => {
                drop(entered);
                Ok(Step::Waiting(Waiting {
                    rx,
                    guard,
                    conn,
                    hook,
                    deadline,
                    span,
                }))
            }
            Some(Err(e)) => Err(e),
            None => {
                drop(entered);
                let req = self.req.take().ok_or(RemotingError::Shutdown)?;
                let call = call_on(client, addr, conn, req, hook, deadline, timeout, close);
                Ok(Step::Slow(Box::pin(call.instrument(span))))
            }
        }
    }
}

impl Future for SyncCall<'_> {
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let this = self.get_mut();
        loop {
            match &mut this.step {
                Step::Start => match this.start() {
                    Ok(step) => this.step = step,
                    Err(e) => {
                        this.step = Step::Done;
                        return Poll::Ready(Err(e));
                    }
                },
                Step::Waiting(w) => {
                    let r = match Pin::new(&mut w.rx).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(r) => r,
                    };
                    // Whatever answered (reply, timer, failure) took the entry out.
                    w.guard.disarm();
                    match r.unwrap_or_else(|_| Err(w.conn.closed_error(true))) {
                        Ok(resp)
                            if go_away::is_go_away(&resp)
                                && this.client.inner.config.reconnect_on_go_away =>
                        {
                            // `Waiting`, as matched above; the request is kept for this.
                            let (Step::Waiting(w), Some(req)) = (
                                std::mem::replace(&mut this.step, Step::Done),
                                this.req.take(),
                            ) else {
                                return Poll::Ready(Err(RemotingError::Shutdown));
                            };
                            this.step =
                                Step::Slow(resend(this.client, this.addr, w, req, this.timeout));
                        }
                        Ok(mut resp) => {
                            if let Some(hook) = &w.hook {
                                // In the call's span (a resend runs in it too, instrumented).
                                let _entered = w.span.enter();
                                hook.after_response(this.addr, &mut resp);
                            }
                            this.step = Step::Done;
                            return Poll::Ready(Ok(resp));
                        }
                        Err(e) => {
                            this.step = Step::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Step::Slow(slow) => {
                    let reply = match slow.as_mut().poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(reply) => reply,
                    };
                    this.step = Step::Done;
                    return Poll::Ready(reply);
                }
                // Polled after completion: answer instead of panicking.
                Step::Done => {
                    return Poll::Ready(Err(RemotingError::ConnectionClosed {
                        addr: this.addr.to_owned(),
                        written: true,
                    }))
                }
            }
        }
    }
}

/// The call from the start when the connection is not up: connect within the deadline, then
/// call on it.
async fn connect_and_call(
    client: &RemotingClient,
    addr: &str,
    mut req: RemotingCommand,
    deadline: Instant,
    timeout: Duration,
) -> Reply {
    let conn = client.connection(addr, deadline).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    let close = client.inner.config.close_on_timeout && close_after_sync_timeout(timeout, left);
    let hook = client.hook();
    client.prepare_in_place(addr, &mut req, &conn, hook.as_deref());
    Span::current().record("opaque", req.opaque);
    call_on(client, addr, conn, req, hook, deadline, timeout, close).await
}

/// The call on `conn` of a prepared request (waiting for queue room as the overload policy
/// says), with the one resend after `GO_AWAY` and the hook's `after_response`.
#[allow(clippy::too_many_arguments)]
async fn call_on(
    client: &RemotingClient,
    addr: &str,
    conn: Connection,
    req: RemotingCommand,
    hook: Option<Arc<dyn RpcHook>>,
    deadline: Instant,
    timeout: Duration,
    close: bool,
) -> Reply {
    let mut resp = conn.call(&req, deadline, timeout, close).await?;
    if go_away::is_go_away(&resp) && client.inner.config.reconnect_on_go_away {
        resp = client
            .resend_after_go_away(addr, &conn, req, deadline, timeout, true)
            .await?;
    }
    if let Some(hook) = &hook {
        hook.after_response(addr, &mut resp);
    }
    Ok(resp)
}

/// The resend after a `GO_AWAY` answer to a queued call, in the call's span.
fn resend<'a>(
    client: &'a RemotingClient,
    addr: &'a str,
    w: Waiting,
    req: RemotingCommand,
    timeout: Duration,
) -> Slow<'a> {
    let Waiting {
        conn,
        hook,
        deadline,
        span,
        ..
    } = w;
    Box::pin(
        async move {
            let mut resp = client
                .resend_after_go_away(addr, &conn, req, deadline, timeout, true)
                .await?;
            if let Some(hook) = &hook {
                hook.after_response(addr, &mut resp);
            }
            Ok(resp)
        }
        .instrument(span),
    )
}
