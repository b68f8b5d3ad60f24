//! Static topics (5.x, `topicQueueMappingByBroker`): the producer writes *logical* queues named
//! after a mock broker (`__syslo__global__`), each served by the real broker the mapping names
//! (Java `ClientMetadata.topicRouteData2EndpointsForStaticTopic`).

use std::collections::{BTreeMap, HashMap};

use rmq_common::route::{TopicQueueMappingInfo, TopicRouteData};
use rmq_common::MessageQueue;

use crate::limits::{MAX_QUEUES_PER_BROKER, MAX_QUEUES_PER_ROUTE};

/// Prefix of the mock broker name of a static topic's logical queues (`MixAll.LOGICAL_QUEUE_MOCK_BROKER_PREFIX`).
pub const LOGICAL_QUEUE_MOCK_BROKER_PREFIX: &str = "__syslo__";

/// The scope of a static topic mapped across the whole cluster (`MixAll.METADATA_SCOPE_GLOBAL`).
pub const METADATA_SCOPE_GLOBAL: &str = "__global__";

/// The endpoint of a logical queue no broker serves (`MixAll.LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST`):
/// no master address resolves for it, so a send to it fails and is retried elsewhere (as in Java).
pub const LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST: &str = "__syslo__none__";

/// The mock broker name of a scope's logical queues (`TopicQueueMappingUtils.getMockBrokerName`):
/// `__syslo__global__` for the global scope, `__syslo__<scope>` otherwise.
///
/// ```
/// use rmq_nameserver_client::mock_broker_name;
/// assert_eq!(mock_broker_name("__global__"), "__syslo__global__");
/// assert_eq!(mock_broker_name("zone1"), "__syslo__zone1");
/// ```
#[must_use]
pub fn mock_broker_name(scope: &str) -> String {
    let tail = if scope == METADATA_SCOPE_GLOBAL {
        &scope[2..]
    } else {
        scope
    };
    format!("{LOGICAL_QUEUE_MOCK_BROKER_PREFIX}{tail}")
}

/// Java's condition for the static-topic form: no `orderTopicConf` at all (an empty string does
/// not count as absent) and a non-empty `topicQueueMappingByBroker`.
pub(crate) fn is_static(route: &TopicRouteData) -> bool {
    route.order_topic_conf.is_none()
        && route
            .topic_queue_mapping_by_broker
            .as_ref()
            .is_some_and(|m| !m.is_empty())
}

/// The mappings grouped by scope (mappings without a scope are ignored, as in Java).
fn by_scope(route: &TopicRouteData) -> BTreeMap<&str, Vec<&TopicQueueMappingInfo>> {
    let mut scopes: BTreeMap<&str, Vec<&TopicQueueMappingInfo>> = BTreeMap::new();
    for info in route
        .topic_queue_mapping_by_broker
        .iter()
        .flat_map(|m| m.values())
    {
        if let Some(scope) = info.scope.as_deref() {
            scopes.entry(scope).or_default().push(info);
        }
    }
    scopes
}

/// The logical queue count of every scope: the largest `totalQueues` among its mappings (Java
/// skips mappings whose epoch is below -1, a quirk kept here).
pub(crate) fn totals_by_scope(route: &TopicRouteData) -> Vec<(&str, i32)> {
    by_scope(route)
        .into_iter()
        .map(|(scope, infos)| (scope, scope_total(&infos)))
        .collect()
}

fn scope_total(infos: &[&TopicQueueMappingInfo]) -> i32 {
    infos
        .iter()
        .filter(|i| i.epoch >= -1)
        .map(|i| i.total_queues)
        .fold(0, i32::max)
}

/// Logical queue → real broker name, for every logical queue `0..total` of every scope.
///
/// A logical id mapped by several brokers goes to the mapping with the highest epoch (the last
/// of equal epochs in broker-name order; Java's order there is a hash map's). A logical id no
/// mapping names, and a mapping without `bname`, map to
/// [`LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST`]. A scope above
/// [`MAX_QUEUES_PER_BROKER`](crate::MAX_QUEUES_PER_BROKER), or one that would take the total past
/// [`MAX_QUEUES_PER_ROUTE`](crate::MAX_QUEUES_PER_ROUTE), is skipped with a warning (decoding
/// rejects such routes).
pub(crate) fn endpoints(topic: &str, route: &TopicRouteData) -> BTreeMap<MessageQueue, String> {
    let mut out = BTreeMap::new();
    for (scope, mut infos) in by_scope(route) {
        // Highest epoch first (stable: broker-name order among equal epochs).
        infos.sort_by_key(|i| std::cmp::Reverse(i.epoch));
        let total = scope_total(&infos).max(0);
        let room = MAX_QUEUES_PER_ROUTE.saturating_sub(out.len());
        if total > MAX_QUEUES_PER_BROKER || usize::try_from(total).map_or(true, |n| n > room) {
            tracing::warn!(
                topic,
                scope,
                total,
                "static topic scope above the limits of a route skipped"
            );
            continue;
        }
        let mut served: HashMap<i32, &TopicQueueMappingInfo> = HashMap::new();
        for info in &infos {
            for &logical in info.curr_id_map.keys() {
                match served.get(&logical) {
                    Some(old) if old.epoch > info.epoch => {}
                    _ => {
                        served.insert(logical, info);
                    }
                }
            }
        }
        let mock = mock_broker_name(scope);
        for id in 0..total {
            let endpoint = served
                .get(&id)
                .and_then(|info| info.bname.clone())
                .unwrap_or_else(|| LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST.to_owned());
            out.insert(MessageQueue::new(topic, mock.clone(), id), endpoint);
        }
    }
    out
}
