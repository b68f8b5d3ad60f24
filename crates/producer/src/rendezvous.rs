//! Where an asynchronous send's first answer meets the send's state.
//!
//! A send parks its state here before its request goes to the connection, whose answer may
//! come at any time after (from the connection's task); shutdown may cancel the wait in
//! between. A [`Rendezvous`] holds whichever arrives first, the answer or the parked state;
//! whichever arrives second settles the send, exactly once, on its own thread (the
//! connection's task, or the caller's). A parked state is settled where it waits, under the
//! rendezvous' lock, not moved out (it is large: moving it was a tenth of an asynchronous
//! send's copies, issue 13).
//!
//! A [`Registry`] lists the rendezvous still waiting for their answer, so that a shutdown that
//! stops waiting ends them at once with a cancellation (the answer that comes later is ignored).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What waits for its answer in a [`Rendezvous`].
pub(crate) trait Settle: Send + 'static {
    /// The answer.
    type Answer: Send + 'static;

    /// Runs once, with the answer, on the state where it waits (which is dropped after). It
    /// runs under the rendezvous' lock: it must not call back into its own rendezvous.
    fn settle(&mut self, answer: Self::Answer);

    /// The answer a cancelled wait gets.
    fn cancelled() -> Self::Answer;
}

enum Slot<P: Settle> {
    /// Neither the answer nor the state is here yet.
    Launching,
    /// The answer came first.
    Answered(P::Answer),
    /// The state waits for the answer.
    Parked(P),
    /// Settled (or cancelled before either came): anything arriving now is dropped.
    Over,
}

/// The meeting point of one answer and one state. See the [module docs](self).
pub(crate) struct Rendezvous<P: Settle> {
    slot: Mutex<Slot<P>>,
    /// Whether the launch was given up before it resolved (its future dropped, or shutdown's
    /// abort): a `Shutdown` answer then means a cancelled send, not a closed client.
    abandoned: AtomicBool,
}

impl<P: Settle> std::fmt::Debug for Rendezvous<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.lock() {
            Slot::Launching => "launching",
            Slot::Answered(_) => "answered",
            Slot::Parked(_) => "parked",
            Slot::Over => "over",
        };
        f.debug_struct("Rendezvous").field("state", &state).finish()
    }
}

impl<P: Settle> Rendezvous<P> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            slot: Mutex::new(Slot::Launching),
            abandoned: AtomicBool::new(false),
        })
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
    /// the state's deliverer is taken before anything that can panic).
    fn lock(&self) -> MutexGuard<'_, Slot<P>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands the answer over: settles a parked state here, else keeps the answer for
    /// [`Rendezvous::park`]. A second answer is dropped; returns whether this one was taken.
    pub(crate) fn answer(&self, answer: P::Answer) -> bool {
        let mut slot = self.lock();
        // Decided by reference: a parked state is settled in place, then dropped there (nothing
        // it holds locks this rendezvous: its caller holds a handle, so it is not the last).
        match &mut *slot {
            Slot::Launching => {
                *slot = Slot::Answered(answer);
                true
            }
            Slot::Parked(state) => {
                state.settle(answer);
                *slot = Slot::Over;
                true
            }
            Slot::Answered(_) | Slot::Over => false,
        }
    }

    /// Leaves the state to wait for its answer; settles it here when the answer came first.
    pub(crate) fn park(&self, state: P) {
        let mut slot = self.lock();
        match &*slot {
            Slot::Launching => *slot = Slot::Parked(state),
            Slot::Answered(_) => {
                if let Slot::Answered(answer) = std::mem::replace(&mut *slot, Slot::Over) {
                    drop(slot);
                    let mut state = state;
                    state.settle(answer);
                }
            }
            // Parked twice (a bug): the state is dropped, and with it its deliverer, which
            // reports a cancellation.
            Slot::Parked(_) | Slot::Over => {
                drop(slot);
                tracing::error!("an asynchronous send was parked twice");
            }
        }
    }
}

/// What a [`Registry`] can end.
pub(crate) trait Cancel: Send + Sync {
    /// Ends the wait with a cancellation (nothing when already over).
    fn cancel(&self);
}

impl<P: Settle> Cancel for Rendezvous<P> {
    fn cancel(&self) {
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

        fn settle(&mut self, answer: i32) {
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
    fn an_answer_before_the_park_settles_at_the_park() {
        let (s, p) = probe();
        let r = Rendezvous::new();
        assert!(r.answer(7));
        assert!(seen(&s).is_empty());
        r.park(p);
        assert_eq!(seen(&s), vec![7]);
        assert!(!r.answer(8), "a second answer is dropped");
        assert_eq!(seen(&s), vec![7]);
    }

    #[test]
    fn an_answer_after_the_park_settles_at_the_answer() {
        let (s, p) = probe();
        let r = Rendezvous::new();
        r.park(p);
        assert!(seen(&s).is_empty());
        assert!(r.answer(3));
        assert_eq!(seen(&s), vec![3]);
        r.cancel();
        assert_eq!(
            seen(&s),
            vec![3],
            "a cancel after the answer changes nothing"
        );
    }

    #[test]
    fn cancel_all_ends_every_wait_once_and_every_later_insert_is_refused() {
        let registry = Registry::default();
        let mut probes = Vec::new();
        for i in 0..5 {
            let (s, p) = probe();
            let r = Rendezvous::new();
            let key = registry.insert(Arc::clone(&r) as Arc<dyn Cancel>);
            assert_eq!(key, Some(i));
            r.park(p);
            probes.push((s, r, key));
        }
        // One ends by itself and leaves the list; its key is used again.
        assert!(probes[1].1.answer(11));
        registry.remove(1);
        assert_eq!(registry.len(), 4);
        let (s5, p5) = probe();
        let r5 = Rendezvous::new();
        assert_eq!(registry.insert(Arc::clone(&r5) as Arc<dyn Cancel>), Some(1));
        r5.park(p5);
        registry.cancel_all();
        assert_eq!(registry.len(), 0);
        assert_eq!(seen(&probes[0].0), vec![-1]);
        assert_eq!(seen(&probes[1].0), vec![11]);
        assert_eq!(seen(&s5), vec![-1]);
        // Removing after the cancel is harmless; inserting is refused.
        registry.remove(0);
        let r6: Arc<Rendezvous<Probe>> = Rendezvous::new();
        assert_eq!(registry.insert(r6), None);
    }

    #[test]
    fn answers_racing_parks_settle_each_send_exactly_once() {
        let settled = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Settle for Count {
            type Answer = ();
            fn settle(&mut self, (): ()) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn cancelled() {}
        }
        let n = 2000;
        let all: Vec<_> = (0..n).map(|_| Rendezvous::<Count>::new()).collect();
        let answers: Vec<_> = all.iter().map(Arc::clone).collect();
        let answering = std::thread::spawn(move || {
            for r in answers {
                r.answer(());
            }
        });
        for r in &all {
            r.park(Count(Arc::clone(&settled)));
        }
        answering.join().expect("thread");
        assert_eq!(settled.load(Ordering::SeqCst), n);
    }
}
