//! Async back-pressure: a bound on the asynchronous sends in flight, by count and by body bytes
//! (Java 5's `backPressureForAsyncSendNum` / `backPressureForAsyncSendSize`, on by default here).
//!
//! Both bounds live in one atomic word (sends in the high half, bytes in the low half), so a send
//! takes and gives back its room with one compare-and-swap and one subtraction: no lock, no
//! reference count per send (two tokio semaphores cost two locked releases per send). Waiting is
//! the rare path: waiters queue in order behind a mutex, and while any waits, newcomers queue
//! too (first come, first served, as the semaphores were).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// The most sends the count bound can hold (the high half of the word).
const MAX_COUNT: usize = u32::MAX as usize;

/// The word for `count` sends and `bytes` bytes.
const fn word(count: u64, bytes: u64) -> u64 {
    (count << 32) | bytes
}

/// The two bounds.
#[derive(Debug)]
pub(crate) struct Backpressure {
    room: Arc<Room>,
}

#[derive(Debug)]
struct Room {
    /// Sends (high 32 bits) and bytes (low 32 bits) in flight.
    used: AtomicU64,
    max_count: u64,
    max_bytes: u64,
    /// Waiters queued (read by releases, which look at the queue only when some wait).
    waiting: AtomicUsize,
    /// Set by `close`: no more room is given.
    closed: AtomicBool,
    queue: Mutex<Queue>,
}

#[derive(Debug, Default)]
struct Queue {
    closed: bool,
    /// Weight and wake-up of each waiter, first come first.
    waiters: VecDeque<(u32, oneshot::Sender<()>)>,
}

/// Held while one asynchronous send is in flight; dropping it frees the room.
#[derive(Debug)]
pub(crate) struct Permit {
    room: Arc<Room>,
    weight: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.room.release(self.weight);
    }
}

impl Room {
    /// Takes room for one send of `weight` bytes if both bounds allow it.
    fn try_take(&self, weight: u32) -> bool {
        let add = word(1, u64::from(weight));
        // SeqCst: a waiter that just counted itself must see any room freed before a release
        // could see that count (see `acquire`).
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            let (count, bytes) = (used >> 32, used & u64::from(u32::MAX));
            if count >= self.max_count || bytes + u64::from(weight) > self.max_bytes {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + add,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    /// Gives back the room of one send, then lets in the waiters that now fit.
    fn release(&self, weight: u32) {
        self.used
            .fetch_sub(word(1, u64::from(weight)), Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.wake();
        }
    }

    /// Grants room to the waiters at the head of the queue, in order, while they fit.
    fn wake(&self) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((weight, _)) = q.waiters.front() {
            let weight = *weight;
            if !self.try_take(weight) {
                break;
            }
            if let Some((_, tx)) = q.waiters.pop_front() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                if tx.send(()).is_err() {
                    // The waiter left (timeout, drop) after queueing: its room goes back.
                    self.used
                        .fetch_sub(word(1, u64::from(weight)), Ordering::SeqCst);
                }
            }
        }
    }
}

impl Backpressure {
    /// Room for `max_count` sends (at most `u32::MAX`) and `max_bytes` body bytes (at most
    /// `u32::MAX`).
    pub(crate) fn new(max_count: usize, max_bytes: usize) -> Self {
        let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
        let max_count = max_count.min(MAX_COUNT);
        Self {
            room: Arc::new(Room {
                used: AtomicU64::new(0),
                max_count: max_count as u64,
                max_bytes: u64::from(max_bytes),
                waiting: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// The bounds `(sends, bytes)`.
    pub(crate) fn limits(&self) -> (usize, usize) {
        let r = &self.room;
        (
            usize::try_from(r.max_count).unwrap_or(usize::MAX),
            usize::try_from(r.max_bytes).unwrap_or(usize::MAX),
        )
    }

    /// Sends and bytes in flight now.
    pub(crate) fn in_flight(&self) -> (usize, usize) {
        let used = self.room.used.load(Ordering::Acquire);
        (
            usize::try_from(used >> 32).unwrap_or(usize::MAX),
            usize::try_from(used & u64::from(u32::MAX)).unwrap_or(usize::MAX),
        )
    }

    /// Bytes a body of `size` takes (a body larger than the bound takes the whole bound, so it
    /// can still go when nothing else is in flight).
    fn weight(&self, size: usize) -> u32 {
        let max = u32::try_from(self.room.max_bytes).unwrap_or(u32::MAX);
        u32::try_from(size).unwrap_or(u32::MAX).min(max)
    }

    fn permit(&self, weight: u32) -> Permit {
        Permit {
            room: Arc::clone(&self.room),
            weight,
        }
    }

    /// Waits for room for one send of `size` bytes (first come, first served); `None` once
    /// closed.
    pub(crate) async fn acquire(&self, size: usize) -> Option<Permit> {
        let weight = self.weight(size);
        let room = &self.room;
        let rx = {
            let mut q = room.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if q.closed {
                return None;
            }
            // Counted before the room is looked at: a release that misses this count freed
            // its room before the look below, which then sees it.
            room.waiting.fetch_add(1, Ordering::SeqCst);
            if q.waiters.is_empty() && room.try_take(weight) {
                room.waiting.fetch_sub(1, Ordering::SeqCst);
                return Some(self.permit(weight));
            }
            let (tx, rx) = oneshot::channel();
            q.waiters.push_back((weight, tx));
            rx
        };
        let mut waiter = Waiter { rx, room, weight };
        // Once granted, the room is the permit's (the waiter's drop then finds nothing to give
        // back: the grant was taken).
        match (&mut waiter.rx).await {
            Ok(()) => Some(self.permit(weight)),
            Err(_) => None,
        }
    }

    /// Wakes every waiter with `None` (shutdown).
    pub(crate) fn close(&self) {
        let room = &self.room;
        let mut q = room.queue.lock().unwrap_or_else(PoisonError::into_inner);
        q.closed = true;
        room.closed.store(true, Ordering::SeqCst);
        let n = q.waiters.len();
        q.waiters.clear();
        room.waiting.fetch_sub(n, Ordering::SeqCst);
    }

    /// Room for one send of `size` bytes now, or `None` when full (or when others wait).
    pub(crate) fn try_acquire(&self, size: usize) -> Option<Permit> {
        let weight = self.weight(size);
        let room = &self.room;
        if room.waiting.load(Ordering::SeqCst) > 0
            || room.closed.load(Ordering::Relaxed)
            || !room.try_take(weight)
        {
            return None;
        }
        Some(self.permit(weight))
    }
}

/// A queued wait; dropped before its grant is taken (timeout, the caller's future dropped), it
/// gives back a grant that raced the drop. Its queue entry, if still there, is skipped by the
/// next wake (the send to it fails).
struct Waiter<'a> {
    rx: oneshot::Receiver<()>,
    room: &'a Room,
    weight: u32,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.room.release(self.weight);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bounds_by_count_and_by_bytes() {
        let bp = Backpressure::new(2, 100);
        let a = bp.try_acquire(60).expect("room");
        assert!(bp.try_acquire(60).is_none(), "bytes full");
        let b = bp.try_acquire(40).expect("room");
        assert_eq!(bp.in_flight(), (2, 100));
        assert!(bp.try_acquire(0).is_none(), "count full");
        drop(a);
        assert_eq!(bp.in_flight(), (1, 40));
        drop(b);
        assert_eq!(bp.in_flight(), (0, 0));
        let huge = bp
            .try_acquire(10_000)
            .expect("an oversized body takes the whole bound");
        assert_eq!(bp.in_flight(), (1, 100));
        drop(huge);
        assert_eq!(bp.limits(), (2, 100));
    }

    #[test]
    fn bounds_above_the_word_are_capped() {
        let bp = Backpressure::new(usize::MAX, usize::MAX);
        assert_eq!(bp.limits(), (MAX_COUNT, u32::MAX as usize));
        let a = bp.try_acquire(usize::MAX).expect("room");
        assert_eq!(bp.in_flight(), (1, u32::MAX as usize));
        assert!(bp.try_acquire(1).is_none(), "bytes full");
        drop(a);
        assert_eq!(bp.in_flight(), (0, 0));
    }

    #[tokio::test]
    async fn waiters_wake_when_room_frees_or_on_close() {
        let bp = Arc::new(Backpressure::new(1, 10));
        let held = bp.acquire(5).await.expect("room");
        let waiter = tokio::spawn({
            let bp = Arc::clone(&bp);
            async move { bp.acquire(5).await.is_some() }
        });
        tokio::task::yield_now().await;
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(true))));
        assert_eq!(bp.in_flight(), (0, 0), "the waiter's permit was dropped");
        let _held = bp.acquire(1).await.expect("room");
        let waiter = tokio::spawn({
            let bp = Arc::clone(&bp);
            async move { bp.acquire(1).await.is_some() }
        });
        tokio::task::yield_now().await;
        bp.close();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(false))));
        assert!(bp.acquire(0).await.is_none(), "closed");
        assert!(bp.try_acquire(0).is_none(), "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_go_in_order_and_newcomers_queue_behind_them() {
        let bp = Arc::new(Backpressure::new(10, 10));
        let big = bp.try_acquire(10).expect("room");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, size) in [(0, 8), (1, 1), (2, 1)] {
            let (bp, order) = (Arc::clone(&bp), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let p = bp.acquire(size).await.expect("room");
                order.lock().expect("lock").push(i);
                tokio::time::sleep(Duration::from_millis(10)).await;
                drop(p);
            }));
            tokio::task::yield_now().await;
        }
        assert!(
            bp.try_acquire(1).is_none(),
            "a newcomer does not pass the queue"
        );
        drop(big);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("done")
                .expect("task");
        }
        assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2]);
        assert_eq!(bp.in_flight(), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_no_room_taken() {
        let bp = Arc::new(Backpressure::new(1, 10));
        let held = bp.try_acquire(1).expect("room");
        let gave_up = tokio::time::timeout(Duration::from_millis(5), bp.acquire(1)).await;
        assert!(gave_up.is_err(), "no room in time");
        drop(held);
        assert_eq!(bp.in_flight(), (0, 0), "the abandoned wait took nothing");
        let again = bp.try_acquire(1).expect("room again");
        drop(again);
        assert_eq!(bp.in_flight(), (0, 0));
    }

    #[test]
    fn concurrent_takes_and_releases_never_pass_the_bounds() {
        let bp = Arc::new(Backpressure::new(3, 30));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let bp = Arc::clone(&bp);
                std::thread::spawn(move || {
                    let mut max = (0, 0);
                    for i in 0..20_000usize {
                        if let Some(p) = bp.try_acquire((i + t) % 12) {
                            let (c, b) = bp.in_flight();
                            max = (max.0.max(c), max.1.max(b));
                            drop(p);
                        }
                    }
                    max
                })
            })
            .collect();
        for t in threads {
            let (c, b) = t.join().expect("thread");
            assert!(c <= 3 && b <= 30, "in flight {c} sends, {b} bytes");
        }
        assert_eq!(bp.in_flight(), (0, 0));
    }
}
