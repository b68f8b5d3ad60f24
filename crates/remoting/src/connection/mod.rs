//! One multiplexed connection: a reader task, a writer task and a correlation table.
//!
//! Callers encode their frame, register the opaque (requests) and queue the frame on an
//! unbounded channel; the writer task drains the channel and gathers every queued frame into
//! one write. The reader task routes responses by opaque and hands requests to the processors.
//! When either task ends, the writer fails every queued frame with `written: false`, then every
//! waiter with `written` as the writer recorded it, so no caller ever hangs.

mod handle;
pub(crate) mod pending;
mod reader;
mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::command::RemotingCommand;
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

pub use handle::ConnectionHandle;
use pending::PendingTable;
pub(crate) use pending::{PendingGuard, Reply};

/// Bodies up to this size are copied next to their header (one buffer); larger ones travel as
/// their own `Bytes` and are written without a copy.
const INLINE_BODY: usize = 16 * 1024;

/// Oneway frame states, shared by the caller and the writer.
const QUEUED: u8 = 0;
const CLAIMED: u8 = 1;
const ABANDONED: u8 = 2;

/// What a queued frame is, for the writer's bookkeeping.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A request waiting in the pending table under this opaque, as waiter `id`.
    Request { opaque: i32, id: u64 },
    /// A oneway request: the caller waits for the write.
    Oneway {
        state: Arc<AtomicU8>,
        ack: oneshot::Sender<()>,
    },
    /// A response or raw bytes: nobody waits.
    Untracked,
}

/// A frame queued for the writer.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
    pub(crate) kind: Kind,
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    /// The address as the user named it (client) or the peer address (server).
    pub(crate) addr: String,
    pub(crate) max_frame_length: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_batch_bytes: usize,
    pub(crate) processors: ProcessorTable,
    pub(crate) opaque: Arc<AtomicI32>,
}

/// State shared by the handle and the two tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: ConnOptions,
    pub(crate) peer: SocketAddr,
    pub(crate) pending: Arc<PendingTable>,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Cancelled to close the connection (by either task, a timeout, or the user).
    pub(crate) closed: CancellationToken,
    /// Cancelled once the writer has failed every waiter and both halves are being dropped.
    pub(crate) finished: CancellationToken,
    /// Milliseconds since `started` of the last frame read (for the idle timeout).
    pub(crate) last_read_ms: AtomicU64,
    pub(crate) started: Instant,
}

/// A cheap handle to a running connection.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    /// Starts the reader and writer tasks on `stream` (which must be in a tokio runtime).
    pub(crate) fn start(stream: TcpStream, opts: ConnOptions) -> Self {
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            opts,
            peer,
            pending: Arc::new(PendingTable::default()),
            tx,
            closed: CancellationToken::new(),
            finished: CancellationToken::new(),
            last_read_ms: AtomicU64::new(0),
            started: Instant::now(),
        });
        let conn = Self { shared };
        let span =
            tracing::debug_span!("rmq.connection", addr = %conn.shared.opts.addr, peer = %peer);
        tracing::debug!(parent: &span, "connection up");
        let (rd, wr) = stream.into_split();
        tokio::spawn(reader::run(conn.clone(), rd).instrument(span.clone()));
        tokio::spawn(writer::run(Arc::clone(&conn.shared), rx, wr).instrument(span));
        conn
    }

    /// The address this connection was opened for (client) or the peer (server).
    pub(crate) fn addr(&self) -> &str {
        &self.shared.opts.addr
    }

    /// Whether the connection is closed or closing.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Starts closing; waiters are failed by the writer task right after.
    pub(crate) fn close(&self) {
        if !self.shared.closed.is_cancelled() {
            tracing::debug!(addr = %self.addr(), "closing connection");
            self.shared.closed.cancel();
        }
    }

    /// Resolves once the connection is fully closed and every waiter was failed.
    pub(crate) async fn finished(&self) {
        self.shared.finished.cancelled().await;
    }

    /// Waiting requests on this connection.
    pub(crate) fn pending_len(&self) -> usize {
        self.shared.pending.len()
    }

    fn closed_error(&self, written: bool) -> RemotingError {
        RemotingError::ConnectionClosed {
            addr: self.addr().to_owned(),
            written,
        }
    }

    /// Encodes `cmd` into head (+ separate large body), checking the frame limit.
    fn encode(&self, cmd: &RemotingCommand) -> Result<(Bytes, Bytes), RemotingError> {
        let inline = cmd.body.len() <= INLINE_BODY;
        let mut buf = BytesMut::with_capacity(256 + if inline { cmd.body.len() } else { 0 });
        cmd.encode_head(&mut buf)?;
        let len = buf.len() + cmd.body.len();
        let max = self.shared.opts.max_frame_length;
        if len > max {
            return Err(RemotingError::FrameTooLarge { len, max });
        }
        if inline {
            buf.extend_from_slice(&cmd.body);
            Ok((buf.freeze(), Bytes::new()))
        } else {
            Ok((buf.freeze(), cmd.body.clone()))
        }
    }

    fn enqueue(&self, out: Outbound) -> Result<(), Outbound> {
        if self.is_closed() {
            return Err(out);
        }
        self.shared.tx.send(out).map_err(|e| e.0)
    }

    /// Takes the next opaque.
    pub(crate) fn next_opaque(&self) -> i32 {
        self.shared.opts.opaque.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `req` (whose opaque is set) and queues it.
    pub(crate) fn send_request(
        &self,
        req: &RemotingCommand,
    ) -> Result<(oneshot::Receiver<Reply>, PendingGuard), RemotingError> {
        let (head, body) = self.encode(req)?;
        let (rx, guard) = self.shared.pending.register(req.opaque);
        let out = Outbound {
            head,
            body,
            kind: Kind::Request {
                opaque: req.opaque,
                id: guard.id(),
            },
        };
        // On failure the guard drops and removes the entry.
        self.enqueue(out).map_err(|_| self.closed_error(false))?;
        Ok((rx, guard))
    }

    /// Sends `req` and waits for its reply until `deadline` (`timeout` is what is reported);
    /// closes the connection on timeout when `close_on_timeout`.
    pub(crate) async fn call(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> Result<RemotingCommand, RemotingError> {
        let (mut rx, mut guard) = self.send_request(req)?;
        match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(reply) => {
                guard.disarm();
                reply.unwrap_or_else(|_| Err(self.closed_error(true)))
            }
            Err(_) => self.expire(&mut guard, &mut rx, req.opaque, timeout, close_on_timeout),
        }
    }

    /// The deadline passed: removes the entry (or takes a reply that raced the deadline), and
    /// closes the connection when `close`.
    pub(crate) fn expire(
        &self,
        guard: &mut PendingGuard,
        rx: &mut oneshot::Receiver<Reply>,
        opaque: i32,
        after: Duration,
        close: bool,
    ) -> Reply {
        let Some(written) = guard.take() else {
            // The entry left the table just now: its outcome is in the channel.
            return rx
                .try_recv()
                .unwrap_or_else(|_| Err(self.closed_error(true)));
        };
        tracing::debug!(addr = %self.addr(), opaque, written, "request timed out");
        if close {
            self.close();
        }
        Err(RemotingError::Timeout {
            addr: self.addr().to_owned(),
            opaque,
            after,
            written,
        })
    }

    /// Queues a oneway request and waits until it is written or `deadline` passes.
    pub(crate) async fn oneway(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), RemotingError> {
        let (head, body) = self.encode(req)?;
        let state = Arc::new(AtomicU8::new(QUEUED));
        let (ack, done) = oneshot::channel();
        let out = Outbound {
            head,
            body,
            kind: Kind::Oneway {
                state: Arc::clone(&state),
                ack,
            },
        };
        self.enqueue(out).map_err(|_| self.closed_error(false))?;
        match tokio::time::timeout_at(deadline, done).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.closed_error(state.load(Ordering::Acquire) == CLAIMED)),
            Err(_) => {
                let written = state
                    .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err();
                Err(RemotingError::Timeout {
                    addr: self.addr().to_owned(),
                    opaque: req.opaque,
                    after: timeout,
                    written,
                })
            }
        }
    }

    /// Queues a response (or any command nobody waits for).
    pub(crate) fn send_untracked(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        let (head, body) = self.encode(cmd)?;
        self.enqueue(Outbound {
            head,
            body,
            kind: Kind::Untracked,
        })
        .map_err(|_| self.closed_error(false))
    }

    /// Queues raw bytes as they are.
    pub(crate) fn send_raw(&self, bytes: Bytes) -> Result<(), RemotingError> {
        self.enqueue(Outbound {
            head: bytes,
            body: Bytes::new(),
            kind: Kind::Untracked,
        })
        .map_err(|_| self.closed_error(false))
    }
}
