//! Producer send API against the testkit cluster: every send form, validation, heartbeats.

use std::time::Duration;

use rmq_common::{property, Message, MessageQueue, RequestCode};
use rmq_producer::{
    ConfigError, ErrorKind, HashSelector, Producer, RandomSelector, SendOptions, SendStatus,
};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

async fn cluster(brokers: usize, topic: &str, queues: i32) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, queues);
    c
}

async fn producer(c: &MockCluster) -> Producer {
    timeout(
        T,
        Producer::builder("SendGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_send_is_stored_with_its_properties_and_result_ids() {
    let c = cluster(2, "SyncTopic", 2).await;
    let p = producer(&c).await;
    let msg = Message::new("SyncTopic", "hello")
        .with_tags("TagA")
        .with_keys(["k1", "k2"])
        .with_user_property("color", "blue")
        .expect("property");
    let r = timeout(T, p.send(msg))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(r.queue.topic, "SyncTopic");
    let stored = c.messages_of("SyncTopic");
    assert_eq!(stored.len(), 1);
    let m = &stored[0];
    assert_eq!(m.code, RequestCode::SEND_MESSAGE_V2);
    assert_eq!(m.body().as_ref(), b"hello");
    assert_eq!(m.property(property::TAGS), Some("TagA"));
    assert_eq!(m.property(property::KEYS), Some("k1 k2"));
    assert_eq!(m.property("color"), Some("blue"));
    assert_eq!(m.property(property::UNIQ_KEY), Some(r.msg_id.as_str()));
    assert_eq!(m.msg_id, r.offset_msg_id);
    assert_eq!(
        (m.broker.as_str(), m.queue_id()),
        (r.queue.broker_name.as_str(), r.queue.queue_id)
    );
    assert_eq!(m.queue_offset(), r.queue_offset);
    assert_eq!(m.header.producer_group, "SendGroup");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_over_brokers_and_queues() {
    let c = cluster(2, "RrTopic", 2).await;
    let p = producer(&c).await;
    for i in 0..40 {
        timeout(T, p.send(Message::new("RrTopic", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    for b in c.brokers() {
        let per_queue: Vec<usize> = (0..2)
            .map(|q| {
                b.messages_of("RrTopic")
                    .iter()
                    .filter(|m| m.queue_id() == q)
                    .count()
            })
            .collect();
        assert_eq!(per_queue, [10, 10], "{} queues", b.name());
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_batch_queue_and_selector_sends() {
    let c = cluster(2, "FormsTopic", 4).await;
    let p = producer(&c).await;

    timeout(
        T,
        p.send_oneway(Message::new("FormsTopic", "oneway"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("written");

    let batch: Vec<Message> = (0..3)
        .map(|i| Message::new("FormsTopic", format!("b{i}")).with_tags("B"))
        .collect();
    let r = timeout(T, p.send_batch(batch, SendOptions::new()))
        .await
        .expect("in time")
        .expect("batch sent");
    assert_eq!(r.msg_id.split(',').count(), 3, "{r}");
    assert_eq!(r.offset_msg_id.split(',').count(), 3, "{r}");

    let mq = MessageQueue::new("FormsTopic", "broker-b", 3);
    let r = timeout(
        T,
        p.send_with(
            Message::new("FormsTopic", "pinned"),
            SendOptions::new().queue(mq.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(r.queue, mq);

    let mut picked = Vec::new();
    for _ in 0..3 {
        let r = timeout(
            T,
            p.send_with(
                Message::new("FormsTopic", "ordered"),
                SendOptions::new().selector(HashSelector::new("order-7")),
            ),
        )
        .await
        .expect("in time")
        .expect("sent");
        picked.push(r.queue);
    }
    assert!(
        picked.windows(2).all(|w| w[0] == w[1]),
        "same key, same queue: {picked:?}"
    );
    let r = timeout(
        T,
        p.send_with(
            Message::new("FormsTopic", "random"),
            SendOptions::new().selector(RandomSelector),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(r.queue.topic, "FormsTopic");
    let n = 5usize;
    let closure = move |qs: &[MessageQueue], _: &Message| Some(n % qs.len());
    let r = timeout(
        T,
        p.send_with(
            Message::new("FormsTopic", "closure"),
            SendOptions::new().selector(closure),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(
        (r.queue.broker_name.as_str(), r.queue.queue_id),
        ("broker-b", 1),
        "index 5 of a0..a3,b0..b3"
    );

    // Oneway resolves once queued: wait until the broker has it.
    let deadline = tokio::time::Instant::now() + T;
    while !c
        .messages_of("FormsTopic")
        .iter()
        .any(|m| m.body().as_ref() == b"oneway")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "oneway message never stored"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = c.messages_of("FormsTopic");
    assert_eq!(
        stored
            .iter()
            .filter(|m| m.code == RequestCode::SEND_BATCH_MESSAGE)
            .count(),
        3
    );
    assert_eq!(stored.len(), 1 + 3 + 1 + 3 + 1 + 1);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_fail_before_sending_and_come_back() {
    let c = cluster(1, "ValidTopic", 1).await;
    let p = producer(&c).await;
    let cases = [
        Message::new("", "x"),
        Message::new("bad topic!", "x"),
        Message::new("ValidTopic", ""),
        Message::new("ValidTopic", vec![0u8; 4 * 1024 * 1024 + 1]),
        Message::new("SCHEDULE_TOPIC_XXXX", "x"),
    ];
    for msg in cases {
        let topic = msg.topic().to_owned();
        let err = timeout(T, p.send(msg))
            .await
            .expect("in time")
            .expect_err("refused");
        assert!(
            matches!(err.kind(), ErrorKind::InvalidMessage(_)),
            "{topic}: {err}"
        );
        assert!(!err.maybe_stored());
        assert_eq!(
            err.into_message().map(|m| m.topic().to_owned()),
            Some(topic)
        );
    }
    let wrong_queue = MessageQueue::new("OtherTopic", "broker-a", 0);
    let err = timeout(
        T,
        p.send_with(
            Message::new("ValidTopic", "x"),
            SendOptions::new().queue(wrong_queue),
        ),
    )
    .await
    .expect("in time")
    .expect_err("topic mismatch");
    assert!(
        matches!(err.kind(), ErrorKind::QueueUnavailable { .. }),
        "{err}"
    );
    let none = |_: &[MessageQueue], _: &Message| None::<usize>;
    let err = timeout(
        T,
        p.send_with(
            Message::new("ValidTopic", "x"),
            SendOptions::new().selector(none),
        ),
    )
    .await
    .expect("in time")
    .expect_err("no queue");
    assert!(err.into_message().is_some());
    let err = timeout(
        T,
        p.send_batch(
            vec![
                Message::new("ValidTopic", "a"),
                Message::new("OtherTopic", "b"),
            ],
            SendOptions::new(),
        ),
    )
    .await
    .expect("in time")
    .expect_err("mixed topics");
    assert!(matches!(err.kind(), ErrorKind::InvalidBatch(_)), "{err}");
    assert_eq!(err.into_batch().map(|v| v.len()), Some(2));
    let err = timeout(T, p.send(Message::new("NoSuchTopic", "x")))
        .await
        .expect("in time")
        .expect_err("no route");
    assert!(matches!(err.kind(), ErrorKind::NoRoute { .. }), "{err}");
    assert!(err.into_message().is_some());
    assert!(c.messages().is_empty(), "nothing reached a broker");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_reaches_each_broker_used_with_the_group_and_client_id() {
    let c = cluster(2, "HbTopic", 1).await;
    let p = producer(&c).await;
    for i in 0..4 {
        timeout(T, p.send(Message::new("HbTopic", format!("{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    let (ip, instance) = p.client_id().split_once('@').expect("ip@instance");
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "{ip}");
    assert!(instance.contains('#'), "pid#nanos: {instance}");
    for b in c.brokers() {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let hbs = b.heartbeats();
            if let Some(hb) = hbs.first() {
                assert_eq!(hb.client_id, p.client_id());
                assert_eq!(hb.producer_groups, ["CLIENT_INNER_PRODUCER", "SendGroup"]);
                assert_eq!(hb.consumer_count, 0);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no heartbeat on {}",
                b.name()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_created_topic_goes_through_tbw102() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.set_auto_create(true);
    let p = producer(&c).await;
    let r = timeout(T, p.send(Message::new("FreshTopic", "x")))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(c.messages_of("FreshTopic").len(), 1);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_repeat_every_interval() {
    let c = cluster(1, "HbPeriod", 1).await;
    let p = timeout(
        T,
        Producer::builder("HbGroup")
            .name_server(c.namesrv_addr())
            .heartbeat_interval(Duration::from_millis(100))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("HbPeriod", "x")))
        .await
        .expect("in time")
        .expect("sent");
    let broker = &c.brokers()[0];
    let deadline = tokio::time::Instant::now() + T;
    while broker.heartbeats().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "heartbeats: {}",
            broker.heartbeats().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let after = broker.heartbeats().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        broker.heartbeats().len(),
        after,
        "no heartbeat after shutdown"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_deliver_time_and_wait_pass_through() {
    let c = cluster(1, "Timed", 1).await;
    let p = producer(&c).await;
    let delayed = Message::new("Timed", "d")
        .with_delay_level(3)
        .with_wait_store_msg_ok(false);
    timeout(T, p.send(delayed))
        .await
        .expect("in time")
        .expect("sent");
    // A timer message a minute ahead: held by the broker in its timer topic until then.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        + 60_000;
    let at = u64::try_from(at).expect("epoch ms");
    let timed = Message::new("Timed", "t").with_deliver_time_ms(at);
    timeout(T, p.send(timed))
        .await
        .expect("in time")
        .expect("sent");
    let stored = c.messages_of("Timed");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].property(property::DELAY), Some("3"));
    assert_eq!(stored[0].property(property::WAIT), Some("false"));
    let timers = c.brokers()[0].timer_messages();
    assert_eq!(
        timers[0].property(property::TIMER_DELIVER_MS),
        Some(at.to_string().as_str())
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_timeouts_are_capped_or_refused_never_a_panic() {
    let c = cluster(1, "Huge", 1).await;
    let p = producer(&c).await;
    let r = timeout(
        T,
        p.send_with(
            Message::new("Huge", "x"),
            SendOptions::new().timeout(Duration::MAX),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(r.status, SendStatus::SendOk);
    // A first send with an unknown route (lookup under the huge deadline) too.
    c.create_topic("Huge2", 1);
    timeout(
        T,
        p.send_with(
            Message::new("Huge2", "y"),
            SendOptions::new().timeout(Duration::MAX),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    for b in [
        Producer::builder("HugeGroup").send_timeout(Duration::MAX),
        Producer::builder("HugeGroup").heartbeat_interval(Duration::MAX),
        Producer::builder("HugeGroup").shutdown_timeout(Duration::MAX),
        Producer::builder("HugeGroup").attempt_timeout(Duration::MAX),
    ] {
        let err = timeout(T, b.name_server(c.namesrv_addr()).start())
            .await
            .expect("in time")
            .expect_err("refused");
        assert!(matches!(err, ConfigError::TooLong { .. }), "{err:?}");
    }
    timeout(T, p.shutdown()).await.expect("shutdown");
    c.shutdown().await;
}
