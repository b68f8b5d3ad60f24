//! How a synchronous attempt asks the broker: the [`Ask`] kinds, one type per kind of attempt
//! (with a reply, oneway), so that each loop's future carries its own attempt's future only.

use std::future::Future;
use std::time::Duration;

use super::{Mode, Outcome, Queue, SendState};
use crate::error::ErrorKind;
use crate::send_result::SendResult;
use crate::transport::Transport;

/// How a synchronous attempt asks the broker: with a reply ([`AskReply`]) or oneway
/// ([`AskOneway`]). A type, not a value, so that each loop's future holds its own attempt's
/// future only.
pub(crate) trait Ask {
    /// The job's mode.
    const MODE: Mode;

    /// What an attempt that went well yields.
    type Answer;

    /// One attempt to `queue` within `budget`, in the attempt's span.
    fn ask<'a, T: Transport>(
        state: &'a SendState<T>,
        queue: &'a Queue,
        budget: Duration,
    ) -> impl Future<Output = Result<Self::Answer, ErrorKind>> + Send + 'a;

    /// The attempt's outcome from its answer.
    fn outcome(answer: Result<Self::Answer, ErrorKind>) -> Outcome;
}

/// An attempt that waits for the broker's answer.
pub(crate) struct AskReply;

/// A oneway attempt: over once queued.
pub(crate) struct AskOneway;

impl Ask for AskReply {
    const MODE: Mode = Mode::Reply;
    type Answer = SendResult;

    fn ask<'a, T: Transport>(
        state: &'a SendState<T>,
        queue: &'a Queue,
        budget: Duration,
    ) -> impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'a {
        state.call(queue, budget)
    }

    fn outcome(answer: Result<SendResult, ErrorKind>) -> Outcome {
        answer.map(Some)
    }
}

impl Ask for AskOneway {
    const MODE: Mode = Mode::Oneway;
    type Answer = ();

    fn ask<'a, T: Transport>(
        state: &'a SendState<T>,
        queue: &'a Queue,
        budget: Duration,
    ) -> impl Future<Output = Result<(), ErrorKind>> + Send + 'a {
        state.call_oneway(queue, budget)
    }

    fn outcome(answer: Result<(), ErrorKind>) -> Outcome {
        answer.map(|()| None)
    }
}
