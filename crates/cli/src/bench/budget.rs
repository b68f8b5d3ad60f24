//! How much a benchmark may still send: a message count and/or a deadline, shared by the tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;

/// Hands out messages to send until the count is reached or the deadline passed.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: Option<u64>,
    deadline: Option<Instant>,
    issued: AtomicU64,
    stopped: AtomicBool,
    /// `true` once stopped: wakes the tasks waiting in [`Budget::closed`].
    stop_tx: watch::Sender<bool>,
}

impl Budget {
    /// A budget of `limit` messages (unbounded when `None`) until `deadline` (none when `None`).
    pub(crate) fn new(limit: Option<u64>, deadline: Option<Instant>) -> Self {
        Self {
            limit,
            deadline,
            issued: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            stop_tx: watch::Sender::new(false),
        }
    }

    /// Hands out nothing more (a stop signal): every later [`Budget::take`] returns 0, and
    /// [`Budget::stopped`] completes.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.stop_tx.send_replace(true);
    }

    /// Completes once the budget is stopped (a stop signal); its deadline does not count.
    pub(crate) async fn stopped(&self) {
        let mut stopped = self.stop_tx.subscribe();
        // The sender lives as long as `self`: `wait_for` ends with the stop.
        let _ = stopped.wait_for(|s| *s).await;
    }

    /// Reserves up to `want` messages (at least 1 is asked); 0 means stop.
    pub(crate) fn take(&self, want: u64) -> u64 {
        self.take_at(want, Instant::now())
    }

    /// [`Budget::take`] at `now`.
    pub(crate) fn take_at(&self, want: u64, now: Instant) -> u64 {
        if self.stopped.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| now >= d) {
            return 0;
        }
        let want = want.max(1);
        let Some(limit) = self.limit else {
            self.issued.fetch_add(want, Ordering::Relaxed);
            return want;
        };
        let prev = self
            .issued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |issued| {
                (issued < limit).then(|| issued + want.min(limit - issued))
            });
        match prev {
            Ok(issued) => want.min(limit - issued),
            Err(_) => 0,
        }
    }

    /// Messages handed out so far.
    #[cfg(test)]
    pub(crate) fn issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn count_is_handed_out_exactly_in_chunks() {
        let b = Budget::new(Some(10), None);
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(4), 4);
        assert_eq!(b.take(4), 2, "the last chunk is what is left");
        assert_eq!(b.take(4), 0);
        assert_eq!(b.take(1), 0);
        assert_eq!(b.issued(), 10);
    }

    #[test]
    fn zero_is_asked_as_one() {
        let b = Budget::new(Some(1), None);
        assert_eq!(b.take(0), 1);
        assert_eq!(b.take(0), 0);
    }

    #[test]
    fn stop_ends_any_budget_at_once() {
        let b = Budget::new(None, None);
        assert_eq!(b.take(4), 4);
        b.stop();
        assert_eq!(b.take(4), 0);
        assert_eq!(b.take(1), 0);
        assert_eq!(b.issued(), 4);
    }

    #[tokio::test]
    async fn stopped_completes_on_stop_not_at_the_deadline() {
        let b = Arc::new(Budget::new(None, None));
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the stop")
            .expect("joined");
        // Already stopped: at once.
        tokio::time::timeout(Duration::from_secs(5), b.stopped())
            .await
            .expect("at once");

        let t = Instant::now();
        let b = Budget::new(Some(10), Some(t + Duration::from_millis(50)));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(b.take(1), 0, "past the deadline");
        // Past the deadline, but not stopped.
        let stopped = tokio::time::timeout(Duration::from_millis(50), b.stopped()).await;
        assert!(stopped.is_err(), "the deadline is not a stop");
    }

    #[test]
    fn the_deadline_stops_an_unbounded_budget() {
        let start = Instant::now();
        let b = Budget::new(None, Some(start + Duration::from_secs(1)));
        assert_eq!(b.take_at(3, start), 3);
        assert_eq!(b.take_at(3, start + Duration::from_millis(999)), 3);
        assert_eq!(b.take_at(3, start + Duration::from_secs(1)), 0);
        assert_eq!(b.issued(), 6);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_count() {
        let b = Arc::new(Budget::new(Some(10_007), None));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut got = 0;
                    loop {
                        match b.take(3) {
                            0 => break got,
                            n => got += n,
                        }
                    }
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 10_007);
        assert_eq!(b.issued(), 10_007);
    }
}
