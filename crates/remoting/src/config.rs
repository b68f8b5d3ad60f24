//! [`RemotingConfig`]: transport settings shared by the client and the server.

use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::codec::DEFAULT_MAX_FRAME_LENGTH;
use crate::command::SerializeType;
use crate::tls::TlsConfig;

/// What a call does when all in-flight permits (async, oneway) or the connection's queue
/// budget ([`RemotingConfig::max_queued_bytes`]) are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverloadPolicy {
    /// Wait for a permit (within the call's timeout), as Java's `tryAcquire(timeout)`.
    #[default]
    Wait,
    /// Fail at once with [`RemotingError::Overloaded`](crate::RemotingError::Overloaded).
    Fail,
}

/// Transport settings. A plain struct: override fields over [`Default`].
///
/// ```
/// use std::time::Duration;
/// use rmq_remoting::{OverloadPolicy, RemotingConfig};
/// let cfg = RemotingConfig {
///     connect_timeout: Duration::from_secs(1),
///     overload: OverloadPolicy::Fail,
///     ..RemotingConfig::default()
/// };
/// assert_eq!(cfg.max_frame_length, 16 * 1024 * 1024);
/// assert!(cfg.close_on_timeout);
/// assert_eq!(cfg.max_queued_bytes, 64 * 1024 * 1024);
/// assert_eq!(cfg.write_timeout, Duration::from_secs(30));
/// assert!(cfg.tls.is_none());
/// assert!(cfg.reconnect_on_go_away);
/// assert_eq!(cfg.reconnect_backoff.max, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
pub struct RemotingConfig {
    /// Longest time a connect may take (Java `connectTimeoutMillis`, 3 s).
    pub connect_timeout: Duration,
    /// Backoff per address after a failed connect (100 ms growing ×1.6 to 10 s, ±20 %): calls
    /// in the window fail at once with [`RemotingError::Backoff`](crate::RemotingError::Backoff);
    /// see [`BackoffConfig`]. [`BackoffConfig::DISABLED`] connects on every call, as Java does.
    pub reconnect_backoff: BackoffConfig,
    /// Largest accepted frame, length field included (Java `frameMaxLength`, 16 MiB).
    pub max_frame_length: usize,
    /// Header serialization of the requests the client sends (Java default JSON).
    pub serialize_type: SerializeType,
    /// Async calls in flight per client (Java `clientAsyncSemaphoreValue`, 65535).
    pub max_async_in_flight: usize,
    /// Oneway calls in flight per client (Java `clientOnewaySemaphoreValue`, 65535).
    pub max_oneway_in_flight: usize,
    /// Waiting for a permit or failing at once.
    pub overload: OverloadPolicy,
    /// Close the connection when a **sync** call times out (Java `clientCloseSocketIfTimeout`,
    /// true), and only when more than 100 ms or a quarter of the call's timeout was left for
    /// the reply after connecting (J5 `invokeSync`). Async and oneway timeouts never close.
    pub close_on_timeout: bool,
    /// Close a connection with no read and no write for this long (Java 120 s), unless requests
    /// on it still wait for their replies; zero disables. Looked at once per period (reads and
    /// writes are not timed one by one): an idle connection closes one to two periods after its
    /// last read or write.
    pub idle_timeout: Duration,
    /// Set `TCP_NODELAY` on every socket (Java: true).
    pub tcp_nodelay: bool,
    /// Stop gathering queued frames into one write beyond this many bytes.
    pub write_batch_bytes: usize,
    /// Bytes of frames queued on one connection and not yet written (requests, oneway
    /// requests and responses alike; 64 MiB). Zero means unbounded.
    ///
    /// A request that would exceed it waits for room (within its timeout) or fails at once with
    /// [`RemotingError::Overloaded`](crate::RemotingError::Overloaded), as `overload` says.
    /// A processor's response waits for room, so the connection stops reading requests while
    /// the peer does not read its responses; `ConnectionHandle::send_response` and `send_raw`
    /// cannot wait and return `Overloaded`. A frame larger than the budget takes all of it.
    pub max_queued_bytes: usize,
    /// Longest time the socket may take no byte of a pending write (30 s): a peer that stops
    /// reading (a zero TCP window) then has its connection closed, and every waiter on it
    /// fails. A slow peer that keeps reading is not cut off. Zero disables.
    pub write_timeout: Duration,
    /// TLS for the client's connections (`None`: plain TCP, the default). The handshake runs
    /// within [`connect_timeout`](Self::connect_timeout); its failures are
    /// [`RemotingError::Tls`](crate::RemotingError::Tls). A server takes its TLS from
    /// [`RemotingServer::bind_with_tls`](crate::RemotingServer::bind_with_tls) and ignores this.
    pub tls: Option<TlsConfig>,
    /// On a `GO_AWAY` answer (1500: a server shutting down did not process the request), stop
    /// using that connection (requests in flight on it still get their answers, then it
    /// closes) and send the request once more on a new connection to the same address, within
    /// the call's deadline (Java `enableReconnectForGoAway` + `enableTransparentRetry`, true).
    /// Off: the `GO_AWAY` answer is returned as it is and the connection stays in use.
    pub reconnect_on_go_away: bool,
}

impl Default for RemotingConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff: BackoffConfig::default(),
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            serialize_type: SerializeType::Json,
            max_async_in_flight: 65535,
            max_oneway_in_flight: 65535,
            overload: OverloadPolicy::Wait,
            close_on_timeout: true,
            idle_timeout: Duration::from_secs(120),
            tcp_nodelay: true,
            write_batch_bytes: 64 * 1024,
            max_queued_bytes: 64 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
            tls: None,
            reconnect_on_go_away: true,
        }
    }
}
