//! Counts of the route cache's fetches ([`RouteCache::stats`]): what a client's metrics report
//! about its routes. Counted per fetch from a name server, never per cached lookup.

use std::sync::atomic::{AtomicU64, Ordering};

use super::RouteCache;

/// The route cache's fetch counters, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouteStats {
    /// Routes loaded on a first use (the lookup a send waits for), answered or not.
    pub loads: u64,
    /// Refreshes of cached routes (periodic and immediate), answered or not.
    pub refreshes: u64,
    /// Of those, refreshes no name server answered with a route (the cached one was kept).
    pub refresh_failures: u64,
    /// Of those, refreshes that changed the cached route.
    pub refresh_changes: u64,
}

/// The running totals behind [`RouteStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    loads: AtomicU64,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
    refresh_changes: AtomicU64,
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refreshed {
    Failed,
    Unchanged,
    Changed,
}

impl Counters {
    /// A first-use load went to the name servers.
    pub(crate) fn loaded(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// A refresh ended so.
    pub(crate) fn refreshed(&self, how: Refreshed) {
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        match how {
            Refreshed::Failed => self.refresh_failures.fetch_add(1, Ordering::Relaxed),
            Refreshed::Changed => self.refresh_changes.fetch_add(1, Ordering::Relaxed),
            Refreshed::Unchanged => 0,
        };
    }

    fn snapshot(&self) -> RouteStats {
        RouteStats {
            loads: self.loads.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            refresh_failures: self.refresh_failures.load(Ordering::Relaxed),
            refresh_changes: self.refresh_changes.load(Ordering::Relaxed),
        }
    }
}

impl RouteCache {
    /// Counts of this cache's fetches: first-use loads, refreshes, failed and changing refreshes.
    #[must_use]
    pub fn stats(&self) -> RouteStats {
        self.inner.stats.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loads_and_refreshes_by_outcome() {
        let c = Counters::default();
        c.loaded();
        for how in [
            Refreshed::Failed,
            Refreshed::Unchanged,
            Refreshed::Changed,
            Refreshed::Changed,
        ] {
            c.refreshed(how);
        }
        assert_eq!(
            c.snapshot(),
            RouteStats {
                loads: 1,
                refreshes: 4,
                refresh_failures: 1,
                refresh_changes: 2
            }
        );
    }
}
