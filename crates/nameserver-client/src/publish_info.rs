//! `TopicPublishInfo`: the queues a producer may write, built from a route as Java's
//! `MQClientInstance.topicRouteData2TopicPublishInfo` does (§7.4), static topics included.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rmq_common::route::{self, TopicRouteData};
use rmq_common::MessageQueue;

use crate::limits::{order_conf_items, MAX_QUEUES_PER_BROKER, MAX_QUEUES_PER_ROUTE};
use crate::static_topic;

/// Where a topic can be written: its message queues and the master address of every broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPublishInfo {
    /// The writable queues, in Java's order (brokers sorted by name, queue ids ascending), or the
    /// order-topic configuration's order.
    pub queues: Vec<MessageQueue>,
    /// True when the queues come from the route's `orderTopicConf`.
    pub order_topic: bool,
    /// Master (broker id 0) address per broker name, for every broker of the route.
    pub broker_addrs: BTreeMap<String, String>,
    /// For a static topic: the real broker serving each logical queue (Java's
    /// `topicEndPointsTable`); empty otherwise. See [`broker_name_of`](Self::broker_name_of).
    pub static_endpoints: BTreeMap<MessageQueue, String>,
}

impl TopicPublishInfo {
    /// Builds the publish info of `topic` from its route as Java does (§7.4):
    ///
    /// - With a non-empty `orderTopicConf` (`"broker-a:4;broker-b:2"`), one queue per configured
    ///   id, in configuration order, without permission or master checks (malformed items are
    ///   skipped where Java would throw).
    /// - Without `orderTopicConf` (absent, not empty) and with a non-empty
    ///   `topicQueueMappingByBroker` (a 5.x static topic): the logical queues `0..totalQueues` of
    ///   every scope, named after the scope's mock broker (see [`crate::mock_broker_name`]:
    ///   `__syslo__global__`), sorted by queue id (then mock broker name, where Java leaves a hash
    ///   map's order); [`Self::static_endpoints`] names the real broker of each (Java
    ///   `ClientMetadata.topicRouteData2EndpointsForStaticTopic`), see [`Self::broker_name_of`].
    /// - Otherwise the queue data sorted by broker name (Java `String.compareTo`, stable), and for
    ///   every writable queue data whose broker has a master (id 0), one queue per write queue.
    ///
    /// Unlike Java, a count above [`crate::MAX_QUEUES_PER_BROKER`], or one that would take the
    /// list past [`crate::MAX_QUEUES_PER_ROUTE`], is skipped with a warning instead of allocating
    /// billions of queues. [`crate::decode_route`] rejects such routes, so this only concerns
    /// routes built by hand.
    ///
    /// ```
    /// use rmq_common::route::TopicRouteData;
    /// use rmq_nameserver_client::TopicPublishInfo;
    ///
    /// let route: TopicRouteData = serde_json::from_str(r#"{
    ///   "queueDatas":[{"brokerName":"b","readQueueNums":2,"writeQueueNums":2,"perm":6},
    ///                 {"brokerName":"a","readQueueNums":1,"writeQueueNums":1,"perm":6}],
    ///   "brokerDatas":[{"cluster":"c","brokerName":"a","brokerAddrs":{"0":"h:1"}},
    ///                  {"cluster":"c","brokerName":"b","brokerAddrs":{"0":"h:2"}}]}"#).unwrap();
    /// let info = TopicPublishInfo::from_route("T", &route);
    /// let queues: Vec<_> = info.queues.iter().map(|q| (q.broker_name.as_str(), q.queue_id)).collect();
    /// assert_eq!(queues, [("a", 0), ("b", 0), ("b", 1)]);
    /// assert_eq!(info.master_addr("b"), Some("h:2"));
    /// ```
    #[must_use]
    pub fn from_route(topic: &str, route: &TopicRouteData) -> Self {
        let broker_addrs = route
            .broker_datas
            .iter()
            .filter_map(|bd| {
                let addr = bd.broker_addrs.get(&route::MASTER_ID)?;
                Some((bd.broker_name.clone(), addr.clone()))
            })
            .collect();
        let conf = route.order_topic_conf.as_deref().unwrap_or("");
        if !conf.is_empty() {
            return Self {
                queues: order_topic_queues(topic, conf),
                order_topic: true,
                broker_addrs,
                static_endpoints: BTreeMap::new(),
            };
        }
        if static_topic::is_static(route) {
            let static_endpoints = static_topic::endpoints(topic, route);
            let mut queues: Vec<MessageQueue> = static_endpoints.keys().cloned().collect();
            queues.sort_by(|a, b| (a.queue_id, &a.broker_name).cmp(&(b.queue_id, &b.broker_name)));
            return Self {
                queues,
                order_topic: false,
                broker_addrs,
                static_endpoints,
            };
        }
        let mut queue_datas: Vec<_> = route.queue_datas.iter().collect();
        queue_datas.sort_by(|a, b| java_string_cmp(&a.broker_name, &b.broker_name));
        let mut queues = Vec::new();
        for qd in queue_datas {
            if !route::perm::is_writeable(qd.perm) {
                continue;
            }
            let Some(bd) = route
                .broker_datas
                .iter()
                .find(|bd| bd.broker_name == qd.broker_name)
            else {
                continue;
            };
            if !bd.broker_addrs.contains_key(&route::MASTER_ID) {
                continue;
            }
            push_queues(&mut queues, topic, &qd.broker_name, qd.write_queue_nums);
        }
        Self {
            queues,
            order_topic: false,
            broker_addrs,
            static_endpoints: BTreeMap::new(),
        }
    }

    /// The publish info of an auto-created `topic` from the default topic's (`TBW102`) route
    /// (§7.5): every queue data's read and write counts become
    /// `min(default_topic_queue_nums, readQueueNums)`, then [`from_route`](Self::from_route).
    ///
    /// ```
    /// use rmq_common::route::TopicRouteData;
    /// use rmq_nameserver_client::TopicPublishInfo;
    ///
    /// let tbw102: TopicRouteData = serde_json::from_str(r#"{
    ///   "queueDatas":[{"brokerName":"a","readQueueNums":8,"writeQueueNums":8,"perm":7}],
    ///   "brokerDatas":[{"cluster":"c","brokerName":"a","brokerAddrs":{"0":"h:1"}}]}"#).unwrap();
    /// let info = TopicPublishInfo::from_default_route("NewTopic", &tbw102, 4);
    /// assert_eq!(info.queues.len(), 4);
    /// assert!(info.queues.iter().all(|q| q.topic == "NewTopic"));
    /// ```
    #[must_use]
    pub fn from_default_route(
        topic: &str,
        default_route: &TopicRouteData,
        default_topic_queue_nums: i32,
    ) -> Self {
        Self::from_route(
            topic,
            &cap_default_route(default_route, default_topic_queue_nums),
        )
    }

    /// Java's `ok()`: at least one queue.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        !self.queues.is_empty()
    }

    /// The master address of a broker of this route.
    #[must_use]
    pub fn master_addr(&self, broker_name: &str) -> Option<&str> {
        self.broker_addrs.get(broker_name).map(String::as_str)
    }

    /// The real broker a queue of this topic is written to (Java
    /// `MQClientInstance.getBrokerNameFromMessageQueue`): the endpoint of a static topic's logical
    /// queue (possibly [`crate::LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST`], which has no
    /// address), else the queue's own broker name. A sender resolves the address with `master_addr(broker_name_of(mq))` and
    /// puts that name in the request's `bname`, keeping the queue's (logical) id.
    ///
    /// ```
    /// use rmq_common::route::TopicRouteData;
    /// use rmq_nameserver_client::TopicPublishInfo;
    ///
    /// let route: TopicRouteData = serde_json::from_str(r#"{
    ///   "brokerDatas":[{"cluster":"c","brokerName":"broker-a","brokerAddrs":{"0":"h:1"}}],
    ///   "topicQueueMappingByBroker":{"broker-a":{"scope":"__global__","totalQueues":2,
    ///     "bname":"broker-a","epoch":1,"currIdMap":{"0":0}}}}"#).unwrap();
    /// let info = TopicPublishInfo::from_route("T", &route);
    /// let names: Vec<_> = info.queues.iter().map(|q| info.broker_name_of(q)).collect();
    /// assert_eq!(names, ["broker-a", "__syslo__none__"]);
    /// assert_eq!(info.queues[0].broker_name, "__syslo__global__");
    /// assert_eq!(info.master_addr(info.broker_name_of(&info.queues[0])), Some("h:1"));
    /// ```
    #[must_use]
    pub fn broker_name_of<'a>(&'a self, mq: &'a MessageQueue) -> &'a str {
        self.static_endpoints
            .get(mq)
            .map_or(mq.broker_name.as_str(), String::as_str)
    }

    /// Whether the queues are a static topic's logical queues.
    #[must_use]
    pub fn is_static(&self) -> bool {
        !self.static_endpoints.is_empty()
    }
}

/// The default topic's route with Java's queue cap applied (read = write = min(cap, read)).
pub(crate) fn cap_default_route(route: &TopicRouteData, cap: i32) -> TopicRouteData {
    let mut route = route.clone();
    for qd in &mut route.queue_datas {
        let nums = cap.min(qd.read_queue_nums);
        qd.read_queue_nums = nums;
        qd.write_queue_nums = nums;
    }
    route
}

/// `orderTopicConf.split(";")`, each item `name:N` → queues `0..N` of `name`.
fn order_topic_queues(topic: &str, conf: &str) -> Vec<MessageQueue> {
    let mut queues = Vec::new();
    for (item, parsed) in order_conf_items(conf) {
        let Some((name, nums)) = parsed else {
            tracing::warn!(item, "malformed orderTopicConf item skipped");
            continue;
        };
        push_queues(&mut queues, topic, name, nums);
    }
    queues
}

/// Appends queues `0..count` of `broker`, unless `count` is above [`MAX_QUEUES_PER_BROKER`] or
/// the list would grow past [`MAX_QUEUES_PER_ROUTE`] (then the item is skipped with a warning:
/// such routes are rejected when decoded, so only hand-built ones get here).
fn push_queues(queues: &mut Vec<MessageQueue>, topic: &str, broker: &str, count: i32) {
    let count = count.max(0);
    let room = MAX_QUEUES_PER_ROUTE.saturating_sub(queues.len());
    if count > MAX_QUEUES_PER_BROKER || usize::try_from(count).map_or(true, |n| n > room) {
        tracing::warn!(
            topic,
            broker,
            count,
            "queue count above the limits of a route skipped"
        );
        return;
    }
    for queue_id in 0..count {
        queues.push(MessageQueue::new(topic, broker, queue_id));
    }
}

/// Java's `String.compareTo`: lexicographic over UTF-16 code units.
pub(crate) fn java_string_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_order_differs_from_utf8_above_the_bmp() {
        // U+FF5E (BMP, 0xFF5E) vs U+1F600 (surrogates 0xD83D...): Java puts the emoji first.
        assert_eq!(java_string_cmp("\u{1F600}", "\u{FF5E}"), Ordering::Less);
        assert_eq!("\u{1F600}".cmp("\u{FF5E}"), Ordering::Greater);
        assert_eq!(java_string_cmp("broker-a", "broker-b"), Ordering::Less);
    }

    #[test]
    fn order_conf_items() {
        let q = order_topic_queues("T", "b:2;;a:1;bad;c:x;d:-1;");
        let got: Vec<_> = q
            .iter()
            .map(|q| (q.broker_name.as_str(), q.queue_id))
            .collect();
        assert_eq!(got, [("b", 0), ("b", 1), ("a", 0)]);
    }
}
