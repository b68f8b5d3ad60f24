//! The correlation table of one connection: opaque → waiter, with an RAII guard.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, Notify};

use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// What a waiter receives: the reply, or the reason there will be none.
pub(crate) type Reply = Result<RemotingCommand, RemotingError>;

/// One registered request.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// Unique per table: tells this waiter from a later one under the same (wrapped) opaque.
    id: u64,
    tx: oneshot::Sender<Reply>,
    /// Set by the writer just before the frame goes to the socket.
    written: AtomicBool,
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

/// opaque → waiter. Entries leave by reply, by [`PendingGuard`] drop (timeout, cancellation), or
/// by [`fail_all`](Self::fail_all) when the connection dies.
///
/// One map behind one mutex: each operation holds it for a hash lookup only (a reply is sent
/// after the lock is released), and the callers, the writer and the reader of one connection
/// rarely meet there. (A sharded map cost more per operation than the lock.)
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    map: Mutex<Map>,
    /// Entry count kept beside the map (`DashMap::len` locks every shard). Raised before an
    /// entry becomes visible and lowered after it left, so it may briefly over-count but never
    /// wraps below zero.
    count: AtomicUsize,
    next_id: AtomicU64,
    /// Set while someone waits for the table to empty (a draining connection): only then does
    /// a removal that empties it notify [`idle`](Self::idle).
    watch_idle: AtomicBool,
    idle: Notify,
}

impl PendingTable {
    fn map(&self) -> MutexGuard<'_, Map> {
        // Nothing panics while holding it; a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `opaque`; the returned guard removes the entry when dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        opaque: i32,
    ) -> (oneshot::Receiver<Reply>, PendingGuard) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Counted before it is visible: a concurrent removal cannot decrement first.
        self.count.fetch_add(1, Ordering::Relaxed);
        let previous = self.map().insert(
            opaque,
            Waiter {
                id,
                tx,
                written: AtomicBool::new(false),
            },
        );
        if previous.is_some() {
            // An opaque 2^32 calls old is still waiting: the newer call takes the slot; the
            // old waiter's channel closes (its guard will not touch the new entry).
            self.count.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(opaque, "opaque reused while a request was still pending");
        }
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

    /// Completes the waiter of `opaque`; false when nobody waits (timed out or unknown).
    pub(crate) fn complete(&self, opaque: i32, reply: Reply) -> bool {
        match self.take_entry(opaque, None) {
            Some(w) => {
                // The receiver may have been dropped just now; nothing to do then.
                let _ = w.tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Marks the frame of waiter `id` (under `opaque`) as handed to the socket; false when that
    /// waiter is gone (the writer then skips the frame: nobody waits for it, and it must not be
    /// sent after a timeout said it was not).
    pub(crate) fn claim_for_write(&self, opaque: i32, id: u64) -> bool {
        match self.map().get(&opaque) {
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
            let _ = w.tx.send(Err(err));
        }
    }

    /// Fails every waiter with the error `make(written)` builds for it.
    pub(crate) fn fail_all(&self, make: impl Fn(bool) -> RemotingError) -> usize {
        let taken: Vec<Waiter> = self.map().drain().map(|(_, w)| w).collect();
        let n = taken.len();
        if n > 0 {
            self.left(n);
        }
        for w in taken {
            let written = w.written.load(Ordering::Acquire);
            let _ = w.tx.send(Err(make(written)));
        }
        n
    }

    /// Number of waiting requests.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Removes the entry of `opaque`; with `Some(id)` only if it is that waiter's.
    fn take_entry(&self, opaque: i32, id: Option<u64>) -> Option<Waiter> {
        let w = {
            let mut map = self.map();
            match id {
                Some(id) if map.get(&opaque)?.id != id => return None,
                _ => map.remove(&opaque)?,
            }
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
        self.take_entry(opaque, Some(id))
            .map(|w| w.written.load(Ordering::Acquire))
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

    #[test]
    fn guard_drop_removes_the_entry() {
        let t = Arc::new(PendingTable::default());
        let (_rx, g) = t.register(1);
        assert_eq!(t.len(), 1);
        drop(g);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn complete_then_disarm() {
        let t = Arc::new(PendingTable::default());
        let (mut rx, mut g) = t.register(7);
        assert!(t.complete(7, Err(RemotingError::Shutdown)));
        assert!(!t.complete(7, Err(RemotingError::Shutdown)));
        g.disarm();
        drop(g);
        assert!(matches!(rx.try_recv(), Ok(Err(RemotingError::Shutdown))));
    }

    #[test]
    fn fail_all_reports_written_per_entry() {
        let t = Arc::new(PendingTable::default());
        let (mut a, ga) = t.register(1);
        let (mut b, _gb) = t.register(2);
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
        let (_old_rx, old) = t.register(5);
        // 2^32 calls later the opaque comes round again while the old call still waits
        let (mut new_rx, new) = t.register(5);
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
            let (_rx, g) = t.register(i % 4);
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
        let (_rx, mut g) = t.register(3);
        assert!(t.claim_for_write(3, g.id()));
        assert_eq!(g.take(), Some(true));
        assert_eq!(g.take(), None);
        assert_eq!(t.len(), 0);
    }
}
