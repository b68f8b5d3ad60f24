//! Shared by the callback-path test binaries (`async_callback`, `async_launch_drop`): a mock
//! cluster, a producer on it, bounded waits, and the checks of a cancelled or idle send.

// Each binary uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rmq_common::{Message, RequestCode};
use rmq_producer::{ErrorKind, Producer, ProducerBuilder, SendFuture, SendOptions};
use rmq_testkit::{MockBroker, MockCluster};
use tokio::time::timeout;

pub(crate) const T: Duration = Duration::from_secs(20);

pub(crate) async fn cluster(brokers: usize, topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 1);
    c
}

pub(crate) fn builder(c: &MockCluster) -> ProducerBuilder {
    Producer::builder("CallbackGroup")
        .name_server(c.namesrv_addr())
        .busy_backoff(Duration::from_millis(20))
}

pub(crate) async fn start(b: ProducerBuilder) -> Producer {
    timeout(T, b.start())
        .await
        .expect("in time")
        .expect("start")
}

pub(crate) fn broker<'a>(c: &'a MockCluster, name: &str) -> &'a MockBroker {
    c.broker(name).expect("broker")
}

pub(crate) fn sends(b: &MockBroker) -> usize {
    b.request_count(RequestCode::SEND_MESSAGE_V2)
}

pub(crate) async fn send_async(
    p: &Producer,
    topic: &str,
    body: &str,
    options: SendOptions,
) -> SendFuture {
    timeout(
        T,
        p.send_async(Message::new(topic, body.to_owned()), options),
    )
    .await
    .expect("in time")
    .expect("admitted")
}

/// Waits (bounded) until `cond` holds.
pub(crate) async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

pub(crate) async fn stop(p: Producer, c: MockCluster) {
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

/// The time past its deadline a shutdown may take: the cancelled sends' resolution, the
/// unregister's floor (the brokers answer nothing), the connections' close, a loaded machine.
pub(crate) const SLACK: Duration = Duration::from_millis(1500);

pub(crate) fn is_cancelled(kind: &ErrorKind, written: bool) -> bool {
    matches!(kind, ErrorKind::Cancelled { maybe_stored, .. } if *maybe_stored == written)
}

pub(crate) fn assert_idle(p: &Producer) {
    let s = p.stats();
    assert_eq!(s.sends_in_flight, 0, "{s:?}");
    assert_eq!(s.async_in_flight, 0, "room released: {s:?}");
    assert_eq!(s.async_bytes_in_flight, 0, "room released: {s:?}");
}
