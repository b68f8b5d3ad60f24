//! [`ResponseFuture`]: the second phase of [`invoke_async`](crate::RemotingClient::invoke_async).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::in_flight::Slot;
use super::{go_away, Inner, RemotingClient};
use crate::command::RemotingCommand;
use crate::connection::{Connection, PendingGuard, Reply};
use crate::error::RemotingError;
use crate::processor::RpcHook;

/// The resend's future (`Sync` too, so that the response future stays `Sync`).
type ResendFuture = Pin<Box<dyn Future<Output = Reply> + Send + Sync>>;

/// What a resend after `GO_AWAY` needs: the client (weak: a pending answer does not keep a
/// dropped client's connections open) and the request as it was sent.
pub(super) struct Resend {
    client: Weak<Inner>,
    req: RemotingCommand,
}

impl Resend {
    pub(super) const fn new(client: Weak<Inner>, req: RemotingCommand) -> Self {
        Self { client, req }
    }
}

/// Resolves with the reply to an accepted async request, or with the error that ends it
/// ([`RemotingError::Timeout`] at the deadline, [`RemotingError::ConnectionClosed`] when the
/// connection dies). The deadline passing does not close the connection.
///
/// Dropping it removes the correlation entry and releases the in-flight permit; a request
/// still queued then is not written.
#[must_use = "dropping a ResponseFuture abandons the reply"]
pub struct ResponseFuture {
    pub(super) rx: oneshot::Receiver<Reply>,
    pub(super) guard: PendingGuard,
    /// The call's deadline (the connection's timer keeps it; a resend after `GO_AWAY` gets
    /// what is left of it).
    pub(super) deadline: Instant,
    pub(super) conn: Connection,
    pub(super) opaque: i32,
    pub(super) timeout: Duration,
    pub(super) hook: Option<Arc<dyn RpcHook>>,
    pub(super) permit: Option<Slot>,
    pub(super) done: bool,
    /// Set while a `GO_AWAY` answer may still trigger the one resend.
    pub(super) go_away: Option<Resend>,
    /// The resend in progress (it has its own deadline: the call's).
    pub(super) resending: Option<ResendFuture>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("addr", &self.conn.addr())
            .field("opaque", &self.opaque)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ResponseFuture {
    /// The opaque the request was sent with.
    #[must_use]
    pub const fn opaque(&self) -> i32 {
        self.opaque
    }

    /// The resend after a `GO_AWAY` answer, once, while the client is alive.
    fn start_resend(&mut self) -> Option<ResendFuture> {
        let Resend { client, req } = self.go_away.take()?;
        let client = RemotingClient {
            inner: client.upgrade()?,
        };
        let old = self.conn.clone();
        let deadline = self.deadline;
        let timeout = self.timeout;
        Some(Box::pin(async move {
            let addr = old.addr().to_owned();
            client
                .resend_after_go_away(&addr, &old, req, deadline, timeout, false)
                .await
        }))
    }

    fn finish(&mut self, reply: Reply) -> Reply {
        self.done = true;
        self.permit = None;
        let mut resp = reply?;
        if let Some(hook) = &self.hook {
            hook.after_response(self.conn.addr(), &mut resp);
        }
        Ok(resp)
    }
}

impl Future for ResponseFuture {
    type Output = Result<RemotingCommand, RemotingError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.done {
            // Polled after completion: answer instead of panicking in the channel.
            return Poll::Ready(Err(RemotingError::ConnectionClosed {
                addr: this.conn.addr().to_owned(),
                written: true,
            }));
        }
        if let Some(resend) = this.resending.as_mut() {
            return match resend.as_mut().poll(cx) {
                Poll::Ready(reply) => {
                    this.resending = None;
                    Poll::Ready(this.finish(reply))
                }
                Poll::Pending => Poll::Pending,
            };
        }
        if let Poll::Ready(r) = poll_reply(&mut this.rx, cx) {
            this.guard.disarm();
            let reply = r.unwrap_or_else(|| {
                Err(RemotingError::ConnectionClosed {
                    addr: this.conn.addr().to_owned(),
                    written: true,
                })
            });
            if let Ok(resp) = &reply {
                if go_away::is_go_away(resp) {
                    if let Some(resend) = this.start_resend() {
                        this.resending = Some(resend);
                        // Poll it now: it registers its own wake-ups.
                        return Pin::new(this).poll(cx);
                    }
                }
            }
            return Poll::Ready(this.finish(reply));
        }
        // The deadline: the connection's timer fails the entry with a timeout, through `rx`.
        Poll::Pending
    }
}

/// Polls the reply's channel; a reply already there is taken without spending the task's
/// cooperative budget (tokio's channel spends one unit per ready poll). A task awaiting a
/// window of answered requests (a pipelining loop) used to spend its budget half-way through
/// the window: the runtime then deferred it, and on a multi-thread runtime that deferral, met
/// with the reader's next wake-up, woke a parked worker (a futex wake and a cross-core
/// hand-off per 128 replies, issue 13). Taking ready replies cannot starve other tasks: each
/// one is a request the reader already answered, so their number is bounded by the requests
/// in flight. Only an empty channel is polled (registering the waker), under the budget.
fn poll_reply(rx: &mut oneshot::Receiver<Reply>, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
    match rx.try_recv() {
        Ok(reply) => Poll::Ready(Some(reply)),
        Err(oneshot::error::TryRecvError::Empty) => Pin::new(rx).poll(cx).map(Result::ok),
        // The sender is gone without a value (the channel is spent now: not polled again).
        Err(oneshot::error::TryRecvError::Closed) => Poll::Ready(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More replies than tokio's cooperative budget per task poll (128).
    const READY: usize = 300;

    #[tokio::test]
    async fn ready_replies_are_taken_without_spending_the_task_budget() {
        let mut rxs: Vec<_> = (0..READY)
            .map(|_| {
                let (tx, rx) = oneshot::channel::<Reply>();
                assert!(tx.send(Err(RemotingError::Shutdown)).is_ok());
                rx
            })
            .collect();
        // All of them in one poll of this task: none may report `Pending` (a budget spent).
        let taken = std::future::poll_fn(|cx| {
            let mut taken = 0;
            for rx in &mut rxs {
                if poll_reply(rx, cx).is_pending() {
                    break;
                }
                taken += 1;
            }
            Poll::Ready(taken)
        })
        .await;
        assert_eq!(taken, READY, "a ready reply was held back by the budget");
    }

    #[tokio::test]
    async fn a_sender_gone_without_a_reply_is_reported_once_and_not_polled_again() {
        let (tx, mut rx) = oneshot::channel::<Reply>();
        drop(tx);
        let first = std::future::poll_fn(|cx| Poll::Ready(poll_reply(&mut rx, cx))).await;
        assert!(matches!(first, Poll::Ready(None)));
        // A second look at the spent channel reports the same, without polling it (tokio's
        // receiver panics when polled after it completed).
        let again = std::future::poll_fn(|cx| Poll::Ready(poll_reply(&mut rx, cx))).await;
        assert!(matches!(again, Poll::Ready(None)));
    }

    #[tokio::test]
    async fn an_empty_channel_waits_for_its_reply() {
        let (tx, mut rx) = oneshot::channel::<Reply>();
        let empty = std::future::poll_fn(|cx| Poll::Ready(poll_reply(&mut rx, cx))).await;
        assert!(empty.is_pending());
        assert!(tx.send(Err(RemotingError::Shutdown)).is_ok());
        let reply = std::future::poll_fn(|cx| poll_reply(&mut rx, cx)).await;
        assert!(matches!(reply, Some(Err(RemotingError::Shutdown))));
    }
}
