//! 5.x static topics (`topicQueueMappingByBroker`): logical queues named after the scope's mock
//! broker, each served by the real broker of the mapping with the highest epoch (Java
//! `ClientMetadata.topicRouteData2EndpointsForStaticTopic`, used by
//! `MQClientInstance.topicRouteData2TopicPublishInfo`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use rmq_common::route::{TopicQueueMappingInfo, TopicRouteData};
use rmq_nameserver_client::{
    decode_route, mock_broker_name, NameServerConfig, RouteCache, RouteDecodeError,
    TopicPublishInfo, LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST, MAX_QUEUES_PER_BROKER,
};
use rmq_remoting::{RemotingClient, RemotingConfig};
use rmq_testkit::{MockNameServer, RouteBuilder};

const GLOBAL: &str = "__global__";

fn mapping(
    scope: Option<&str>,
    bname: &str,
    total: i32,
    epoch: i64,
    ids: &[i32],
) -> TopicQueueMappingInfo {
    TopicQueueMappingInfo {
        topic: Some("T".into()),
        scope: scope.map(str::to_owned),
        total_queues: total,
        bname: Some(bname.into()),
        epoch,
        dirty: false,
        curr_id_map: ids
            .iter()
            .enumerate()
            .map(|(phys, &id)| (id, i32::try_from(phys).unwrap()))
            .collect(),
    }
}

/// Brokers `broker-a` and `broker-b` (masters), no queue data, and these mappings by broker.
fn static_route(mappings: &[(&str, TopicQueueMappingInfo)]) -> TopicRouteData {
    let mut route = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .broker("broker-b", "127.0.0.1:10921")
        .build();
    route.topic_queue_mapping_by_broker = Some(
        mappings
            .iter()
            .map(|(b, m)| ((*b).to_owned(), m.clone()))
            .collect::<BTreeMap<_, _>>(),
    );
    route
}

/// `"mock:id->endpoint ..."` for the queue list, in order.
fn endpoints(info: &TopicPublishInfo) -> String {
    info.queues
        .iter()
        .map(|q| {
            assert_eq!(q.topic, "T");
            format!(
                "{}:{}->{}",
                q.broker_name,
                q.queue_id,
                info.broker_name_of(q)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn global_scope_logical_queues_sorted_by_id_with_their_brokers() {
    let route = static_route(&[
        (
            "broker-b",
            mapping(Some(GLOBAL), "broker-b", 4, 10, &[2, 3]),
        ),
        (
            "broker-a",
            mapping(Some(GLOBAL), "broker-a", 4, 10, &[0, 1]),
        ),
    ]);
    let info = TopicPublishInfo::from_route("T", &route);
    assert_eq!(
        endpoints(&info),
        "__syslo__global__:0->broker-a __syslo__global__:1->broker-a \
         __syslo__global__:2->broker-b __syslo__global__:3->broker-b"
    );
    assert!(!info.order_topic);
    assert!(info.is_static());
    assert!(info.is_ok());
    // The sender resolves a logical queue's real broker, then its master.
    let q2 = &info.queues[2];
    assert_eq!(
        info.master_addr(info.broker_name_of(q2)),
        Some("127.0.0.1:10921")
    );
    assert_eq!(info.master_addr(&q2.broker_name), None);
}

#[test]
fn unmapped_ids_go_to_the_none_broker_and_the_highest_epoch_wins() {
    // Id 1 is mapped by both (epoch 9 on broker-b wins over 5); ids 3..6 by nobody; the largest
    // totalQueues (6) counts.
    let route = static_route(&[
        ("broker-a", mapping(Some(GLOBAL), "broker-a", 4, 5, &[0, 1])),
        ("broker-b", mapping(Some(GLOBAL), "broker-b", 6, 9, &[1, 2])),
    ]);
    let info = TopicPublishInfo::from_route("T", &route);
    let none = LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST;
    assert_eq!(
        endpoints(&info),
        format!(
            "__syslo__global__:0->broker-a __syslo__global__:1->broker-b \
             __syslo__global__:2->broker-b __syslo__global__:3->{none} \
             __syslo__global__:4->{none} __syslo__global__:5->{none}"
        )
    );
    assert_eq!(info.master_addr(none), None);
}

#[test]
fn scopes_get_their_own_mock_brokers_and_scopeless_mappings_are_ignored() {
    let route = static_route(&[
        ("broker-a", mapping(Some(GLOBAL), "broker-a", 2, 1, &[0, 1])),
        ("broker-b", mapping(Some("zone1"), "broker-b", 1, 1, &[0])),
        ("broker-c", mapping(None, "broker-c", 8, 1, &[0, 1, 2])),
    ]);
    let info = TopicPublishInfo::from_route("T", &route);
    assert_eq!(
        endpoints(&info),
        "__syslo__global__:0->broker-a __syslo__zone1:0->broker-b __syslo__global__:1->broker-a"
    );
    assert_eq!(mock_broker_name("zone1"), "__syslo__zone1");

    // Only scopeless mappings: a static topic without queues (not ok), as in Java.
    let route = static_route(&[("broker-c", mapping(None, "broker-c", 8, 1, &[0]))]);
    let info = TopicPublishInfo::from_route("T", &route);
    assert!(info.queues.is_empty() && !info.is_ok());
}

#[test]
fn order_conf_wins_and_an_empty_order_conf_means_the_queue_data() {
    let mut route = static_route(&[("broker-a", mapping(Some(GLOBAL), "broker-a", 2, 1, &[0, 1]))]);
    route.queue_datas = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queues("broker-a", 3)
        .build()
        .queue_datas;

    route.order_topic_conf = Some("broker-b:1".into());
    let info = TopicPublishInfo::from_route("T", &route);
    assert_eq!(endpoints(&info), "broker-b:0->broker-b");
    assert!(info.order_topic && !info.is_static());

    // Java tests `orderTopicConf == null` for the static form: "" falls to the queue data.
    route.order_topic_conf = Some(String::new());
    let info = TopicPublishInfo::from_route("T", &route);
    assert_eq!(
        endpoints(&info),
        "broker-a:0->broker-a broker-a:1->broker-a broker-a:2->broker-a"
    );
    assert!(!info.is_static());

    route.order_topic_conf = None;
    let info = TopicPublishInfo::from_route("T", &route);
    assert!(info.is_static());
    assert_eq!(info.queues.len(), 2);
}

#[test]
fn fastjson_mapping_bodies_decode_and_huge_totals_are_rejected() {
    let body = br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"c"}],
        "queueDatas":[],"topicQueueMappingByBroker":{"broker-a":{"bname":"broker-a","currIdMap":{0:0,1:1},
        "dirty":false,"epoch":1700000000000,"scope":"__global__","topic":"T","totalQueues":2}}}"#;
    let route = decode_route(body).unwrap();
    let info = TopicPublishInfo::from_route("T", &route);
    assert_eq!(
        endpoints(&info),
        "__syslo__global__:0->broker-a __syslo__global__:1->broker-a"
    );

    let huge = static_route(&[(
        "broker-a",
        mapping(Some(GLOBAL), "broker-a", i32::MAX, 1, &[0]),
    )]);
    let err = decode_route(&serde_json::to_vec(&huge).unwrap()).unwrap_err();
    match &err {
        RouteDecodeError::TooManyQueues { what, count, max } => {
            assert!(
                what.contains("__global__") && what.contains("totalQueues"),
                "{what}"
            );
            assert_eq!(*count, i64::from(i32::MAX));
            assert_eq!(*max, i64::from(MAX_QUEUES_PER_BROKER));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Built by hand, the scope is skipped instead of allocating.
    assert!(TopicPublishInfo::from_route("T", &huge).queues.is_empty());
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test step timed out")
}

#[tokio::test]
async fn the_cache_serves_static_topics_and_their_brokers() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route(
        "T",
        static_route(&[
            ("broker-a", mapping(Some(GLOBAL), "broker-a", 2, 1, &[0])),
            ("broker-b", mapping(Some(GLOBAL), "broker-b", 2, 1, &[1])),
        ]),
    );
    let cache = RouteCache::new(
        RemotingClient::new(RemotingConfig::default()),
        NameServerConfig::new([ns.addr()]),
    );
    let info = within(cache.publish_info("T", false, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        endpoints(&info),
        "__syslo__global__:0->broker-a __syslo__global__:1->broker-b"
    );
    assert_eq!(
        cache.master_addr("broker-b").as_deref(),
        Some("127.0.0.1:10921")
    );
    assert_eq!(cache.master_addr("__syslo__global__"), None);
    within(ns.shutdown()).await;
}
