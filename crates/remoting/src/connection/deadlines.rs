//! The deadlines of one connection's pending requests, in the order they fall due.
//!
//! Requests on one connection mostly share one timeout, so their deadlines arrive nearly in
//! order: they go to a FIFO, and only one that falls due before the FIFO's last goes to a heap.
//! Entries are deleted lazily: a request that completed leaves its deadline behind, trimmed
//! once it reaches a front (the table trims on every completion) or compacted away when dead
//! entries pile up behind a live one, so the memory stays proportional to the live requests.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use tokio::time::Instant;

/// One request's deadline: when, and which waiter (`id` tells it from a later waiter under the
/// same opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    pub(crate) at: Instant,
    pub(crate) id: u64,
    pub(crate) opaque: i32,
}

/// Dead entries allowed beyond the live ones before a compaction.
const SLACK: usize = 64;

/// The deadline queue (see the [module docs](self)).
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    /// Deadlines in arrival order that are also in deadline order (the common case).
    fifo: VecDeque<Due>,
    /// Deadlines that arrived earlier than the FIFO's last.
    early: BinaryHeap<Reverse<Due>>,
    /// What the connection's timer sleeps until (`None`: it waits for a wake-up).
    armed: Option<Instant>,
}

impl Deadlines {
    /// Adds `due`; true when the timer must be woken to sleep until an earlier instant.
    pub(crate) fn push(&mut self, due: Due) -> bool {
        match self.fifo.back() {
            Some(last) if due.at < last.at => self.early.push(Reverse(due)),
            _ => self.fifo.push_back(due),
        }
        if self.armed.is_none_or(|at| due.at < at) {
            self.armed = Some(due.at);
            true
        } else {
            false
        }
    }

    /// Entries kept, live or not.
    pub(crate) fn len(&self) -> usize {
        self.fifo.len() + self.early.len()
    }

    /// Drops the entries at the fronts that `live` says are gone; compacts everything when
    /// more than `live_count` (plus a slack) entries remain.
    pub(crate) fn trim(&mut self, live_count: usize, live: impl Fn(&Due) -> bool) {
        while self.fifo.front().is_some_and(|d| !live(d)) {
            self.fifo.pop_front();
        }
        while self.early.peek().is_some_and(|d| !live(&d.0)) {
            self.early.pop();
        }
        if self.len() > 2 * live_count + SLACK {
            self.fifo.retain(|d| live(d));
            self.early.retain(|d| live(&d.0));
        }
    }

    /// Waiter `id` completed: its deadline goes now if it is at a front (the common case: one
    /// timeout, answers in order; no lookup needed), else later (at a front, or compacted away
    /// once dead entries outnumber `live_count` plus a slack).
    pub(crate) fn completed(&mut self, id: u64, live_count: usize, live: impl Fn(&Due) -> bool) {
        if self.fifo.front().is_some_and(|d| d.id == id) {
            self.fifo.pop_front();
        } else if self.early.peek().is_some_and(|d| d.0.id == id) {
            self.early.pop();
        }
        if self.len() > 2 * live_count + SLACK {
            self.fifo.retain(|d| live(d));
            self.early.retain(|d| live(&d.0));
        }
    }

    /// Takes the next entry due at `now` (live or not: the caller looks).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Due> {
        let fifo = self.fifo.front().filter(|d| d.at <= now).copied();
        let early = self.early.peek().map(|d| d.0).filter(|d| d.at <= now);
        match (fifo, early) {
            (Some(f), Some(e)) if e < f => self.early.pop().map(|d| d.0),
            (Some(_), _) => self.fifo.pop_front(),
            (None, Some(_)) => self.early.pop().map(|d| d.0),
            (None, None) => None,
        }
    }

    /// The earliest deadline kept, which the timer now sleeps until.
    pub(crate) fn arm(&mut self) -> Option<Instant> {
        let fifo = self.fifo.front().map(|d| d.at);
        let early = self.early.peek().map(|d| d.0.at);
        self.armed = match (fifo, early) {
            (Some(f), Some(e)) => Some(f.min(e)),
            (f, e) => f.or(e),
        };
        self.armed
    }

    /// Forgets every entry (the connection failed all its waiters).
    pub(crate) fn clear(&mut self) {
        self.fifo.clear();
        self.early.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn due(base: Instant, ms: u64, id: u64) -> Due {
        Due {
            at: base + Duration::from_millis(ms),
            id,
            opaque: i32::try_from(id).unwrap_or(0),
        }
    }

    #[test]
    fn out_of_order_deadlines_come_out_in_order() {
        let base = Instant::now();
        let mut d = Deadlines::default();
        assert!(d.push(due(base, 300, 1)), "the first arms the timer");
        assert!(!d.push(due(base, 400, 2)), "a later one does not");
        assert!(d.push(due(base, 100, 3)), "an earlier one re-arms it");
        assert!(!d.push(due(base, 200, 4)));
        let now = base + Duration::from_millis(1000);
        let order: Vec<u64> = std::iter::from_fn(|| d.pop_due(now))
            .map(|d| d.id)
            .collect();
        assert_eq!(order, vec![3, 4, 1, 2]);
        assert_eq!(d.arm(), None);
    }

    #[test]
    fn nothing_is_due_before_its_deadline() {
        let base = Instant::now();
        let mut d = Deadlines::default();
        d.push(due(base, 100, 1));
        assert_eq!(d.pop_due(base + Duration::from_millis(99)), None);
        assert_eq!(d.arm(), Some(base + Duration::from_millis(100)));
        assert_eq!(
            d.pop_due(base + Duration::from_millis(100)).map(|d| d.id),
            Some(1)
        );
    }

    #[test]
    fn completions_in_order_leave_nothing_behind() {
        let base = Instant::now();
        let mut d = Deadlines::default();
        for id in 0..1000 {
            d.push(due(base, id, id));
        }
        for id in 0..1000 {
            d.completed(id, 999 - usize::try_from(id).unwrap_or(0), |x| x.id > id);
        }
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn out_of_order_completions_stay_bounded() {
        let base = Instant::now();
        let mut d = Deadlines::default();
        d.push(due(base, 0, 0));
        for id in 1..10_000 {
            d.push(due(base, id, id));
            // completes the newest, never the front
            d.completed(id, 1, |x| x.id == 0);
            assert!(d.len() <= 2 + SLACK + 1, "{} entries kept", d.len());
        }
    }

    #[test]
    fn dead_entries_behind_a_live_front_are_compacted() {
        let base = Instant::now();
        let mut d = Deadlines::default();
        // one request that never completes, then many that do
        d.push(due(base, 0, 0));
        for id in 1..10_000 {
            d.push(due(base, id, id));
            d.trim(1, |x| x.id == 0);
            assert!(d.len() <= 2 + SLACK + 1, "{} entries kept", d.len());
        }
    }
}
