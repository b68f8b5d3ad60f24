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
        if let Poll::Ready(r) = Pin::new(&mut this.rx).poll(cx) {
            this.guard.disarm();
            let reply = r.unwrap_or_else(|_| {
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
