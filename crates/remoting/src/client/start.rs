//! The first phase of an async call (connection, in-flight permit, queueing) without a wait when
//! none is needed: with the connection up, a permit free and room in its queue, the request is
//! registered and queued in one synchronous step, and the call's future is a plain block that
//! never awaits. Only a call that must wait (connect, permit, queue room) builds the future that
//! waits, boxed and in its span (issue 13: the instrumented futures, and the copies of them,
//! cost more than a third of the client's own share of a request).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{field, Instrument, Span};

use super::callback::Callback;
use super::callback_end::Ended;
use super::in_flight::{NoSlot, Slot};
use super::response_future::{Resend, ResponseFuture};
use super::RemotingClient;
use crate::command::RemotingCommand;
use crate::connection::{Connection, PendingGuard, Reply};
use crate::error::RemotingError;
use crate::processor::RpcHook;

/// How far [`RemotingClient::start_async`] got without a wait.
pub(super) enum Started {
    /// To the end: the response future, or the error that ends the call.
    Done(Result<ResponseFuture, RemotingError>),
    /// No live connection or no free permit now (nothing done yet).
    Connect(RemotingCommand),
    /// Prepared (hook run, opaque set), with its connection and permit, but no room in the
    /// connection's queue now.
    Room(Prepared),
}

/// A request prepared on its connection, holding its permit.
pub(super) struct Prepared {
    conn: Connection,
    permit: Slot,
    hook: Option<Arc<dyn RpcHook>>,
    req: RemotingCommand,
}

/// Whether the live connection and a free permit are there now.
enum Ready {
    Now(Connection, Slot),
    Wait,
    Failed(RemotingError),
}

impl RemotingClient {
    /// The live connection to `addr` and an async permit, if both are there without a wait.
    fn ready_now(&self, addr: &str) -> Ready {
        let Some(conn) = self.live_connection(addr) else {
            return Ready::Wait;
        };
        match self.inner.async_permits.try_take() {
            Ok(permit) => Ready::Now(conn, permit),
            Err(NoSlot::Closed) => Ready::Failed(RemotingError::Shutdown),
            // The waiting path applies the overload policy.
            Err(NoSlot::Full) => Ready::Wait,
        }
    }

    /// The connection and the permit, waiting for them as the call's deadline and the
    /// overload policy allow.
    async fn ready_waiting(
        &self,
        addr: &str,
        deadline: Instant,
    ) -> Result<(Connection, Slot), RemotingError> {
        let conn = self.connection(addr, deadline).await?;
        let permit = self
            .permit(&self.inner.async_permits, addr, deadline)
            .await?;
        Ok((conn, permit))
    }

    /// [`invoke_async`](Self::invoke_async)'s first phase as far as it goes without a wait, in
    /// `span`.
    pub(super) fn start_async(
        &self,
        addr: &str,
        mut req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        span: &Span,
    ) -> Started {
        let (conn, permit) = match self.ready_now(addr) {
            Ready::Now(conn, permit) => (conn, permit),
            Ready::Wait => return Started::Connect(req),
            Ready::Failed(e) => return Started::Done(Err(e)),
        };
        let hook = self.hook();
        self.prepare_in_place(addr, &mut req, &conn, hook.as_deref());
        span.record("opaque", req.opaque);
        // An async timeout never closes the connection (Java's invokeAsync).
        match conn.try_send_request(&req, deadline, timeout, false) {
            Some(Ok((rx, guard))) => Started::Done(Ok(self.response_future(
                Prepared {
                    conn,
                    permit,
                    hook,
                    req,
                },
                rx,
                guard,
                deadline,
                timeout,
            ))),
            Some(Err(e)) => Started::Done(Err(e)),
            None => Started::Room(Prepared {
                conn,
                permit,
                hook,
                req,
            }),
        }
    }

    /// The rest of [`start_async`](Self::start_async)'s work, waiting where it stopped.
    pub(super) async fn start_async_waiting(
        &self,
        addr: &str,
        started: Started,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<ResponseFuture, RemotingError> {
        let prepared = match started {
            Started::Done(done) => return done,
            Started::Room(prepared) => prepared,
            Started::Connect(mut req) => {
                let (conn, permit) = self.ready_waiting(addr, deadline).await?;
                let hook = self.hook();
                self.prepare_in_place(addr, &mut req, &conn, hook.as_deref());
                Span::current().record("opaque", req.opaque);
                Prepared {
                    conn,
                    permit,
                    hook,
                    req,
                }
            }
        };
        let (rx, guard) = prepared
            .conn
            .send_request(&prepared.req, deadline, timeout, false)
            .await?;
        Ok(self.response_future(prepared, rx, guard, deadline, timeout))
    }

    /// The second phase of a request queued on its connection.
    fn response_future(
        &self,
        prepared: Prepared,
        rx: oneshot::Receiver<Reply>,
        guard: PendingGuard,
        deadline: Instant,
        timeout: Duration,
    ) -> ResponseFuture {
        let Prepared {
            conn,
            permit,
            hook,
            req,
        } = prepared;
        let opaque = req.opaque;
        // Kept for a resend after GO_AWAY (its body is shared, not copied).
        let go_away = self
            .inner
            .config
            .reconnect_on_go_away
            .then(|| Resend::new(Arc::downgrade(&self.inner), req));
        ResponseFuture {
            rx,
            guard,
            deadline,
            conn,
            opaque,
            timeout,
            hook,
            permit: Some(permit),
            done: false,
            go_away,
            resending: None,
        }
    }

    /// [`invoke_async_with`](Self::invoke_async_with)'s first phase without a wait, in `span`:
    /// `None` when the call was queued (or ended), else the future that waits for what is
    /// missing and queues it.
    pub(super) fn start_with<'s, F>(
        &'s self,
        addr: &'s str,
        mut req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        callback: Callback<F>,
        span: &Span,
    ) -> Option<impl Future<Output = ()> + Send + 's>
    where
        F: FnOnce(Reply) + Send + 'static,
    {
        let (conn, permit) = match self.ready_now(addr) {
            Ready::Now(conn, permit) => (conn, permit),
            Ready::Wait => {
                let waiting = self.start_with_waiting(addr, req, deadline, timeout, callback);
                return Some(futures_util::future::Either::Left(waiting));
            }
            Ready::Failed(e) => {
                callback.call(Err(e));
                return None;
            }
        };
        let hook = self.hook();
        self.prepare_in_place(addr, &mut req, &conn, hook.as_deref());
        span.record("opaque", req.opaque);
        let make = self.on_reply(conn.clone(), permit, hook, callback, deadline, timeout);
        let (req, make) = conn.try_send_request_callback(req, deadline, timeout, make)?;
        Some(futures_util::future::Either::Right(async move {
            conn.send_request_callback(req, deadline, timeout, make)
                .await;
        }))
    }

    /// [`invoke_async_with`](Self::invoke_async_with) without a future when none is needed:
    /// with the connection up, an async permit free and room in the connection's queue, the
    /// request is queued here and this returns `None`; `None` too when an error kept it from
    /// being queued (`callback` has run then, with it). Otherwise it returns the future, boxed,
    /// that waits for what is missing and queues the request, under the rules of
    /// `invoke_async_with`'s future: dropped before it resolves, it calls `callback` with
    /// [`RemotingError::Shutdown`]. `callback` runs exactly once, as `invoke_async_with` says.
    ///
    /// For callers that hold the returned future across an await: nothing of the call is held
    /// when it was queued at once (issue 13: `invoke_async_with`'s future is the size of the
    /// request and the callback, and each await that holds it moves it).
    pub fn try_invoke_async_with<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        req: RemotingCommand,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        self.try_invoke_async_within(addr, req, None, timeout, callback)
    }

    /// [`try_invoke_async_with`](Self::try_invoke_async_with) ended by `deadline` (as
    /// [`invoke_async_with_until`](Self::invoke_async_with_until)): no clock read of its own.
    pub fn try_invoke_async_with_until<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        self.try_invoke_async_within(addr, req, Some(deadline), timeout, callback)
    }

    /// [`try_invoke_async_with`](Self::try_invoke_async_with) ended by `deadline`, else by
    /// `timeout` from now.
    #[inline]
    fn try_invoke_async_within<'a>(
        &'a self,
        addr: impl AsRef<str> + Send + 'a,
        mut req: RemotingCommand,
        deadline: Option<Instant>,
        timeout: Duration,
        callback: impl FnOnce(Result<RemotingCommand, RemotingError>) + Send + 'static,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        let callback = Callback::new(callback);
        let span = tracing::debug_span!(
            "rmq.invoke_async",
            addr = addr.as_ref(),
            code = req.code,
            opaque = field::Empty
        );
        let deadline = deadline.unwrap_or_else(|| crate::deadline_after(timeout));
        let entered = span.enter();
        let (conn, permit) = match self.ready_now(addr.as_ref()) {
            Ready::Now(conn, permit) => (conn, permit),
            Ready::Wait => {
                drop(entered);
                let waiting = async move {
                    self.start_with_waiting(addr.as_ref(), req, deadline, timeout, callback)
                        .await;
                };
                return Some(Box::pin(waiting.instrument(span)));
            }
            Ready::Failed(e) => {
                callback.call(Err(e));
                return None;
            }
        };
        let hook = self.hook();
        self.prepare_in_place(addr.as_ref(), &mut req, &conn, hook.as_deref());
        span.record("opaque", req.opaque);
        let make = self.on_reply(conn.clone(), permit, hook, callback, deadline, timeout);
        let (req, make) = conn.try_send_request_callback(req, deadline, timeout, make)?;
        drop(entered);
        let waiting = async move {
            conn.send_request_callback(req, deadline, timeout, make)
                .await;
        };
        Some(Box::pin(waiting.instrument(span)))
    }

    /// [`start_with`](Self::start_with) from the start, waiting for the connection and the
    /// permit.
    async fn start_with_waiting<F>(
        &self,
        addr: &str,
        mut req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        callback: Callback<F>,
    ) where
        F: FnOnce(Reply) + Send + 'static,
    {
        let (conn, permit) = match self.ready_waiting(addr, deadline).await {
            Ok(ready) => ready,
            Err(e) => return callback.call(Err(e)),
        };
        let hook = self.hook();
        self.prepare_in_place(addr, &mut req, &conn, hook.as_deref());
        Span::current().record("opaque", req.opaque);
        let make = self.on_reply(conn.clone(), permit, hook, callback, deadline, timeout);
        conn.send_request_callback(req, deadline, timeout, make)
            .await;
    }

    /// What makes the connection's completion callback of an `invoke_async_with` call from the
    /// request as sent.
    fn on_reply<F>(
        &self,
        conn: Connection,
        permit: Slot,
        hook: Option<Arc<dyn RpcHook>>,
        callback: Callback<F>,
        deadline: Instant,
        timeout: Duration,
    ) -> impl FnOnce(RemotingCommand) -> crate::connection::OnReply
    where
        F: FnOnce(Reply) + Send + 'static,
    {
        // Boxed here, once: what follows moves a pointer.
        let ended = Box::new(Ended {
            client: Arc::downgrade(&self.inner),
            conn,
            deadline,
            timeout,
            hook,
            permit: Some(permit),
            callback,
            req: None,
        });
        let resend = self.inner.config.reconnect_on_go_away;
        move |req| ended.into_reply(req, resend)
    }
}
