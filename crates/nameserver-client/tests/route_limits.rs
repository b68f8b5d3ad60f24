//! Queue counts a name server may ask for: above the limits a route is a typed error (Java would
//! allocate ~2^31 queues and die), at the limits it is served.

use std::future::Future;
use std::time::Duration;

use rmq_common::route::{perm, TopicRouteData};
use rmq_nameserver_client::{
    decode_route, NameServerClient, NameServerConfig, NameServerError, RouteCache,
    RouteDecodeError, TopicPublishInfo, MAX_QUEUES_PER_BROKER, MAX_QUEUES_PER_ROUTE,
};
use rmq_remoting::{RemotingClient, RemotingConfig};
use rmq_testkit::{MockNameServer, RouteBuilder};

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

/// A route of `brokers` brokers `b0`, `b1`, ... each with `write` write queues and `perm`.
fn route(brokers: usize, write: i32, perm: i32) -> TopicRouteData {
    let mut b = RouteBuilder::new();
    for i in 0..brokers {
        let name = format!("b{i}");
        b = b
            .broker(&name, &format!("127.0.0.1:{}", 10_000 + i))
            .queue_data(&name, write, write, perm);
    }
    b.build()
}

fn body(route: &TopicRouteData) -> Vec<u8> {
    serde_json::to_vec(route).unwrap()
}

fn too_many(err: &RouteDecodeError) -> (&str, i64, i64) {
    match err {
        RouteDecodeError::TooManyQueues { what, count, max } => (what.as_str(), *count, *max),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_write_queue_count_near_i32_max_is_rejected_naming_the_broker() {
    let rw = perm::READ | perm::WRITE;
    let mut r = route(2, 4, rw);
    r.queue_datas[1].write_queue_nums = i32::MAX;
    let err = decode_route(&body(&r)).unwrap_err();
    let (what, count, max) = too_many(&err);
    assert!(
        what.contains("b1") && what.contains("writeQueueNums"),
        "{what}"
    );
    assert_eq!(count, i64::from(i32::MAX));
    assert_eq!(max, i64::from(MAX_QUEUES_PER_BROKER));
    let text = err.to_string();
    assert!(
        text.contains("2147483647") && text.contains("65535"),
        "{text}"
    );

    // Also when that queue data is not writable: the count itself is not credible.
    r.queue_datas[1].perm = perm::READ;
    assert!(matches!(
        decode_route(&body(&r)),
        Err(RouteDecodeError::TooManyQueues { .. })
    ));
    // One above the limit is rejected, the limit itself is not.
    r.queue_datas[1].write_queue_nums = MAX_QUEUES_PER_BROKER + 1;
    assert!(decode_route(&body(&r)).is_err());
    r.queue_datas[1].write_queue_nums = MAX_QUEUES_PER_BROKER;
    assert!(decode_route(&body(&r)).is_ok());
}

#[test]
fn a_read_queue_count_near_i32_max_is_rejected_too() {
    // TBW102's read count becomes an auto-created topic's write count.
    let mut r = route(1, 4, perm::READ | perm::WRITE | perm::INHERIT);
    r.queue_datas[0].read_queue_nums = i32::MAX;
    let err = decode_route(&body(&r)).unwrap_err();
    let (what, count, _) = too_many(&err);
    assert!(
        what.contains("b0") && what.contains("readQueueNums"),
        "{what}"
    );
    assert_eq!(count, i64::from(i32::MAX));
}

#[test]
fn an_order_topic_count_near_i32_max_is_rejected() {
    let mut r = route(1, 4, perm::READ | perm::WRITE);
    r.order_topic_conf = Some(format!("b0:4;b1:{}", i32::MAX));
    let err = decode_route(&body(&r)).unwrap_err();
    let (what, count, _) = too_many(&err);
    assert!(
        what.contains("orderTopicConf") && what.contains("b1"),
        "{what}"
    );
    assert_eq!(count, i64::from(i32::MAX));

    // Many items each within the limit, too many together.
    let items = MAX_QUEUES_PER_ROUTE / usize::try_from(MAX_QUEUES_PER_BROKER).unwrap() + 1;
    r.order_topic_conf = Some(
        (0..items)
            .map(|i| format!("b{i}:{MAX_QUEUES_PER_BROKER}"))
            .collect::<Vec<_>>()
            .join(";"),
    );
    let err = decode_route(&body(&r)).unwrap_err();
    assert_eq!(too_many(&err).0, "the route in total");
}

#[test]
fn the_total_is_capped_and_the_limit_itself_is_served() {
    let rw = perm::READ | perm::WRITE;
    let per_broker = usize::try_from(MAX_QUEUES_PER_BROKER).unwrap();
    let fit = MAX_QUEUES_PER_ROUTE / per_broker;
    let err = decode_route(&body(&route(fit + 1, MAX_QUEUES_PER_BROKER, rw))).unwrap_err();
    let (what, count, max) = too_many(&err);
    assert_eq!(what, "the route in total");
    assert_eq!(count, i64::try_from((fit + 1) * per_broker).unwrap());
    assert_eq!(max, i64::try_from(MAX_QUEUES_PER_ROUTE).unwrap());

    // Read-only queue data make no queue and do not count.
    let mut r = route(fit + 1, MAX_QUEUES_PER_BROKER, rw);
    r.queue_datas[0].perm = perm::READ;
    let r = decode_route(&body(&r)).unwrap();
    let info = TopicPublishInfo::from_route("T", &r);
    assert_eq!(info.queues.len(), fit * per_broker);
    assert!(info.queues.len() <= MAX_QUEUES_PER_ROUTE);

    // Negative counts make no queue (as in Java) and pass.
    let r = decode_route(&body(&route(2, -5, rw))).unwrap();
    assert!(TopicPublishInfo::from_route("T", &r).queues.is_empty());
}

#[test]
fn from_route_skips_counts_above_the_limits_of_a_hand_built_route() {
    let rw = perm::READ | perm::WRITE;
    let mut r = route(3, 2, rw);
    r.queue_datas[1].write_queue_nums = i32::MAX;
    let info = TopicPublishInfo::from_route("T", &r);
    let brokers: Vec<_> = info.queues.iter().map(|q| q.broker_name.as_str()).collect();
    assert_eq!(brokers, ["b0", "b0", "b2", "b2"]);

    r.order_topic_conf = Some(format!("b0:1;b1:{};b2:1", i32::MAX));
    let info = TopicPublishInfo::from_route("T", &r);
    assert_eq!(info.queues.len(), 2);
    assert!(info.order_topic);

    let per_broker = usize::try_from(MAX_QUEUES_PER_BROKER).unwrap();
    let r = route(
        MAX_QUEUES_PER_ROUTE / per_broker + 2,
        MAX_QUEUES_PER_BROKER,
        rw,
    );
    let info = TopicPublishInfo::from_route("T", &r);
    assert!(
        info.queues.len() <= MAX_QUEUES_PER_ROUTE,
        "{}",
        info.queues.len()
    );
}

#[tokio::test]
async fn a_name_server_asking_for_too_many_queues_is_a_bad_route_body_and_nothing_is_cached() {
    let ns = within(MockNameServer::start()).await.unwrap();
    let mut r = route(1, 4, perm::READ | perm::WRITE);
    r.queue_datas[0].write_queue_nums = i32::MAX;
    ns.set_route("T", r);
    let remoting = RemotingClient::new(RemotingConfig::default());
    let client = NameServerClient::new(remoting.clone(), vec![ns.addr()]);
    let err = within(client.topic_route("T", Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NameServerError::BadRouteBody(RouteDecodeError::TooManyQueues { .. })
        ),
        "{err:?}"
    );
    let cache = RouteCache::new(remoting, NameServerConfig::new([ns.addr()]));
    let err = within(cache.publish_info("T", true, Duration::from_secs(5)))
        .await
        .unwrap_err();
    // The count is in the cause, not repeated in the error's own text.
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        cause.as_deref().is_some_and(|c| c.contains("2147483647")),
        "{err}: {cause:?}"
    );
    assert!(!err.to_string().contains("2147483647"), "{err}");
    assert!(cache.cached("T").is_none());
    within(ns.shutdown()).await;
}
