//! Where an asynchronous send's first answer meets the send's state.
//!
//! A send's state is parked in a [`Rendezvous`] (built there) before its request goes to the
//! connection, whose answer may come at any time after (from the connection's task); shutdown
//! may cancel the wait in between. The first answer (or cancellation) settles the send,
//! exactly once, on its own thread; any later one is dropped. The state is settled where it
//! waits, under the rendezvous' lock, not moved out (it is large: moving it was a tenth of an
//! asynchronous send's copies, issue 13).
//!
//! The rendezvous is also where the send's outcome waits for its receiver (its outlet: the
//! [`SendFuture`](crate::SendFuture) polls it): one allocation per send holds the state, the
//! outcome and the receiver's waker, and the receiver, which usually drops the last handle,
//! frees what the send left there.
//!
//! A [`Registry`] lists the rendezvous still waiting for their answer, so that a shutdown that
//! stops waiting ends them at once with a cancellation (the answer that comes later is ignored).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What waits for its answer in a [`Rendezvous`].
pub(crate) trait Settle: Send + 'static {
    /// The answer.
    type Answer: Send + 'static;

    /// What the rendezvous hands its receiver, once ([`Rendezvous::deliver`]).
    type Outcome: Send + 'static;

    /// Runs once, with the answer, on the state where it waits (`meeting`, which keeps what is
    /// left of it until the last handle goes: a handle may go with the outcome, so that its
    /// receiver frees it). It runs under the rendezvous' lock: it must not call back into its
    /// own rendezvous.
    fn settle(&mut self, answer: Self::Answer, meeting: &Arc<Rendezvous<Self>>)
    where
        Self: Sized;

    /// The answer a cancelled wait gets.
    fn cancelled() -> Self::Answer;
}

struct Slot<P: Settle> {
    /// The state: waiting for the answer, or what is left of it once settled.
    state: P,
    /// Settled: anything arriving now is dropped.
    over: bool,
}

/// Where the outcome waits for its receiver.
struct Outlet<T> {
    /// The outcome, until the receiver takes it.
    value: Option<T>,
    /// The receiver's, while it waits.
    waker: Option<Waker>,
    /// Delivered: a second delivery is dropped.
    delivered: bool,
}

/// The meeting point of one answer and one state, and of the outcome and its receiver. See the
/// [module docs](self).
pub(crate) struct Rendezvous<P: Settle> {
    slot: Mutex<Slot<P>>,
    /// Locked alone, or under the slot's lock (never the other way round).
    outlet: Mutex<Outlet<P::Outcome>>,
    /// Whether the launch was given up before it resolved (its future dropped, or shutdown's
    /// abort): a `Shutdown` answer then means a cancelled send, not a closed client.
    abandoned: AtomicBool,
}

impl<P: Settle> std::fmt::Debug for Rendezvous<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not `lock`: a waker woken by a settlement (which runs under the slot's lock) may
        // format this.
        let state = match self.slot.try_lock() {
            Ok(slot) => slot_state(&slot),
            Err(std::sync::TryLockError::Poisoned(p)) => slot_state(&p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => "settling",
        };
        f.debug_struct("Rendezvous").field("state", &state).finish()
    }
}

fn slot_state<P: Settle>(slot: &Slot<P>) -> &'static str {
    if slot.over {
        "over"
    } else {
        "parked"
    }
}

impl<P: Settle> Rendezvous<P> {
    /// A rendezvous where `state` waits (parked before its request is sent, so that the answer,
    /// however early, finds it): built in its place, not moved in after (it is large, issue 13).
    pub(crate) fn parked(state: P) -> Arc<Self> {
        Arc::new(Self {
            slot: Mutex::new(Slot { state, over: false }),
            outlet: Mutex::new(Outlet {
                value: None,
                waker: None,
                delivered: false,
            }),
            abandoned: AtomicBool::new(false),
        })
    }

    /// Hands `outcome` to the receiver (and wakes it); a second delivery is dropped. Returns
    /// whether this one was taken.
    pub(crate) fn deliver(&self, outcome: P::Outcome) -> bool {
        let waker = {
            let mut outlet = self.outlet_lock();
            if outlet.delivered {
                return false;
            }
            outlet.delivered = true;
            outlet.value = Some(outcome);
            outlet.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// The receiver's side of [`Rendezvous::deliver`]: the outcome once delivered (`None` when
    /// taken already), else pending (woken by the delivery).
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Option<P::Outcome>> {
        let mut outlet = self.outlet_lock();
        if outlet.delivered {
            return Poll::Ready(outlet.value.take());
        }
        match &outlet.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => outlet.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Whether the outcome was delivered.
    #[cfg(test)]
    pub(crate) fn delivered(&self) -> bool {
        self.outlet_lock().delivered
    }

    fn outlet_lock(&self) -> MutexGuard<'_, Outlet<P::Outcome>> {
        // Nothing that can panic runs under it.
        self.outlet.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state waiting here, under the lock (`None` when no state waits: it is
    /// settled, or it never came). `f` must not call back into this rendezvous.
    pub(crate) fn with_parked<R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        let mut slot = self.lock();
        (!slot.over).then(|| f(&mut slot.state))
    }

    /// Records that the launch was given up before it resolved.
    pub(crate) fn set_abandoned(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Whether [`Rendezvous::set_abandoned`] ran.
    pub(crate) fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// A settlement runs under this lock; one that panicked leaves the slot as it was, so a
    /// poisoned lock's content is as good as any (a slot still parked settles nothing twice:
    /// a settlement takes what it needs first, before anything that can panic).
    fn lock(&self) -> MutexGuard<'_, Slot<P>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the answer over: settles the parked state here, in place (what is left of it
    /// goes with the last handle). A second answer is dropped; returns whether this one was
    /// taken.
    pub(crate) fn answer(self: &Arc<Self>, answer: P::Answer) -> bool {
        let mut slot = self.lock();
        if slot.over {
            return false;
        }
        slot.state.settle(answer, self);
        slot.over = true;
        true
    }
}

/// What a [`Registry`] can end.
pub(crate) trait Cancel: Send + Sync {
    /// Ends the wait with a cancellation (nothing when already over).
    fn cancel(self: Arc<Self>);
}

impl<P: Settle> Cancel for Rendezvous<P> {
    fn cancel(self: Arc<Self>) {
        self.answer(P::cancelled());
    }
}

#[derive(Default)]
struct Table {
    entries: Vec<Option<Arc<dyn Cancel>>>,
    free: Vec<usize>,
    live: usize,
    closed: bool,
}

/// The rendezvous of one producer still waiting for their answer. See the [module docs](self).
#[derive(Default)]
pub(crate) struct Registry {
    table: Mutex<Table>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("waiting", &self.len())
            .finish()
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `waiting`; `None` once [`Registry::cancel_all`] ran (the caller cancels it then).
    pub(crate) fn insert(&self, waiting: Arc<dyn Cancel>) -> Option<usize> {
        let mut table = self.lock();
        if table.closed {
            return None;
        }
        table.live += 1;
        Some(match table.free.pop() {
            Some(key) => {
                table.entries[key] = Some(waiting);
                key
            }
            None => {
                table.entries.push(Some(waiting));
                table.entries.len() - 1
            }
        })
    }

    /// Takes the entry `key` off the list (nothing when `cancel_all` took it).
    pub(crate) fn remove(&self, key: usize) {
        let mut table = self.lock();
        let taken = table.entries.get_mut(key).and_then(Option::take);
        if let Some(taken) = taken {
            table.live -= 1;
            table.free.push(key);
            // Dropped outside the lock: it may be the last handle of a settled send.
            drop(table);
            drop(taken);
        }
    }

    /// How many wait.
    pub(crate) fn len(&self) -> usize {
        self.lock().live
    }

    /// Cancels every listed wait, and every later one as it is listed.
    pub(crate) fn cancel_all(&self) {
        let taken = {
            let mut table = self.lock();
            table.closed = true;
            table.live = 0;
            table.free.clear();
            std::mem::take(&mut table.entries)
        };
        let n = taken.iter().flatten().count();
        if n > 0 {
            tracing::debug!(n, "cancelling asynchronous sends waiting for their answer");
        }
        for waiting in taken.into_iter().flatten() {
            waiting.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Records what it settled with.
    struct Probe(Arc<Mutex<Vec<i32>>>);

    impl Settle for Probe {
        type Answer = i32;
        type Outcome = i32;

        fn settle(&mut self, answer: i32, _: &Arc<Rendezvous<Self>>) {
            self.0.lock().expect("lock").push(answer);
        }

        fn cancelled() -> i32 {
            -1
        }
    }

    fn probe() -> (Arc<Mutex<Vec<i32>>>, Probe) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        (Arc::clone(&seen), Probe(seen))
    }

    fn seen(s: &Arc<Mutex<Vec<i32>>>) -> Vec<i32> {
        s.lock().expect("lock").clone()
    }

    #[test]
    fn a_state_parked_from_the_start_is_reached_until_settled() {
        let (s, p) = probe();
        let r = Rendezvous::parked(p);
        assert_eq!(r.with_parked(|_| 5), Some(5));
        assert!(seen(&s).is_empty());
        assert!(r.answer(4));
        assert_eq!(seen(&s), vec![4]);
        assert_eq!(r.with_parked(|_| 5), None, "settled: nothing waits");
        assert!(!r.answer(6), "a second answer is dropped");
        Arc::clone(&r).cancel();
        assert_eq!(seen(&s), vec![4]);
    }

    #[test]
    fn what_is_left_of_a_settled_state_goes_with_the_last_handle() {
        /// Hands a handle of its rendezvous out when settled; records its own drop.
        struct Keep(
            std::sync::mpsc::Sender<Arc<Rendezvous<Keep>>>,
            Arc<AtomicUsize>,
        );
        impl Settle for Keep {
            type Answer = ();
            type Outcome = ();
            fn settle(&mut self, (): (), meeting: &Arc<Rendezvous<Self>>) {
                self.0.send(Arc::clone(meeting)).expect("receiver");
            }
            fn cancelled() {}
        }
        impl Drop for Keep {
            fn drop(&mut self) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        let r = Rendezvous::parked(Keep(tx, Arc::clone(&dropped)));
        assert!(r.answer(()));
        drop(r);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            0,
            "kept by the handed-out handle"
        );
        let handle = rx.try_recv().expect("a handle handed out");
        assert!(!handle.answer(()), "settled once");
        drop(handle);
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "freed with the last handle"
        );
    }

    #[test]
    fn cancel_all_ends_every_wait_once_and_every_later_insert_is_refused() {
        let registry = Registry::default();
        let mut probes = Vec::new();
        for i in 0..5 {
            let (s, p) = probe();
            let r = Rendezvous::parked(p);
            let key = registry.insert(Arc::clone(&r) as Arc<dyn Cancel>);
            assert_eq!(key, Some(i));
            probes.push((s, r, key));
        }
        // One ends by itself and leaves the list; its key is used again.
        assert!(probes[1].1.answer(11));
        registry.remove(1);
        assert_eq!(registry.len(), 4);
        let (s5, p5) = probe();
        let r5 = Rendezvous::parked(p5);
        assert_eq!(registry.insert(Arc::clone(&r5) as Arc<dyn Cancel>), Some(1));
        registry.cancel_all();
        assert_eq!(registry.len(), 0);
        assert_eq!(seen(&probes[0].0), vec![-1]);
        assert_eq!(seen(&probes[1].0), vec![11]);
        assert_eq!(seen(&s5), vec![-1]);
        // Removing after the cancel is harmless; inserting is refused.
        registry.remove(0);
        let (_, p6) = probe();
        assert_eq!(registry.insert(Rendezvous::parked(p6)), None);
    }

    #[test]
    fn answers_racing_cancels_settle_each_send_exactly_once() {
        let settled = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Settle for Count {
            type Answer = ();
            type Outcome = ();
            fn settle(&mut self, (): (), _: &Arc<Rendezvous<Self>>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn cancelled() {}
        }
        let n = 2000;
        let registry = Arc::new(Registry::default());
        let all: Vec<_> = (0..n)
            .map(|_| Rendezvous::parked(Count(Arc::clone(&settled))))
            .collect();
        for r in &all {
            assert!(registry.insert(Arc::clone(r) as Arc<dyn Cancel>).is_some());
        }
        let answers: Vec<_> = all.iter().map(Arc::clone).collect();
        let answering = std::thread::spawn(move || {
            for r in answers {
                r.answer(());
            }
        });
        registry.cancel_all();
        answering.join().expect("thread");
        assert_eq!(settled.load(Ordering::SeqCst), n);
    }
}
