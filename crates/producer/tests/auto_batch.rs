//! Auto-batching against the testkit cluster: concurrent `send` / `send_async` calls leave as
//! one `SEND_BATCH_MESSAGE`, each caller's result names what the broker stored for its
//! message, errors reach every caller, what cannot be batched goes alone, shutdown flushes.

use std::time::Duration;

use rmq_common::{property, sysflag, Message, RequestCode, ResponseCode};
use rmq_producer::{
    AutoBatchConfig, ErrorKind, JavaHashSelector, Producer, SendOptions, SendResult,
};
use rmq_testkit::{MockCluster, Reply, StoredMessage};
use tokio::time::{timeout, Instant};

const T: Duration = Duration::from_secs(20);

async fn cluster(brokers: usize, topic: &str, queues: i32) -> MockCluster {
    let c = timeout(T, MockCluster::start(brokers))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, queues);
    c
}

/// A producer with auto-batching holding messages `hold` long.
async fn producer(c: &MockCluster, hold: Duration) -> Producer {
    timeout(
        T,
        Producer::builder("AutoBatchGroup")
            .name_server(c.namesrv_addr())
            .auto_batch(AutoBatchConfig::default().with_hold_time(hold))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start")
}

fn requests(c: &MockCluster, code: RequestCode) -> usize {
    c.brokers().iter().map(|b| b.request_count(code)).sum()
}

/// The stored message a result names, checked against it: same id, queue, offset, offset id.
fn check_stored<'a>(stored: &'a [StoredMessage], r: &SendResult) -> &'a StoredMessage {
    let m = stored
        .iter()
        .find(|m| m.property(property::UNIQ_KEY) == Some(r.msg_id.as_str()))
        .unwrap_or_else(|| panic!("{} not stored", r.msg_id));
    assert_eq!(m.broker, r.queue.broker_name);
    assert_eq!(m.queue_id(), r.queue.queue_id);
    assert_eq!(
        m.queue_offset(),
        r.queue_offset,
        "queue offset of {}",
        r.msg_id
    );
    assert_eq!(
        m.msg_id, r.offset_msg_id,
        "offset message id of {}",
        r.msg_id
    );
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sync_sends_leave_as_one_batch_and_each_caller_gets_its_own_result() {
    let c = cluster(2, "AbSync", 2).await;
    let p = producer(&c, Duration::from_millis(500)).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let msg = Message::new("AbSync", format!("body {i}")).with_tags(format!("tag{i}"));
            timeout(T, p.send(msg)).await.expect("in time")
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("sent"));
    }
    assert_eq!(requests(&c, RequestCode::SEND_BATCH_MESSAGE), 1);
    assert_eq!(requests(&c, RequestCode::SEND_MESSAGE_V2), 0);
    let stored = c.messages_of("AbSync");
    assert_eq!(stored.len(), 8);
    let mut offsets = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let m = check_stored(&stored, r);
        assert_eq!(m.code, RequestCode::SEND_BATCH_MESSAGE);
        assert_eq!(m.body().as_ref(), format!("body {i}").as_bytes());
        assert_eq!(m.property(property::TAGS), Some(format!("tag{i}").as_str()));
        offsets.push(r.queue_offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..8).collect::<Vec<i64>>(), "one offset each");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_sends_of_one_task_are_batched_in_order() {
    let c = cluster(1, "AbAsync", 1).await;
    let p = producer(&c, Duration::from_millis(200)).await;
    let mut futures = Vec::new();
    for i in 0..10 {
        let msg = Message::new("AbAsync", format!("m{i}"));
        futures.push(
            timeout(T, p.send_async(msg, SendOptions::new()))
                .await
                .expect("in time")
                .expect("held"),
        );
    }
    let mut results = Vec::new();
    for f in futures {
        results.push(timeout(T, f).await.expect("in time").expect("sent"));
    }
    assert_eq!(requests(&c, RequestCode::SEND_BATCH_MESSAGE), 1);
    let stored = c.messages_of("AbAsync");
    for (i, r) in results.iter().enumerate() {
        let m = check_stored(&stored, r);
        assert_eq!(m.batch_index, Some(i), "join order is batch order");
        assert_eq!(
            r.queue_offset,
            results[0].queue_offset + i64::try_from(i).expect("small")
        );
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_sends_are_batched_per_queue_keeping_their_order() {
    let c = cluster(1, "AbOrdered", 4).await;
    let p = producer(&c, Duration::from_millis(200)).await;
    let mut futures = Vec::new();
    for i in 0..8 {
        let order = if i % 2 == 0 { "order-1" } else { "order-2" };
        let msg = Message::new("AbOrdered", format!("{order} step {}", i / 2));
        let options = SendOptions::new().selector(JavaHashSelector::new(order));
        futures.push((order, p.send_async(msg, options).await.expect("held")));
    }
    let mut by_order: Vec<(&str, SendResult)> = Vec::new();
    for (order, f) in futures {
        by_order.push((order, timeout(T, f).await.expect("in time").expect("sent")));
    }
    assert_eq!(
        requests(&c, RequestCode::SEND_BATCH_MESSAGE),
        2,
        "one batch per queue"
    );
    let stored = c.messages_of("AbOrdered");
    for order in ["order-1", "order-2"] {
        let mine: Vec<&SendResult> = by_order
            .iter()
            .filter(|(o, _)| *o == order)
            .map(|(_, r)| r)
            .collect();
        assert!(
            mine.iter().all(|r| r.queue == mine[0].queue),
            "one queue per order"
        );
        for (step, r) in mine.iter().enumerate() {
            let m = check_stored(&stored, r);
            assert_eq!(m.body().as_ref(), format!("{order} step {step}").as_bytes());
            assert_eq!(m.batch_index, Some(step));
        }
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_batched_goes_alone() {
    let c = cluster(1, "AbAlone", 2).await;
    let p = producer(&c, Duration::from_millis(50)).await;
    let delayed = Message::new("AbAlone", "later").with_delay_level(2);
    let big = Message::new("AbAlone", vec![b'z'; 8192]);
    for msg in [delayed, big] {
        let r = timeout(T, p.send(msg))
            .await
            .expect("in time")
            .expect("sent");
        check_stored(&c.messages_of("AbAlone"), &r);
    }
    timeout(
        T,
        p.send_oneway(Message::new("AbAlone", "oneway"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("written");
    let explicit = vec![Message::new("AbAlone", "e1"), Message::new("AbAlone", "e2")];
    timeout(T, p.send_batch(explicit, SendOptions::new()))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(requests(&c, RequestCode::SEND_MESSAGE_V2), 3);
    assert_eq!(
        requests(&c, RequestCode::SEND_BATCH_MESSAGE),
        1,
        "the explicit batch only"
    );
    let stored = c.messages_of("AbAlone");
    let big = stored
        .iter()
        .find(|m| m.body().len() < 8192 && m.header.sys_flag != 0);
    assert!(
        big.is_some_and(|m| m.header.sys_flag & sysflag::COMPRESSED_FLAG != 0),
        "the large body kept its compression"
    );
    // A plain send is held and goes as a batch of one.
    let r = timeout(T, p.send(Message::new("AbAlone", "plain")))
        .await
        .expect("in time")
        .expect("sent");
    assert_eq!(requests(&c, RequestCode::SEND_BATCH_MESSAGE), 2);
    check_stored(&c.messages_of("AbAlone"), &r);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_fails_each_caller_with_its_own_message_back() {
    let c = cluster(1, "AbRefused", 1).await;
    let p = producer(&c, Duration::from_millis(100)).await;
    // The route first, so that the scripted answer meets the batch.
    timeout(T, p.send(Message::new("AbRefused", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    c.brokers()[0]
        .faults()
        .script_codes([ResponseCode::MESSAGE_ILLEGAL]);
    let mut futures = Vec::new();
    for i in 0..4 {
        let msg = Message::new("AbRefused", format!("m{i}"));
        futures.push(p.send_async(msg, SendOptions::new()).await.expect("held"));
    }
    for (i, f) in futures.into_iter().enumerate() {
        let e = timeout(T, f).await.expect("in time").expect_err("refused");
        assert_eq!(e.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
        assert!(!e.maybe_stored());
        let id = e.msg_id().map(str::to_owned);
        let back = e.into_message().expect("handed back");
        assert_eq!(back.body().as_ref(), format!("m{i}").as_bytes());
        assert_eq!(back.property(property::UNIQ_KEY).map(str::to_owned), id);
    }
    assert_eq!(c.messages_of("AbRefused").len(), 1, "only the warm-up");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_off_after_its_write_leaves_every_caller_maybe_stored() {
    let c = cluster(1, "AbLost", 1).await;
    let p = producer(&c, Duration::from_millis(100)).await;
    let queue = rmq_common::MessageQueue::new("AbLost", c.brokers()[0].name(), 0);
    timeout(
        T,
        p.send_with(
            Message::new("AbLost", "warm"),
            SendOptions::new().queue(queue.clone()),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    c.brokers()[0].faults().script([Reply::Close]);
    let mut futures = Vec::new();
    for i in 0..3 {
        let msg = Message::new("AbLost", format!("m{i}"));
        let options = SendOptions::new().queue(queue.clone());
        futures.push(p.send_async(msg, options).await.expect("held"));
    }
    for f in futures {
        let e = timeout(T, f)
            .await
            .expect("in time")
            .expect_err("connection closed");
        assert!(e.maybe_stored(), "{e:?}");
        assert!(e.msg_id().is_some());
        assert!(e.into_message().is_none());
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_held_messages_without_waiting_for_the_hold_time() {
    let c = cluster(1, "AbShutdown", 1).await;
    let p = producer(&c, Duration::from_secs(20)).await;
    let mut futures = Vec::new();
    for i in 0..3 {
        let msg = Message::new("AbShutdown", format!("m{i}"));
        futures.push(p.send_async(msg, SendOptions::new()).await.expect("held"));
    }
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    for f in futures {
        timeout(T, f)
            .await
            .expect("in time")
            .expect("sent at shutdown");
    }
    assert_eq!(c.messages_of("AbShutdown").len(), 3);
    let e = timeout(T, p.send(Message::new("AbShutdown", "late")))
        .await
        .expect("in time")
        .expect_err("stopped");
    assert!(matches!(e.kind(), ErrorKind::NotRunning));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_when_idle_does_not_hold_a_lone_send() {
    let c = cluster(1, "AbIdle", 1).await;
    let p = timeout(
        T,
        Producer::builder("AutoBatchIdle")
            .name_server(c.namesrv_addr())
            .auto_batch(
                AutoBatchConfig::default()
                    .with_hold_time(Duration::from_secs(1))
                    .with_send_when_idle(true),
            )
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    for i in 0..3 {
        let t0 = Instant::now();
        let r = timeout(T, p.send(Message::new("AbIdle", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "held: {:?}",
            t0.elapsed()
        );
        check_stored(&c.messages_of("AbIdle"), &r);
    }
    assert_eq!(requests(&c, RequestCode::SEND_BATCH_MESSAGE), 3);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}
