//! `GO_AWAY` from a testkit broker "shutting down": the refused send is resent once on a new
//! connection (and stored once), sends in flight on the draining connection still complete, and
//! a broker that refuses the resend too is retried elsewhere by the send loop.

use std::time::Duration;

use rmq_common::{Message, RequestCode};
use rmq_producer::{ErrorKind, Producer, SendOptions};
use rmq_testkit::{GoAway, MockBroker, MockCluster, StoredMessage};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 1);
    c
}

async fn producer(c: &MockCluster) -> Producer {
    timeout(
        T,
        Producer::builder("GoAwayGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start")
}

fn broker<'a>(c: &'a MockCluster, name: &str) -> &'a MockBroker {
    c.broker(name).expect("broker")
}

fn sends(b: &MockBroker) -> usize {
    b.request_count(RequestCode::SEND_MESSAGE_V2)
}

fn stored_with_body(b: &MockBroker, body: &str) -> Vec<StoredMessage> {
    b.messages()
        .into_iter()
        .filter(|m| m.body().as_ref() == body.as_bytes())
        .collect()
}

async fn eventually(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_send_is_resent_on_a_new_connection_and_stored_once() {
    let c = cluster(1, "GoAwayTopic").await;
    let b = broker(&c, "broker-a");
    let p = producer(&c).await;
    let warm = timeout(T, p.send(Message::new("GoAwayTopic", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(warm.queue.broker_name, "broker-a");
    // A send in flight on the connection when the broker starts shutting down...
    b.faults().set_delay(Duration::from_millis(300));
    let in_flight = timeout(
        T,
        p.send_async(Message::new("GoAwayTopic", "in-flight"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("admitted");
    eventually(|| sends(b) == 2).await;
    b.faults().set_delay(Duration::ZERO);
    b.faults().set_go_away(GoAway::SeenConnections);
    // ...and one sent after: refused with GO_AWAY, resent on a new connection.
    let r = timeout(T, p.send(Message::new("GoAwayTopic", "refused")))
        .await
        .expect("in time")
        .expect("sent after GO_AWAY");
    assert_eq!(r.queue.broker_name, "broker-a");
    let first = timeout(T, in_flight)
        .await
        .expect("in time")
        .expect("the send in flight completes on the draining connection");
    assert_eq!(first.queue.broker_name, "broker-a");
    // warm, in-flight, refused (GO_AWAY), refused again (resent).
    assert_eq!(sends(b), 4);
    let old = stored_with_body(b, "in-flight");
    let new = stored_with_body(b, "refused");
    assert_eq!(old.len(), 1, "stored once");
    assert_eq!(
        new.len(),
        1,
        "GO_AWAY means not processed: stored once, by the resend"
    );
    assert_eq!(stored_with_body(b, "warm").len(), 1);
    assert_ne!(
        old[0].ext.born_host, new[0].ext.born_host,
        "the resend went over a new connection"
    );
    assert_eq!(new[0].msg_id, r.offset_msg_id);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_away_on_the_resend_too_is_retried_on_another_broker() {
    let c = cluster(2, "GoAwayTwice").await;
    let a = broker(&c, "broker-a");
    let b = broker(&c, "broker-b");
    let p = producer(&c).await;
    // Connections to both brokers first, so that broker-a's first refusal certainly comes over
    // an open connection (a loaded machine may fail the resend's new connection instead of
    // refusing it again: then the send loop moves on all the same).
    for i in 0..4 {
        timeout(T, p.send(Message::new("GoAwayTwice", format!("warm{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    assert!(
        a.message_count() > 0 && b.message_count() > 0,
        "both brokers used"
    );
    let (stored_a, stored_b, before) = (a.message_count(), b.message_count(), sends(a));
    a.faults().set_go_away(GoAway::All);
    for i in 0..10 {
        let r = timeout(T, p.send(Message::new("GoAwayTwice", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b", "send {i}");
    }
    assert_eq!(a.message_count(), stored_a, "GO_AWAY: nothing stored");
    assert_eq!(b.message_count(), stored_b + 10, "each stored once");
    let refused = sends(a) - before;
    assert!(refused >= 1, "broker-a was tried");
    assert!(
        refused <= 20,
        "each refused send resent at most once: {refused}"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_broker_refusing_everything_the_error_is_go_away_and_not_stored() {
    let c = cluster(1, "GoAwayOnly").await;
    let a = broker(&c, "broker-a");
    let p = producer(&c).await;
    timeout(T, p.send(Message::new("GoAwayOnly", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    a.faults().set_go_away(GoAway::All);
    let err = timeout(T, p.send(Message::new("GoAwayOnly", "x")))
        .await
        .expect("in time")
        .expect_err("refused");
    assert!(!err.maybe_stored());
    assert_eq!(
        err.response_code(),
        Some(rmq_common::ResponseCode::GO_AWAY),
        "{err:?}"
    );
    assert!(matches!(
        err.kind(),
        ErrorKind::RetriesExhausted { .. } | ErrorKind::Broker { .. }
    ));
    assert!(
        err.into_message().is_some(),
        "handed back: certainly not stored"
    );
    assert_eq!(a.message_count(), 1);
    c.shutdown().await;
}
