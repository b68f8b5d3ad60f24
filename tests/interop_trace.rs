//! Message trace against a real cluster (`scripts/rocketmq-dev.sh start`): after N traced sends,
//! the trace topic holds N `Pub` records, in Java's text format, whose message ids, topics,
//! offset ids and store hosts match the send results, in trace messages keyed by those ids;
//! transactions leave their half message's `Pub` record and an `EndTransaction` record.
//! Read back from the brokers' commit logs (`VIEW_MESSAGE_BY_ID`), from a marker message sent
//! on every broker before the traced sends.
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::MessageExt;
use rmq_common::{property, Message, MessageQueue};
use rmq_producer::{
    ErrorKind, ListenerError, Producer, SendOptions, SendResult, TraceConfig, TransactionListener,
    TransactionState, DEFAULT_TRACE_TOPIC,
};
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::admin::create_topic_on_brokers;
use support::commit_log::walk_commit_log;
use support::{cluster_shared, real_cluster, unique_topic, RealCluster, INTEROP_TIMEOUT as T};
use tokio::time::timeout;

/// Traced sends.
const N: usize = 30;

/// A `Pub` record's fields, and the keys of the trace message that carried it.
struct Traced {
    fields: Vec<String>,
    keys: Vec<String>,
}

/// Markers: one message on every broker; its commit-log offset, by broker, is where a walk for
/// the trace topic's records starts (a broker's commit log holds every topic). They go to a
/// topic of their own, created on every broker first: the trace topic cannot be (it is a system
/// topic), and a send that creates it through TBW102 leaves it on one broker until the other
/// has it too, so a marker there could find a route that does not list its broker. A route
/// lags its brokers' registrations, so a marker is tried again, bounded, while its broker is
/// not listed yet (`BrokerNotFound`, as Java's).
async fn markers(cluster: &RealCluster) -> HashMap<String, i64> {
    let topic = unique_topic("RmqTraceMarker");
    create_topic_on_brokers(cluster, &topic, None, cluster.brokers.len()).await;
    let plain = timeout(
        T,
        Producer::builder("RmqInteropTraceMarker")
            .name_server(&cluster.namesrv)
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start");
    let mut walk_from = HashMap::new();
    for (broker, _) in &cluster.brokers {
        let to = SendOptions::new().queue(MessageQueue::new(topic.as_str(), broker.as_str(), 0));
        let deadline = Instant::now() + T;
        let r = loop {
            let sent = timeout(
                T,
                plain.send_with(Message::new(topic.as_str(), "marker"), to.clone()),
            )
            .await
            .expect("marker in time");
            match sent {
                Err(e) if not_routed_yet(e.kind()) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                other => break other.expect("marker stored"),
            }
        };
        let at = OffsetMessageId::decode(&r.offset_msg_id)
            .expect("offset message id")
            .commit_log_offset;
        walk_from.insert(broker.clone(), at);
    }
    plain.shutdown().await;
    walk_from
}

/// The trace topic's route does not list the marker's broker yet.
fn not_routed_yet(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::BrokerNotFound { .. } => true,
        ErrorKind::RetriesExhausted { last, .. } => {
            matches!(**last, ErrorKind::BrokerNotFound { .. })
        }
        _ => false,
    }
}

/// Every record of the trace topic written after the markers, with its trace message's keys.
async fn trace_records(cluster: &RealCluster, walk_from: &HashMap<String, i64>) -> Vec<Traced> {
    let client = RemotingClient::new(RemotingConfig::default());
    let mut out = Vec::new();
    for (broker, from) in walk_from {
        let addr = cluster.broker_addr(broker).expect("broker address");
        for s in walk_commit_log(&client, addr, DEFAULT_TRACE_TOPIC, *from)
            .await
            .values()
        {
            let body = String::from_utf8_lossy(s.ext.message.body()).into_owned();
            let keys: Vec<String> = s
                .ext
                .message
                .property(property::KEYS)
                .unwrap_or_default()
                .split(' ')
                .map(str::to_owned)
                .collect();
            for rec in body.split_terminator('\u{2}') {
                let fields: Vec<String> = rec.split('\u{1}').map(str::to_owned).collect();
                out.push(Traced {
                    fields,
                    keys: keys.clone(),
                });
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_trace_topic_holds_one_pub_record_per_send() {
    let Some(cluster) = real_cluster("interop_trace_topic_holds_one_pub_record_per_send") else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqTraced");

    let walk_from = markers(&cluster).await;

    let p = timeout(
        T,
        Producer::builder("RmqInteropTrace")
            .name_server(&cluster.namesrv)
            .enable_trace(TraceConfig::default())
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start");
    let mut results: Vec<SendResult> = Vec::new();
    for i in 0..N {
        let msg = Message::new(&topic, format!("traced {i}"))
            .with_tags("TagT")
            .with_keys([format!("key-{i}")]);
        let r = if i % 2 == 0 {
            timeout(T, p.send(msg)).await.expect("in time")
        } else {
            let fut = p
                .send_async(msg, SendOptions::new())
                .await
                .expect("started");
            timeout(T, fut).await.expect("in time")
        };
        results.push(r.expect("stored"));
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let stats = p.trace_stats().expect("trace on");
    assert_eq!(
        (stats.records_sent, stats.dropped, stats.messages_failed),
        (N as u64, 0, 0),
        "{stats:?}"
    );

    let mut traced: HashMap<String, Traced> = HashMap::new();
    for t in trace_records(&cluster, &walk_from).await {
        if t.fields[0] == "Pub" && t.fields.get(4) == Some(&topic) {
            let id = t.fields[5].clone();
            assert!(traced.insert(id.clone(), t).is_none(), "{id} traced twice");
        }
    }
    assert_eq!(traced.len(), N, "one Pub record per send");
    for r in &results {
        let t = traced.get(&r.msg_id).expect("a record for every send");
        let f = &t.fields;
        assert_eq!(f.len(), 14, "{f:?}");
        let store_host = cluster.broker_addr(&r.queue.broker_name).expect("broker");
        assert_eq!(
            (
                f[2].as_str(),
                f[3].as_str(),
                f[4].as_str(),
                f[6].as_str(),
                f[8].as_str()
            ),
            (
                &*r.region_id,
                "RmqInteropTrace",
                topic.as_str(),
                "TagT",
                store_host
            ),
        );
        assert_eq!(
            (f[11].as_str(), f[12].as_str(), f[13].as_str()),
            ("0", r.offset_msg_id.as_str(), "true")
        );
        assert!(f[7].starts_with("key-"));
        assert!(t.keys.contains(&r.msg_id), "{} in {:?}", r.msg_id, t.keys);
        assert!(t.keys.contains(&f[7]), "the message's key too");
        let ts: i64 = f[1].parse().expect("timestamp");
        let cost: i64 = f[10].parse().expect("cost");
        assert!(
            ts > 1_600_000_000_000 && (0..=30_000).contains(&cost),
            "{f:?}"
        );
    }
}

/// Commits or rolls back as its argument says; checks commit.
struct Decide;

impl TransactionListener for Decide {
    type Arg = TransactionState;

    async fn execute(
        &self,
        _: &Message,
        s: TransactionState,
    ) -> Result<TransactionState, ListenerError> {
        Ok(s)
    }

    async fn check(&self, _: &MessageExt) -> Result<TransactionState, ListenerError> {
        Ok(TransactionState::Commit)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_transactions_leave_half_pub_and_end_transaction_records() {
    let Some(cluster) =
        real_cluster("interop_transactions_leave_half_pub_and_end_transaction_records")
    else {
        return;
    };
    let _shared = cluster_shared().await;
    let topic = unique_topic("RmqTracedTx");
    let walk_from = markers(&cluster).await;
    let p = timeout(
        T,
        Producer::builder("RmqInteropTraceTx")
            .name_server(&cluster.namesrv)
            .enable_trace(TraceConfig::default())
            .start_transactional(Decide),
    )
    .await
    .expect("start in time")
    .expect("start");
    let mut sent = Vec::new();
    for state in [TransactionState::Commit, TransactionState::Rollback] {
        let msg = Message::new(&topic, "tx").with_keys([format!("tx-{state}")]);
        let r = timeout(T, p.send_in_transaction(msg, state))
            .await
            .expect("in time")
            .expect("half stored");
        sent.push(r);
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let records = trace_records(&cluster, &walk_from).await;
    for r in &sent {
        let id = r.send.msg_id.as_str();
        let of = |kind: &str| -> Vec<&Traced> {
            records
                .iter()
                .filter(|t| t.fields[0] == kind && t.fields.get(5).map(String::as_str) == Some(id))
                .collect()
        };
        let (pubs, ends) = (of("Pub"), of("EndTransaction"));
        assert_eq!((pubs.len(), ends.len()), (1, 1), "{id}");
        assert_eq!(pubs[0].fields[11], "1", "a half message");
        let store_host = cluster
            .broker_addr(&r.send.queue.broker_name)
            .expect("broker");
        let f = &ends[0].fields;
        let want = [
            "EndTransaction",
            f[1].as_str(),
            "DefaultRegion",
            "RmqInteropTraceTx",
            topic.as_str(),
            id,
            "null",
            &format!("tx-{}", r.state),
            store_host,
            "2",
            id,
            r.state.as_str(),
            "false",
        ];
        assert_eq!(f, &want);
        assert!(ends[0].keys.iter().any(|k| k == id));
    }
}
