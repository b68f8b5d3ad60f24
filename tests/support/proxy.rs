//! Helpers of the interop tests through the gRPC proxy (`tests/interop_proxy.rs`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::MessageExt;
use rmq_common::Message;
use rmq_producer::Producer;
use rmq_remoting::RemotingClient;
use rmq_testkit::interop::{ProxyEndpoint, NO_PROXY_VAR, PROXY_VAR};
use tokio::time::timeout;

use super::admin::create_topic_on_brokers;
use super::commit_log::walk_commit_log;
use super::{env, real_cluster, RealCluster, INTEROP_TIMEOUT as T};

/// The cluster and the proxy endpoint; `None` (skip, with a note) when the proxy is not
/// configured outside CI or with `RMQ_DEV_NO_PROXY=1`.
///
/// # Panics
/// When `CI` is set and the cluster or the proxy is not configured (without `RMQ_DEV_NO_PROXY=1`).
pub fn proxy_cluster(test: &str) -> Option<(RealCluster, String)> {
    let cluster = real_cluster(test)?;
    match ProxyEndpoint::from_vars(env) {
        ProxyEndpoint::Run(proxy) => Some((cluster, proxy)),
        ProxyEndpoint::Skip => {
            eprintln!("{test}: skipped: {PROXY_VAR} is not set (no gRPC proxy)");
            None
        }
        ProxyEndpoint::Fail => panic!(
            "{test}: CI is set but {PROXY_VAR} is not: the dev cluster must run its gRPC proxy \
             (scripts/rocketmq-dev.sh), or set {NO_PROXY_VAR}=1 to leave it out on purpose"
        ),
    }
}

pub async fn remoting_producer(cluster: &RealCluster, group: &str) -> Producer {
    timeout(
        T,
        Producer::builder(group)
            .name_server(&cluster.namesrv)
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start")
}

pub async fn proxy_producer(proxy: &str, group: &str) -> Producer {
    timeout(T, Producer::builder(group).proxy(proxy).start())
        .await
        .expect("start in time")
        .expect("start")
}

/// Creates `topic` on every broker with remoting sends; each broker's first commit-log offset
/// of the topic (where reading back starts).
pub async fn create_topic(
    cluster: &RealCluster,
    p: &Producer,
    topic: &str,
) -> BTreeMap<String, i64> {
    create_topic_on(cluster.brokers.len(), p, topic).await
}

/// [`create_topic`] for a topic on `brokers` brokers.
pub async fn create_topic_on(brokers: usize, p: &Producer, topic: &str) -> BTreeMap<String, i64> {
    let mut from = BTreeMap::new();
    let deadline = Instant::now() + T;
    for i in 0..200 {
        if from.len() >= brokers {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the topic never reached every broker"
        );
        let r = timeout(T, p.send(Message::new(topic, format!("create-{i}"))))
            .await
            .expect("in time")
            .expect("create send");
        let offset = OffsetMessageId::decode(&r.offset_msg_id)
            .expect("offset id")
            .commit_log_offset;
        from.entry(r.queue.broker_name.clone()).or_insert(offset);
        if (i + 1) % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    from
}

/// Creates `topic` on every broker with the topic attribute `message.type` (`UPDATE_AND_CREATE_TOPIC`):
/// a proxy checks a message's type against its topic's (5.x), and a topic made by a remoting
/// send is NORMAL; then learns where reading back starts, as [`create_topic`].
pub async fn create_typed_topic(
    cluster: &RealCluster,
    p: &Producer,
    topic: &str,
    message_type: &str,
    brokers: usize,
) -> BTreeMap<String, i64> {
    let attributes = format!("+message.type={message_type}");
    create_topic_on_brokers(cluster, topic, Some(&attributes), brokers).await;
    create_topic_on(brokers.min(cluster.brokers.len()), p, topic).await
}

/// Every record of `topic` stored since `from`, on every broker.
pub async fn stored(
    client: &RemotingClient,
    cluster: &RealCluster,
    topic: &str,
    from: &BTreeMap<String, i64>,
) -> Vec<MessageExt> {
    let mut out = Vec::new();
    for (broker, start) in from {
        let addr = cluster.broker_addr(broker).expect("broker address");
        out.extend(
            walk_commit_log(client, addr, topic, *start)
                .await
                .into_values()
                .map(|s| s.ext),
        );
    }
    out
}

/// The records by `UNIQ_KEY`.
pub fn by_id(records: &[MessageExt]) -> HashMap<String, &MessageExt> {
    records
        .iter()
        .filter_map(|m| m.uniq_key().map(|k| (k.to_owned(), m)))
        .collect()
}
