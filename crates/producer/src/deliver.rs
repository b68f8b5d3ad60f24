//! [`Deliver`]: the outcome of an asynchronous send handed over exactly once.
//!
//! A send's deliverer travels from the caller to where the send ends (the completion driver;
//! a send settled in the connection's callback delivers from its rendezvous itself). Whatever
//! happens on the way (the caller drops the `send_async` future while it waits for room, the
//! runtime shuts down and drops the send's task), it delivers once: dropped undelivered, it
//! delivers [`ErrorKind::Cancelled`].
//! Delivering runs no user code: it stores the outcome in the rendezvous' outlet and wakes
//! the [`SendFuture`](crate::SendFuture) polling it.

use std::sync::Arc;

use crate::error::{ErrorKind, SendError};
use crate::rendezvous::{Rendezvous, Settle};
use crate::send_result::SendResult;

/// The outcome of one asynchronous send.
pub(crate) type SendOutcome = Result<SendResult, SendError>;

/// What a finished send no longer needs and its caller's task allocated (the message and the
/// prepared request, bodies excluded), handed back with the outcome so that it is freed where
/// the receiver runs: the caller's task, for [`SendFuture`](crate::SendFuture). Freeing on the
/// thread that allocated keeps the system allocator's per-thread caches warm; freeing on the
/// completion driver's thread made every send pay cross-thread frees (measured: up to half the
/// pipelined throughput with glibc's malloc). Nothing with an effect travels here (no producer
/// handle, connection, timer or span), so an unawaited `SendFuture` holds a few strings at most
/// (a send settled in the connection's callback hands none: what it leaves stays in its
/// rendezvous, the send's own allocation, which the receiver usually frees with its handle).
#[derive(Default)]
pub(crate) struct Leftovers {
    held: Option<Box<dyn Send>>,
}

impl std::fmt::Debug for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leftovers")
            .field("held", &self.held.is_some())
            .finish()
    }
}

impl Leftovers {
    /// Leftovers holding `held`.
    pub(crate) fn new(held: Box<dyn Send>) -> Self {
        Self { held: Some(held) }
    }
}

/// What a send's rendezvous hands its receiver: the outcome and what the send left behind.
pub(crate) type Delivered = (SendOutcome, Leftovers);

/// Holds a send's way to its receiver (its rendezvous' outlet) until it delivers; delivers
/// [`ErrorKind::Cancelled`] when dropped undelivered.
pub(crate) struct Deliver<P>
where
    P: Settle<Outcome = Delivered>,
{
    to: Option<Arc<Rendezvous<P>>>,
    /// What a drop reports: whether the request may have been written by then.
    maybe_stored: bool,
}

impl<P> Deliver<P>
where
    P: Settle<Outcome = Delivered>,
{
    /// A deliverer to `to`'s receiver that, dropped undelivered, reports a send certainly not
    /// stored (until [`Deliver::may_be_stored`]).
    pub(crate) const fn new(to: Arc<Rendezvous<P>>) -> Self {
        Self {
            to: Some(to),
            maybe_stored: false,
        }
    }

    /// From now on a drop reports that the message may have been stored.
    pub(crate) fn may_be_stored(&mut self) {
        self.maybe_stored = true;
    }

    /// Delivers `outcome` with what the send leaves behind.
    pub(crate) fn call_with(mut self, outcome: SendOutcome, leftovers: Leftovers) {
        if let Some(to) = self.to.take() {
            to.deliver((outcome, leftovers));
        }
    }
}

impl<P> Drop for Deliver<P>
where
    P: Settle<Outcome = Delivered>,
{
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            tracing::debug!(
                maybe_stored = self.maybe_stored,
                "asynchronous send dropped before it ended: delivering Cancelled"
            );
            let cancelled = Err(SendError::bare(ErrorKind::Cancelled {
                maybe_stored: self.maybe_stored,
            }));
            to.deliver((cancelled, Leftovers::default()));
        }
    }
}

impl<P> std::fmt::Debug for Deliver<P>
where
    P: Settle<Outcome = Delivered>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliver")
            .field("pending", &self.to.is_some())
            .field("maybe_stored", &self.maybe_stored)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rendezvous with nothing parked: only its outlet is used.
    struct Outlet;

    impl Settle for Outlet {
        type Answer = ();
        type Outcome = Delivered;
        fn settle(&mut self, (): (), _: &Arc<Rendezvous<Self>>) {}
        fn cancelled() {}
    }

    fn outlet() -> Arc<Rendezvous<Outlet>> {
        Rendezvous::parked(Outlet)
    }

    fn taken(r: &Rendezvous<Outlet>) -> Option<String> {
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match r.poll_outcome(&mut cx) {
            std::task::Poll::Ready(Some((Ok(_), _))) => Some("ok".to_owned()),
            std::task::Poll::Ready(Some((Err(e), _))) => {
                Some(format!("{e} maybe_stored={}", e.maybe_stored()))
            }
            std::task::Poll::Ready(None) => Some("taken".to_owned()),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn dropped_undelivered_it_delivers_cancelled_once() {
        let r = outlet();
        drop(Deliver::new(Arc::clone(&r)));
        assert_eq!(
            taken(&r).as_deref(),
            Some("send cancelled by shutdown maybe_stored=false")
        );
        let r = outlet();
        let mut d = Deliver::new(Arc::clone(&r));
        d.may_be_stored();
        drop(d);
        assert_eq!(
            taken(&r).as_deref(),
            Some("send cancelled by shutdown maybe_stored=true")
        );
        assert_eq!(taken(&r).as_deref(), Some("taken"));
    }

    #[test]
    fn delivered_once() {
        let r = outlet();
        assert_eq!(taken(&r), None, "nothing delivered yet");
        Deliver::new(Arc::clone(&r)).call_with(
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default(),
        );
        assert!(!r.deliver((
            Err(SendError::bare(ErrorKind::NotRunning)),
            Leftovers::default()
        )));
        assert_eq!(
            taken(&r).as_deref(),
            Some("the producer is not running maybe_stored=false")
        );
    }
}
