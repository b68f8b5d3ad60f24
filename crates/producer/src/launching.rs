//! [`Launching`]: the first attempt of an asynchronous send on its way to the connection.
//!
//! The transport's launch is polled in the attempt's span until the request is written or
//! queued, or until shutdown's abort. Given up before it resolved (dropped, or aborted), it
//! marks its send's [`Rendezvous`] abandoned *before* the transport's future is dropped, whose
//! callback then answers `Shutdown`: read as a cancellation, not as a closed client. It
//! resolves to the send's rendezvous, where the send's outcome will be (the caller's
//! [`SendFuture`](crate::SendFuture) reads it there).
//!
//! A future written by hand, not an `async` block wrapped in `instrument` and `Either`: each of
//! those moved the transport's ~1.2 KB future whole, and the block held the request twice
//! (issue 13, seventh pass: a fifth of an asynchronous send's copies).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tracing::Span;

use crate::rendezvous::{Rendezvous, Settle};

/// What of the transport's launch must wait (for the connection, or room in its queue), boxed.
pub(crate) type Rest<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A send's part that runs before its first attempt is ready (rare: a selector, a route to
/// load), boxed so that the common case stays small; it resolves as the launch does.
pub(crate) type Before<'a, P> =
    Pin<Box<dyn Future<Output = Option<Arc<Rendezvous<P>>>> + Send + 'a>>;

pin_project_lite::pin_project! {
    /// The transport's launch `F`, raced (biased to the launch) with shutdown's abort `A`.
    /// See the [module docs](self).
    pub(crate) struct Launching<'a, F, A, P>
    where
        P: Settle,
    {
        #[pin]
        launch: Option<F>,
        #[pin]
        aborted: A,
        // The send's rendezvous, handed out when this resolves.
        meeting: Option<Arc<Rendezvous<P>>>,
        // Whether to mark it when given up: false once the launch resolved.
        armed: bool,
        span: Span,
        before: Option<Before<'a, P>>,
    }

    impl<'a, F, A, P> PinnedDrop for Launching<'a, F, A, P>
    where
        P: Settle,
    {
        fn drop(this: Pin<&mut Self>) {
            // Runs before the fields are dropped: the launch's callback finds the mark.
            let this = this.project();
            if *this.armed {
                if let Some(meeting) = this.meeting.as_ref() {
                    meeting.set_abandoned();
                }
            }
        }
    }
}

impl<'a, F, A, P> Launching<'a, F, A, P>
where
    F: Future<Output = ()>,
    A: Future<Output = ()>,
    P: Settle,
{
    /// `launch` in `span`, marking `meeting` when given up.
    pub(crate) fn new(launch: F, aborted: A, meeting: Arc<Rendezvous<P>>, span: Span) -> Self {
        Self {
            launch: Some(launch),
            aborted,
            meeting: Some(meeting),
            armed: true,
            span,
            before: None,
        }
    }

    /// Nothing to launch (the send is over, or settled already, or its launch queued): resolves
    /// to `meeting` at once.
    pub(crate) fn none(aborted: A, meeting: Arc<Rendezvous<P>>) -> Self {
        Self {
            launch: None,
            aborted,
            meeting: Some(meeting),
            armed: false,
            span: Span::none(),
            before: None,
        }
    }

    /// The rare path: `before` does it all.
    pub(crate) fn before(aborted: A, before: Before<'a, P>) -> Self {
        Self {
            launch: None,
            aborted,
            meeting: None,
            armed: false,
            span: Span::none(),
            before: Some(before),
        }
    }
}

impl<F, A, P> Future for Launching<'_, F, A, P>
where
    F: Future<Output = ()>,
    A: Future<Output = ()>,
    P: Settle,
{
    /// The send's rendezvous (`None` only when polled again after it resolved).
    type Output = Option<Arc<Rendezvous<P>>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(before) = this.before.as_mut() {
            let Poll::Ready(meeting) = before.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            // Done: a later poll finds nothing to run (a finished `async` block would panic).
            *this.before = None;
            return Poll::Ready(meeting);
        }
        let Some(launch) = this.launch.as_mut().as_pin_mut() else {
            return Poll::Ready(this.meeting.take());
        };
        let _entered = this.span.enter();
        if launch.poll(cx).is_ready() {
            *this.armed = false;
            this.launch.set(None);
            return Poll::Ready(this.meeting.take());
        }
        if this.aborted.poll(cx).is_ready() {
            // Shutdown's abort ends the wait for the connection or room: marked, then the
            // launch is dropped and answers with a cancellation.
            if let Some(meeting) = this.meeting.as_ref() {
                meeting.set_abandoned();
            }
            *this.armed = false;
            this.launch.set(None);
            return Poll::Ready(this.meeting.take());
        }
        Poll::Pending
    }
}
