//! A producer namespace against the testkit: the name server, the broker and the heartbeat see
//! wrapped names (`ns%Topic`, `ns%Group`), the user sees plain ones (results, errors, selector
//! queues, checked-back messages).

use std::sync::Mutex;
use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::{property, Message, MessageQueue, RequestCode};
use rmq_producer::{
    ErrorKind, ListenerError, Producer, ProducerBuilder, SendOptions, TransactionListener,
    TransactionState,
};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);
const NS: &str = "MQ_INST_1";

async fn cluster() -> MockCluster {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("MQ_INST_1%Orders", 2);
    c
}

fn builder(c: &MockCluster, group: &str) -> ProducerBuilder {
    Producer::builder(group)
        .name_server(c.namesrv_addr())
        .namespace(NS)
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_sees_wrapped_names_and_the_user_plain_ones() {
    let c = cluster().await;
    let p = timeout(T, builder(&c, "NsGroup").start())
        .await
        .expect("in time")
        .expect("start");
    assert_eq!(p.config().group, "MQ_INST_1%NsGroup");
    let r = timeout(T, p.send(Message::new("Orders", "one")))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(r.queue.topic, "Orders", "the result names the plain topic");
    // Async, batch, a target queue and a selector: all plain on the user's side.
    let a = timeout(
        T,
        p.send_async(Message::new("Orders", "two"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("admitted");
    let a = timeout(T, a).await.expect("in time").expect("sent");
    assert_eq!(a.queue.topic, "Orders");
    let b = timeout(
        T,
        p.send_batch(
            vec![Message::new("Orders", "b1"), Message::new("Orders", "b2")],
            SendOptions::new(),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(b.queue.topic, "Orders");
    let target = MessageQueue::new("Orders", "broker-a", 1);
    let q = timeout(
        T,
        p.send_with(
            Message::new("Orders", "q"),
            SendOptions::new().queue(target.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(q.queue, target);
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let s2 = std::sync::Arc::clone(&seen);
    let sel = timeout(
        T,
        p.send_with(
            Message::new("Orders", "s"),
            SendOptions::new().selector(move |qs: &[MessageQueue], m: &Message| {
                s2.lock().expect("lock").extend(
                    qs.iter()
                        .map(|q| q.topic.clone())
                        .chain([m.topic().to_owned()]),
                );
                Some(0)
            }),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(sel.queue.topic, "Orders");
    assert!(seen.lock().expect("lock").iter().all(|t| t == "Orders"));
    // The broker stored every message under the wrapped topic, with INSTANCE_ID.
    let stored = c.messages();
    assert_eq!(stored.len(), 6);
    for m in &stored {
        assert_eq!(m.topic(), "MQ_INST_1%Orders");
        assert_eq!(m.header.producer_group, "MQ_INST_1%NsGroup");
        // On the request (a broker appends a batch's properties to each of its messages).
        let props = m.header.properties.as_deref().unwrap_or_default();
        assert!(props.contains("INSTANCE_ID\u{1}MQ_INST_1\u{2}"), "{m:?}");
    }
    // The name server was asked for the wrapped topic only.
    let asked: Vec<String> = c
        .namesrv()
        .requests()
        .into_iter()
        .map(|r| r.topic)
        .collect();
    assert!(asked.iter().any(|t| t == "MQ_INST_1%Orders"), "{asked:?}");
    assert!(!asked.iter().any(|t| t == "Orders"), "{asked:?}");
    // The heartbeat lists the wrapped group; shutdown unregisters it.
    let broker = c.broker("broker-a").expect("broker");
    eventually("a heartbeat", || !broker.heartbeats().is_empty()).await;
    for h in broker.heartbeats() {
        assert!(
            h.producer_groups.iter().any(|g| g == "MQ_INST_1%NsGroup"),
            "{h:?}"
        );
        assert!(!h.producer_groups.iter().any(|g| g == "NsGroup"), "{h:?}");
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let unreg = broker.unregisters();
    assert_eq!(unreg.len(), 1);
    assert_eq!(
        unreg[0].producer_group.as_deref(),
        Some("MQ_INST_1%NsGroup")
    );
    assert_eq!(broker.request_count(RequestCode::UNREGISTER_CLIENT), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_plain_topic_and_hand_back_the_plain_message() {
    let c = cluster().await;
    c.set_auto_create(false);
    let p = timeout(T, builder(&c, "NsErr").start())
        .await
        .expect("in time")
        .expect("start");
    let err = timeout(T, p.send(Message::new("Missing", "x")))
        .await
        .expect("in time")
        .expect_err("no route");
    match err.kind() {
        ErrorKind::NoRoute {
            topic,
            source: Some(rmq_nameserver_client::NameServerError::TopicNotExist { topic: t, .. }),
            ..
        } => {
            assert_eq!(topic, "Missing");
            assert_eq!(t, "Missing");
        }
        other => panic!("no route expected, got {other:?}"),
    }
    // (The name server's remark, its own text, may name the wire topic.)
    let msg = err.into_message().expect("handed back");
    assert_eq!(msg.topic(), "Missing");
    // A queue of another topic is refused naming the plain topic.
    let err = timeout(
        T,
        p.send_with(
            Message::new("Orders", "x"),
            SendOptions::new().queue(MessageQueue::new("Other", "broker-a", 0)),
        ),
    )
    .await
    .expect("in time")
    .expect_err("wrong queue");
    assert!(
        matches!(err.kind(), ErrorKind::QueueUnavailable { topic, .. } if topic == "Orders"),
        "{err:?}"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

/// Answers Unknown on execute, records the topics it is asked to check, then commits.
#[derive(Debug, Default)]
struct Checked(Mutex<Vec<String>>);

impl TransactionListener for Checked {
    type Arg = ();

    async fn execute(&self, _: &Message, (): ()) -> Result<TransactionState, ListenerError> {
        Ok(TransactionState::Unknown)
    }

    async fn check(&self, msg: &MessageExt) -> Result<TransactionState, ListenerError> {
        self.0
            .lock()
            .expect("lock")
            .push(msg.message.topic().to_owned());
        Ok(TransactionState::Commit)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_carry_the_wrapped_group_and_checks_see_the_plain_topic() {
    let c = cluster().await;
    let p = timeout(
        T,
        builder(&c, "NsTx")
            .heartbeat_interval(Duration::from_millis(200))
            .start_transactional(Checked::default()),
    )
    .await
    .expect("in time")
    .expect("start");
    let r = timeout(T, p.send_in_transaction(Message::new("Orders", "tx"), ()))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(r.send.queue.topic, "Orders");
    let half = c.half_messages();
    assert_eq!(half.len(), 1);
    assert_eq!(
        half[0].ext.message.property(property::PGROUP),
        Some("MQ_INST_1%NsTx")
    );
    assert_eq!(
        half[0].ext.message.property(property::REAL_TOPIC),
        Some("MQ_INST_1%Orders")
    );
    let broker = c.broker("broker-a").expect("broker");
    eventually("END_TRANSACTION (unknown) received", || {
        !broker.end_transactions().is_empty()
    })
    .await;
    assert_eq!(
        broker.end_transactions()[0].header.producer_group,
        "MQ_INST_1%NsTx"
    );
    // The broker checks the wrapped group's connection; the listener sees the plain topic.
    eventually("the group's connection is registered", || {
        !broker.producer_connections("MQ_INST_1%NsTx").is_empty()
    })
    .await;
    assert_eq!(c.check_transactions().await, 1);
    eventually("checked", || {
        !p.listener().0.lock().expect("lock").is_empty()
    })
    .await;
    assert_eq!(*p.listener().0.lock().expect("lock"), ["Orders"]);
    eventually("committed under the wrapped topic", || {
        c.messages_of("MQ_INST_1%Orders").len() == 1
    })
    .await;
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test]
async fn a_bad_namespace_is_refused_before_start() {
    for bad in ["a%b", "a b"] {
        let err = Producer::builder("G")
            .name_server("127.0.0.1:9876")
            .namespace(bad)
            .start()
            .await
            .expect_err("refused");
        assert!(
            matches!(err, rmq_producer::ConfigError::Invalid(_)),
            "{bad}: {err:?}"
        );
    }
    // Too long once wrapped (Java checks the wrapped group).
    let err = Producer::builder("G".repeat(118))
        .name_server("127.0.0.1:9876")
        .namespace("ns")
        .start()
        .await
        .expect_err("refused");
    assert!(
        matches!(err, rmq_producer::ConfigError::Group(_)),
        "{err:?}"
    );
}
