//! The writer task: drains the outbound channel, gathering queued frames into one write; a
//! write the socket takes no byte of for the write timeout closes the connection, and the queue
//! budget of written (or skipped) frames is given back after each write.

use std::io;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Kind, Outbound, Shared, CLAIMED, QUEUED};
use crate::error::RemotingError;

/// Why the writer stopped.
enum Stop {
    Closed,
    Idle,
    WriteTimeout(Duration),
    Io(io::Error),
}

/// The writer task; `task` is made by the spawner, so its cleanup runs however the task ends:
/// returning, panicking, or dropped unfinished (aborted, its runtime shut down), even before
/// its first poll.
pub(super) async fn run(mut task: Cleanup) {
    let Cleanup { shared, rx, wr } = &mut task;
    let Some(wr) = wr.as_mut() else { return };
    let stop = serve(shared, rx, wr).await;
    match &stop {
        Stop::Closed => tracing::debug!("writer stopped: connection closed"),
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
pub(super) struct Cleanup {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Outbound>,
    wr: Option<OwnedWriteHalf>,
}

impl Cleanup {
    pub(super) const fn new(
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Outbound>,
        wr: OwnedWriteHalf,
    ) -> Self {
        Self {
            shared,
            rx,
            wr: Some(wr),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.mark_closed();
        // Frames still queued were never written: fail their waiters with `written: false`.
        self.rx.close();
        let mut unwritten = 0usize;
        while let Ok(out) = self.rx.try_recv() {
            unwritten += 1;
            if let Kind::Request { opaque, id } = out.kind {
                shared.pending.fail(
                    opaque,
                    id,
                    RemotingError::ConnectionClosed {
                        addr: shared.opts.addr.clone(),
                        written: false,
                    },
                );
            }
            // Oneway: dropping the ack tells the caller; its state is still QUEUED (not written).
        }
        let failed = shared
            .pending
            .fail_all(|written| RemotingError::ConnectionClosed {
                addr: shared.opts.addr.clone(),
                written,
            });
        tracing::debug!(unwritten, failed, "connection closed");
        drop(self.wr.take());
        shared.finished.cancel();
    }
}

async fn serve(
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
    wr: &mut OwnedWriteHalf,
) -> Stop {
    let idle = shared.opts.idle_timeout;
    let batch_limit = shared.opts.write_batch_bytes.max(1);
    let mut batch = BytesMut::with_capacity(16 * 1024);
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    // Queue budget of the frames taken off the channel, given back once they are written.
    let mut taken: usize = 0;
    let mut last_write = Instant::now();
    let mut idle_sleep = pin!(tokio::time::sleep(if idle.is_zero() { FAR } else { idle }));

    loop {
        let first = tokio::select! {
            biased;
            () = shared.closed() => return Stop::Closed,
            m = rx.recv() => match m {
                Some(m) => m,
                None => return Stop::Closed,
            },
            () = &mut idle_sleep, if !idle.is_zero() => {
                let last_read = shared.started
                    + Duration::from_millis(shared.last_read_ms.load(Ordering::Relaxed));
                let due = last_write.max(last_read) + idle;
                let now = Instant::now();
                if now < due {
                    idle_sleep.as_mut().reset(due);
                } else if shared.pending.len() > 0 {
                    // Requests still wait for replies (a slow peer): not idle; look again later.
                    idle_sleep.as_mut().reset(now + idle);
                } else {
                    return Stop::Idle;
                }
                continue;
            }
        };

        let mut next = Some(first);
        while let Some(out) = next.take() {
            taken += out.cost as usize;
            if !claim(shared, out.kind, &mut acks) {
                // Its caller gave up (timeout, drop): it must not be sent.
            } else {
                batch.extend_from_slice(&out.head);
                if !out.body.is_empty() {
                    // A large body: flush what is gathered, then write the body without copying.
                    if let Err(stop) = flush(shared, wr, &mut batch, &mut acks).await {
                        return stop;
                    }
                    if let Err(stop) = write(shared, wr, &out.body).await {
                        return stop;
                    }
                }
            }
            if batch.len() < batch_limit {
                next = rx.try_recv().ok();
            }
        }
        if let Err(stop) = flush(shared, wr, &mut batch, &mut acks).await {
            return stop;
        }
        shared.budget.add_permits(std::mem::take(&mut taken));
        last_write = Instant::now();
    }
}

/// A deadline far enough away to mean "never" (the idle timeout disabled).
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Marks the frame as handed to the socket; false when nobody wants it written any more.
fn claim(shared: &Shared, kind: Kind, acks: &mut Vec<oneshot::Sender<()>>) -> bool {
    match kind {
        Kind::Request { opaque, id } => shared.pending.claim_for_write(opaque, id),
        Kind::Oneway { state, ack } => {
            let won = state
                .compare_exchange(QUEUED, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if won {
                acks.push(ack);
            }
            won
        }
        Kind::Untracked => true,
    }
}

/// Writes the gathered frames and acknowledges the oneway ones among them.
async fn flush(
    shared: &Shared,
    wr: &mut OwnedWriteHalf,
    batch: &mut BytesMut,
    acks: &mut Vec<oneshot::Sender<()>>,
) -> Result<(), Stop> {
    if !batch.is_empty() {
        write(shared, wr, batch).await?;
        batch.clear();
    }
    for ack in acks.drain(..) {
        let _ = ack.send(());
    }
    Ok(())
}

/// Writes all of `buf`, unless the connection is closed meanwhile or the socket takes no byte
/// for the write timeout (a peer that stopped reading).
async fn write(shared: &Shared, wr: &mut OwnedWriteHalf, mut buf: &[u8]) -> Result<(), Stop> {
    let limit = shared.opts.write_timeout;
    while !buf.is_empty() {
        let mut attempt = pin!(wr.write(buf));
        // Most writes go through at once (the socket buffer has room): no timer for those.
        let written = match attempt.as_mut().now_or_never() {
            Some(r) => r,
            None => {
                let stalled = pin!(tokio::time::sleep(if limit.is_zero() {
                    FAR
                } else {
                    limit
                }));
                tokio::select! {
                    biased;
                    () = shared.closed() => return Err(Stop::Closed),
                    r = attempt => r,
                    () = stalled => return Err(Stop::WriteTimeout(limit)),
                }
            }
        };
        match written {
            Ok(0) => return Err(Stop::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => buf = &buf[n..],
            Err(e) => return Err(Stop::Io(e)),
        }
    }
    Ok(())
}
