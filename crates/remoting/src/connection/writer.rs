//! The writer task: drains the outbound channel, gathering queued frames into vectored writes
//! (see [`Gather`]); a write the socket takes no byte of for the write timeout closes the
//! connection, and the queue budget of written (or skipped) frames is given back after each
//! write, as are the in-flight slots of oneway requests (whose callers returned once they were
//! queued). A write takes what is queued, then (unless it is a lone frame with nothing else
//! in flight) gathers more while they come: up to [`CHUNK`] frames, for as long as each pass
//! of the worker's other ready tasks (one yield) brings another frame (see `serve`). After an
//! orderly close ([`Connection::close_after_queued`](super::Connection)) it first writes what
//! is queued, within that close's bound.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::gather::{Gather, MAX_IOV};
use super::{Kind, Outbound, Shared};
use crate::client::Slot;

/// Why the writer stopped.
enum Stop {
    Closed,
    /// An orderly close's bound passed before what was queued was written.
    LingerOver,
    Idle,
    WriteTimeout(Duration),
    Io(io::Error),
}

/// The writer task; `task` is made by the spawner, so its cleanup runs however the task ends:
/// returning, panicking, or dropped unfinished (aborted, its runtime shut down), even before
/// its first poll.
pub(super) async fn run<W: AsyncWrite + Unpin>(mut task: Cleanup<W>) {
    let Cleanup { shared, rx, wr } = &mut task;
    let Some(wr) = wr.as_mut() else { return };
    let stop = serve(shared, rx, wr).await;
    if matches!(stop, Stop::Closed | Stop::Idle) {
        // An orderly close: a TLS stream sends its close_notify, a socket its FIN. Never waits
        // (the peer may not read any more).
        let _ = wr.shutdown().now_or_never();
    }
    match &stop {
        Stop::Closed => tracing::debug!("writer stopped: connection closed"),
        Stop::LingerOver => tracing::warn!(
            "closing: the peer did not take what was queued within the close's bound; dropped"
        ),
        Stop::Idle => tracing::debug!("connection idle; closing"),
        Stop::WriteTimeout(after) => {
            tracing::warn!(
                ?after,
                "the socket took no byte for the write timeout (peer not reading); closing"
            );
        }
        Stop::Io(e) => tracing::debug!(error = %e, "write failed; closing"),
    }
}

/// The writer task's state; dropping it closes the connection and fails every waiter.
pub(super) struct Cleanup<W> {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Outbound>,
    wr: Option<W>,
}

impl<W> Cleanup<W> {
    pub(super) const fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Outbound>,
        wr: W,
    ) -> Self {
        Self {
            shared,
            rx,
            wr: Some(wr),
        }
    }
}

impl<W> Drop for Cleanup<W> {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.mark_closed();
        // Frames still queued were never written: fail their waiters with `written: false`.
        self.rx.close();
        let mut unwritten = 0usize;
        while let Ok(out) = self.rx.try_recv() {
            unwritten += 1;
            match out.kind {
                Kind::Request { opaque, id } => {
                    shared.pending.fail(opaque, id, shared.closed_error(false));
                }
                // Its caller returned when it was queued: logged only (its slot goes now).
                Kind::Oneway { opaque, .. } => tracing::debug!(
                    addr = %shared.opts.addr,
                    opaque,
                    "oneway request not written: the connection closed"
                ),
                Kind::Untracked => {}
            }
        }
        let failed = shared
            .pending
            .fail_all(|written| shared.closed_error(written));
        // Once per connection: an operator's event (the connect is logged at info too).
        tracing::info!(addr = %shared.opts.addr, unwritten, failed, "connection closed");
        drop(self.wr.take());
        shared.finished.cancel();
    }
}

async fn serve<W: AsyncWrite + Unpin>(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
    wr: &mut W,
) -> Stop {
    // At most a year: a longer one means "never" too, and `now + idle` must not overflow.
    let idle = shared.opts.idle_timeout.min(FAR);
    let batch_limit = shared.opts.write_batch_bytes.max(1);
    let mut gather = Gather::new(wr.is_write_vectored());
    // The oneway requests in this write: their slots go once it is written (or failed).
    let mut oneways: Vec<(i32, Option<Slot>)> = Vec::new();
    // Set once the connection closed in order: what is queued is written, then the writer stops.
    let mut lingering = false;
    // Head buffers copied into this write, given back for reuse once it is written.
    let mut heads: Vec<bytes::BytesMut> = Vec::new();
    // Queue budget of the frames taken off the channel, given back once they are written.
    let mut taken: usize = 0;
    // A write since the idle timer's last look.
    let mut wrote = false;
    let mut idle_sleep = pin!(tokio::time::sleep(if idle.is_zero() { FAR } else { idle }));

    loop {
        let first = if lingering {
            // The channel is closed: `recv` hands out what is queued (a send that raced the
            // close included) and then `None`, without waiting for new frames.
            match rx.recv().await {
                Some(m) => m,
                None => return Stop::Closed,
            }
        } else {
            tokio::select! {
            biased;
            () = shared.closed_for(&shared.writer_close) => {
                lingering = shared.linger_until().is_some();
                if lingering {
                    // No frame joins the queue from now on (a call racing the close gets
                    // `ConnectionClosed` instead of a frame that would never be written).
                    rx.close();
                    tracing::debug!("closing in order: writing what is queued first");
                    continue;
                }
                return Stop::Closed;
            }
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Stop::Closed,
            },
            () = &mut idle_sleep, if !idle.is_zero() => {
                // Traffic since the last look (a write, a frame read) or a request still
                // waiting for its reply (a slow peer): not idle; look again one period later.
                // The writes and reads are not timed (a clock read each cost more than the
                // timeout's precision is worth): a connection closes between one and two
                // periods after its last traffic.
                let read = shared.read_seen.swap(false, Ordering::Relaxed);
                if std::mem::take(&mut wrote) || read || shared.pending.len() > 0 {
                    idle_sleep.as_mut().reset(Instant::now() + idle);
                    continue;
                }
                return Stop::Idle;
            }
            }
        };

        let mut frames = 0usize;
        let mut next = Some(first);
        loop {
            while let Some(out) = next.take() {
                frames += 1;
                taken += out.cost as usize;
                // A frame whose caller gave up (timeout, drop) must not be sent.
                if claim(shared, out.kind, &mut oneways) {
                    heads.extend(gather.push_mut(out.head));
                    gather.push(out.body);
                }
                if !gather.is_full(batch_limit) {
                    next = rx.try_recv().ok();
                }
            }
            if frames >= CHUNK
                || (frames == 1 && shared.pending.len() <= 1)
                || lingering
                || gather.is_full(batch_limit)
            {
                break;
            }
            // Fewer than a chunk in hand, and company likely (more than one frame, or other
            // requests in flight: their callers send again as their replies come): let the
            // worker run its other ready tasks once (each caller's send wakes this task again,
            // and it takes the frame) and write when a pass brings no frame. On a multi-thread
            // runtime this task, woken by a caller's frame, runs in the worker's next-task slot
            // right after that caller and would otherwise write each frame alone: one `writev`
            // and one wake-up of the peer per frame, and (64 sync callers) a round the peer sees
            // whole or a frame at a time. In chunks as they come, the peer answers the first
            // chunk while the client still works on the rest (issue 13, twelfth pass: the client
            // stopped parking once per round of 64 sync tasks; numbers in benches/README.md).
            // A lone frame with nothing else in flight
            // (one sync caller, a first request, a heartbeat) is written at once: a pass would
            // make it wait for the worker's other ready tasks, however long they run.
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => next = Some(m),
                    None => break,
                },
                () = tokio::task::yield_now() => {
                    next = rx.try_recv().ok();
                    if next.is_none() {
                        break;
                    }
                }
            }
        }
        if let Err(stop) = write_gathered(shared, wr, &gather).await {
            not_written(shared, &oneways);
            return stop;
        }
        gather.clear();
        shared.give_back_heads(&mut heads);
        // Written: their in-flight slots are free.
        oneways.clear();
        shared.budget.add_permits(std::mem::take(&mut taken));
        wrote = true;
    }
}

/// Frames in hand at which the writer stops gathering and writes (more may be in the write:
/// what is queued at once is taken whole, up to the batch's byte limit).
pub(super) const CHUNK: usize = 16;

/// A deadline far enough away to mean "never" (the idle timeout disabled).
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Logs the oneway requests of a failed write: their callers returned when they were queued,
/// so this is all that is told (Java logs a failed oneway write too).
fn not_written(shared: &Shared, oneways: &[(i32, Option<Slot>)]) {
    let Some(&(first, _)) = oneways.first() else {
        return;
    };
    for &(opaque, _) in oneways {
        tracing::debug!(addr = %shared.opts.addr, opaque, "oneway request not written");
    }
    tracing::warn!(
        addr = %shared.opts.addr,
        count = oneways.len(),
        first_opaque = first,
        "the write of oneway requests failed"
    );
}

/// Marks the frame as handed to the socket; false when nobody wants it written any more.
fn claim(shared: &Shared, kind: Kind, oneways: &mut Vec<(i32, Option<Slot>)>) -> bool {
    match kind {
        Kind::Request { opaque, id } => shared.pending.claim_for_write(opaque, id),
        Kind::Oneway { opaque, slot } => {
            oneways.push((opaque, slot));
            true
        }
        Kind::Untracked => true,
    }
}

/// Writes every gathered byte, [`MAX_IOV`] slices per vectored write at most (one slice per
/// write when the stream does not do vectored writes), then flushes (a TLS stream may hold
/// records back until then).
async fn write_gathered<W: AsyncWrite + Unpin>(
    shared: &Shared,
    wr: &mut W,
    gather: &Gather,
) -> Result<(), Stop> {
    if gather.is_empty() {
        return Ok(());
    }
    let per_write = if gather.vectored() { MAX_IOV } else { 1 };
    let mut iov = [IoSlice::new(&[]); MAX_IOV];
    let mut cursor = gather.cursor();
    while !cursor.done() {
        let n = cursor.fill(&mut iov[..per_write]);
        let written = stall_guard(shared, wr.write_vectored(&iov[..n])).await?;
        if written == 0 {
            return Err(Stop::Io(io::ErrorKind::WriteZero.into()));
        }
        cursor.advance(written);
    }
    stall_guard(shared, wr.flush()).await
}

/// Runs one write (or flush), unless the connection is closed meanwhile (an orderly close lets
/// it go on until that close's bound) or the socket takes no byte for the write timeout (a
/// peer that stopped reading).
async fn stall_guard<T>(
    shared: &Shared,
    step: impl Future<Output = io::Result<T>>,
) -> Result<T, Stop> {
    let mut step = pin!(step);
    // Most writes go through at once (the socket buffer has room): no timer for those.
    if let Some(r) = step.as_mut().now_or_never() {
        return r.map_err(Stop::Io);
    }
    let limit = shared.opts.write_timeout;
    let stall_at = Instant::now() + if limit.is_zero() { FAR } else { limit.min(FAR) };
    tokio::select! {
        biased;
        () = shared.closed() => {}
        r = step.as_mut() => return r.map_err(Stop::Io),
        () = tokio::time::sleep_until(stall_at) => return Err(Stop::WriteTimeout(limit)),
    }
    let Some(until) = shared.linger_until() else {
        return Err(Stop::Closed);
    };
    match tokio::time::timeout_at(until.min(stall_at), step).await {
        Ok(r) => r.map_err(Stop::Io),
        Err(_) if until <= stall_at => Err(Stop::LingerOver),
        Err(_) => Err(Stop::WriteTimeout(limit)),
    }
}
