//! Counts of the connection pool's life ([`RemotingClient::connection_stats`]): what a client's
//! metrics report about its connections. Counted per connect, never per request.
//!
//! [`RemotingClient::connection_stats`]: crate::RemotingClient::connection_stats

use std::sync::atomic::{AtomicU64, Ordering};

/// The pool's connection counters, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections open now (connected, not closed; those draining after a `GO_AWAY` included).
    pub open: u64,
    /// Connections opened since the client was made.
    pub connects: u64,
    /// Of those, connects to an address this client had a connection to before (the earlier
    /// one closed, or was replaced after a `GO_AWAY`).
    pub reconnects: u64,
    /// Connects that failed (refused, timed out, TLS handshake failed).
    pub connect_failures: u64,
}

/// The running totals behind [`ConnectionStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
}

impl Counters {
    /// A connect succeeded; `again` when it replaced an earlier connection to the address.
    pub(super) fn connected(&self, again: bool) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        if again {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connect failed.
    pub(super) fn failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals, with `open` connections now.
    pub(super) fn snapshot(&self, open: u64) -> ConnectionStats {
        ConnectionStats {
            open,
            connects: self.connects.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connects_reconnects_and_failures() {
        let c = Counters::default();
        c.connected(false);
        c.connected(true);
        c.connected(true);
        c.failed();
        assert_eq!(
            c.snapshot(2),
            ConnectionStats {
                open: 2,
                connects: 3,
                reconnects: 2,
                connect_failures: 1
            }
        );
    }
}
