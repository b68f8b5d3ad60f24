//! Requests that wait for a reply: registered in the correlation table and queued, each
//! with its queue budget taken first (waiting for it as the overload policy says, or not at
//! all: the `try_` forms, which leave everything untouched when there is no room now).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Connection, Kind, OnReply, Outbound, PendingGuard, Reply, Wait};
use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// A request's encoded frame with its queue budget.
struct Frame {
    head: BytesMut,
    body: Bytes,
    cost: u32,
}

impl Connection {
    /// `req` encoded, with what its frame costs of the queue budget.
    fn frame(&self, req: &RemotingCommand) -> Result<Frame, RemotingError> {
        let (head, body) = self.encode(req)?;
        let cost = self.cost(head.len() + body.len());
        Ok(Frame { head, body, cost })
    }

    /// Takes queue budget for `req` (whose opaque is set; waiting per the overload policy, at
    /// most until `deadline`), registers it and queues it. At `deadline` the connection's timer
    /// fails it with [`RemotingError::Timeout`] reporting `timeout`, and closes the connection
    /// when `close_on_timeout`.
    pub(crate) async fn send_request(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> Result<(oneshot::Receiver<Reply>, PendingGuard), RemotingError> {
        let frame = self.frame(req)?;
        let wait = Wait::per(self.shared.opts.overload, deadline);
        self.reserve(frame.cost, wait).await?;
        self.queue_request(frame, req.opaque, deadline, timeout, close_on_timeout)
    }

    /// [`send_request`](Self::send_request) when it needs no wait: `None` when the queue has no
    /// room for the frame now (nothing was registered or queued; `send_request` then waits for
    /// room as the overload policy says).
    pub(crate) fn try_send_request(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> Option<Result<(oneshot::Receiver<Reply>, PendingGuard), RemotingError>> {
        let frame = match self.frame(req) {
            Ok(frame) => frame,
            Err(e) => return Some(Err(e)),
        };
        match self.try_reserve(frame.cost) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some(self.queue_request(frame, req.opaque, deadline, timeout, close_on_timeout))
    }

    /// Registers a request whose frame holds its queue budget, and queues the frame.
    fn queue_request(
        &self,
        Frame { head, body, cost }: Frame,
        opaque: i32,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> Result<(oneshot::Receiver<Reply>, PendingGuard), RemotingError> {
        let (rx, guard) = self
            .shared
            .pending
            .register(opaque, deadline, timeout, close_on_timeout);
        let out = Outbound {
            head,
            body,
            kind: Kind::Request {
                opaque,
                id: guard.id(),
            },
            cost,
        };
        // On failure the guard drops and removes the entry.
        self.enqueue(out).map_err(|_| self.closed_error(false))?;
        Ok((rx, guard))
    }

    /// [`send_request`](Self::send_request) with the outcome going to `callback`, called
    /// exactly once: here with an error that kept the request from being queued, else by the
    /// connection task that ends it (reply, deadline, failure). A timeout does not close the
    /// connection.
    /// `callback` is made by `make` from the request once it is encoded (the request moves
    /// into it, for a resend).
    pub(crate) async fn send_request_callback(
        &self,
        req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        make: impl FnOnce(RemotingCommand) -> OnReply,
    ) {
        let opaque = req.opaque;
        let frame = self.frame(&req);
        let callback = make(req);
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return callback.complete(Err(e)),
        };
        let wait = Wait::per(self.shared.opts.overload, deadline);
        if let Err(e) = self.reserve(frame.cost, wait).await {
            return callback.complete(Err(e));
        }
        self.queue_callback(frame, opaque, deadline, timeout, callback);
    }

    /// [`send_request_callback`](Self::send_request_callback) when it needs no wait: gives
    /// `req` and `make` back, untouched, when the queue has no room for the frame now (the
    /// caller then waits with `send_request_callback`); `None` once the callback is the
    /// connection's (or was called with the error that kept the request from being queued).
    pub(crate) fn try_send_request_callback<M>(
        &self,
        req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        make: M,
    ) -> Option<(RemotingCommand, M)>
    where
        M: FnOnce(RemotingCommand) -> OnReply,
    {
        let opaque = req.opaque;
        // No tuple of the outcomes (each would be copied into it, issue 13).
        let frame = match self.frame(&req) {
            Ok(frame) => frame,
            Err(e) => {
                make(req).complete(Err(e));
                return None;
            }
        };
        match self.try_reserve(frame.cost) {
            Ok(true) => {}
            Ok(false) => return Some((req, make)),
            Err(e) => {
                make(req).complete(Err(e));
                return None;
            }
        }
        let callback = make(req);
        self.queue_callback(frame, opaque, deadline, timeout, callback);
        None
    }

    /// Registers a request with its callback (its frame holds its queue budget) and queues the
    /// frame.
    fn queue_callback(
        &self,
        Frame { head, body, cost }: Frame,
        opaque: i32,
        deadline: Instant,
        timeout: Duration,
        callback: OnReply,
    ) {
        let pending = &self.shared.pending;
        let id = pending.register_callback(opaque, deadline, timeout, callback);
        let out = Outbound {
            head,
            body,
            kind: Kind::Request { opaque, id },
            cost,
        };
        if self.enqueue(out).is_err() {
            // Not queued: the entry's callback gets the error (unless the writer's cleanup
            // already failed it).
            pending.fail(opaque, id, self.closed_error(false));
        }
    }

    /// Sends `req` and waits for its reply until `deadline` (`timeout` is what is reported);
    /// closes the connection on timeout when `close_on_timeout`. The deadline is kept by the
    /// connection's timer.
    pub(crate) async fn call(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> Result<RemotingCommand, RemotingError> {
        let (rx, mut guard) = self
            .send_request(req, deadline, timeout, close_on_timeout)
            .await?;
        let reply = rx.await;
        // Whatever answered (reply, timer, failure) took the entry out.
        guard.disarm();
        reply.unwrap_or_else(|_| Err(self.closed_error(true)))
    }
}
