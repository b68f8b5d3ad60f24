//! [`Callback`]: the completion callback of
//! [`invoke_async_callback`](crate::RemotingClient::invoke_async_callback), called exactly once.

use crate::command::RemotingCommand;
use crate::error::RemotingError;

/// Holds a callback until it is called with the outcome. Dropped before that (the task was
/// dropped: the runtime is shutting down), it calls it with [`RemotingError::Shutdown`].
pub(crate) struct Callback<F>(Option<F>)
where
    F: FnOnce(Result<RemotingCommand, RemotingError>);

impl<F> Callback<F>
where
    F: FnOnce(Result<RemotingCommand, RemotingError>),
{
    pub(crate) const fn new(f: F) -> Self {
        Self(Some(f))
    }

    /// Calls the callback with `outcome`.
    #[inline]
    pub(crate) fn call(mut self, outcome: Result<RemotingCommand, RemotingError>) {
        self.call_in_place(outcome);
    }

    /// Calls the callback with `outcome` where it is (once: a second call does nothing, and
    /// the drop then reports nothing either).
    #[inline]
    pub(crate) fn call_in_place(&mut self, outcome: Result<RemotingCommand, RemotingError>) {
        if let Some(f) = self.0.take() {
            f(outcome);
        }
    }
}

impl<F> crate::connection::Complete for Callback<F>
where
    F: FnOnce(Result<RemotingCommand, RemotingError>) + Send,
{
    fn complete(mut self: Box<Self>, reply: crate::connection::Reply) {
        self.call_in_place(reply);
    }
}

impl<F> Drop for Callback<F>
where
    F: FnOnce(Result<RemotingCommand, RemotingError>),
{
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            tracing::debug!("async call dropped before it ended (runtime shutting down)");
            f(Err(RemotingError::Shutdown));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    type Seen = Rc<RefCell<Vec<String>>>;

    fn recorder() -> (Seen, impl FnOnce(Result<RemotingCommand, RemotingError>)) {
        let seen = Seen::default();
        let s = Rc::clone(&seen);
        (seen, move |r: Result<RemotingCommand, RemotingError>| {
            s.borrow_mut().push(match r {
                Ok(_) => "ok".to_owned(),
                Err(e) => e.to_string(),
            });
        })
    }

    #[test]
    fn called_once_with_the_outcome() {
        let (seen, f) = recorder();
        Callback::new(f).call(Err(RemotingError::Overloaded { addr: "a".into() }));
        assert_eq!(
            *seen.borrow(),
            vec!["too many requests in flight to a".to_owned()]
        );
    }

    #[test]
    fn dropped_uncalled_it_reports_shutdown() {
        let (seen, f) = recorder();
        drop(Callback::new(f));
        assert_eq!(*seen.borrow(), vec!["remoting client shut down".to_owned()]);
    }
}
