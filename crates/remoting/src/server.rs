//! [`RemotingServer`]: the accept side, with a processor per request code.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::RemotingConfig;
use crate::connection::{ConnOptions, Connection, ConnectionHandle};
use crate::processor::ProcessorTable;
use crate::tls::{Accepted, ServerTlsConfig};

/// How long [`RemotingServer::shutdown`] waits for its connections to finish closing.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A remoting server: accepts connections and hands every request to the processor of its
/// code (unknown codes are answered `REQUEST_CODE_NOT_SUPPORTED`). The same connection can
/// carry requests from the server to the client ([`ConnectionHandle::invoke`]).
///
/// [`bind_with_tls`](Self::bind_with_tls) serves TLS (or TLS and plain on one port, as
/// [`TlsMode`](crate::TlsMode) says); [`RemotingConfig::tls`] is a client setting and is ignored
/// here.
///
/// With the `test-util` feature, test brokers can stop accepting (`pause_accept`: new
/// connections are refused), accept again on the same address (`resume_accept`), and drop every
/// live connection (`close_connections`). Cheap to clone; the last clone dropped stops
/// everything.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::sync::Arc;
/// use rmq_common::{RequestCode, ResponseCode};
/// use rmq_remoting::{BoxFuture, ProcessorTable, RemotingCommand, RemotingConfig, RemotingServer, RequestContext};
///
/// let heartbeat = |_: RequestContext, req: RemotingCommand| -> BoxFuture<'static, Option<RemotingCommand>> {
///     Box::pin(async move { Some(req.response_to(ResponseCode::SUCCESS, None)) })
/// };
/// let table = ProcessorTable::new().with(RequestCode::HEART_BEAT, Arc::new(heartbeat));
/// let server = RemotingServer::bind("127.0.0.1:0", RemotingConfig::default(), table).await?;
/// println!("listening on {}", server.local_addr());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemotingServer {
    inner: Arc<Inner>,
}

struct Inner {
    local_addr: SocketAddr,
    registry: Arc<Registry>,
    accept: Mutex<Option<AcceptLoop>>,
    shut: CancellationToken,
}

/// What the accept loop, the handshakes and the connection watchers share.
struct Registry {
    config: RemotingConfig,
    processors: ProcessorTable,
    /// TLS for accepted connections, unless none or disabled.
    tls: Option<ServerTlsConfig>,
    conns: DashMap<u64, Connection>,
    next_id: AtomicU64,
    opaque: Arc<AtomicI32>,
    /// The server's shutdown token (handshakes in progress stop on it).
    shut: CancellationToken,
}

struct AcceptLoop {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shut.cancel();
        if let Some(acc) = self.accept.get_mut().take() {
            acc.stop.cancel();
        }
        for c in self.registry.conns.iter() {
            c.value().close();
        }
    }
}

impl fmt::Debug for RemotingServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingServer")
            .field("local_addr", &self.inner.local_addr)
            .field("connections", &self.connection_count())
            .field("processors", &self.inner.registry.processors)
            .finish_non_exhaustive()
    }
}

impl RemotingServer {
    /// Binds `addr` (use port 0 for an ephemeral port) and starts accepting plain TCP.
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: RemotingConfig,
        processors: ProcessorTable,
    ) -> io::Result<Self> {
        Self::start(addr, config, processors, None).await
    }

    /// Binds `addr` and accepts TLS connections, or TLS and plain ones, as
    /// [`ServerTlsConfig::mode`] says.
    ///
    /// Each accepted connection is handshaken in its own task, bounded by
    /// [`RemotingConfig::connect_timeout`] (in permissive mode, the wait for the first byte is
    /// bounded by [`RemotingConfig::idle_timeout`] instead); a failed handshake drops the
    /// connection and is logged.
    ///
    /// # Errors
    /// The bind error.
    pub async fn bind_with_tls(
        addr: impl ToSocketAddrs,
        config: RemotingConfig,
        processors: ProcessorTable,
        tls: ServerTlsConfig,
    ) -> io::Result<Self> {
        Self::start(addr, config, processors, Some(tls)).await
    }

    async fn start(
        addr: impl ToSocketAddrs,
        config: RemotingConfig,
        processors: ProcessorTable,
        tls: Option<ServerTlsConfig>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let tls = tls.filter(ServerTlsConfig::enabled);
        let mode = tls.as_ref().map(ServerTlsConfig::mode);
        let shut = CancellationToken::new();
        let registry = Arc::new(Registry {
            config,
            processors,
            tls,
            conns: DashMap::new(),
            next_id: AtomicU64::new(1),
            opaque: Arc::new(AtomicI32::new(1)),
            shut: shut.clone(),
        });
        let accept = spawn_accept(listener, local_addr, &registry);
        tracing::info!(%local_addr, tls = ?mode, "remoting server listening");
        Ok(Self {
            inner: Arc::new(Inner {
                local_addr,
                registry,
                accept: Mutex::new(Some(accept)),
                shut,
            }),
        })
    }

    /// The bound address.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The processor table (processors can be added while the server runs).
    #[must_use]
    pub fn processors(&self) -> &ProcessorTable {
        &self.inner.registry.processors
    }

    /// Stops accepting and drops the listener: new connections are refused once this returns.
    /// Live connections stay up.
    ///
    /// A test knob: only with the `test-util` feature.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn pause_accept(&self) {
        self.stop_accepting().await;
    }

    async fn stop_accepting(&self) {
        let acc = self.inner.accept.lock().await.take();
        if let Some(acc) = acc {
            acc.stop.cancel();
            if let Err(e) = acc.task.await {
                tracing::warn!(error = %e, "accept loop ended abnormally");
            }
            tracing::info!(addr = %self.inner.local_addr, "accepting paused");
        }
    }

    /// Binds the same address again and accepts (no-op when accepting already).
    ///
    /// A test knob: only with the `test-util` feature.
    ///
    /// # Errors
    /// The bind error (e.g. the port was taken meanwhile), or an error after shutdown.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn resume_accept(&self) -> io::Result<()> {
        let mut slot = self.inner.accept.lock().await;
        if self.inner.shut.is_cancelled() {
            return Err(io::Error::other("remoting server shut down"));
        }
        if slot.is_none() {
            let listener = TcpListener::bind(self.inner.local_addr).await?;
            *slot = Some(spawn_accept(
                listener,
                self.inner.local_addr,
                &self.inner.registry,
            ));
            tracing::info!(addr = %self.inner.local_addr, "accepting resumed");
        }
        Ok(())
    }

    /// Closes every live connection (clients see the socket close).
    ///
    /// A test knob: only with the `test-util` feature.
    #[cfg(any(test, feature = "test-util"))]
    pub fn close_connections(&self) {
        let conns = self.connection_list();
        tracing::info!(n = conns.len(), "closing all connections");
        for c in conns {
            c.close();
        }
    }

    /// Live connections (closed ones leave shortly after they close).
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.inner
            .registry
            .conns
            .iter()
            .filter(|c| !c.value().is_closed())
            .count()
    }

    /// Handles to the live connections (to push requests to clients, or to inject faults).
    #[must_use]
    pub fn connections(&self) -> Vec<ConnectionHandle> {
        self.connection_list()
            .into_iter()
            .filter(|c| !c.is_closed())
            .map(ConnectionHandle::new)
            .collect()
    }

    /// Stops accepting, closes every connection and waits (boundedly) until they are closed.
    pub async fn shutdown(&self) {
        self.inner.shut.cancel();
        self.stop_accepting().await;
        let conns = self.connection_list();
        for c in &conns {
            c.close();
        }
        crate::connection::wait_finished(&conns, SHUTDOWN_GRACE).await;
        tracing::info!(addr = %self.inner.local_addr, "remoting server shut down");
    }

    fn connection_list(&self) -> Vec<Connection> {
        self.inner
            .registry
            .conns
            .iter()
            .map(|c| c.value().clone())
            .collect()
    }
}

fn spawn_accept(listener: TcpListener, local: SocketAddr, registry: &Arc<Registry>) -> AcceptLoop {
    let stop = CancellationToken::new();
    let span = tracing::debug_span!("rmq.accept", %local);
    let task = tokio::spawn(
        accept_loop(listener, Arc::downgrade(registry), stop.clone()).instrument(span),
    );
    AcceptLoop { stop, task }
}

async fn accept_loop(listener: TcpListener, registry: Weak<Registry>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(reg) = registry.upgrade() else { break };
        if let Err(e) = stream.set_nodelay(reg.config.tcp_nodelay) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        if reg.tls.is_some() {
            // The handshake (and, permissive, the wait for the first byte) must not hold up
            // the accept loop.
            let span = tracing::debug_span!("rmq.handshake", %peer);
            tokio::spawn(handshake(reg, stream, peer).instrument(span));
        } else {
            Connection::start(stream, options(&reg, peer), |conn| {
                register(&reg, conn, peer, "accepted");
            });
        }
    }
}

/// A deadline far enough away to mean "never" (the idle timeout disabled).
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Makes an accepted socket a TLS (or, permissive, a plain) connection, then registers it.
async fn handshake(reg: Arc<Registry>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let Some(tls) = reg.tls.as_ref() else { return };
    let idle = reg.config.idle_timeout;
    let first_byte = if idle.is_zero() { FAR } else { idle };
    let accepting = tls.accept(stream, first_byte, reg.config.connect_timeout);
    let accepted = tokio::select! {
        biased;
        () = reg.shut.cancelled() => return,
        r = accepting => r,
    };
    match accepted {
        Ok(Accepted::Plain(stream)) => {
            Connection::start(stream, options(&reg, peer), |conn| {
                register(&reg, conn, peer, "accepted (plain)");
            });
        }
        Ok(Accepted::Tls(stream)) => {
            Connection::start_io(*stream, peer, options(&reg, peer), |conn| {
                register(&reg, conn, peer, "accepted (TLS)");
            });
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            tracing::warn!(error = %e, "TLS handshake failed; connection dropped");
        }
        Err(e) => {
            tracing::debug!(error = %e, "TLS handshake did not complete; connection dropped");
        }
    }
}

fn options(reg: &Registry, peer: SocketAddr) -> ConnOptions {
    ConnOptions::new(
        peer.to_string(),
        &reg.config,
        reg.processors.clone(),
        Arc::clone(&reg.opaque),
    )
}

/// Adds a connection to the registry until it finishes (or closes it at once when the server
/// shut down meanwhile). Called before the connection's tasks start, so a connection is listed
/// before it serves its first request.
fn register(reg: &Arc<Registry>, conn: &Connection, peer: SocketAddr, how: &'static str) {
    let id = reg.next_id.fetch_add(1, Ordering::Relaxed);
    reg.conns.insert(id, conn.clone());
    if reg.shut.is_cancelled() {
        // Raced with shutdown, which may have listed the connections before this one.
        conn.close();
    }
    tracing::debug!(%peer, id, "{how}");
    let watch = Arc::downgrade(reg);
    let conn = conn.clone();
    tokio::spawn(async move {
        conn.finished().await;
        if let Some(reg) = watch.upgrade() {
            reg.conns.remove(&id);
        }
    });
}
