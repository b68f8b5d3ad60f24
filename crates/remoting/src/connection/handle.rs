//! [`ConnectionHandle`]: what a processor (or a test broker) may do with its connection.

use std::net::SocketAddr;
use std::time::Duration;

#[cfg(any(test, feature = "test-util"))]
use bytes::Bytes;

use super::Connection;
use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// A handle to one live connection (client or server side). Cheap to clone.
///
/// Besides answering, it can push requests to the peer (a broker's CHECK_TRANSACTION_STATE)
/// and close the connection; with the `test-util` feature it can also write arbitrary bytes
/// (to inject malformed frames in tests).
#[derive(Debug, Clone)]
pub struct ConnectionHandle {
    conn: Connection,
}

impl ConnectionHandle {
    pub(crate) const fn new(conn: Connection) -> Self {
        Self { conn }
    }

    /// The peer's socket address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.conn.shared.peer
    }

    /// The address of the connection as its client named it: on a client, the address given
    /// to [`RemotingClient`](crate::RemotingClient) calls (`host:port`, the key of its
    /// connection pool, so a reply sent there reuses this connection); on a server, the peer
    /// address.
    #[must_use]
    pub fn addr(&self) -> &str {
        &self.conn.shared.opts.addr
    }

    /// Queues a response as it is (set its opaque and response bit yourself, e.g. with
    /// [`RemotingCommand::response_to`]). It does not wait for room in the connection's queue.
    ///
    /// # Errors
    /// [`RemotingError::ConnectionClosed`] when the connection is closed;
    /// [`RemotingError::Overloaded`] when the frame does not fit the queue budget
    /// ([`max_queued_bytes`](crate::RemotingConfig::max_queued_bytes)) now; encode errors.
    pub fn send_response(&self, resp: &RemotingCommand) -> Result<(), RemotingError> {
        self.conn.send_untracked(resp)
    }

    /// Queues raw bytes, written as they are (for fault injection: malformed frames). It does not
    /// wait for room in the connection's queue.
    ///
    /// A test knob: only with the `test-util` feature.
    ///
    /// # Errors
    /// [`RemotingError::ConnectionClosed`] when the connection is closed;
    /// [`RemotingError::Overloaded`] when the bytes do not fit the queue budget now.
    #[cfg(any(test, feature = "test-util"))]
    pub fn send_raw(&self, bytes: Bytes) -> Result<(), RemotingError> {
        self.conn.send_raw(bytes)
    }

    /// Sends a request to the peer and waits for its reply (a fresh opaque is assigned). Room in
    /// the connection's queue is awaited or not as the overload policy says.
    ///
    /// # Errors
    /// [`RemotingError::Timeout`], [`RemotingError::ConnectionClosed`],
    /// [`RemotingError::Overloaded`], encode errors.
    pub async fn invoke(
        &self,
        mut req: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        req.opaque = self.conn.next_opaque();
        self.conn
            .call(&req, crate::deadline_after(timeout), timeout, false)
            .await
    }

    /// Sends a oneway request to the peer (sets the oneway bit); resolves once it is queued on
    /// the connection, not once written (as Java's `invokeOneway`). `timeout` bounds the wait for
    /// room in the connection's queue (per the overload policy). A write failing later is only
    /// logged.
    ///
    /// # Errors
    /// [`RemotingError::ConnectionClosed`], [`RemotingError::Overloaded`], encode errors.
    pub async fn invoke_oneway(
        &self,
        mut req: RemotingCommand,
        timeout: Duration,
    ) -> Result<(), RemotingError> {
        req.mark_oneway();
        req.opaque = self.conn.next_opaque();
        self.conn
            .oneway(&req, crate::deadline_after(timeout), None)
            .await
    }

    /// Closes the connection: waiters on it fail at once.
    pub fn close(&self) {
        self.conn.close();
    }

    /// Whether the connection is closed or closing.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}
