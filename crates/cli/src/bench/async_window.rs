//! The async mode's sending loop: one task keeps `--concurrency` sends in flight, a window of
//! `send_async` futures awaited oldest first, as an application pipelining its sends would
//! (and as `examples/remoting_bench.rs` keeps its `invoke_async` futures).
//!
//! No task per send and no shared semaphore: the harness stays cheap next to the producer it
//! measures (a task spawned per send to await its future cost about as much as the send's own
//! completion). The window never exceeds what the producer's back-pressure admits at once, so
//! `send_async` never waits for room inside the producer, where a stop could not end the wait.
//!
//! One window, not one per core: two windows on two workers spread every send's path over both
//! cores (issue 13: 4.2 against 2.3 µs of CPU per message). And a queue awaited oldest first,
//! not a `FuturesUnordered`: when a whole window is answered before its task runs (the reader
//! hands out a round of replies at once), `FuturesUnordered` polls as many pending futures as
//! it holds (the refills) and then wakes its own task to yield; tokio puts a task woken during
//! its own poll at the back of the worker's run queue and wakes a parked worker, which may
//! steal it, and from then on the window, the connection's reader and writer move between the
//! two workers at every socket wake-up (issue 13, twelfth pass, one run of 5 rounds: 286
//! against 420 K/s, 4.7 against 2.3 µs per message).
//!
//! The price is head-of-line: a send answered before an older one is recorded, and its slot
//! refilled, only when the older one resolves, so the latencies of this mode include the wait
//! behind older sends, and a slow or retrying send (up to its timeout) holds up the refills
//! behind it. Against one broker (one connection, replies in the order sent, as nullbroker
//! answers) that wait is nil; against several brokers it is not.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use rmq_producer::SendOptions;
use tokio::time::Instant;

use super::Shared;

/// The window of the async sending task: `concurrency` sends in flight, at most `room` (the
/// producer's back-pressure bound) when it has one, and at least one.
///
/// ```text
/// window(256, Some(1024)) == 256
/// window(100, Some(8))    == 8
/// window(0, None)         == 1
/// ```
pub(super) fn window(concurrency: u32, room: Option<usize>) -> usize {
    let total = room.map_or(concurrency as usize, |r| r.min(concurrency as usize));
    total.max(1)
}

/// Sends in flight, each with when it started, awaited oldest first.
struct Flying<F> {
    queue: VecDeque<(F, Instant)>,
    size: usize,
}

impl<F: Future + Unpin> Flying<F> {
    fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            queue: VecDeque::with_capacity(size),
            size,
        }
    }

    fn has_room(&self) -> bool {
        self.queue.len() < self.size
    }

    fn push(&mut self, send: F, started: Instant) {
        self.queue.push_back((send, started));
    }

    /// The oldest send's outcome and start, once it resolves; `None` when nothing is in flight.
    /// Only the oldest is polled: the others register no waker, and the task is woken by the
    /// oldest alone; never by itself as long as a ready future does not (a `SendFuture` takes
    /// a ready answer without spending tokio's cooperative budget).
    async fn oldest(&mut self) -> Option<(F::Output, Instant)> {
        let (send, started) = self.queue.front_mut()?;
        let started = *started;
        let outcome = send.await;
        self.queue.pop_front();
        Some((outcome, started))
    }
}

/// The async sending task: keeps up to `window` sends in flight until the budget is spent or
/// closed, then waits for the rest of its window (the run's drain bounds how long).
pub(super) async fn run(s: Arc<Shared>, window: usize) {
    let mut flying = Flying::new(window);
    let mut open = true;
    loop {
        while open && flying.has_room() {
            if s.budget.take(1) == 0 {
                open = false;
                break;
            }
            s.rec.begin(1);
            let t = Instant::now();
            let options = SendOptions::new().timeout(s.send_timeout);
            match s.producer.send_async(s.message(), options).await {
                Err(e) => s.fail(1, &e),
                Ok(fut) => flying.push(fut, t),
            }
        }
        match flying.oldest().await {
            Some((Ok(_), t)) => s.rec.ok(1, t.elapsed()),
            Some((Err(e), _)) => s.fail(1, &e),
            None if open => {}
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    use tokio::sync::oneshot;
    use tokio::time::Instant;

    use super::{window, Flying};

    #[test]
    fn the_window_is_the_concurrency_within_the_room() {
        let cases: &[(u32, Option<usize>, usize)] = &[
            (256, Some(1024), 256),
            (256, None, 256),
            (100, Some(8), 8),
            (1, None, 1),
            (3, Some(1), 1),
            (0, None, 1),
            (5, Some(0), 1),
        ];
        for &(concurrency, room, want) in cases {
            assert_eq!(
                window(concurrency, room),
                want,
                "window({concurrency}, {room:?})"
            );
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A window answered whole before its task runs (as the connection's reader answers a
    /// round of replies at once), refilled after each outcome as the bench does: the task
    /// takes every outcome in one poll and never wakes itself (a self-wake makes tokio wake
    /// another worker to take the task: the window then moves between the cores).
    #[test]
    fn a_window_answered_at_once_never_wakes_its_own_task() {
        const WINDOW: usize = 8;
        const SENDS: usize = 4 * WINDOW;
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let answers = RefCell::new(Vec::new());
        let task = async {
            let mut flying = Flying::new(WINDOW);
            let mut started = 0;
            let mut taken = 0;
            loop {
                while started < SENDS && flying.has_room() {
                    let (tx, rx) = oneshot::channel::<usize>();
                    answers.borrow_mut().push(tx);
                    flying.push(rx, Instant::now());
                    started += 1;
                }
                match flying.oldest().await {
                    Some((outcome, _)) => {
                        assert_eq!(outcome, Ok(taken), "in the order sent");
                        taken += 1;
                    }
                    None => return taken,
                }
            }
        };
        let mut task = pin!(task);
        let mut sent = 0;
        for round in 0..SENDS / WINDOW {
            assert!(task.as_mut().poll(&mut cx).is_pending());
            let woken_by_itself = count.0.swap(0, Ordering::SeqCst);
            assert_eq!(woken_by_itself, 0, "round {round}: the task woke itself");
            // Answer the whole window at once.
            for tx in answers.borrow_mut().drain(..) {
                assert!(tx.send(sent).is_ok());
                sent += 1;
            }
            let woken = count.0.swap(0, Ordering::SeqCst);
            assert!(woken >= 1, "round {round}: the task waits on an answer");
        }
        assert_eq!(task.as_mut().poll(&mut cx), Poll::Ready(SENDS));
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "the task woke itself");
    }
}
