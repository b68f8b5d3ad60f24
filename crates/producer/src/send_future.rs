//! [`SendFuture`]: the answer of an asynchronous send.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::async_send::SendCell;
use crate::deliver::Delivered;
use crate::error::{ErrorKind, SendError};
use crate::send_result::SendResult;

/// Resolves with the outcome of one asynchronous send, exactly once.
///
/// The send runs on its own task whether or not this future is polled: dropping it does not
/// cancel the send, it only discards the outcome.
#[derive(Debug)]
#[must_use = "the outcome of the send is only known through this future"]
pub struct SendFuture {
    from: From,
}

/// Where the outcome comes from.
#[derive(Debug)]
enum From {
    /// The send's own rendezvous (`send_async`, `try_send_async`): one allocation per send
    /// holds its state and its outcome.
    Cell(Arc<SendCell>),
    /// A channel (a message held by the auto-batcher).
    Channel(oneshot::Receiver<Delivered>),
    /// Resolved: the cell or channel is gone (what the send left behind freed with it).
    Done,
}

impl SendFuture {
    pub(crate) fn new(rx: oneshot::Receiver<Delivered>) -> Self {
        Self {
            from: From::Channel(rx),
        }
    }

    /// The receiver of what `cell` delivers.
    pub(crate) fn of(cell: Arc<SendCell>) -> Self {
        Self {
            from: From::Cell(cell),
        }
    }
}

impl Future for SendFuture {
    type Output = Result<SendResult, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let delivered = match &mut self.from {
            From::Cell(cell) => cell.poll_outcome(cx),
            // An outcome already there is taken without spending the task's cooperative
            // budget (the channel's `poll` spends a unit even when ready): a task awaiting a
            // window of finished sends was otherwise deferred every 128 outcomes, which on a
            // multi-thread runtime woke a parked worker each time (issue 13). The cell's lock
            // spends none.
            From::Channel(rx) => match rx.try_recv() {
                Ok(sent) => Poll::Ready(Some(sent)),
                Err(oneshot::error::TryRecvError::Empty) => Pin::new(rx).poll(cx).map(Result::ok),
                Err(oneshot::error::TryRecvError::Closed) => Poll::Ready(None),
            },
            From::Done => Poll::Ready(None),
        };
        if delivered.is_ready() {
            // Fused: a poll after the outcome gets `Cancelled` whichever way it came.
            self.from = From::Done;
        }
        match delivered {
            Poll::Pending => Poll::Pending,
            // What the send left behind is freed here, on the caller's side.
            Poll::Ready(Some((outcome, _leftovers))) => Poll::Ready(outcome),
            // The deliverer always delivers before it is dropped; a lost sender means the
            // runtime dropped the task (runtime shutdown), after which the outcome is unknown.
            // (Also what a poll after the outcome gets.)
            Poll::Ready(None) => Poll::Ready(Err(SendError::bare(ErrorKind::Cancelled {
                maybe_stored: true,
            }))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;
    use crate::async_send::cell;
    use crate::deliver::{Deliver, Leftovers};

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn leftovers_are_freed_by_whoever_awaits_the_outcome() {
        let freed = Arc::new(AtomicBool::new(false));
        let cell = cell();
        let future = SendFuture::of(Arc::clone(&cell));
        Deliver::new(cell).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::new(Box::new(Flag(Arc::clone(&freed)))),
        );
        assert!(!freed.load(Ordering::SeqCst), "freed by the sender");
        let outcome = future.await;
        assert!(matches!(
            outcome.map_err(|e| e.into_parts().0),
            Err(ErrorKind::NotRunning)
        ));
        assert!(freed.load(Ordering::SeqCst), "freed once awaited");
    }

    #[tokio::test]
    async fn a_dropped_deliverer_resolves_the_future_as_cancelled() {
        let cell = cell();
        let future = SendFuture::of(Arc::clone(&cell));
        let mut deliver = Deliver::new(cell);
        deliver.may_be_stored();
        drop(deliver);
        assert!(matches!(
            future.await.map_err(|e| e.into_parts().0),
            Err(ErrorKind::Cancelled { maybe_stored: true })
        ));
    }

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_waiting_future_is_woken_once_by_its_outcome_and_resolves_once() {
        let cell = cell();
        let mut future = SendFuture::of(Arc::clone(&cell));
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending());
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
        Deliver::new(Arc::clone(&cell)).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default(),
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "woken by the delivery");
        // A second delivery (cannot happen: one deliverer per send) is dropped.
        Deliver::new(cell).call_with(
            Err(SendError::bare(ErrorKind::InvalidBatch(
                rmq_common::batch::BatchError::Empty,
            ))),
            Leftovers::default(),
        );
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let first = Pin::new(&mut future).poll(&mut cx);
        assert!(matches!(
            first.map(|r| r.map_err(|e| e.into_parts().0)),
            Poll::Ready(Err(ErrorKind::NotRunning))
        ));
    }

    #[tokio::test]
    async fn a_dropped_future_discards_only_the_outcome() {
        let cell = cell();
        drop(SendFuture::of(Arc::clone(&cell)));
        Deliver::new(Arc::clone(&cell)).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default(),
        );
        assert!(cell.delivered());
        assert_eq!(Arc::strong_count(&cell), 1, "nothing else holds the cell");
    }

    /// A poll after the outcome gets `Cancelled`, whichever way the outcome came (a channel's
    /// receiver would panic: "called after complete").
    #[tokio::test]
    async fn a_poll_after_the_outcome_gets_cancelled_from_a_cell_or_a_channel() {
        let cell = cell();
        let from_cell = SendFuture::of(Arc::clone(&cell));
        Deliver::new(cell).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default(),
        );
        let (tx, rx) = oneshot::channel();
        let from_channel = SendFuture::new(rx);
        let _ = tx.send((
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default(),
        ));
        for mut future in [from_cell, from_channel] {
            let first = (&mut future).await;
            assert!(matches!(
                first.map_err(|e| e.into_parts().0),
                Err(ErrorKind::NotRunning)
            ));
            let again = std::future::poll_fn(|cx| Pin::new(&mut future).poll(cx)).await;
            assert!(matches!(
                again.map_err(|e| e.into_parts().0),
                Err(ErrorKind::Cancelled { maybe_stored: true })
            ));
        }
    }

    #[test]
    fn a_send_future_can_move_between_threads_and_be_shared() {
        fn assert_auto<T: Send + Sync + Unpin + 'static>() {}
        assert_auto::<SendFuture>();
    }

    #[tokio::test]
    async fn finished_sends_are_taken_without_spending_the_task_budget() {
        // More outcomes than tokio's cooperative budget per task poll (128), half from cells,
        // half from channels.
        const READY: usize = 300;
        let mut futs: Vec<SendFuture> = (0..READY)
            .map(|i| {
                let outcome = Err(SendError::bare(ErrorKind::NotRunning));
                if i % 2 == 0 {
                    let cell = cell();
                    Deliver::new(Arc::clone(&cell)).call_with(outcome, Leftovers::default());
                    SendFuture::of(cell)
                } else {
                    let (tx, rx) = oneshot::channel();
                    assert!(tx.send((outcome, Leftovers::default())).is_ok());
                    SendFuture::new(rx)
                }
            })
            .collect();
        // All of them in one poll of this task: none may report `Pending` (a budget spent).
        let taken = std::future::poll_fn(|cx| {
            let mut taken = 0;
            for fut in &mut futs {
                if Pin::new(fut).poll(cx).is_pending() {
                    break;
                }
                taken += 1;
            }
            Poll::Ready(taken)
        })
        .await;
        assert_eq!(taken, READY, "a finished send was held back by the budget");
    }
}
