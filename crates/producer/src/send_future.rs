//! [`SendFuture`]: the answer of an asynchronous send.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{ProducerError, Unsent};
use crate::send_result::SendResult;

/// Resolves with the outcome of one asynchronous send, exactly once.
///
/// The send runs on its own task whether or not this future is polled: dropping it does not
/// cancel the send, it only discards the outcome.
#[derive(Debug)]
#[must_use = "the outcome of the send is only known through this future"]
pub struct SendFuture {
    rx: oneshot::Receiver<Result<SendResult, ProducerError>>,
}

impl SendFuture {
    pub(crate) fn new(rx: oneshot::Receiver<Result<SendResult, ProducerError>>) -> Self {
        Self { rx }
    }
}

impl Future for SendFuture {
    type Output = Result<SendResult, ProducerError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            // The task always sends before it ends; a lost sender means the runtime dropped the
            // task (runtime shutdown), after which the outcome is unknown.
            r.unwrap_or_else(|_| {
                Err(ProducerError::Cancelled {
                    maybe_stored: true,
                    unsent: Unsent::none(),
                })
            })
        })
    }
}
