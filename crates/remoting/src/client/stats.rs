//! Counts of the connection pool's life ([`RemotingClient::connection_stats`]): what a client's
//! metrics report about its connections. Counted per connect, never per request.
//!
//! [`RemotingClient::connection_stats`]: crate::RemotingClient::connection_stats

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

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

/// Addresses remembered as connected before: a client talks to its name servers and brokers,
/// a handful; past this many, a connect to an address not remembered counts as a first one.
const MAX_REMEMBERED: usize = 4096;

/// The running totals behind [`ConnectionStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    /// Every address connected so far (bounded by [`MAX_REMEMBERED`]): a connection closed on
    /// a timeout or retired after a `GO_AWAY` is out of the pool, and connecting there again is
    /// still a reconnect.
    connected_before: Mutex<HashSet<String>>,
}

impl Counters {
    /// A connect to `addr` succeeded: a reconnect when `addr` was connected before.
    pub(super) fn connected(&self, addr: &str) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let again = {
            let mut seen = self
                .connected_before
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            seen.contains(addr) || {
                if seen.len() < MAX_REMEMBERED {
                    seen.insert(addr.to_owned());
                }
                false
            }
        };
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
        c.connected("127.0.0.1:9876");
        c.connected("127.0.0.1:9876");
        c.connected("127.0.0.1:9876");
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
        c.connected("127.0.0.1:10911");
        assert_eq!(
            c.snapshot(0).reconnects,
            2,
            "a new address is a first connect"
        );
    }

    #[test]
    fn remembers_a_bounded_number_of_addresses() {
        let c = Counters::default();
        for i in 0..MAX_REMEMBERED + 10 {
            c.connected(&format!("10.0.0.1:{i}"));
        }
        assert_eq!(c.snapshot(0).reconnects, 0);
        // Remembered: a reconnect; past the bound: counted as first connects.
        c.connected("10.0.0.1:0");
        c.connected(&format!("10.0.0.1:{}", MAX_REMEMBERED + 1));
        assert_eq!(c.snapshot(0).reconnects, 1);
        assert_eq!(
            c.connected_before
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            MAX_REMEMBERED
        );
    }
}
