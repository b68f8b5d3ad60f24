//! [`InFlight`]: the bound on a client's async (or oneway) calls in flight (Java's
//! `semaphoreAsync` / `semaphoreOneway`).
//!
//! A call takes its slot with one compare-and-swap and gives it back with one subtraction (a
//! tokio semaphore's release takes its waiter lock every time). Waiting is the rare path: waiters
//! queue in order behind a mutex, and while any waits, newcomers queue too (first come, first
//! served, as the fair semaphore of Java).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// At most `max` calls in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    used: AtomicUsize,
    max: usize,
    /// Waiters queued (releases look at the queue only when some wait).
    waiting: AtomicUsize,
    closed: AtomicBool,
    queue: Mutex<VecDeque<oneshot::Sender<()>>>,
}

/// One call's slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.release();
    }
}

/// Why there is no slot now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// Every slot is taken (or others wait for one).
    Full,
    /// Closed (the client shut down).
    Closed,
}

impl Shared {
    fn try_take(&self) -> bool {
        // SeqCst: a waiter that just counted itself must see a slot freed before a release
        // could see that count (see `InFlight::take`).
        let mut used = self.used.load(Ordering::SeqCst);
        loop {
            if used >= self.max {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn release(&self) {
        self.used.fetch_sub(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.wake();
        }
    }

    /// Hands free slots to the waiters at the head of the queue, in order.
    fn wake(&self) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        while !q.is_empty() && self.try_take() {
            if let Some(tx) = q.pop_front() {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                if tx.send(()).is_err() {
                    // That waiter left after queueing: the slot goes back.
                    self.used.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

impl InFlight {
    /// Room for `max` calls.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                used: AtomicUsize::new(0),
                max,
                waiting: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                queue: Mutex::new(VecDeque::new()),
            }),
        }
    }

    fn slot(&self) -> Slot {
        Slot {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A slot now, if one is free and nobody waits for one.
    pub(crate) fn try_take(&self) -> Result<Slot, NoSlot> {
        let s = &self.shared;
        if s.closed.load(Ordering::Acquire) {
            return Err(NoSlot::Closed);
        }
        if s.waiting.load(Ordering::SeqCst) > 0 || !s.try_take() {
            return Err(NoSlot::Full);
        }
        Ok(self.slot())
    }

    /// Waits for a slot (first come, first served); `None` once closed.
    pub(crate) async fn take(&self) -> Option<Slot> {
        let s = &self.shared;
        let rx = {
            let mut q = s.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if s.closed.load(Ordering::Acquire) {
                return None;
            }
            // Counted before the slots are looked at: a release that misses this count freed
            // its slot before the look below, which then sees it.
            s.waiting.fetch_add(1, Ordering::SeqCst);
            if q.is_empty() && s.try_take() {
                s.waiting.fetch_sub(1, Ordering::SeqCst);
                return Some(self.slot());
            }
            let (tx, rx) = oneshot::channel();
            q.push_back(tx);
            rx
        };
        let mut waiter = Waiter { rx, shared: s };
        match (&mut waiter.rx).await {
            Ok(()) => Some(self.slot()),
            Err(_) => None,
        }
    }

    /// Fails every waiter and every later take.
    pub(crate) fn close(&self) {
        let s = &self.shared;
        let mut q = s.queue.lock().unwrap_or_else(PoisonError::into_inner);
        s.closed.store(true, Ordering::Release);
        let n = q.len();
        q.clear();
        s.waiting.fetch_sub(n, Ordering::SeqCst);
    }

    /// Calls in flight now.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.shared.used.load(Ordering::Acquire)
    }
}

/// A queued wait; dropped before its grant is taken (timeout, the future dropped), it gives
/// back a grant that raced the drop.
struct Waiter<'a> {
    rx: oneshot::Receiver<()>,
    shared: &'a Shared,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.shared.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bounds_the_count() {
        let f = InFlight::new(2);
        let a = f.try_take().expect("slot");
        let b = f.try_take().expect("slot");
        assert_eq!(f.try_take().err(), Some(NoSlot::Full));
        drop(a);
        let c = f.try_take().expect("slot");
        drop((b, c));
        assert_eq!(f.used(), 0);
        f.close();
        assert_eq!(f.try_take().err(), Some(NoSlot::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_go_in_order_give_up_cleanly_and_fail_on_close() {
        let f = Arc::new(InFlight::new(1));
        let held = f.try_take().expect("slot");
        let gave_up = tokio::time::timeout(Duration::from_millis(5), f.take()).await;
        assert!(gave_up.is_err(), "no slot in time");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (f, order) = (Arc::clone(&f), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let slot = f.take().await.expect("slot");
                order.lock().expect("lock").push(i);
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(slot);
            }));
            tokio::task::yield_now().await;
        }
        assert_eq!(
            f.try_take().err(),
            Some(NoSlot::Full),
            "no passing the queue"
        );
        drop(held);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("done")
                .expect("task");
        }
        assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2]);
        assert_eq!(f.used(), 0, "the abandoned wait took nothing");
        let held = f.take().await.expect("slot");
        let waiter = tokio::spawn({
            let f = Arc::clone(&f);
            async move { f.take().await.is_some() }
        });
        tokio::task::yield_now().await;
        f.close();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(got, Ok(Ok(false))));
        drop(held);
        assert_eq!(f.used(), 0);
    }
}
