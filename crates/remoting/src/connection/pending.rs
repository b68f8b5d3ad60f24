//! The correlation table of one connection: opaque → waiter, with an RAII guard, and the
//! waiters' deadlines (expired by the connection's timer task, see [`super::timer`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use super::deadlines::{Deadlines, Due};
use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// What a waiter receives: the reply, or the reason there will be none.
pub(crate) type Reply = Result<RemotingCommand, RemotingError>;

/// A completion, called exactly once with the outcome by whoever ends the request: the reader
/// (the reply), the timer (the timeout), or the writer (the connection failed). Dropped
/// uncalled, it reports [`RemotingError::Shutdown`] (as [`Callback`](crate::client::Callback)
/// does).
pub(crate) trait Complete: Send {
    /// Ends the request with `reply` (in place: the completion's state is not moved out of
    /// its box to be called, issue 13).
    fn complete(self: Box<Self>, reply: Reply);
}

/// A request's completion, as the table keeps it.
pub(crate) type OnReply = Box<dyn Complete>;

/// Where a waiter's outcome goes.
enum Slot {
    /// To a future waiting on the channel (`invoke_sync`, `ResponseFuture`).
    Channel(oneshot::Sender<Reply>),
    /// To a callback, called where the outcome is known (on a connection task).
    Callback(OnReply),
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Channel(_) => "Channel",
            Self::Callback(_) => "Callback",
        })
    }
}

/// One registered request.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Unique per table: tells this waiter from a later one under the same (wrapped) opaque.
    id: u64,
    slot: Slot,
    /// Set by the writer just before the frame goes to the socket.
    written: AtomicBool,
    /// What a timeout reports (the deadline itself is in the table's deadline queue).
    timeout: Duration,
    /// Whether the connection closes when this request times out (sync calls, per
    /// `close_on_timeout`).
    close_on_timeout: bool,
}

impl Waiter {
    /// Whether its frame was handed to the socket.
    pub(crate) fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    /// Delivers the outcome (a channel's receiver may be gone: nothing to do then). A
    /// callback that panics is caught and logged: it must not end the connection task that
    /// called it.
    pub(crate) fn deliver(self, reply: Reply) {
        match self.slot {
            Slot::Channel(tx) => {
                let _ = tx.send(reply);
            }
            Slot::Callback(f) => {
                let called =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.complete(reply)));
                if called.is_err() {
                    tracing::error!("a request's completion callback panicked (caught)");
                }
            }
        }
    }
}

/// A waiter removed by its deadline, for the timer to fail.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) opaque: i32,
    pub(crate) waiter: Waiter,
}

impl Expired {
    /// The timeout error of this waiter, on the connection to `addr`.
    pub(crate) fn error(&self, addr: &str) -> RemotingError {
        RemotingError::Timeout {
            addr: addr.to_owned(),
            opaque: self.opaque,
            after: self.waiter.timeout,
            written: self.waiter.written(),
        }
    }

    /// Whether the connection closes over it.
    pub(crate) const fn closes(&self) -> bool {
        self.waiter.close_on_timeout
    }
}

/// Hashes an opaque with a multiply (opaques are sequential; the map takes its control bytes
/// from the high bits).
#[derive(Default)]
pub(crate) struct OpaqueHasher(u64);

impl Hasher for OpaqueHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i32(&mut self, i: i32) {
        self.0 = u64::from(i as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map = HashMap<i32, Waiter, BuildHasherDefault<OpaqueHasher>>;

/// The map and the deadlines of its entries, under one lock.
#[derive(Debug, Default)]
struct Table {
    map: Map,
    deadlines: Deadlines,
}

impl Table {
    /// Drops the deadlines of entries that are gone from the fronts of the queue.
    fn trim(&mut self) {
        let Self { map, deadlines } = self;
        deadlines.trim(map.len(), |d| is_live(map, d));
    }
}

/// Whether the waiter a deadline belongs to is still in the map.
fn is_live(map: &Map, due: &Due) -> bool {
    map.get(&due.opaque).is_some_and(|w| w.id == due.id)
}

/// opaque → waiter. Entries leave by reply, by [`PendingGuard`] drop (timeout, cancellation), or
/// by [`fail_all`](Self::fail_all) when the connection dies.
///
/// One map behind one mutex: each operation holds it for a hash lookup only (a reply is sent
/// after the lock is released), and the callers, the writer and the reader of one connection
/// rarely meet there. (A sharded map cost more per operation than the lock.)
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    map: Mutex<Table>,
    /// Entry count kept beside the map (`DashMap::len` locks every shard). Raised before an
    /// entry becomes visible and lowered after it left, so it may briefly over-count but never
    /// wraps below zero.
    count: AtomicUsize,
    next_id: AtomicU64,
    /// Set while someone waits for the table to empty (a draining connection): only then does
    /// a removal that empties it notify [`idle`](Self::idle).
    watch_idle: AtomicBool,
    idle: Notify,
    /// Wakes the connection's timer when a deadline earlier than the one it sleeps until
    /// arrives.
    timer: Notify,
}

impl PendingTable {
    fn map(&self) -> MutexGuard<'_, Table> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `opaque` until `deadline` (then the timer fails it with a timeout reporting
    /// `timeout`, closing the connection when `close_on_timeout`); the returned guard removes
    /// the entry when dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        opaque: i32,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> (oneshot::Receiver<Reply>, PendingGuard) {
        let (tx, rx) = oneshot::channel();
        let id = self.insert(
            opaque,
            Slot::Channel(tx),
            deadline,
            timeout,
            close_on_timeout,
        );
        (
            rx,
            PendingGuard {
                table: Arc::clone(self),
                opaque,
                id,
                armed: true,
            },
        )
    }

    /// Registers `opaque` until `deadline` with a callback that receives the outcome (never
    /// closing the connection on timeout); returns the waiter's id. Nothing removes the entry
    /// but its outcome.
    pub(crate) fn register_callback(
        &self,
        opaque: i32,
        deadline: Instant,
        timeout: Duration,
        callback: OnReply,
    ) -> u64 {
        self.insert(opaque, Slot::Callback(callback), deadline, timeout, false)
    }

    fn insert(
        &self,
        opaque: i32,
        slot: Slot,
        deadline: Instant,
        timeout: Duration,
        close_on_timeout: bool,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Counted before it is visible: a concurrent removal cannot decrement first.
        self.count.fetch_add(1, Ordering::Relaxed);
        let waiter = Waiter {
            id,
            slot,
            written: AtomicBool::new(false),
            timeout,
            close_on_timeout,
        };
        let (previous, wake) = {
            let mut table = self.map();
            let previous = table.map.insert(opaque, waiter);
            let wake = table.deadlines.push(Due {
                at: deadline,
                id,
                opaque,
            });
            (previous, wake)
        };
        if wake {
            self.timer.notify_one();
        }
        if previous.is_some() {
            // An opaque 2^32 calls old is still waiting: the newer call takes the slot; the
            // old waiter's channel closes (its guard will not touch the new entry).
            self.count.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(opaque, "opaque reused while a request was still pending");
        }
        // A displaced waiter is dropped here, outside the lock (its channel closes; its
        // callback reports `Shutdown`).
        drop(previous);
        id
    }

    /// Completes the waiter of `opaque`; false when nobody waits (timed out or unknown).
    pub(crate) fn complete(&self, opaque: i32, reply: Reply) -> bool {
        match self.take_entry(opaque, None) {
            Some(w) => {
                w.deliver(reply);
                true
            }
            None => false,
        }
    }

    /// Marks the frame of waiter `id` (under `opaque`) as handed to the socket; false when that
    /// waiter is gone (the writer then skips the frame: nobody waits for it, and it must not be
    /// sent after a timeout said it was not).
    pub(crate) fn claim_for_write(&self, opaque: i32, id: u64) -> bool {
        match self.map().map.get(&opaque) {
            Some(w) if w.id == id => {
                w.written.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// Fails waiter `id` under `opaque` (its frame was never written).
    pub(crate) fn fail(&self, opaque: i32, id: u64, err: RemotingError) {
        if let Some(w) = self.take_entry(opaque, Some(id)) {
            w.deliver(Err(err));
        }
    }

    /// Fails every waiter with the error `make(written)` builds for it.
    pub(crate) fn fail_all(&self, make: impl Fn(bool) -> RemotingError) -> usize {
        let taken: Vec<Waiter> = {
            let mut table = self.map();
            table.deadlines.clear();
            table.map.drain().map(|(_, w)| w).collect()
        };
        let n = taken.len();
        if n > 0 {
            self.left(n);
        }
        for w in taken {
            let err = make(w.written());
            w.deliver(Err(err));
        }
        n
    }

    /// Removes every waiter whose deadline is at or before `now` into `expired` (the timer
    /// fails them outside the lock) and returns the next deadline, which the timer then sleeps
    /// until.
    pub(crate) fn expire(&self, now: Instant, expired: &mut Vec<Expired>) -> Option<Instant> {
        let next = {
            let mut table = self.map();
            let Table { map, deadlines } = &mut *table;
            while let Some(due) = deadlines.pop_due(now) {
                if is_live(map, &due) {
                    if let Some(waiter) = map.remove(&due.opaque) {
                        expired.push(Expired {
                            opaque: due.opaque,
                            waiter,
                        });
                    }
                }
            }
            table.trim();
            table.deadlines.arm()
        };
        if !expired.is_empty() {
            self.left(expired.len());
        }
        next
    }

    /// Resolves when a deadline earlier than the timer's arrived (or one arrived while the
    /// timer was not waiting: the wake-up is kept).
    pub(crate) fn timer_woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.timer.notified()
    }

    /// Deadlines kept (live or not), for tests of the queue's bound.
    #[cfg(test)]
    pub(crate) fn deadlines_len(&self) -> usize {
        self.map().deadlines.len()
    }

    /// Number of waiting requests.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Removes the entry of `opaque`; with `Some(id)` only if it is that waiter's.
    fn take_entry(&self, opaque: i32, id: Option<u64>) -> Option<Waiter> {
        let w = {
            let mut table = self.map();
            let w = match id {
                Some(id) if table.map.get(&opaque)?.id != id => return None,
                _ => table.map.remove(&opaque)?,
            };
            let Table { map, deadlines } = &mut *table;
            deadlines.completed(w.id, map.len(), |d| is_live(map, d));
            w
        };
        self.left(1);
        Some(w)
    }

    /// Counts `n` entries gone; notifies a watcher when that emptied the table.
    fn left(&self, n: usize) {
        let before = self.count.fetch_sub(n, Ordering::Relaxed);
        if before == n && self.watch_idle.load(Ordering::Relaxed) {
            self.idle.notify_waiters();
        }
    }

    /// Resolves once the table may have emptied (check [`len`](Self::len) after; create and
    /// `enable` the future before checking, so that no emptying is missed). Turns on the
    /// notification, which costs nothing until then.
    pub(crate) fn emptied(&self) -> tokio::sync::futures::Notified<'_> {
        self.watch_idle.store(true, Ordering::Relaxed);
        self.idle.notified()
    }

    /// Removes waiter `id` under `opaque`, returning whether its frame had been written.
    fn remove(&self, opaque: i32, id: u64) -> Option<bool> {
        self.take_entry(opaque, Some(id)).map(|w| w.written())
    }
}

/// Removes its entry on drop (a dropped future, a timeout or a failed send all clean up).
#[derive(Debug)]
pub(crate) struct PendingGuard {
    table: Arc<PendingTable>,
    opaque: i32,
    id: u64,
    armed: bool,
}

impl PendingGuard {
    /// The waiter's id (the writer claims the frame with it).
    pub(crate) const fn id(&self) -> u64 {
        self.id
    }

    /// The entry is gone already (the reply was delivered): nothing to remove.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Removes the entry now; `Some(written)` if it was still there.
    #[cfg(test)]
    pub(crate) fn take(&mut self) -> Option<bool> {
        self.armed = false;
        self.table.remove(self.opaque, self.id)
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.armed {
            self.table.remove(self.opaque, self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(t: &Arc<PendingTable>, opaque: i32) -> (oneshot::Receiver<Reply>, PendingGuard) {
        t.register(
            opaque,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
            false,
        )
    }

    #[test]
    fn guard_drop_removes_the_entry() {
        let t = Arc::new(PendingTable::default());
        let (_rx, g) = reg(&t, 1);
        assert_eq!(t.len(), 1);
        drop(g);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn complete_then_disarm() {
        let t = Arc::new(PendingTable::default());
        let (mut rx, mut g) = reg(&t, 7);
        assert!(t.complete(7, Err(RemotingError::Shutdown)));
        assert!(!t.complete(7, Err(RemotingError::Shutdown)));
        g.disarm();
        drop(g);
        assert!(matches!(rx.try_recv(), Ok(Err(RemotingError::Shutdown))));
    }

    #[test]
    fn fail_all_reports_written_per_entry() {
        let t = Arc::new(PendingTable::default());
        let (mut a, ga) = reg(&t, 1);
        let (mut b, _gb) = reg(&t, 2);
        assert!(t.claim_for_write(1, ga.id()));
        let n = t.fail_all(|written| RemotingError::ConnectionClosed {
            addr: "x".into(),
            written,
        });
        assert_eq!(n, 2);
        assert_eq!(t.len(), 0);
        assert!(matches!(
            a.try_recv(),
            Ok(Err(RemotingError::ConnectionClosed { written: true, .. }))
        ));
        assert!(matches!(
            b.try_recv(),
            Ok(Err(RemotingError::ConnectionClosed { written: false, .. }))
        ));
        assert!(
            !t.claim_for_write(1, ga.id()),
            "a removed entry is not written"
        );
    }

    #[test]
    fn an_old_guard_does_not_remove_a_newer_entry_with_the_same_opaque() {
        let t = Arc::new(PendingTable::default());
        let (_old_rx, old) = reg(&t, 5);
        // 2^32 calls later the opaque comes round again while the old call still waits
        let (mut new_rx, new) = reg(&t, 5);
        assert_eq!(t.len(), 1);
        assert!(
            !t.claim_for_write(5, old.id()),
            "the old frame is not the new one"
        );
        assert!(t.claim_for_write(5, new.id()));
        drop(old);
        assert_eq!(t.len(), 1, "the old guard removed the new entry");
        assert!(t.complete(5, Err(RemotingError::Shutdown)));
        assert!(matches!(
            new_rx.try_recv(),
            Ok(Err(RemotingError::Shutdown))
        ));
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn the_count_never_wraps_under_concurrent_removal() {
        // One thread registers and drops; another fails everything and reads the count. A
        // removal that ran between an insert and its increment used to wrap the count.
        let t = Arc::new(PendingTable::default());
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut max = 0;
                let mut rounds = 0u32;
                while !stop.load(Ordering::Relaxed) && rounds < 2_000_000 {
                    t.fail_all(|_| RemotingError::Shutdown);
                    max = max.max(t.len());
                    rounds += 1;
                }
                max
            })
        };
        for i in 0..200_000 {
            let (_rx, g) = reg(&t, i % 4);
            drop(g);
        }
        stop.store(true, Ordering::Relaxed);
        let max = reader.join().expect("reader thread");
        assert!(max <= 4, "pending count read {max}");
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn take_reports_written() {
        let t = Arc::new(PendingTable::default());
        let (_rx, mut g) = reg(&t, 3);
        assert!(t.claim_for_write(3, g.id()));
        assert_eq!(g.take(), Some(true));
        assert_eq!(g.take(), None);
        assert_eq!(t.len(), 0);
    }
}
