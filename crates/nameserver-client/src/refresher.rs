//! The periodic route refresh of the topics in use (Java's `pollNameServerInterval` task).

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::RouteCache;

impl RouteCache {
    /// Starts the periodic refresh: every `poll_interval`, topics used within
    /// `topic_idle_expiry` are refreshed and the others dropped from the cache.
    ///
    /// The task ends when `token` is cancelled, on [`shutdown`](Self::shutdown), or once every
    /// clone of the cache is dropped. It holds no strong reference to the cache while it sleeps.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn start_refresher(&self, token: CancellationToken) -> JoinHandle<()> {
        let weak = self.downgrade();
        let own = self.cancel_token().clone();
        // The configuration was clamped when the cache was made; never spin regardless.
        let interval = self.config().poll_interval.max(crate::MIN_POLL_INTERVAL);
        tracing::debug!(?interval, "route refresher started");
        let task = async move {
            loop {
                tokio::select! {
                    biased;
                    () = token.cancelled() => break,
                    () = own.cancelled() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                let Some(cache) = RouteCache::upgrade(&weak) else {
                    break;
                };
                tokio::select! {
                    biased;
                    () = token.cancelled() => break,
                    () = own.cancelled() => break,
                    () = cache.refresh_all() => {}
                }
            }
            tracing::debug!("route refresher stopped");
        };
        tokio::spawn(self.tracker().track_future(task))
    }
}
