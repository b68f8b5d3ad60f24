//! `GO_AWAY` (response code 1500, Java 5.2.0+): a server shutting down refuses a request it
//! did not process with it.
//!
//! As Java's `NettyRemotingClient.invokeImpl` (with `enableReconnectForGoAway` and
//! `enableTransparentRetry`, both on by default): the connection the answer came on is marked
//! draining (no new request goes on it; the requests in flight on it still get their answers,
//! then it closes), and the request is sent once more, with a new opaque, on a new connection to
//! the same address, within what is left of the call's deadline. A second `GO_AWAY` is returned
//! as it is (the caller sees response code 1500: the request was not processed); a failed
//! reconnect is the connect error. Oneway requests get no answer, so they are never resent.

use std::time::Duration;

use rmq_common::ResponseCode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::RemotingClient;
use crate::command::RemotingCommand;
use crate::connection::Connection;
use crate::error::RemotingError;

/// The longest a draining connection waits for its requests in flight before it closes anyway
/// (their own deadlines normally end them much sooner).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// How often a draining connection looks at its requests in flight even without a wake-up.
const DRAIN_RECHECK: Duration = Duration::from_secs(1);

/// Whether `resp` is a `GO_AWAY` answer.
pub(super) fn is_go_away(resp: &RemotingCommand) -> bool {
    resp.is_response() && resp.code == ResponseCode::GO_AWAY.value()
}

impl RemotingClient {
    /// `GO_AWAY` came on `old` for `req` (already prepared: hook run, opaque of the first send):
    /// retires `old`, then sends `req` once more on a new connection to `addr` before `deadline`.
    /// `timeout` is what a timeout reports; `sync` says whether a timeout may close the new
    /// connection (sync calls, per [`RemotingConfig::close_on_timeout`](crate::RemotingConfig)).
    pub(super) async fn resend_after_go_away(
        &self,
        addr: &str,
        old: &Connection,
        mut req: RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        sync: bool,
    ) -> Result<RemotingCommand, RemotingError> {
        let first_opaque = req.opaque;
        self.retire(addr, old);
        let conn = self.connection(addr, deadline).await?;
        let left = deadline.saturating_duration_since(Instant::now());
        let close = sync
            && self.inner.config.close_on_timeout
            && super::close_after_sync_timeout(timeout, left);
        req.opaque = conn.next_opaque();
        tracing::info!(
            addr,
            code = req.code,
            first_opaque,
            opaque = req.opaque,
            "GO_AWAY: request resent on a new connection"
        );
        let resp = conn.call(&req, deadline, timeout, close).await?;
        if is_go_away(&resp) {
            tracing::warn!(addr, code = req.code, "GO_AWAY again on the new connection");
            self.retire(addr, &conn);
        }
        Ok(resp)
    }

    /// Marks `conn` draining and takes it out of the pool (once); it closes once its requests in
    /// flight have ended, at most [`DRAIN_LIMIT`] later, or when the client shuts down.
    pub(super) fn retire(&self, addr: &str, conn: &Connection) {
        if self.inner.pool.retire(addr, conn) {
            tracing::info!(
                addr,
                in_flight = conn.pending_len(),
                "GO_AWAY: connection draining"
            );
            let shut = self.inner.shut.clone();
            let conn = conn.clone();
            // Fire and forget: it ends by itself (bounded), and on shutdown.
            drop(tokio::spawn(drain_then_close(conn, shut)));
        }
    }
}

/// Waits until no request is in flight on `conn` (or the limit, or shutdown), then closes it.
async fn drain_then_close(conn: Connection, shut: CancellationToken) {
    let pending = std::sync::Arc::clone(&conn.shared.pending);
    let drained = async {
        loop {
            let emptied = pending.emptied();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if pending.len() == 0 {
                return;
            }
            tokio::select! {
                () = emptied => {}
                () = tokio::time::sleep(DRAIN_RECHECK) => {}
            }
        }
    };
    tokio::select! {
        () = conn.shared.closed() => return,
        () = shut.cancelled() => {}
        r = tokio::time::timeout(DRAIN_LIMIT, drained) => {
            if r.is_err() {
                tracing::warn!(addr = conn.addr(), in_flight = conn.pending_len(), "draining connection closed with requests in flight");
            }
        }
    }
    tracing::debug!(addr = conn.addr(), "draining connection closed");
    // In order, as a shutdown closes: the oneway frames already queued are written first.
    conn.close_after_queued(Instant::now() + super::SHUTDOWN_LINGER);
}
