//! The transactions of one run, by message id (`UNIQ_KEY`): how a broker's check-back about each
//! is answered, and which ones the run waits for, those still undecided on the broker (the local
//! transaction answered unknown, or `END_TRANSACTION` was not written), until a check about
//! each was answered.
//!
//! The local transaction records its decision before `END_TRANSACTION` is written, so a
//! check-back can never find a message of this run missing; what the send returned is recorded
//! after it. Both orders of "send returned" and "check answered" give the same result.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmq_producer::TransactionState;
use tokio::sync::watch;

/// One transaction of the run.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// What a check-back is answered.
    answer: TransactionState,
    /// Undecided on the broker: the run waits for a check of it.
    awaited: bool,
    /// Check-backs answered so far.
    checks: u32,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Awaited entries not checked yet.
    undecided: usize,
    /// Awaited entries checked.
    decided: u64,
}

/// The transactions of a run; shared by the sending tasks and the listener's checks.
#[derive(Debug)]
pub(crate) struct Ledger {
    state: Mutex<State>,
    /// Bumped whenever an awaited transaction gets its first check answered.
    answered: watch::Sender<u64>,
    /// Keeps decided transactions (so that a repeated check finds them); without, only the
    /// undecided ones are kept (a long benchmark's memory stays bounded).
    keep_decided: bool,
}

/// What a check-back of an unknown local transaction is answered: the local transaction is
/// taken as done (the `--transaction unknown` and bench semantics).
pub(crate) fn check_answer(decision: TransactionState) -> TransactionState {
    match decision {
        TransactionState::Unknown => TransactionState::Commit,
        decided => decided,
    }
}

impl Ledger {
    /// An empty ledger; see [`Ledger::keep_decided`].
    pub(crate) fn new(keep_decided: bool) -> Self {
        Self {
            state: Mutex::new(State::default()),
            answered: watch::Sender::new(0),
            keep_decided,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update below leaves the map consistent before it can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The local transaction of `id` decided `decision` (before `END_TRANSACTION` is written):
    /// an unknown one is awaited, and answered COMMIT when the broker checks back.
    pub(crate) fn executed(&self, id: &str, decision: TransactionState) {
        let mut s = self.lock();
        if s.entries.contains_key(id) {
            return;
        }
        let awaited = decision == TransactionState::Unknown;
        s.entries.insert(
            id.to_owned(),
            Entry {
                answer: check_answer(decision),
                awaited,
                checks: 0,
            },
        );
        if awaited {
            s.undecided += 1;
        }
    }

    /// The send of `id` returned: `state` was reported, with `END_TRANSACTION` written or not.
    /// Unwritten, the transaction is awaited (unless a check already answered it).
    pub(crate) fn ended(&self, id: &str, state: TransactionState, end_written: bool) {
        let mut s = self.lock();
        let State {
            entries, undecided, ..
        } = &mut *s;
        let entry = entries.entry(id.to_owned()).or_insert(Entry {
            // The listener did not run (e.g. the half message was stored without its flush
            // guarantee): what was reported.
            answer: check_answer(state),
            awaited: false,
            checks: 0,
        });
        if !end_written && !entry.awaited && entry.checks == 0 {
            entry.awaited = true;
            *undecided += 1;
        }
        if !self.keep_decided && !entry.awaited {
            entries.remove(id);
        }
    }

    /// The send of `id` failed and may have stored the half message: the failure was reported,
    /// so a check-back of it is answered ROLLBACK (a retry must not make it a duplicate). Not
    /// awaited.
    pub(crate) fn failed(&self, id: &str) {
        self.lock().entries.entry(id.to_owned()).or_insert(Entry {
            answer: TransactionState::Rollback,
            awaited: false,
            checks: 0,
        });
    }

    /// A check-back of `id`: the answer, and whether it decided an undecided transaction (its
    /// first check); `None` for a transaction this run does not know.
    pub(crate) fn check(&self, id: &str) -> Option<(TransactionState, bool)> {
        let mut s = self.lock();
        let State {
            entries,
            undecided,
            decided: decided_count,
        } = &mut *s;
        let entry = entries.get_mut(id)?;
        entry.checks = entry.checks.saturating_add(1);
        let answer = entry.answer;
        let decided = entry.awaited && entry.checks == 1;
        if decided {
            *undecided = undecided.saturating_sub(1);
            *decided_count += 1;
            if !self.keep_decided {
                entries.remove(id);
            }
            drop(s);
            self.answered.send_modify(|n| *n = n.wrapping_add(1));
        }
        Some((answer, decided))
    }

    /// Awaited transactions whose check was not answered yet.
    pub(crate) fn undecided(&self) -> usize {
        self.lock().undecided
    }

    /// Awaited transactions whose check was answered, and those not answered yet (one look).
    pub(crate) fn decided_undecided(&self) -> (u64, usize) {
        let s = self.lock();
        (s.decided, s.undecided)
    }

    /// Waits until no transaction is undecided, at most `bound`, or until `stop` completes;
    /// returns how many are still undecided.
    pub(crate) async fn wait(&self, bound: Duration, stop: impl Future<Output = ()>) -> usize {
        let mut answered = self.answered.subscribe();
        let deadline = tokio::time::sleep(bound);
        tokio::pin!(deadline, stop);
        loop {
            // Marks the current value seen before looking, so no answer is missed between.
            answered.borrow_and_update();
            let left = self.undecided();
            if left == 0 {
                return 0;
            }
            tokio::select! {
                // The sender lives as long as `self`.
                _ = answered.changed() => {}
                () = &mut deadline => return self.undecided(),
                () = &mut stop => return self.undecided(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TransactionState::{Commit, Rollback, Unknown};

    #[test]
    fn unknown_ones_are_awaited_and_answered_commit() {
        let l = Ledger::new(true);
        l.executed("a", Commit);
        l.executed("b", Rollback);
        l.executed("c", Unknown);
        assert_eq!(l.undecided(), 1);
        l.ended("a", Commit, true);
        l.ended("b", Rollback, true);
        l.ended("c", Unknown, true);
        assert_eq!(l.undecided(), 1);
        assert_eq!(l.check("c"), Some((Commit, true)));
        assert_eq!(l.decided_undecided(), (1, 0));
        // A repeated check gets the same answer; decided ones keep theirs.
        assert_eq!(l.check("c"), Some((Commit, false)));
        assert_eq!(l.check("a"), Some((Commit, false)));
        assert_eq!(l.check("b"), Some((Rollback, false)));
        assert_eq!(l.check("other"), None);
        assert_eq!(l.undecided(), 0);
    }

    #[test]
    fn an_unwritten_end_is_awaited_whichever_comes_first() {
        let l = Ledger::new(true);
        l.executed("a", Commit);
        l.ended("a", Commit, false);
        assert_eq!(l.undecided(), 1);
        assert_eq!(l.check("a"), Some((Commit, true)));
        assert_eq!(l.undecided(), 0);
        // The check before the send returned: nothing left to wait for.
        l.executed("b", Rollback);
        assert_eq!(l.check("b"), Some((Rollback, false)));
        l.ended("b", Rollback, false);
        assert_eq!(l.undecided(), 0);
        // The listener did not run: the reported state is the answer.
        l.ended("c", Rollback, false);
        assert_eq!(l.undecided(), 1);
        assert_eq!(l.check("c"), Some((Rollback, true)));
        assert_eq!(l.undecided(), 0);
    }

    #[test]
    fn failed_sends_are_rolled_back_and_not_awaited() {
        let l = Ledger::new(true);
        l.failed("a");
        assert_eq!(l.undecided(), 0);
        assert_eq!(l.check("a"), Some((Rollback, false)));
    }

    #[test]
    fn without_keep_decided_only_undecided_ones_stay() {
        let l = Ledger::new(false);
        for (id, d) in [("a", Commit), ("b", Rollback), ("c", Unknown)] {
            l.executed(id, d);
            l.ended(id, d, true);
        }
        assert_eq!(l.lock().entries.len(), 1);
        assert_eq!(l.check("a"), None);
        assert_eq!(l.check("c"), Some((Commit, true)));
        assert!(l.lock().entries.is_empty());
        assert_eq!(l.undecided(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_ends_at_the_last_answer_the_bound_or_the_stop() {
        let l = std::sync::Arc::new(Ledger::new(true));
        assert_eq!(
            l.wait(Duration::from_secs(5), std::future::pending()).await,
            0
        );
        l.executed("a", Unknown);
        l.executed("b", Unknown);
        let answer = {
            let l = std::sync::Arc::clone(&l);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.check("a");
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.check("b");
            })
        };
        let t = tokio::time::Instant::now();
        assert_eq!(
            l.wait(Duration::from_secs(60), std::future::pending())
                .await,
            0
        );
        assert_eq!(t.elapsed(), Duration::from_secs(2));
        answer.await.unwrap();

        l.executed("c", Unknown);
        let t = tokio::time::Instant::now();
        assert_eq!(
            l.wait(Duration::from_secs(3), std::future::pending()).await,
            1
        );
        assert_eq!(t.elapsed(), Duration::from_secs(3));
        let stop = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(l.wait(Duration::from_secs(60), stop).await, 1);
    }
}
