//! Static topics (5.x `topicQueueMappingByBroker`): a logical queue is written to its real broker,
//! with the real broker's name in the request and the logical queue id.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use rmq_common::route::TopicQueueMappingInfo;
use rmq_common::{Message, MessageQueue};
use rmq_producer::{ErrorKind, Producer, SendOptions};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// `broker`'s mapping in the global scope: it serves logical queues `ids` of `total`.
fn mapping(topic: &str, broker: &str, total: i32, ids: &[i32]) -> TopicQueueMappingInfo {
    TopicQueueMappingInfo {
        topic: Some(topic.into()),
        scope: Some("__global__".into()),
        total_queues: total,
        bname: Some(broker.into()),
        epoch: 1,
        dirty: false,
        curr_id_map: ids
            .iter()
            .enumerate()
            .map(|(phys, &id)| (id, i32::try_from(phys).expect("small")))
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_topic_sends_go_to_the_real_broker_of_each_logical_queue() {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    // The brokers accept queue ids 0..4 (the logical ids); the route is a static topic's.
    c.create_topic("Static", 4);
    c.namesrv().update_route("Static", |r| {
        r.queue_datas.clear();
        r.topic_queue_mapping_by_broker = Some(BTreeMap::from([
            (
                "broker-a".to_owned(),
                mapping("Static", "broker-a", 4, &[0, 1]),
            ),
            (
                "broker-b".to_owned(),
                mapping("Static", "broker-b", 4, &[2, 3]),
            ),
        ]));
    });
    let p = timeout(
        T,
        Producer::builder("StaticGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let mut seen = HashSet::new();
    for i in 0..8 {
        let r = timeout(T, p.send(Message::new("Static", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent to the real broker");
        let want = if r.queue.queue_id < 2 {
            "broker-a"
        } else {
            "broker-b"
        };
        assert_eq!(r.queue.broker_name, want, "{r}");
        seen.insert(r.queue.queue_id);
    }
    assert_eq!(seen.len(), 4, "round-robin over the logical queues");
    for m in c.messages_of("Static") {
        assert_eq!(
            m.header.broker_name.as_deref(),
            Some(m.broker.as_str()),
            "bname is the real broker that received it"
        );
        let want = if m.header.queue_id < 2 {
            "broker-a"
        } else {
            "broker-b"
        };
        assert_eq!(
            m.broker, want,
            "logical queue {} on its broker",
            m.header.queue_id
        );
    }
    // A queue-pinned send to a logical queue (as listed in the route) reaches its real broker.
    let logical = MessageQueue::new("Static", "__syslo__global__", 3);
    let r = timeout(
        T,
        p.send_with(
            Message::new("Static", "pinned"),
            SendOptions::new().queue(logical.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(
        (r.queue.broker_name.as_str(), r.queue.queue_id),
        ("broker-b", 3)
    );
    // A logical queue no broker serves has no address: refused, never sent.
    c.namesrv().update_route("Static", |r| {
        if let Some(m) = r.topic_queue_mapping_by_broker.as_mut() {
            m.remove("broker-b");
        }
    });
    let p2 = timeout(
        T,
        // Its own client instance (another instance name), so that it looks the changed route
        // up instead of sharing the first producer's.
        Producer::builder("StaticGroup2")
            .name_server(c.namesrv_addr())
            .instance_name("static-fresh-route")
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let err = timeout(
        T,
        p2.send_with(
            Message::new("Static", "x"),
            SendOptions::new().queue(logical),
        ),
    )
    .await
    .expect("in time")
    .expect_err("no broker serves logical queue 3");
    assert!(!err.maybe_stored(), "{err}");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::BrokerNotFound { .. } | ErrorKind::RetriesExhausted { .. }
        ),
        "{err:?}"
    );
    timeout(T, p.shutdown()).await.expect("shutdown");
    timeout(T, p2.shutdown()).await.expect("shutdown");
    c.shutdown().await;
}
