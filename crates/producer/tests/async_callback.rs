//! Asynchronous sends settled in the remoting transport's callback (the first answer settles
//! the send on the connection's task; only retries go to the completion driver): an answer
//! before the launch returns, the connection timer's timeout, a connection closed mid-flight,
//! a retryable first answer going on to another broker, shutdown with sends in flight, and a
//! `SendFuture` dropped before its send ends.

use std::time::{Duration, Instant};

use rmq_common::{Message, RequestCode, ResponseCode};
use rmq_producer::{ErrorKind, Producer, ProducerBuilder, SendFuture, SendOptions, SendStatus};
use rmq_testkit::{MockBroker, MockCluster, Reply};
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

fn builder(c: &MockCluster) -> ProducerBuilder {
    Producer::builder("CallbackGroup")
        .name_server(c.namesrv_addr())
        .busy_backoff(Duration::from_millis(20))
}

async fn start(b: ProducerBuilder) -> Producer {
    timeout(T, b.start())
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

async fn send_async(p: &Producer, topic: &str, body: &str, options: SendOptions) -> SendFuture {
    timeout(
        T,
        p.send_async(Message::new(topic, body.to_owned()), options),
    )
    .await
    .expect("in time")
    .expect("admitted")
}

/// Waits (bounded) until `cond` holds.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

async fn stop(p: Producer, c: MockCluster) {
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_launch_returns_settles_the_send_and_its_retry_goes_on() {
    let c = cluster(2, "Early").await;
    let p = start(builder(&c).latency_fault_tolerance(false)).await;
    timeout(T, p.send(Message::new("Early", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // A refused connect fails inside the launch, before it returns: the answer waits for the
    // send's state, which settles it at once (a retry, on the other broker).
    let a = broker(&c, "broker-a");
    a.down().await;
    // The warm-up may have gone to either broker.
    let before = sends(a);
    for i in 0..6 {
        let f = send_async(&p, "Early", &format!("{i}"), SendOptions::new()).await;
        let r = timeout(T, f).await.expect("in time").expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b", "send {i}");
        assert_eq!(r.status, SendStatus::SendOk);
    }
    assert_eq!(sends(a), before, "none reached broker-a");
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_timer_times_the_first_attempt_out() {
    let c = cluster(1, "Silent").await;
    let p = start(builder(&c)).await;
    timeout(T, p.send(Message::new("Silent", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    broker(&c, "broker-a").faults().set_black_hole(true);
    let t0 = Instant::now();
    let f = send_async(
        &p,
        "Silent",
        "x",
        SendOptions::new().timeout(Duration::from_millis(400)),
    )
    .await;
    let err = timeout(T, f)
        .await
        .expect("in time")
        .expect_err("no answer");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(err.maybe_stored(), "written, never answered: {err}");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Timeout { .. } | ErrorKind::RetriesExhausted { .. }
        ),
        "{err}"
    );
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_flight_fails_the_attempt_and_the_retry_stores_once() {
    let c = cluster(2, "Closing").await;
    for b in c.brokers() {
        b.faults().script([Reply::Close]);
    }
    let p = start(builder(&c)).await;
    let f = send_async(&p, "Closing", "x", SendOptions::new()).await;
    let r = timeout(T, f).await.expect("in time").expect("sent");
    assert_eq!(r.status, SendStatus::SendOk);
    assert_eq!(c.messages_of("Closing").len(), 1);
    // x closes, y closes (each after reading the request), x answers.
    assert_eq!(
        sends(broker(&c, "broker-a")) + sends(broker(&c, "broker-b")),
        3
    );
    // No retry left: the closed connection is the send's error, settled in the callback.
    let c1 = cluster(1, "ClosingOnce").await;
    broker(&c1, "broker-a").faults().script([Reply::Close]);
    let p1 = start(builder(&c1).retries_async(0)).await;
    let f = send_async(&p1, "ClosingOnce", "y", SendOptions::new()).await;
    let err = timeout(T, f).await.expect("in time").expect_err("closed");
    assert!(
        matches!(err.kind(), ErrorKind::Transport { .. }),
        "the connection's failure: {err}"
    );
    assert!(err.maybe_stored(), "written, then the connection closed");
    assert!(eventually(|| p1.stats().sends_in_flight == 0).await);
    stop(p1, c1).await;
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_first_answer_goes_on_to_the_other_broker() {
    let c = cluster(2, "Busy").await;
    broker(&c, "broker-a")
        .faults()
        .script_codes(vec![ResponseCode::SYSTEM_BUSY; 100]);
    let p = start(builder(&c).latency_fault_tolerance(false)).await;
    let mut futures = Vec::new();
    for i in 0..20 {
        futures.push(send_async(&p, "Busy", &format!("{i}"), SendOptions::new()).await);
    }
    for f in futures {
        let r = timeout(T, f).await.expect("in time").expect("sent");
        assert_eq!(r.queue.broker_name, "broker-b");
    }
    // Round-robin: about half went to broker-a first, were answered busy there and retried.
    assert!(sends(broker(&c, "broker-a")) >= 5);
    assert_eq!(sends(broker(&c, "broker-b")), 20);
    assert_eq!(c.messages_of("Busy").len(), 20);
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    stop(p, c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_the_sends_in_flight_and_each_resolves_once() {
    let c = cluster(2, "Drain").await;
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_millis(200));
    }
    let p = start(builder(&c)).await;
    let mut futures = Vec::new();
    for i in 0..50 {
        futures.push(send_async(&p, "Drain", &format!("{i}"), SendOptions::new()).await);
    }
    assert!(
        p.stats().sends_in_flight > 0,
        "in flight when shutdown begins"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert_eq!(p.stats().sends_in_flight, 0);
    for f in futures {
        // Resolved before shutdown returned: one poll is enough.
        let r = timeout(Duration::ZERO, f)
            .await
            .expect("resolved")
            .expect("sent, not cancelled");
        assert_eq!(r.status, SendStatus::SendOk);
    }
    assert_eq!(c.messages_of("Drain").len(), 50);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_send_future_loses_no_completion() {
    let c = cluster(1, "Dropped").await;
    broker(&c, "broker-a")
        .faults()
        .set_delay(Duration::from_millis(100));
    let p = start(builder(&c)).await;
    for i in 0..20 {
        drop(send_async(&p, "Dropped", &format!("{i}"), SendOptions::new()).await);
    }
    // Every send still goes out, is stored, and leaves the in-flight count.
    assert!(eventually(|| c.messages_of("Dropped").len() == 20).await);
    assert!(eventually(|| p.stats().sends_in_flight == 0).await);
    assert_eq!(p.stats().async_in_flight, 0, "room released");
    // The producer goes on as before.
    let f = send_async(&p, "Dropped", "after", SendOptions::new()).await;
    timeout(T, f).await.expect("in time").expect("sent");
    stop(p, c).await;
}
