//! [`SendFuture`]: the answer of an asynchronous send.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::deliver::{Leftovers, SendOutcome};
use crate::error::{ErrorKind, SendError};
use crate::send_result::SendResult;

/// Resolves with the outcome of one asynchronous send, exactly once.
///
/// The send runs on its own task whether or not this future is polled: dropping it does not
/// cancel the send, it only discards the outcome.
#[derive(Debug)]
#[must_use = "the outcome of the send is only known through this future"]
pub struct SendFuture {
    rx: oneshot::Receiver<(SendOutcome, Leftovers)>,
}

impl SendFuture {
    pub(crate) fn new(rx: oneshot::Receiver<(SendOutcome, Leftovers)>) -> Self {
        Self { rx }
    }
}

impl Future for SendFuture {
    type Output = Result<SendResult, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // An outcome already there is taken without spending the task's cooperative budget
        // (the channel's `poll` spends a unit even when ready): a task awaiting a window of
        // finished sends was otherwise deferred every 128 outcomes, which on a multi-thread
        // runtime woke a parked worker each time (issue 13). Only an empty channel is polled.
        let received = match self.rx.try_recv() {
            Ok(sent) => Ok(sent),
            Err(oneshot::error::TryRecvError::Empty) => {
                std::task::ready!(Pin::new(&mut self.rx).poll(cx)).map_err(|_| ())
            }
            Err(oneshot::error::TryRecvError::Closed) => Err(()),
        };
        Poll::Ready(match received {
            // What the send left behind is freed here, on the caller's side.
            Ok((outcome, _leftovers)) => outcome,
            // The task always sends before it ends; a lost sender means the runtime dropped the
            // task (runtime shutdown), after which the outcome is unknown.
            Err(()) => Err(SendError::bare(ErrorKind::Cancelled { maybe_stored: true })),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::deliver::Deliver;

    struct Flag(Arc<AtomicBool>);

    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn leftovers_are_freed_by_whoever_awaits_the_outcome() {
        let freed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        let deliver = Deliver::new(move |delivered: (SendOutcome, Leftovers)| {
            let _ = tx.send(delivered);
        });
        deliver.call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::new(Box::new(Flag(Arc::clone(&freed)))),
        );
        assert!(!freed.load(Ordering::SeqCst), "freed by the sender");
        let outcome = SendFuture::new(rx).await;
        assert!(matches!(
            outcome.map_err(|e| e.into_parts().0),
            Err(ErrorKind::NotRunning)
        ));
        assert!(freed.load(Ordering::SeqCst), "freed once awaited");
    }

    #[test]
    fn an_outcome_only_receiver_frees_leftovers_at_once() {
        let freed = Arc::new(AtomicBool::new(false));
        let got = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&got);
        Deliver::new(move |_: SendOutcome| seen.store(true, Ordering::SeqCst)).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::new(Box::new(Flag(Arc::clone(&freed)))),
        );
        assert!(got.load(Ordering::SeqCst));
        assert!(freed.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_dropped_deliverer_resolves_the_future_as_cancelled() {
        let (tx, rx) = oneshot::channel::<(SendOutcome, Leftovers)>();
        let mut deliver = Deliver::new(move |delivered: (SendOutcome, Leftovers)| {
            let _ = tx.send(delivered);
        });
        deliver.may_be_stored();
        drop(deliver);
        let outcome = SendFuture::new(rx).await;
        assert!(matches!(
            outcome.map_err(|e| e.into_parts().0),
            Err(ErrorKind::Cancelled { maybe_stored: true })
        ));
    }

    #[tokio::test]
    async fn finished_sends_are_taken_without_spending_the_task_budget() {
        // More outcomes than tokio's cooperative budget per task poll (128).
        const READY: usize = 300;
        let mut futs: Vec<SendFuture> = (0..READY)
            .map(|_| {
                let (tx, rx) = oneshot::channel::<(SendOutcome, Leftovers)>();
                let outcome = Err(SendError::bare(ErrorKind::NotRunning));
                assert!(tx.send((outcome, Leftovers::new(Box::new(())))).is_ok());
                SendFuture::new(rx)
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
