//! Auto-batching against a real cluster (`scripts/rocketmq-dev.sh start`): concurrent sends
//! held together are stored as one batch at consecutive queue offsets, and every caller's result
//! (message id, queue, queue offset, offset message id) names exactly the message it sent, read
//! back with `VIEW_MESSAGE_BY_ID`.
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::time::Duration;

use rmq_common::message_id::OffsetMessageId;
use rmq_common::Message;
use rmq_producer::{AutoBatchConfig, Producer, SendOptions, SendResult, SendStatus};
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::commit_log::view;
use support::{cluster_shared, real_cluster, unique_topic, RealCluster, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

async fn start(cluster: &RealCluster, hold: Duration) -> Producer {
    timeout(
        T,
        Producer::builder("RmqInteropAutoBatch")
            .name_server(&cluster.namesrv)
            .auto_batch(AutoBatchConfig::default().with_hold_time(hold))
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start")
}

/// Reads the message a result names back from its broker and checks it is `sent`.
async fn check_stored(
    client: &RemotingClient,
    cluster: &RealCluster,
    r: &SendResult,
    sent: &Message,
) {
    assert_eq!(r.status, SendStatus::SendOk);
    assert!(!r.offset_msg_id.contains(','), "one offset id per caller");
    let addr = cluster
        .broker_addr(&r.queue.broker_name)
        .expect("broker of the result");
    let offset = OffsetMessageId::decode(&r.offset_msg_id)
        .expect("offset message id")
        .commit_log_offset;
    let stored = timeout(T, view(client, addr, &r.queue.topic, offset))
        .await
        .expect("in time")
        .expect("stored");
    assert_eq!(stored.ext.message.body(), sent.body());
    assert_eq!(stored.ext.uniq_key(), Some(r.msg_id.as_str()));
    assert_eq!(
        (stored.ext.queue_id, stored.ext.queue_offset),
        (r.queue.queue_id, r.queue_offset)
    );
    assert_eq!(stored.ext.message.tags(), sent.tags());
}

/// Results of one batch: one queue, consecutive offsets.
fn assert_one_batch(results: &[SendResult]) {
    assert!(
        results.iter().all(|r| r.queue == results[0].queue),
        "one queue"
    );
    let mut offsets: Vec<i64> = results.iter().map(|r| r.queue_offset).collect();
    offsets.sort_unstable();
    let first = offsets[0];
    let want: Vec<i64> = (first..first + i64::try_from(offsets.len()).expect("small")).collect();
    assert_eq!(offsets, want, "consecutive offsets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_concurrent_sync_sends_are_stored_as_one_batch_each_result_exact() {
    let Some(cluster) =
        real_cluster("interop_concurrent_sync_sends_are_stored_as_one_batch_each_result_exact")
    else {
        return;
    };
    let _shared = timeout(Duration::from_secs(600), cluster_shared())
        .await
        .expect("cluster lock in time");
    let topic = unique_topic("RmqAutoBatchSync");
    let client = RemotingClient::new(RemotingConfig::default());
    // The topic first (auto-created through TBW102), so the batch below is not split by it.
    let warm = start(&cluster, Duration::from_millis(1)).await;
    timeout(T, warm.send(Message::new(&topic, "warm")))
        .await
        .expect("in time")
        .expect("warm-up");
    timeout(T, warm.shutdown()).await.expect("shutdown in time");

    let p = start(&cluster, Duration::from_millis(300)).await;
    let sent: Vec<Message> = (0..16)
        .map(|i| Message::new(&topic, format!("auto batch {i}")).with_tags(format!("T{i}")))
        .collect();
    let mut tasks = Vec::new();
    for msg in sent.clone() {
        let p = p.clone();
        tasks.push(tokio::spawn(async move { timeout(T, p.send(msg)).await }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task").expect("in time").expect("sent"));
    }
    assert_one_batch(&results);
    for (r, msg) in results.iter().zip(&sent) {
        check_stored(&client, &cluster, r, msg).await;
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_async_sends_are_batched_in_order_each_result_exact() {
    let Some(cluster) = real_cluster("interop_async_sends_are_batched_in_order_each_result_exact")
    else {
        return;
    };
    let _shared = timeout(Duration::from_secs(600), cluster_shared())
        .await
        .expect("cluster lock in time");
    let topic = unique_topic("RmqAutoBatchAsync");
    let client = RemotingClient::new(RemotingConfig::default());
    let p = start(&cluster, Duration::from_millis(100)).await;
    timeout(T, p.send(Message::new(&topic, "warm")))
        .await
        .expect("in time")
        .expect("warm-up");
    let sent: Vec<Message> = (0..24)
        .map(|i| Message::new(&topic, format!("async {i}")))
        .collect();
    let mut futures = Vec::new();
    for msg in sent.clone() {
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
    assert_one_batch(&results);
    for (i, (r, msg)) in results.iter().zip(&sent).enumerate() {
        assert_eq!(
            r.queue_offset,
            results[0].queue_offset + i64::try_from(i).expect("small"),
            "send order is storage order"
        );
        check_stored(&client, &cluster, r, msg).await;
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}
