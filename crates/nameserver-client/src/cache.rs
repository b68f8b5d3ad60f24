//! `RouteCache`: the publish info of every topic in use, shared by the producers of one client.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use dashmap::DashMap;
use rmq_common::route::TopicRouteData;
use rmq_remoting::RemotingClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::client::NameServerClient;
use crate::config::NameServerConfig;
use crate::error::NameServerError;
use crate::publish_info::{cap_default_route, java_string_cmp, TopicPublishInfo};
use crate::publish_route::PublishRoute;

/// Routes of the topics in use, loaded on demand and kept fresh.
///
/// Cheap to clone; all clones share one cache. `publish_info` loads a topic's route on first use
/// (falling back to the default topic `TBW102` for topics that do not exist yet when the caller
/// allows auto-creation, §7.5); the refresher started by [`start_refresher`](Self::start_refresher)
/// refreshes every topic used within `topic_idle_expiry` once per `poll_interval` and drops the
/// others; [`refresh_now`](Self::refresh_now) refreshes one topic at once after a send failure
/// (at most once per `min_immediate_refresh_interval`).
/// A refreshed route replaces the cached one only when it differs, and a cached route stays in use
/// while no name server answers.
///
/// Every fetch (load or refresh) takes a sequence number before its request is sent, and its
/// answer is stored only when no fetch that started later has stored one already: a slow answer
/// never replaces a newer route (a periodic refresh that answers after an immediate one, or a
/// default-topic answer that arrives after the topic's own route). A refresh only updates a
/// cached topic: a topic dropped while its refresh was in flight stays dropped.
#[derive(Clone)]
pub struct RouteCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: NameServerClient,
    config: NameServerConfig,
    /// Hashed with foldhash (randomly seeded) rather than SipHash: every send looks its topic
    /// up, and the keys are the application's topics, not a peer's choice.
    topics: DashMap<String, Entry, foldhash::fast::RandomState>,
    /// The origin of [`Entry::last_used`].
    base: Instant,
    /// Sequence number of the next fetch (load or refresh), across all topics.
    fetch_seq: AtomicU64,
    /// One loader at a time per topic (the others wait and reuse its result).
    load_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Topics with an immediate refresh pending or in flight (see `cache/immediate.rs`).
    refreshing: DashMap<String, ()>,
    /// Broker name → broker id → address, from every cached route (newest route wins).
    brokers: RwLock<Arc<BTreeMap<String, BTreeMap<i64, String>>>>,
    rebuild: Mutex<()>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Loads and refreshes, for metrics ([`RouteCache::stats`]).
    stats: stats::Counters,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Where a cached route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The topic's own route.
    Own,
    /// The default topic's route, capped (the topic does not exist yet).
    Default,
}

#[derive(Debug)]
struct Entry {
    route: Arc<TopicRouteData>,
    /// The publish info with its round-robin counter (replaced when the route changes).
    publish: Arc<PublishRoute>,
    source: Source,
    /// When the topic was last asked for, in milliseconds since [`Inner::base`]. Atomic so that
    /// marking a use only takes the map's read lock (senders of one topic do not serialize).
    last_used: AtomicU64,
    updated: Instant,
    /// Bumped on every store (changed or not), so waiting loaders see a load happened.
    generation: u64,
    /// Sequence number of the fetch whose answer is stored (see [`RouteCache::next_fetch`]).
    fetch: u64,
    /// When the last immediate refresh started, in ms since [`Inner::base`] plus one (0: never).
    last_immediate: AtomicU64,
}

/// How a fetched route may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreMode {
    /// A load: the topic is added when it is not cached.
    Insert,
    /// A refresh: only a cached topic is updated (a dropped topic stays dropped).
    UpdateOnly,
}

/// What storing a fetched route did.
#[derive(Debug)]
enum Stored {
    /// The route differs from the cached one (or none was cached) and replaced it.
    Changed(Arc<PublishRoute>),
    /// Same route as the cached one, which is kept.
    Unchanged(Arc<PublishRoute>),
    /// A fetch that started later already stored its answer: this one is dropped. Carries the
    /// cached (newer) info.
    Stale(Arc<PublishRoute>),
    /// A refresh of a topic no longer cached: nothing stored.
    NotCached,
}

impl Stored {
    /// The publish info cached after the store.
    fn info(self) -> Option<Arc<PublishRoute>> {
        match self {
            Self::Changed(info) | Self::Unchanged(info) | Self::Stale(info) => Some(info),
            Self::NotCached => None,
        }
    }
}

impl fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteCache")
            .field("client", &self.inner.client)
            .field("topics", &self.inner.topics.len())
            .finish_non_exhaustive()
    }
}

impl RouteCache {
    /// A cache asking the name servers of `config.addrs` through `remoting`.
    ///
    /// An invalid configuration ([`NameServerConfig::validate`]) is used
    /// [`clamped`](NameServerConfig::clamped), with a warning: a zero `poll_interval`, for one,
    /// becomes [`MIN_POLL_INTERVAL`](crate::MIN_POLL_INTERVAL) instead of a spinning refresher.
    /// [`try_new`](Self::try_new) refuses it instead.
    #[must_use]
    pub fn new(remoting: RemotingClient, config: NameServerConfig) -> Self {
        let config = checked(config);
        let client = NameServerClient::new(remoting, config.addrs.clone());
        Self::with_client(client, config)
    }

    /// Like [`new`](Self::new), but an invalid configuration is an error.
    ///
    /// # Errors
    /// The [`ConfigError`](crate::ConfigError) of [`NameServerConfig::validate`].
    pub fn try_new(
        remoting: RemotingClient,
        config: NameServerConfig,
    ) -> Result<Self, crate::ConfigError> {
        config.validate()?;
        Ok(Self::new(remoting, config))
    }

    /// A cache over an existing [`NameServerClient`] (its addresses win over `config.addrs`).
    /// An invalid configuration is clamped as by [`new`](Self::new).
    #[must_use]
    pub fn with_client(client: NameServerClient, config: NameServerConfig) -> Self {
        let config = checked(config);
        Self {
            inner: Arc::new(Inner {
                client,
                config,
                topics: DashMap::default(),
                base: Instant::now(),
                fetch_seq: AtomicU64::new(1),
                load_locks: DashMap::new(),
                refreshing: DashMap::new(),
                brokers: RwLock::new(Arc::new(BTreeMap::new())),
                rebuild: Mutex::new(()),
                cancel: CancellationToken::new(),
                tasks: TaskTracker::new(),
                stats: stats::Counters::default(),
            }),
        }
    }

    /// The name-server client.
    #[must_use]
    pub fn client(&self) -> &NameServerClient {
        &self.inner.client
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &NameServerConfig {
        &self.inner.config
    }

    /// The cached publish info of `topic` when it has a writable queue, without waiting for
    /// anything (marks the topic as in use, as [`publish_info`](Self::publish_info) does).
    #[must_use]
    pub fn cached_publish_info(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        self.cached_route(topic, Instant::now())
            .map(|route| Arc::clone(route.info()))
    }

    /// [`cached_publish_info`](Self::cached_publish_info) with its round-robin counter (see
    /// [`PublishRoute`]), the topic marked as in use at `now` (a sender's own clock read of
    /// this moment: the cache reads no clock here).
    #[must_use]
    pub fn cached_route(&self, topic: &str, now: Instant) -> Option<Arc<PublishRoute>> {
        self.touch(topic, self.ms_at(now))
            .map(|(route, _)| route)
            .filter(|route| route.info().is_ok())
    }

    /// The publish info of `topic`, loading its route on first use (or while it has no queue).
    ///
    /// Marks the topic as in use. A cached route with queues is returned at once, even when it
    /// is stale because no name server answered the last refreshes. When the name server says the
    /// topic does not exist and `allow_auto_create` is set, the default topic's route is used with
    /// the queue count capped at `default_topic_queue_nums` (the broker creates the topic on the
    /// first send, §7.5). Concurrent first uses of a topic share one load.
    ///
    /// # Errors
    /// The [`NameServerError`] of the load; [`NameServerError::NoWritableMaster`] when the route
    /// has no writable queue on a master.
    pub async fn publish_info(
        &self,
        topic: &str,
        allow_auto_create: bool,
        timeout: Duration,
    ) -> Result<Arc<TopicPublishInfo>, NameServerError> {
        self.publish_route(topic, allow_auto_create, timeout)
            .await
            .map(|route| Arc::clone(route.info()))
    }

    /// [`publish_info`](Self::publish_info) with its round-robin counter (see
    /// [`PublishRoute`]).
    ///
    /// # Errors
    /// As [`publish_info`](Self::publish_info).
    pub async fn publish_route(
        &self,
        topic: &str,
        allow_auto_create: bool,
        timeout: Duration,
    ) -> Result<Arc<PublishRoute>, NameServerError> {
        let deadline = rmq_remoting::deadline_after(timeout);
        let seen = match self.touch(topic, self.now_ms()) {
            Some((route, _)) if route.info().is_ok() => return Ok(route),
            other => other.map(|(_, generation)| generation),
        };
        // The load is boxed: it is rare, and it would otherwise make every caller's future as
        // large as a name-server round trip.
        Box::pin(async {
            let lock = LoadLock::new(&self.inner.load_locks, topic);
            self.load_once(topic, seen, allow_auto_create, deadline, lock.mutex())
                .await
        })
        .await
    }

    /// Loads `topic` under its load lock unless another caller did meanwhile.
    async fn load_once(
        &self,
        topic: &str,
        seen: Option<u64>,
        allow_auto_create: bool,
        deadline: Instant,
        lock: &tokio::sync::Mutex<()>,
    ) -> Result<Arc<PublishRoute>, NameServerError> {
        // Past the deadline the load below fails fast with the name server's timeout.
        let _guard = tokio::time::timeout_at(deadline, lock.lock()).await.ok();
        if let Some((route, generation)) = self.touch(topic, self.now_ms()) {
            if route.info().is_ok() {
                return Ok(route);
            }
            if Some(generation) != seen {
                // Loaded by another caller meanwhile, and still without a writable queue.
                return Err(no_writable_master(topic));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.load(topic, allow_auto_create, left).await
    }

    /// Fetches and stores the route of `topic` (own route, else the default topic's when allowed).
    async fn load(
        &self,
        topic: &str,
        allow_auto_create: bool,
        timeout: Duration,
    ) -> Result<Arc<PublishRoute>, NameServerError> {
        let deadline = rmq_remoting::deadline_after(timeout);
        let fetch = self.next_fetch();
        self.inner.stats.loaded();
        let (source, route) = match self.inner.client.topic_route(topic, timeout).await {
            Ok(route) => (Source::Own, route),
            Err(NameServerError::TopicNotExist { topic: t, remark }) if allow_auto_create => {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.default_route(left).await {
                    Ok(route) => {
                        tracing::info!(topic, "topic not found, using the default topic's route");
                        (Source::Default, route)
                    }
                    // The topic's own answer says more than "TBW102 does not exist".
                    Err(NameServerError::TopicNotExist { .. }) => {
                        return Err(NameServerError::TopicNotExist { topic: t, remark })
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        // A stale answer yields the newer cached info; a load always stores or finds one.
        match self
            .store(topic, source, route, fetch, StoreMode::Insert)
            .info()
        {
            Some(route) if route.info().is_ok() => Ok(route),
            _ => Err(no_writable_master(topic)),
        }
    }

    /// The sequence number of a fetch about to send its first request.
    fn next_fetch(&self) -> u64 {
        self.inner.fetch_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The default topic's route with the queue cap applied.
    async fn default_route(&self, timeout: Duration) -> Result<TopicRouteData, NameServerError> {
        let config = &self.inner.config;
        let route = self
            .inner
            .client
            .topic_route(&config.default_topic, timeout)
            .await?;
        Ok(cap_default_route(&route, config.default_topic_queue_nums))
    }

    /// Marks `topic` as used at `now` (ms since [`Inner::base`]); returns its route and
    /// generation when cached.
    fn touch(&self, topic: &str, now: u64) -> Option<(Arc<PublishRoute>, u64)> {
        let entry = self.inner.topics.get(topic)?;
        // Written only when the millisecond moved on: the sends of one millisecond share the
        // entry's cache line without a locked write each.
        if entry.last_used.load(Ordering::Relaxed) < now {
            entry.last_used.fetch_max(now, Ordering::Relaxed);
        }
        Some((Arc::clone(&entry.publish), entry.generation))
    }

    /// Milliseconds since [`Inner::base`].
    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` in milliseconds since [`Inner::base`].
    fn ms_at(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.inner.base);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// Stores the route fetched by fetch number `fetch`, replacing the cached one only when it
    /// differs (§7.5 `topicRouteDataChanged`: order-insensitive comparison of queue and broker
    /// data), and only when no later fetch stored its answer already.
    fn store(
        &self,
        topic: &str,
        source: Source,
        route: TopicRouteData,
        fetch: u64,
        mode: StoreMode,
    ) -> Stored {
        let route = normalized(route);
        let now = Instant::now();
        let outcome = match self.inner.topics.entry(topic.to_owned()) {
            dashmap::Entry::Vacant(_) if mode == StoreMode::UpdateOnly => {
                tracing::debug!(topic, "topic dropped while its route was fetched");
                Stored::NotCached
            }
            dashmap::Entry::Occupied(e) if e.get().fetch > fetch => {
                tracing::debug!(
                    topic,
                    fetch,
                    stored = e.get().fetch,
                    "route answer older than the cached route dropped"
                );
                Stored::Stale(Arc::clone(&e.get().publish))
            }
            dashmap::Entry::Occupied(mut e) if *e.get().route == route => {
                let entry = e.get_mut();
                entry.source = source;
                entry.updated = now;
                entry.generation += 1;
                entry.fetch = fetch;
                Stored::Unchanged(Arc::clone(&entry.publish))
            }
            slot => {
                let info = TopicPublishInfo::from_route(topic, &route);
                let (generation, last_used, last_immediate, previous) = match &slot {
                    dashmap::Entry::Occupied(e) => {
                        let e = e.get();
                        (
                            e.generation + 1,
                            e.last_used.load(Ordering::Relaxed),
                            e.last_immediate.load(Ordering::Relaxed),
                            Some(Arc::clone(&e.publish)),
                        )
                    }
                    dashmap::Entry::Vacant(_) => (0, self.now_ms(), 0, None),
                };
                tracing::info!(
                    topic,
                    from_default_topic = source == Source::Default,
                    static_topic = info.is_static(),
                    queues = info.queues.len(),
                    brokers = ?info.broker_addrs,
                    "topic route changed"
                );
                // A changed route goes on with the round robin where the old one stands.
                let info = Arc::new(info);
                let publish = Arc::new(match previous {
                    Some(previous) => PublishRoute::after(info, &previous),
                    None => PublishRoute::new(info),
                });
                slot.insert(Entry {
                    route: Arc::new(route),
                    publish: Arc::clone(&publish),
                    source,
                    last_used: AtomicU64::new(last_used),
                    last_immediate: AtomicU64::new(last_immediate),
                    updated: now,
                    generation,
                    fetch,
                });
                Stored::Changed(publish)
            }
        };
        if matches!(outcome, Stored::Changed(_)) {
            self.rebuild_brokers();
        }
        outcome
    }

    /// Re-reads the route of a cached topic and stores it when it changed.
    ///
    /// A topic that is not cached is left alone (`Ok(false)`), and so is one dropped while the
    /// request was in flight. When no name server answers, or the topic disappeared from the name
    /// server, the cached route is kept and the error returned. An answer older than the cached
    /// route (a fetch that started later stored its answer first) is dropped. Returns whether the
    /// cached route changed.
    ///
    /// # Errors
    /// The [`NameServerError`] of the fetch.
    pub async fn refresh(&self, topic: &str) -> Result<bool, NameServerError> {
        let Some(source) = self.inner.topics.get(topic).map(|e| e.source) else {
            return Ok(false);
        };
        let timeout = self.inner.config.request_timeout;
        let deadline = rmq_remoting::deadline_after(timeout);
        let fetch = self.next_fetch();
        let fetched = match self.inner.client.topic_route(topic, timeout).await {
            Ok(route) => Ok((Source::Own, route)),
            Err(e) if e.is_topic_not_exist() && source == Source::Default => {
                // Not created by a broker yet: follow the default topic's route meanwhile.
                let left = deadline.saturating_duration_since(Instant::now());
                self.default_route(left).await.map(|r| (Source::Default, r))
            }
            Err(e) => {
                tracing::warn!(topic, error = %e, "route refresh failed, keeping the cached route");
                Err(e)
            }
        };
        let (source, route) = match fetched {
            Ok(fetched) => fetched,
            Err(e) => {
                self.inner.stats.refreshed(stats::Refreshed::Failed);
                return Err(e);
            }
        };
        let stored = self.store(topic, source, route, fetch, StoreMode::UpdateOnly);
        let changed = matches!(stored, Stored::Changed(_));
        self.inner.stats.refreshed(if changed {
            stats::Refreshed::Changed
        } else {
            stats::Refreshed::Unchanged
        });
        Ok(changed)
    }

    /// Refreshes every topic in use and drops the topics idle longer than `topic_idle_expiry`.
    pub(crate) async fn refresh_all(&self) {
        let now = self.now_ms();
        let expiry = self.inner.config.topic_idle_expiry;
        let mut in_use = Vec::new();
        let mut dropped = false;
        self.inner.topics.retain(|topic, e| {
            let idle = now.saturating_sub(e.last_used.load(Ordering::Relaxed));
            let keep = Duration::from_millis(idle) <= expiry;
            if keep {
                in_use.push(topic.clone());
            } else {
                tracing::info!(topic, "topic idle, route dropped from the cache");
                dropped = true;
            }
            keep
        });
        if dropped {
            self.rebuild_brokers();
        }
        for topic in in_use {
            if self.inner.cancel.is_cancelled() {
                return;
            }
            // Errors are logged by `refresh`; the cached route stays.
            let _ = self.refresh(&topic).await;
        }
    }

    /// The cached publish info of `topic`, without loading it or marking it as used.
    #[must_use]
    pub fn cached(&self, topic: &str) -> Option<Arc<TopicPublishInfo>> {
        self.inner
            .topics
            .get(topic)
            .map(|e| Arc::clone(e.publish.info()))
    }

    /// The cached topics.
    #[must_use]
    pub fn topics(&self) -> Vec<String> {
        self.inner.topics.iter().map(|e| e.key().clone()).collect()
    }

    /// Forgets `topic`: it is no longer refreshed until used again.
    pub fn remove(&self, topic: &str) {
        if self.inner.topics.remove(topic).is_some() {
            self.rebuild_brokers();
        }
    }

    /// The master address of a broker, from every cached route (Java `findBrokerAddressInPublish`).
    #[must_use]
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        let brokers = self.brokers();
        brokers
            .get(broker_name)?
            .get(&rmq_common::MASTER_ID)
            .cloned()
    }

    /// The master addresses of every broker of every cached route, sorted (heartbeat targets).
    #[must_use]
    pub fn all_master_addrs(&self) -> Vec<String> {
        let brokers = self.brokers();
        let mut addrs: Vec<String> = brokers
            .values()
            .filter_map(|ids| ids.get(&rmq_common::MASTER_ID).cloned())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// Every broker address (masters and slaves) of every cached route, sorted (unregister targets).
    #[must_use]
    pub fn all_broker_addrs(&self) -> Vec<String> {
        let brokers = self.brokers();
        let mut addrs: Vec<String> = brokers
            .values()
            .flat_map(|ids| ids.values().cloned())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    fn brokers(&self) -> Arc<BTreeMap<String, BTreeMap<i64, String>>> {
        match self.inner.brokers.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the broker table from the cached routes, newest last so it wins.
    fn rebuild_brokers(&self) {
        let _serial = self.inner.rebuild.lock().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<(Instant, Arc<TopicRouteData>)> = self
            .inner
            .topics
            .iter()
            .map(|e| (e.updated, e.route.clone()))
            .collect();
        routes.sort_by_key(|(updated, _)| *updated);
        let mut table = BTreeMap::new();
        for (_, route) in routes {
            for bd in &route.broker_datas {
                table.insert(bd.broker_name.clone(), bd.broker_addrs.clone());
            }
        }
        let mut slot = self
            .inner
            .brokers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(table);
    }

    /// Stops the refresher and every spawned refresh, and waits for them to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(weak: &Weak<Inner>) -> Option<Self> {
        weak.upgrade().map(|inner| Self { inner })
    }

    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tasks
    }
}

/// A share of a topic's load lock; the last share dropped (the load finished, failed, or its
/// future was cancelled) removes the lock from the map.
struct LoadLock<'a> {
    locks: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    topic: &'a str,
    mutex: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> LoadLock<'a> {
    fn new(locks: &'a DashMap<String, Arc<tokio::sync::Mutex<()>>>, topic: &'a str) -> Self {
        let mutex = locks.entry(topic.to_owned()).or_default().clone();
        Self {
            locks,
            topic,
            mutex,
        }
    }

    fn mutex(&self) -> &tokio::sync::Mutex<()> {
        &self.mutex
    }
}

impl Drop for LoadLock<'_> {
    fn drop(&mut self) {
        // The map's share and this one only: the last user. Checked under the shard lock, which
        // every new share is taken under too.
        self.locks.remove_if(self.topic, |_, l| {
            Arc::ptr_eq(l, &self.mutex) && Arc::strong_count(l) == 2
        });
    }
}

/// `config`, clamped with a warning when it is invalid.
fn checked(config: NameServerConfig) -> NameServerConfig {
    match config.validate() {
        Ok(()) => config,
        Err(e) => {
            let clamped = config.clamped();
            tracing::warn!(error = %e, ?clamped, "invalid name-server configuration clamped");
            clamped
        }
    }
}

fn no_writable_master(topic: &str) -> NameServerError {
    NameServerError::NoWritableMaster {
        topic: topic.to_owned(),
    }
}

/// Sorts queue and broker data by broker name so that equal routes compare equal.
fn normalized(mut route: TopicRouteData) -> TopicRouteData {
    route
        .queue_datas
        .sort_by(|a, b| java_string_cmp(&a.broker_name, &b.broker_name));
    route
        .broker_datas
        .sort_by(|a, b| java_string_cmp(&a.broker_name, &b.broker_name));
    route
}

mod immediate;
mod stats;
pub use stats::RouteStats;
#[cfg(test)]
mod tests;
