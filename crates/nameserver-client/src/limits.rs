//! Bounds on the queue counts a route may ask for.
//!
//! A route's counts come from the name server (a peer): `writeQueueNums`, the counts of
//! `orderTopicConf` and a static topic's `totalQueues` are `int`s, and Java allocates one
//! `MessageQueue` per unit without a check. Near `i32::MAX` that is ~2^31 queues: an
//! out-of-memory abort. This client rejects such routes instead.

use rmq_common::route::{perm, TopicRouteData};

use crate::error::RouteDecodeError;
use crate::static_topic;

/// Most queues one broker (one queue data, one `orderTopicConf` item, one static-topic scope)
/// may have: 65,535.
///
/// A broker's queue counts are configured by people (`writeQueueNums` is 16 by default and
/// rarely above a few hundred); 65,535 leaves ample room while keeping one broker's queues
/// within a few megabytes.
pub const MAX_QUEUES_PER_BROKER: i32 = 65_535;

/// Most queues the publish info of one route may hold, all brokers together: 262,144 (four
/// brokers at [`MAX_QUEUES_PER_BROKER`]).
///
/// Bounds the memory of one topic's queue list (some tens of megabytes at worst) whatever the
/// number of queue data entries a route body packs.
pub const MAX_QUEUES_PER_ROUTE: usize = 262_144;

/// Checks the queue counts of `route` against [`MAX_QUEUES_PER_BROKER`] (the read and write
/// counts of every queue data, every `orderTopicConf` item, every static-topic scope) and
/// [`MAX_QUEUES_PER_ROUTE`] (the queues [`crate::TopicPublishInfo::from_route`] would build).
/// Negative counts make no queue (as in Java) and pass.
pub(crate) fn check_route(route: &TopicRouteData) -> Result<(), RouteDecodeError> {
    let too_many =
        |what: String, count: i64, max: i64| RouteDecodeError::TooManyQueues { what, count, max };
    let per_broker = i64::from(MAX_QUEUES_PER_BROKER);
    let per_route = i64::try_from(MAX_QUEUES_PER_ROUTE).unwrap_or(i64::MAX);

    let mut normal = 0i64;
    for qd in &route.queue_datas {
        // The read count becomes the write count of an auto-created topic (TBW102, §7.5).
        let read = i64::from(qd.read_queue_nums);
        if read > per_broker {
            let what = format!("queue data of {} (readQueueNums)", qd.broker_name);
            return Err(too_many(what, read, per_broker));
        }
        let n = i64::from(qd.write_queue_nums);
        if n > per_broker {
            let what = format!("queue data of {} (writeQueueNums)", qd.broker_name);
            return Err(too_many(what, n, per_broker));
        }
        if perm::is_writeable(qd.perm) {
            normal += n.max(0);
        }
    }
    let mut ordered = 0i64;
    let conf = route.order_topic_conf.as_deref().unwrap_or("");
    for (name, n) in order_conf_items(conf).filter_map(|(_, parsed)| parsed) {
        let n = i64::from(n);
        if n > per_broker {
            let what = format!("orderTopicConf item of {name}");
            return Err(too_many(what, n, per_broker));
        }
        ordered += n.max(0);
    }
    let mut logical = 0i64;
    for (scope, total) in static_topic::totals_by_scope(route) {
        let n = i64::from(total);
        if n > per_broker {
            let what = format!("static topic scope {scope} (totalQueues)");
            return Err(too_many(what, n, per_broker));
        }
        logical += n.max(0);
    }
    // Only one of the forms makes the queue list, and each sum is at most the number of
    // entries times 65,535: no overflow.
    let total = if !route.order_topic_conf.as_deref().unwrap_or("").is_empty() {
        ordered
    } else if static_topic::is_static(route) {
        logical
    } else {
        normal
    };
    if total > per_route {
        return Err(too_many("the route in total".to_owned(), total, per_route));
    }
    Ok(())
}

/// `orderTopicConf.split(";")`: every non-empty item with its `(broker name, count)` when it
/// is a well-formed `name:N` (Java would throw on a malformed one).
pub(crate) fn order_conf_items(conf: &str) -> impl Iterator<Item = (&str, Option<(&str, i32)>)> {
    conf.split(';').filter(|s| !s.is_empty()).map(|item| {
        let mut parts = item.split(':');
        let parsed = match (parts.next(), parts.next()) {
            (Some(name), Some(nums)) => nums.parse::<i32>().ok().map(|n| (name, n)),
            _ => None,
        };
        (item, parsed)
    })
}
