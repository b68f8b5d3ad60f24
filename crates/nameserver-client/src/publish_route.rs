//! `PublishRoute`: a topic's publish info with what every send would otherwise compute or look
//! up again: the round-robin counter of its queues and the number of its real brokers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::publish_info::TopicPublishInfo;

/// A topic's [`TopicPublishInfo`] as senders use it: with the round-robin counter of its queues
/// (Java's per-`TopicPublishInfo` `sendWhichQueue`, seeded at random so that producers started
/// together do not all begin on the same queue), the number of distinct real brokers of its
/// queues and the master address of every queue's broker, computed once.
///
/// The [`RouteCache`](crate::RouteCache) keeps one per cached topic; a route that changes gets a
/// new one, which carries the counter of the one it replaces on (see [`PublishRoute::after`]).
///
/// ```
/// use std::sync::Arc;
/// use rmq_common::MessageQueue;
/// use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
///
/// let info = TopicPublishInfo {
///     queues: vec![
///         MessageQueue::new("T", "a", 0),
///         MessageQueue::new("T", "a", 1),
///         MessageQueue::new("T", "b", 0),
///     ],
///     ..TopicPublishInfo::default()
/// };
/// let route = PublishRoute::new(Arc::new(info));
/// assert_eq!(route.brokers(), 2);
/// assert_eq!(route.info().queues.len(), 3);
/// assert_eq!(route.queue_addr(0), None); // no broker address in this route
/// ```
#[derive(Debug)]
pub struct PublishRoute {
    info: Arc<TopicPublishInfo>,
    counter: AtomicU32,
    brokers: u32,
    /// Per queue: an index into `addrs`, or `u32::MAX` when its broker has no address.
    queue_addrs: Vec<u32>,
    /// The master addresses of the route's brokers that have queues (shared: a send holds its
    /// address without copying it).
    addrs: Vec<Arc<str>>,
}

impl PublishRoute {
    /// The route of `info`, its counter seeded at random.
    #[must_use]
    pub fn new(info: Arc<TopicPublishInfo>) -> Self {
        Self::with_counter(info, fastrand::u32(..))
    }

    /// The route of `info` replacing `previous` (a refreshed route): the counter goes on from
    /// where `previous` stands, so a route change does not restart the round robin.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::Ordering;
    /// use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
    ///
    /// let old = PublishRoute::new(Arc::new(TopicPublishInfo::default()));
    /// let new = PublishRoute::after(Arc::new(TopicPublishInfo::default()), &old);
    /// assert_eq!(
    ///     new.counter().load(Ordering::Relaxed),
    ///     old.counter().load(Ordering::Relaxed)
    /// );
    /// ```
    #[must_use]
    pub fn after(info: Arc<TopicPublishInfo>, previous: &Self) -> Self {
        Self::with_counter(info, previous.counter.load(Ordering::Relaxed))
    }

    fn with_counter(info: Arc<TopicPublishInfo>, seed: u32) -> Self {
        let brokers = info
            .queues
            .iter()
            .map(|q| info.broker_name_of(q))
            .collect::<BTreeSet<_>>()
            .len();
        // One address per broker name, shared by its queues.
        let mut index: BTreeMap<&str, u32> = BTreeMap::new();
        let mut addrs = Vec::new();
        let queue_addrs = info
            .queues
            .iter()
            .map(|q| {
                let Some(addr) = info.master_addr(&q.broker_name) else {
                    return u32::MAX;
                };
                *index.entry(q.broker_name.as_str()).or_insert_with(|| {
                    addrs.push(Arc::from(addr));
                    u32::try_from(addrs.len() - 1).unwrap_or(u32::MAX)
                })
            })
            .collect();
        Self {
            counter: AtomicU32::new(seed),
            brokers: u32::try_from(brokers).unwrap_or(u32::MAX),
            queue_addrs,
            addrs,
            info,
        }
    }

    /// The publish info.
    #[must_use]
    pub fn info(&self) -> &Arc<TopicPublishInfo> {
        &self.info
    }

    /// The round-robin counter of the queues (advanced by every queue choice).
    #[must_use]
    pub fn counter(&self) -> &AtomicU32 {
        &self.counter
    }

    /// How many distinct real brokers ([`TopicPublishInfo::broker_name_of`]) the queues have.
    #[must_use]
    pub fn brokers(&self) -> u32 {
        self.brokers
    }

    /// The master address of the broker named by queue `i` of [`TopicPublishInfo::queues`]
    /// (what `info().master_addr(&queues[i].broker_name)` gives, without the map lookup).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rmq_common::MessageQueue;
    /// use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
    ///
    /// let mut info = TopicPublishInfo::default();
    /// info.queues = vec![MessageQueue::new("T", "a", 0), MessageQueue::new("T", "b", 0)];
    /// info.broker_addrs.insert("a".into(), "h:1".into());
    /// let route = PublishRoute::new(Arc::new(info));
    /// assert_eq!(route.queue_addr(0), Some("h:1"));
    /// assert_eq!(route.queue_addr(1), None);
    /// assert_eq!(route.queue_addr(2), None);
    /// ```
    #[must_use]
    pub fn queue_addr(&self, i: usize) -> Option<&str> {
        let at = *self.queue_addrs.get(i)?;
        self.addrs.get(usize::try_from(at).ok()?).map(|a| &**a)
    }

    /// [`PublishRoute::queue_addr`], shared: a sender that keeps the address past the route's
    /// borrow (an asynchronous send's request) clones the handle instead of the text.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use rmq_common::MessageQueue;
    /// use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
    ///
    /// let mut info = TopicPublishInfo::default();
    /// info.queues = vec![MessageQueue::new("T", "a", 0), MessageQueue::new("T", "b", 0)];
    /// info.broker_addrs.insert("a".into(), "h:1".into());
    /// let route = PublishRoute::new(Arc::new(info));
    /// let addr: Arc<str> = Arc::clone(route.queue_addr_shared(0).unwrap());
    /// assert_eq!(&*addr, "h:1");
    /// assert_eq!(route.queue_addr_shared(1), None);
    /// assert_eq!(route.queue_addr_shared(2), None);
    /// ```
    #[must_use]
    pub fn queue_addr_shared(&self, i: usize) -> Option<&Arc<str>> {
        let at = *self.queue_addrs.get(i)?;
        self.addrs.get(usize::try_from(at).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rmq_common::MessageQueue;

    use super::*;

    fn info(brokers: &[(&str, i32)]) -> TopicPublishInfo {
        TopicPublishInfo {
            queues: brokers
                .iter()
                .flat_map(|(b, n)| (0..*n).map(move |i| MessageQueue::new("T", *b, i)))
                .collect(),
            ..TopicPublishInfo::default()
        }
    }

    #[test]
    fn brokers_counts_distinct_brokers_even_when_not_grouped() {
        let mut i = info(&[("a", 2), ("b", 1), ("a", 1), ("c", 3)]);
        assert_eq!(PublishRoute::new(Arc::new(i.clone())).brokers(), 3);
        i.queues.clear();
        assert_eq!(PublishRoute::new(Arc::new(i)).brokers(), 0);
    }

    #[test]
    fn brokers_of_a_static_topic_are_its_real_brokers() {
        // Two logical queues under one mock broker name, served by two real brokers.
        let mut i = info(&[("__syslo__global__", 3)]);
        let endpoints: BTreeMap<_, _> = i
            .queues
            .iter()
            .zip(["x", "y", "x"])
            .map(|(q, b)| (q.clone(), b.to_owned()))
            .collect();
        i.static_endpoints = endpoints;
        assert_eq!(PublishRoute::new(Arc::new(i)).brokers(), 2);
    }

    #[test]
    fn queue_addr_is_the_routes_master_addr_of_each_queue() {
        let mut i = info(&[("a", 2), ("b", 1), ("c", 2), ("a", 1)]);
        i.broker_addrs.insert("a".into(), "h:1".into());
        i.broker_addrs.insert("c".into(), "h:3".into());
        let route = PublishRoute::new(Arc::new(i.clone()));
        for (n, q) in i.queues.iter().enumerate() {
            assert_eq!(
                route.queue_addr(n),
                i.master_addr(&q.broker_name),
                "queue {n}"
            );
        }
        assert_eq!(route.queue_addr(i.queues.len()), None);
    }

    #[test]
    fn a_following_route_carries_the_counter_on() {
        let old = PublishRoute::new(Arc::new(info(&[("a", 2)])));
        old.counter().store(41, Ordering::Relaxed);
        let new = PublishRoute::after(Arc::new(info(&[("a", 4)])), &old);
        assert_eq!(new.counter().load(Ordering::Relaxed), 41);
        assert_eq!(new.info().queues.len(), 4);
    }
}
