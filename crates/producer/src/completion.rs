//! The completion driver: one task per producer that awaits the answers of asynchronous sends
//! and runs their retries, instead of one spawned task per send.
//!
//! An asynchronous send hands the driver, as a future, whatever of its remaining work awaits:
//! over the remoting transport only its retries (the first answer settles the send in the
//! connection's callback, see `async_send::callback`); over a transport without callbacks
//! (gRPC) and for `try_send_async`, everything (await the first answer, retry, deliver the
//! outcome exactly once). The driver polls them all in a
//! `FuturesUnordered`, waking only for the ones that are ready. It ends once every handle to it
//! is gone (the producer's state is dropped) and every pending future has finished.
//!
//! Each completion runs under `catch_unwind`: a panic in one send's completion ends that
//! completion only (its deliverer then reports `Cancelled`), never the driver and the other sends.
//! User callbacks do not run here at all (see [`crate::deliver`]).

use std::future::Future;
use std::pin::Pin;

use std::panic::AssertUnwindSafe;

use futures_util::future::{CatchUnwind, FutureExt};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

/// The rest of one asynchronous send.
pub(crate) type Completion = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where sends hand their completions.
pub(crate) type CompletionSender = mpsc::UnboundedSender<Completion>;

/// A driver and the sender that feeds it.
pub(crate) fn channel() -> (CompletionSender, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, drive(rx))
}

/// A completion whose panic is caught.
type Guarded = CatchUnwind<AssertUnwindSafe<Completion>>;

fn guard(c: Completion) -> Guarded {
    AssertUnwindSafe(c).catch_unwind()
}

async fn drive(mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut pending: FuturesUnordered<Guarded> = FuturesUnordered::new();
    let mut open = true;
    loop {
        // Take every new completion first so that none waits behind ready ones.
        while open {
            match rx.try_recv() {
                Ok(c) => pending.push(guard(c)),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && pending.is_empty() {
            break;
        }
        tokio::select! {
            received = rx.recv(), if open => match received {
                Some(c) => pending.push(guard(c)),
                None => open = false,
            },
            Some(done) = pending.next(), if !pending.is_empty() => {
                if done.is_err() {
                    tracing::error!("an asynchronous send's completion panicked (caught; the driver goes on)");
                }
            }
        }
    }
    tracing::debug!("completion driver stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_every_completion_once_and_ends_when_closed() {
        let (tx, driver) = channel();
        let driver = tokio::spawn(driver);
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..1000u64 {
            let done = Arc::clone(&done);
            let c: Completion = Box::pin(async move {
                tokio::time::sleep(Duration::from_micros(i % 7)).await;
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert!(tx.send(c).is_ok());
        }
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), driver)
            .await
            .expect("ends")
            .expect("task");
        assert_eq!(done.load(Ordering::SeqCst), 1000);
    }

    #[tokio::test]
    async fn a_panicking_completion_does_not_stop_the_others() {
        let (tx, driver) = channel();
        let driver = tokio::spawn(driver);
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..10u64 {
            let done = Arc::clone(&done);
            let c: Completion = Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(i)).await;
                assert!(i % 3 != 0, "completion {i} panics");
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert!(tx.send(c).is_ok());
        }
        drop(tx);
        let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
        assert!(
            matches!(ended, Ok(Ok(()))),
            "the driver survived: {ended:?}"
        );
        assert_eq!(done.load(Ordering::SeqCst), 6);
    }
}
