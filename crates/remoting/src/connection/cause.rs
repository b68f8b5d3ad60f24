//! [`CloseCause`]: why a connection closed, when the reader knows more than "closed".

use super::Shared;
use crate::error::{DecodeError, RemotingError};
use crate::tls::TlsCause;

/// Recorded by the reader before it closes the connection; turns the waiters'
/// `ConnectionClosed` into a typed error carrying the cause.
#[derive(Debug)]
pub(crate) enum CloseCause {
    /// TLS refused or expected: the waiters fail with `RemotingError::Tls`.
    Tls(TlsCause),
    /// The peer sent what cannot be decoded: the waiters fail with `RemotingError::Protocol`.
    Protocol(DecodeError),
}

impl Shared {
    /// Records why the connection is closing (the first cause wins).
    pub(crate) fn set_close_cause(&self, cause: CloseCause) {
        if self.close_cause.set(cause).is_err() {
            tracing::debug!("connection close cause already recorded");
        }
    }

    /// What a waiter gets when the connection closed under it: `ConnectionClosed`, or the
    /// recorded cause (TLS refusal, protocol error) that closed it.
    pub(crate) fn closed_error(&self, written: bool) -> RemotingError {
        let addr = &self.opts.addr;
        match self.close_cause.get() {
            Some(CloseCause::Tls(cause)) => cause.error(addr),
            Some(CloseCause::Protocol(source)) => RemotingError::Protocol {
                addr: addr.clone(),
                written,
                source: source.duplicate(),
            },
            None => RemotingError::ConnectionClosed {
                addr: addr.clone(),
                written,
            },
        }
    }
}
