//! [`ResponseFuture`]: the second phase of [`invoke_async`](crate::RemotingClient::invoke_async).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::time::Sleep;

use crate::command::RemotingCommand;
use crate::connection::{Connection, PendingGuard, Reply};
use crate::error::RemotingError;
use crate::processor::RpcHook;

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
    pub(super) sleep: Pin<Box<Sleep>>,
    pub(super) conn: Connection,
    pub(super) opaque: i32,
    pub(super) timeout: Duration,
    pub(super) hook: Option<Arc<dyn RpcHook>>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
    pub(super) done: bool,
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
        if let Poll::Ready(r) = Pin::new(&mut this.rx).poll(cx) {
            this.guard.disarm();
            let reply = r.unwrap_or_else(|_| {
                Err(RemotingError::ConnectionClosed {
                    addr: this.conn.addr().to_owned(),
                    written: true,
                })
            });
            return Poll::Ready(this.finish(reply));
        }
        if this.sleep.as_mut().poll(cx).is_ready() {
            let reply = this.conn.expire(
                &mut this.guard,
                &mut this.rx,
                this.opaque,
                this.timeout,
                false, // an async timeout never closes the connection (Java's invokeAsync)
            );
            return Poll::Ready(this.finish(reply));
        }
        Poll::Pending
    }
}
