//! Immediate refreshes (`RouteCache::refresh_now`, after a send failure): at most one in flight
//! per topic, at least `min_immediate_refresh_interval` apart.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::RouteCache;

/// Marks a topic's immediate refresh as in flight; dropping it (the refresh ended, the task was
/// aborted, or its runtime shut down) clears the mark, so later calls are never locked out.
struct InFlight {
    cache: RouteCache,
    topic: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cache.inner.refreshing.remove(&self.topic);
    }
}

impl RouteCache {
    /// Refreshes `topic` soon in a spawned task (after a send to one of its brokers failed).
    ///
    /// At most one such refresh per topic is pending or running at a time (a call meanwhile
    /// joins it), and two start at least
    /// [`min_immediate_refresh_interval`](crate::NameServerConfig::min_immediate_refresh_interval)
    /// apart: a call sooner than that after the last one is served when the interval has passed.
    /// A topic that is not cached, a call outside a tokio runtime, and a call after shutdown do
    /// nothing.
    pub fn refresh_now(&self, topic: &str) {
        if self.inner.cancel.is_cancelled() || !self.inner.topics.contains_key(topic) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(topic, "refresh_now outside a tokio runtime ignored");
            return;
        };
        if self.inner.refreshing.insert(topic.to_owned(), ()).is_some() {
            return;
        }
        let in_flight = InFlight {
            cache: self.clone(),
            topic: topic.to_owned(),
        };
        let wait = self.immediate_wait(topic);
        tracing::debug!(topic, ?wait, "immediate route refresh");
        let cancel = self.inner.cancel.clone();
        handle.spawn(self.inner.tasks.track_future(async move {
            let refresh = async {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let cache = &in_flight.cache;
                cache.mark_immediate(&in_flight.topic);
                // Errors are logged by `refresh`; the cached route stays.
                let _ = cache.refresh(&in_flight.topic).await;
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => {}
                () = refresh => {}
            }
            drop(in_flight);
        }));
    }

    /// How long an immediate refresh of `topic` must wait for the minimum interval.
    fn immediate_wait(&self, topic: &str) -> Duration {
        let interval = self.inner.config.min_immediate_refresh_interval;
        let Some(last) = self
            .inner
            .topics
            .get(topic)
            .map(|e| e.last_immediate.load(Ordering::Relaxed))
        else {
            return Duration::ZERO;
        };
        if last == 0 {
            return Duration::ZERO;
        }
        let since = (self.now_ms() + 1).saturating_sub(last);
        interval.saturating_sub(Duration::from_millis(since))
    }

    /// Records that an immediate refresh of `topic` starts now.
    fn mark_immediate(&self, topic: &str) {
        if let Some(e) = self.inner.topics.get(topic) {
            e.last_immediate.store(self.now_ms() + 1, Ordering::Relaxed);
        }
    }
}
