//! One multiplexed connection: a reader task, a writer task and a correlation table.
//!
//! The stream is a plain `TcpStream` (split into owned halves, no lock) or any other
//! `AsyncRead + AsyncWrite` stream such as a TLS one (split with `tokio::io::split`).
//!
//! Callers encode their frame's header (the body stays the caller's `Bytes`), take the frame's
//! size from the connection's queue budget (a semaphore of bytes), register the opaque
//! (requests) and queue the frame on a channel; the writer task drains the channel, gathers the
//! queued frames into vectored writes (a write the socket takes no byte of for the write timeout
//! closes the connection) and gives the budget back once written.
//! The reader task routes responses by opaque and hands requests to the processors. When either
//! task ends, the writer fails every queued frame with `written: false`, then every waiter with
//! `written` as the writer recorded it, so no caller ever hangs. An orderly close
//! ([`Connection::close_after_queued`], a client's shutdown) first lets the writer write the
//! oneway requests and responses queued by then, within a bound.

mod cause;
#[cfg(test)]
mod chunk_tests;
mod deadlines;
mod gather;
mod handle;
pub(crate) mod pending;
mod reader;
mod request;
#[cfg(test)]
mod tests;
mod timer;
#[cfg(test)]
mod timer_tests;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::task::AtomicWaker;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::client::Slot;
use crate::command::RemotingCommand;
use crate::config::{OverloadPolicy, RemotingConfig};
use crate::error::RemotingError;
use crate::processor::ProcessorTable;

pub(crate) use cause::CloseCause;
pub use handle::ConnectionHandle;
use pending::PendingTable;
pub(crate) use pending::{Complete, OnReply, PendingGuard, Reply};

/// What a queued frame is, for the writer's bookkeeping.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A request waiting in the pending table under this opaque, as waiter `id`.
    Request { opaque: i32, id: u64 },
    /// A oneway request: its caller returned once it was queued; the writer drops `slot` (the
    /// client's in-flight oneway bound) once the frame is written, or failed to be.
    Oneway { opaque: i32, slot: Option<Slot> },
    /// A response or raw bytes: nobody waits.
    Untracked,
}

/// A frame queued for the writer.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// Length fields and header, as encoded (not frozen: a `Bytes` made from a buffer with
    /// spare capacity costs an allocation, and the writer copies small heads anyway).
    pub(crate) head: BytesMut,
    pub(crate) body: Bytes,
    pub(crate) kind: Kind,
    /// Queue budget it holds; the writer gives it back once the frame is written or skipped.
    pub(crate) cost: u32,
}

/// How long a frame may wait for queue budget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Not at all: [`RemotingError::Overloaded`] at once.
    No,
    /// Until this instant, then [`RemotingError::Overloaded`].
    Until(Instant),
    /// Until there is room or the connection closes.
    Forever,
}

impl Wait {
    /// Per the overload policy, for a call with this deadline.
    const fn per(policy: OverloadPolicy, deadline: Instant) -> Self {
        match policy {
            OverloadPolicy::Fail => Self::No,
            OverloadPolicy::Wait => Self::Until(deadline),
        }
    }
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    /// The address as the user named it (client) or the peer address (server).
    pub(crate) addr: String,
    pub(crate) max_frame_length: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) write_batch_bytes: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) write_timeout: Duration,
    pub(crate) overload: OverloadPolicy,
    pub(crate) processors: ProcessorTable,
    pub(crate) opaque: Arc<AtomicI32>,
}

impl ConnOptions {
    /// The options of a connection to (or from) `addr` under `config`.
    pub(crate) fn new(
        addr: String,
        config: &RemotingConfig,
        processors: ProcessorTable,
        opaque: Arc<AtomicI32>,
    ) -> Self {
        Self {
            addr,
            max_frame_length: config.max_frame_length,
            idle_timeout: config.idle_timeout,
            write_batch_bytes: config.write_batch_bytes,
            max_queued_bytes: config.max_queued_bytes,
            write_timeout: config.write_timeout,
            overload: config.overload,
            processors,
            opaque,
        }
    }
}

/// State shared by the handle and the two tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) opts: ConnOptions,
    pub(crate) peer: SocketAddr,
    pub(crate) pending: Arc<PendingTable>,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Bytes that may still be queued (all of `max_queued_bytes` when nothing is); closed with
    /// the connection, which wakes every frame waiting for room.
    pub(crate) budget: Semaphore,
    /// Cancelled to close the connection (by either task, a timeout, or the user).
    closed: CancellationToken,
    /// Set (before `closed` is cancelled) when the connection closes.
    closed_flag: AtomicBool,
    /// The reader's and the writer's wakers for the close ([`Shared::closed_for`]): their waits
    /// go through a waker register instead of the token's waiter list, which took a lock to
    /// join and one to leave at every wait (issue 13).
    pub(crate) reader_close: AtomicWaker,
    pub(crate) writer_close: AtomicWaker,
    /// Cancelled once the writer has failed every waiter and both halves are being dropped.
    pub(crate) finished: CancellationToken,
    /// Set by the reader when it reads a frame, taken by the writer's idle check: traffic
    /// since the last check (the idle timeout needs no clock read per frame).
    pub(crate) read_seen: AtomicBool,
    /// Set by the reader before it closes the connection over a TLS refusal or a protocol
    /// error: the waiters then fail with `RemotingError::Tls` or `RemotingError::Protocol`
    /// rather than `ConnectionClosed`.
    close_cause: OnceLock<CloseCause>,
    /// Set once the peer answered `GO_AWAY` on this connection: no new request goes on it; it
    /// closes once the requests in flight on it have ended (see `client::go_away`).
    draining: AtomicBool,
    /// Head buffers the writer has copied out, for the next frames to encode into: a head is
    /// encoded on the caller's thread and dropped on the writer's, so without this every frame
    /// paid an allocation and a cross-thread free.
    spare_heads: Mutex<Vec<BytesMut>>,
    /// Set (before `closed` is cancelled) by an orderly close: the writer writes what is queued
    /// (oneway requests and responses; requests' waiters are failed at once) until then.
    linger_until: OnceLock<Instant>,
}

/// The most head buffers kept for reuse per connection.
const SPARE_HEADS: usize = 512;

/// Larger head buffers are not kept (a head with large properties).
const SPARE_HEAD_CAPACITY: usize = 2048;

impl Shared {
    /// Marks the connection closed (idempotent): both tasks stop, budget waiters fail.
    pub(crate) fn mark_closed(&self) {
        self.closed_flag.store(true, Ordering::Release);
        self.budget.close();
        self.closed.cancel();
        self.reader_close.wake();
        self.writer_close.wake();
    }

    /// Resolves once the connection is closed or closing, for the one task that owns `waker`
    /// (the reader's or the writer's: an [`AtomicWaker`] keeps one task's waker). Registered
    /// before the flag is read, so a close between the two still wakes the task.
    pub(crate) fn closed_for<'a>(
        &'a self,
        waker: &'a AtomicWaker,
    ) -> impl Future<Output = ()> + 'a {
        std::future::poll_fn(move |cx| {
            if self.is_closed() {
                return Poll::Ready(());
            }
            waker.register(cx.waker());
            if self.is_closed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Whether the connection is closed or closing (an atomic load: the token's own check
    /// takes a lock, and this is asked for every request and every frame read).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed_flag.load(Ordering::Acquire)
    }

    /// An empty buffer to encode a head into (a reused one when there is one).
    fn head_buffer(&self) -> BytesMut {
        self.spare_heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    /// Keeps the (copied-out) head buffers of a write for reuse, up to the bounds.
    pub(crate) fn give_back_heads(&self, heads: &mut Vec<BytesMut>) {
        if heads.is_empty() {
            return;
        }
        let mut spare = self
            .spare_heads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for mut head in heads.drain(..) {
            if spare.len() >= SPARE_HEADS {
                break;
            }
            if head.capacity() <= SPARE_HEAD_CAPACITY {
                head.clear();
                spare.push(head);
            }
        }
        drop(spare);
        // What did not fit is freed here, outside the lock.
        heads.clear();
    }

    /// Until when the writer may still write what was queued when the connection closed:
    /// `None` unless it was closed by [`Connection::close_after_queued`].
    pub(crate) fn linger_until(&self) -> Option<Instant> {
        self.linger_until.get().copied()
    }

    /// Resolves once the connection is closed or closing.
    pub(crate) async fn closed(&self) {
        self.closed.cancelled().await;
    }
}

/// Waits, for at most `grace` in all, until every one of `conns` has finished closing (all at
/// once, not one after another); logs the ones that did not.
pub(crate) async fn wait_finished(conns: &[Connection], grace: Duration) {
    let all = futures_util::future::join_all(conns.iter().map(Connection::finished));
    if tokio::time::timeout(grace, all).await.is_err() {
        for c in conns.iter().filter(|c| !c.is_finished()) {
            tracing::warn!(addr = c.addr(), "connection did not close in time");
        }
    }
}

/// A cheap handle to a running connection.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
}

/// A [`Connection`] held weakly (a cache's: it does not keep a closed connection's state).
#[derive(Debug, Clone)]
pub(crate) struct WeakConnection(std::sync::Weak<Shared>);

impl WeakConnection {
    /// The connection, while anyone else still holds it.
    pub(crate) fn upgrade(&self) -> Option<Connection> {
        self.0.upgrade().map(|shared| Connection { shared })
    }
}

impl Connection {
    /// Starts the reader and writer tasks on a plain socket (in a tokio runtime).
    ///
    /// `listed` sees the connection before its tasks exist, so whoever lists connections (a
    /// server's registry) has it listed before it reads its first request.
    pub(crate) fn start(
        stream: TcpStream,
        opts: ConnOptions,
        listed: impl FnOnce(&Connection),
    ) -> Self {
        Self::start_tcp(stream, opts, listed).0
    }

    /// Starts the reader and writer tasks on any stream (a TLS one) to or from `peer`;
    /// `listed` as in [`start`](Self::start).
    pub(crate) fn start_io<S>(
        stream: S,
        peer: SocketAddr,
        opts: ConnOptions,
        listed: impl FnOnce(&Connection),
    ) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        Self::start_tasks(rd, wr, peer, opts, listed).0
    }

    /// [`start`](Self::start), also returning the reader and writer tasks.
    fn start_tcp(
        stream: TcpStream,
        opts: ConnOptions,
        listed: impl FnOnce(&Connection),
    ) -> (Self, [JoinHandle<()>; 2]) {
        let peer = peer_of(&stream);
        let (rd, wr) = stream.into_split();
        Self::start_tasks(rd, wr, peer, opts, listed)
    }

    fn start_tasks<R, W>(
        rd: R,
        wr: W,
        peer: SocketAddr,
        opts: ConnOptions,
        listed: impl FnOnce(&Connection),
    ) -> (Self, [JoinHandle<()>; 2])
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        // The channel itself is unbounded: the byte budget bounds what sits in it.
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = opts.max_queued_bytes.min(Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            opts,
            peer,
            pending: Arc::new(PendingTable::default()),
            tx,
            budget: Semaphore::new(budget),
            closed: CancellationToken::new(),
            closed_flag: AtomicBool::new(false),
            reader_close: AtomicWaker::new(),
            writer_close: AtomicWaker::new(),
            finished: CancellationToken::new(),
            read_seen: AtomicBool::new(false),
            close_cause: OnceLock::new(),
            draining: AtomicBool::new(false),
            spare_heads: Mutex::new(Vec::new()),
            linger_until: OnceLock::new(),
        });
        let conn = Self { shared };
        let span =
            tracing::debug_span!("rmq.connection", addr = %conn.shared.opts.addr, peer = %peer);
        tracing::debug!(parent: &span, "connection up");
        // The tasks' drop guards exist before the tasks are first polled (and before `listed`:
        // if it panicked, they would close the connection and end its waiters).
        let reader_guard = reader::CloseOnDrop(conn.clone());
        let timer_guard = reader::CloseOnDrop(conn.clone());
        let writer_state = writer::Cleanup::new(Arc::clone(&conn.shared), rx, wr);
        listed(&conn);
        let reader = tokio::spawn(reader::run(reader_guard, rd).instrument(span.clone()));
        let writer = tokio::spawn(writer::run(writer_state).instrument(span.clone()));
        // Fire and forget: it ends when the connection closes.
        drop(tokio::spawn(timer::run(timer_guard).instrument(span)));
        (conn, [reader, writer])
    }

    /// The address this connection was opened for (client) or the peer (server).
    pub(crate) fn addr(&self) -> &str {
        &self.shared.opts.addr
    }

    /// Whether the connection is closed or closing.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Marks the connection draining (the peer said `GO_AWAY`); true for the call that did.
    pub(crate) fn mark_draining(&self) -> bool {
        !self.shared.draining.swap(true, Ordering::AcqRel)
    }

    /// Whether the peer said `GO_AWAY` on this connection.
    pub(crate) fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// This connection, held weakly.
    pub(crate) fn downgrade(&self) -> WeakConnection {
        WeakConnection(Arc::downgrade(&self.shared))
    }

    /// Whether both connections are the same one.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Starts closing; waiters are failed by the writer task right after.
    pub(crate) fn close(&self) {
        if !self.shared.is_closed() {
            tracing::debug!(addr = %self.addr(), "closing connection");
        }
        self.shared.mark_closed();
    }

    /// Closes the connection in order: no new frame is taken, waiters for replies fail at once
    /// (no reply is read any more), and the writer writes the oneway requests and responses
    /// queued by now before the socket closes, at most until `until` (a peer that reads nothing
    /// does not hold the close up longer; what is left then is dropped).
    pub(crate) fn close_after_queued(&self, until: Instant) {
        // Before the close: the writer looks at it once it sees the connection closed.
        let _ = self.shared.linger_until.set(until);
        self.close();
        // Requests still queued are skipped by the writer (their entries are gone now).
        let shared = &self.shared;
        shared
            .pending
            .fail_all(|written| shared.closed_error(written));
    }

    /// Resolves once the connection is fully closed and every waiter was failed.
    pub(crate) async fn finished(&self) {
        self.shared.finished.cancelled().await;
    }

    /// Whether [`finished`](Self::finished) has resolved.
    pub(crate) fn is_finished(&self) -> bool {
        self.shared.finished.is_cancelled()
    }

    /// Waiting requests on this connection.
    pub(crate) fn pending_len(&self) -> usize {
        self.shared.pending.len()
    }

    pub(crate) fn closed_error(&self, written: bool) -> RemotingError {
        self.shared.closed_error(written)
    }

    /// Encodes `cmd`'s length fields and header, checking the frame limit; the body is
    /// `cmd`'s own `Bytes` (not copied: the writer decides).
    fn encode(&self, cmd: &RemotingCommand) -> Result<(BytesMut, Bytes), RemotingError> {
        let mut buf = self.shared.head_buffer();
        cmd.encode_head(&mut buf)?;
        let len = buf.len() + cmd.body.len();
        let max = self.shared.opts.max_frame_length;
        if len > max {
            return Err(RemotingError::FrameTooLarge { len, max });
        }
        Ok((buf, cmd.body.clone()))
    }

    /// The queue budget a frame of `len` bytes takes (0 when the budget is unbounded; a frame
    /// larger than the budget takes all of it).
    fn cost(&self, len: usize) -> u32 {
        let cap = self
            .shared
            .opts
            .max_queued_bytes
            .min(Semaphore::MAX_PERMITS);
        u32::try_from(len.min(cap)).unwrap_or(u32::MAX)
    }

    /// Takes `cost` bytes of queue budget, waiting as `wait` says.
    async fn reserve(&self, cost: u32, wait: Wait) -> Result<(), RemotingError> {
        if self.try_reserve(cost)? {
            return Ok(());
        }
        let budget = &self.shared.budget;
        // Waiting is rare (the queue is over its byte budget): boxed, so that it does not size
        // every send's future.
        let acquired = match wait {
            Wait::No => None,
            Wait::Until(deadline) => {
                Box::pin(tokio::time::timeout_at(deadline, budget.acquire_many(cost)))
                    .await
                    .ok()
            }
            Wait::Forever => Some(Box::pin(budget.acquire_many(cost)).await),
        };
        match acquired {
            Some(Ok(p)) => {
                p.forget();
                Ok(())
            }
            Some(Err(_)) => Err(self.closed_error(false)),
            None => {
                tracing::debug!(addr = %self.addr(), cost, "outbound queue over budget");
                Err(RemotingError::Overloaded {
                    addr: self.addr().to_owned(),
                })
            }
        }
    }

    /// Takes `cost` bytes of queue budget if there is room now: false when there is not (the
    /// caller waits with [`reserve`](Self::reserve)).
    fn try_reserve(&self, cost: u32) -> Result<bool, RemotingError> {
        if cost == 0 {
            return Ok(true);
        }
        match self.shared.budget.try_acquire_many(cost) {
            Ok(p) => {
                p.forget();
                Ok(true)
            }
            Err(TryAcquireError::Closed) => Err(self.closed_error(false)),
            Err(TryAcquireError::NoPermits) => Ok(false),
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

    /// Queues a oneway request (waiting for queue budget per the overload policy, at most until
    /// `deadline`) and returns: the writer writes it and then drops `slot`. A write failing
    /// after that is only logged (as Java's `invokeOnewayImpl` does).
    pub(crate) async fn oneway(
        &self,
        req: &RemotingCommand,
        deadline: Instant,
        slot: Option<Slot>,
    ) -> Result<(), RemotingError> {
        // A caller whose oneway calls never wait would keep the writer (woken onto this worker's
        // next-task slot, which other workers cannot take) from running until the in-flight
        // bound stops it: it yields once its cooperative budget is spent, as an await on a
        // channel would. Before anything is queued, so that a caller dropping this future at
        // the yield has sent nothing.
        tokio::task::consume_budget().await;
        let (head, body) = self.encode(req)?;
        let cost = self.cost(head.len() + body.len());
        let wait = Wait::per(self.shared.opts.overload, deadline);
        self.reserve(cost, wait).await?;
        let out = Outbound {
            head,
            body,
            kind: Kind::Oneway {
                opaque: req.opaque,
                slot,
            },
            cost,
        };
        self.enqueue(out).map_err(|_| self.closed_error(false))
    }

    /// Queues a response (or any command nobody waits for) if it fits the queue budget now.
    pub(crate) fn send_untracked(&self, cmd: &RemotingCommand) -> Result<(), RemotingError> {
        let (head, body) = self.encode(cmd)?;
        self.queue_untracked(head, body, Wait::No)
            .now_or_never()
            .unwrap_or_else(|| Err(self.closed_error(false)))
    }

    /// Queues a response, waiting for queue budget as long as the connection is up.
    pub(crate) async fn send_untracked_waiting(
        &self,
        cmd: &RemotingCommand,
    ) -> Result<(), RemotingError> {
        let (head, body) = self.encode(cmd)?;
        self.queue_untracked(head, body, Wait::Forever).await
    }

    /// Queues raw bytes as they are, if they fit the queue budget now.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn send_raw(&self, bytes: Bytes) -> Result<(), RemotingError> {
        self.queue_untracked(BytesMut::from(&bytes[..]), Bytes::new(), Wait::No)
            .now_or_never()
            .unwrap_or_else(|| Err(self.closed_error(false)))
    }

    async fn queue_untracked(
        &self,
        head: BytesMut,
        body: Bytes,
        wait: Wait,
    ) -> Result<(), RemotingError> {
        let cost = self.cost(head.len() + body.len());
        self.reserve(cost, wait).await?;
        self.enqueue(Outbound {
            head,
            body,
            kind: Kind::Untracked,
            cost,
        })
        .map_err(|_| self.closed_error(false))
    }
}

/// The peer of a socket (unspecified when the OS no longer knows it).
fn peer_of(stream: &TcpStream) -> SocketAddr {
    stream
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}
