//! Interop: a producer with a namespace against the real cluster of `scripts/rocketmq-dev.sh`:
//! the broker stores the message under `ns%Topic` (read back with `VIEW_MESSAGE_BY_ID`), the
//! result names the plain topic.

mod support;

use std::time::Duration;

use rmq_common::message_id::OffsetMessageId;
use rmq_common::{property, Message};
use rmq_producer::Producer;
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::commit_log::view;
use support::{cluster_shared, real_cluster, unique_topic, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_namespace_stores_the_wrapped_topic() {
    let Some(cluster) = real_cluster("interop_namespace_stores_the_wrapped_topic") else {
        return;
    };
    let _shared = timeout(Duration::from_secs(600), cluster_shared())
        .await
        .expect("cluster lock");
    let topic = unique_topic("RmqNs");
    let ns = "rmq_ns";
    let p = timeout(
        T,
        Producer::builder("RmqNsGroup")
            .name_server(&cluster.namesrv)
            .namespace(ns)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let r = timeout(T, p.send(Message::new(topic.as_str(), "namespaced")))
        .await
        .expect("in time")
        .expect("sent (topic auto-created)");
    assert_eq!(r.queue.topic, topic, "the result names the plain topic");
    let wire = format!("{ns}%{topic}");
    let addr = cluster
        .broker_addr(&r.queue.broker_name)
        .expect("broker of the result");
    let offset = OffsetMessageId::decode(&r.offset_msg_id)
        .expect("offset message id")
        .commit_log_offset;
    let client = RemotingClient::new(RemotingConfig::default());
    let deadline = tokio::time::Instant::now() + T;
    let stored = loop {
        if let Some(s) = timeout(T, view(&client, addr, &wire, offset))
            .await
            .ok()
            .flatten()
        {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "not read back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored.ext.message.topic(), wire, "stored under ns%Topic");
    assert_eq!(stored.ext.message.body().as_ref(), b"namespaced");
    assert_eq!(stored.ext.message.property(property::INSTANCE_ID), Some(ns));
    assert_eq!(
        stored.ext.message.property(property::UNIQ_KEY),
        Some(r.msg_id.as_str())
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    client.shutdown().await;
}
