//! [`Deliver`]: the outcome of an asynchronous send handed over exactly once.
//!
//! A send's deliverer travels from the caller to where the send ends (the connection's callback
//! or the completion driver). Whatever happens on
//! the way (the caller drops the `send_async` future while it waits for room, the runtime shuts
//! down and drops the send's task), it is called once: dropped uncalled, it delivers
//! [`ErrorKind::Cancelled`]. A panic in the receiver is caught and logged; it never
//! reaches the completion driver.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{ErrorKind, SendError};
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
/// (and, for a send settled in the connection's callback, the ~0.7 KB rendezvous they stay in:
/// the send's own allocation, freed with them by the receiver rather than by the connection's
/// reader).
#[derive(Default)]
pub(crate) struct Leftovers {
    held: Kept,
}

/// How [`Leftovers`] hold what they free.
#[derive(Default)]
enum Kept {
    #[default]
    Nothing,
    /// Boxed for the trip.
    Boxed { _held: Box<dyn Send> },
    /// A handle of what holds them already, where the send settled (its rendezvous: no
    /// allocation for the trip, and the receiver usually drops the last handle, freeing it).
    Shared { _holder: Arc<dyn Send + Sync> },
}

impl std::fmt::Debug for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leftovers")
            .field("held", &!matches!(self.held, Kept::Nothing))
            .finish()
    }
}

impl Leftovers {
    /// Leftovers holding `held`.
    pub(crate) fn new(held: Box<dyn Send>) -> Self {
        Self {
            held: Kept::Boxed { _held: held },
        }
    }

    /// Leftovers holding a handle of what holds them.
    pub(crate) fn shared(holder: Arc<dyn Send + Sync>) -> Self {
        Self {
            held: Kept::Shared { _holder: holder },
        }
    }
}

/// What a deliverer's receiver takes: the outcome alone (leftovers are dropped where the send
/// completes), or the outcome with its leftovers.
pub(crate) trait Delivered: Sized {
    fn from_parts(outcome: SendOutcome, leftovers: Leftovers) -> Self;
}

impl Delivered for SendOutcome {
    fn from_parts(outcome: SendOutcome, _: Leftovers) -> Self {
        outcome
    }
}

impl Delivered for (SendOutcome, Leftovers) {
    fn from_parts(outcome: SendOutcome, leftovers: Leftovers) -> Self {
        (outcome, leftovers)
    }
}

/// Holds the receiver of a send's outcome until it is called; calls it with
/// [`ErrorKind::Cancelled`] when dropped uncalled.
pub(crate) struct Deliver<F, T = SendOutcome>
where
    F: FnOnce(T),
    T: Delivered,
{
    f: Option<F>,
    /// What a drop reports: whether the request may have been written by then.
    maybe_stored: bool,
    _takes: PhantomData<fn(T)>,
}

impl<F, T> Deliver<F, T>
where
    F: FnOnce(T),
    T: Delivered,
{
    /// A deliverer that, dropped uncalled, reports a send certainly not stored (until
    /// [`Deliver::may_be_stored`]).
    pub(crate) const fn new(f: F) -> Self {
        Self {
            f: Some(f),
            maybe_stored: false,
            _takes: PhantomData,
        }
    }

    /// From now on a drop reports that the message may have been stored.
    pub(crate) fn may_be_stored(&mut self) {
        self.maybe_stored = true;
    }

    /// Delivers `outcome`; a panic of the receiver is caught and logged.
    #[cfg(test)]
    pub(crate) fn call(self, outcome: SendOutcome) {
        self.call_with(outcome, Leftovers::default());
    }

    /// Delivers `outcome` with what the send leaves behind.
    pub(crate) fn call_with(mut self, outcome: SendOutcome, leftovers: Leftovers) {
        if let Some(f) = self.f.take() {
            run(f, T::from_parts(outcome, leftovers));
        }
    }
}

impl<F, T> Drop for Deliver<F, T>
where
    F: FnOnce(T),
    T: Delivered,
{
    fn drop(&mut self) {
        if let Some(f) = self.f.take() {
            tracing::debug!(
                maybe_stored = self.maybe_stored,
                "asynchronous send dropped before it ended: delivering Cancelled"
            );
            let cancelled = Err(SendError::bare(ErrorKind::Cancelled {
                maybe_stored: self.maybe_stored,
            }));
            run(f, T::from_parts(cancelled, Leftovers::default()));
        }
    }
}

impl<F, T> std::fmt::Debug for Deliver<F, T>
where
    F: FnOnce(T),
    T: Delivered,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliver")
            .field("pending", &self.f.is_some())
            .field("maybe_stored", &self.maybe_stored)
            .finish()
    }
}

fn run<F: FnOnce(T), T>(f: F, value: T) {
    if catch_unwind(AssertUnwindSafe(move || f(value))).is_err() {
        tracing::error!("a send callback panicked (the panic was caught)");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Seen = Arc<Mutex<Vec<String>>>;

    fn recorder() -> (Seen, impl FnOnce(SendOutcome) + Send + 'static) {
        let seen = Seen::default();
        let s = Arc::clone(&seen);
        (seen, move |r: SendOutcome| {
            let text = match r {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("{e} maybe_stored={}", e.maybe_stored()),
            };
            s.lock().expect("lock").push(text);
        })
    }

    fn seen(s: &Seen) -> Vec<String> {
        s.lock().expect("lock").clone()
    }

    #[test]
    fn dropped_uncalled_it_reports_cancelled_once() {
        let (s, f) = recorder();
        drop(Deliver::new(f));
        assert_eq!(
            seen(&s),
            vec!["send cancelled by shutdown maybe_stored=false"]
        );
        let (s, f) = recorder();
        let mut d = Deliver::new(f);
        d.may_be_stored();
        drop(d);
        assert_eq!(
            seen(&s),
            vec!["send cancelled by shutdown maybe_stored=true"]
        );
    }

    #[test]
    fn called_once() {
        let (s, f) = recorder();
        Deliver::new(f).call(Err(SendError::bare(ErrorKind::NotRunning)));
        assert_eq!(
            seen(&s),
            vec!["the producer is not running maybe_stored=false"]
        );
    }

    #[test]
    fn a_panicking_receiver_is_contained() {
        Deliver::new(|_: SendOutcome| panic!("user bug"))
            .call(Err(SendError::bare(ErrorKind::NotRunning)));
        drop(Deliver::new(|_: SendOutcome| panic!("user bug in drop")));
    }
}
