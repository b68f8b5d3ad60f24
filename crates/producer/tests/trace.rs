//! Message trace against the testkit cluster: every stored send leaves one `Pub` record in the
//! trace topic, in Java's text format, found by its message id (the trace message's keys);
//! transactions leave an `EndTransaction` record; the trace producer never traces itself.

use std::collections::HashMap;
use std::time::Duration;

use rmq_common::stored::MessageExt;
use rmq_common::{property, Message};
use rmq_producer::{
    ListenerError, Producer, SendOptions, SendResult, TraceConfig, TransactionListener,
    TransactionState, DEFAULT_TRACE_TOPIC,
};
use rmq_testkit::MockCluster;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

/// A record of the trace: its fields.
type Record = Vec<String>;

/// The records of every trace message stored in `topic`, with each message's keys.
fn records(c: &MockCluster, topic: &str) -> Vec<(Record, Vec<String>)> {
    let mut out = Vec::new();
    for m in c.messages_of(topic) {
        let body = std::str::from_utf8(m.body()).expect("utf-8 trace body");
        let keys: Vec<String> = m
            .property(property::KEYS)
            .unwrap_or_default()
            .split(' ')
            .map(str::to_owned)
            .collect();
        assert!(
            body.ends_with('\u{2}'),
            "records end with \\u0002: {body:?}"
        );
        for rec in body.split_terminator('\u{2}') {
            out.push((
                rec.split('\u{1}').map(str::to_owned).collect(),
                keys.clone(),
            ));
        }
    }
    out
}

/// The master address of `broker` serving `topic`.
fn addr_of(c: &MockCluster, topic: &str, broker: &str) -> String {
    let route = c.route(topic).expect("route");
    route
        .broker_datas
        .iter()
        .find(|b| b.broker_name == broker)
        .and_then(|b| b.master_addr())
        .expect("master")
        .to_owned()
}

async fn cluster(topics: &[&str]) -> MockCluster {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    for t in topics {
        c.create_topic(t, 2);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_send_leaves_one_pub_record_found_by_its_id() {
    let c = cluster(&["TraceTopic", DEFAULT_TRACE_TOPIC]).await;
    let p = Producer::builder("TraceGroup")
        .name_server(c.namesrv_addr())
        .enable_trace(TraceConfig::default())
        .start()
        .await
        .expect("start");
    let mut results: Vec<SendResult> = Vec::new();
    for i in 0..3 {
        let msg = Message::new("TraceTopic", format!("sync {i}"))
            .with_tags("TagA")
            .with_keys([format!("order-{i}")]);
        results.push(
            timeout(T, p.send(msg))
                .await
                .expect("in time")
                .expect("sent"),
        );
    }
    for i in 0..2 {
        let fut = p
            .send_async(
                Message::new("TraceTopic", format!("async {i}")),
                SendOptions::new(),
            )
            .await
            .expect("started");
        results.push(timeout(T, fut).await.expect("in time").expect("sent"));
    }
    let batch = vec![
        Message::new("TraceTopic", "b1"),
        Message::new("TraceTopic", "b2"),
    ];
    results.push(
        timeout(T, p.send_batch(batch, SendOptions::new()))
            .await
            .expect("in time")
            .expect("sent"),
    );
    // Oneway sends have no result: Java traces none.
    timeout(
        T,
        p.send_oneway(Message::new("TraceTopic", "oneway"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("written");
    let stats = p.trace_stats().expect("trace on");
    assert!(
        stats
            .group
            .starts_with("_INNER_TRACE_PRODUCER-TraceGroup-PRODUCE-"),
        "{stats:?}"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let stats = p.trace_stats().expect("trace on");
    assert_eq!(
        (stats.records_sent, stats.dropped, stats.queued),
        (6, 0, 0),
        "{stats:?}"
    );

    let recs = records(&c, DEFAULT_TRACE_TOPIC);
    assert_eq!(
        recs.len(),
        results.len(),
        "one record per stored send: {recs:?}"
    );
    let by_id: HashMap<&str, &(Record, Vec<String>)> =
        recs.iter().map(|r| (r.0[5].as_str(), r)).collect();
    for r in &results {
        let (rec, keys) = by_id
            .get(r.msg_id.as_str())
            .expect("a record for every result");
        assert_eq!(rec.len(), 14, "{rec:?}");
        assert_eq!(rec[0], "Pub");
        assert_eq!(rec[2], "DefaultRegion");
        assert_eq!(rec[3], "TraceGroup");
        assert_eq!(rec[4], "TraceTopic");
        assert_eq!(rec[8], addr_of(&c, "TraceTopic", &r.queue.broker_name));
        assert_eq!(rec[11], "0", "normal message");
        assert_eq!(rec[12], r.offset_msg_id);
        assert_eq!(rec[13], "true");
        for id in r.msg_id.split(',') {
            assert!(keys.iter().any(|k| k == id), "{id} in the keys {keys:?}");
        }
    }
    let sync0 = &by_id[results[0].msg_id.as_str()].0;
    assert_eq!((sync0[6].as_str(), sync0[7].as_str()), ("TagA", "order-0"));
    assert!(by_id[results[0].msg_id.as_str()]
        .1
        .contains(&"order-0".to_owned()));
    let async0 = &by_id[results[3].msg_id.as_str()].0;
    assert_eq!(
        (async0[6].as_str(), async0[7].as_str(), async0[9].as_str()),
        ("null", "null", "7")
    );
    // The trace messages come from the trace producer, which traces nothing of its own.
    for m in c.messages_of(DEFAULT_TRACE_TOPIC) {
        assert!(m
            .header
            .producer_group
            .starts_with("_INNER_TRACE_PRODUCER-TraceGroup-PRODUCE-"));
    }
    assert!(recs.iter().all(|(r, _)| r[4] != DEFAULT_TRACE_TOPIC));
    // The trace producer has its own client instance (Java's
    // `PID_CLIENT_INNER_TRACE_PRODUCER_<name servers>`): its own client id, not the host's.
    let ids_of = |group: &str| -> std::collections::BTreeSet<String> {
        c.brokers()
            .iter()
            .flat_map(|b| b.heartbeats())
            .filter(|h| h.producer_groups.iter().any(|g| g == group))
            .map(|h| h.client_id)
            .collect()
    };
    let host_ids = ids_of("TraceGroup");
    assert!(!host_ids.is_empty());
    let trace_ids = ids_of(&stats.group);
    assert_eq!(trace_ids.len(), 1, "{trace_ids:?}");
    assert!(
        trace_ids.is_disjoint(&host_ids),
        "{trace_ids:?} {host_ids:?}"
    );
    let trace_id = trace_ids.iter().next().map_or("", String::as_str);
    assert!(
        trace_id.contains(&format!(
            "@PID_CLIENT_INNER_TRACE_PRODUCER_{}#",
            c.namesrv_addr()
        )),
        "{trace_id}"
    );
    c.shutdown().await;
}

/// With no trace topic on the cluster every trace message fails: sends still succeed and
/// shutdown still ends in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_trace_topic_fails_no_send_and_shutdown_is_bounded() {
    let c = cluster(&["Untraced"]).await;
    c.set_auto_create(false);
    let p = Producer::builder("NoTraceTopicGroup")
        .name_server(c.namesrv_addr())
        .shutdown_timeout(Duration::from_secs(2))
        .enable_trace(TraceConfig::default().with_topic("NoSuchTraceTopic"))
        .start()
        .await
        .expect("start");
    for i in 0..25 {
        timeout(T, p.send(Message::new("Untraced", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("a trace failure never fails a send");
    }
    let began = std::time::Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    let stats = p.trace_stats().expect("trace on");
    assert_eq!(stats.records_sent, 0, "{stats:?}");
    assert!(
        stats.messages_failed >= 2,
        "25 records: at least 2 trace messages, all failed: {stats:?}"
    );
    assert_eq!(c.messages_of("Untraced").len(), 25);
    assert!(c.messages_of("NoSuchTraceTopic").is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_at_most_the_batch_size_and_go_to_a_custom_topic() {
    let c = cluster(&["BatchTraced", "MyTrace"]).await;
    let p = Producer::builder("BatchTraceGroup")
        .name_server(c.namesrv_addr())
        .enable_trace(
            TraceConfig::default()
                .with_topic("MyTrace")
                .with_batch_size(50)
                .with_max_delay(Duration::from_secs(60)),
        )
        .start()
        .await
        .expect("start");
    let mut ids = Vec::new();
    for i in 0..45 {
        let r = timeout(T, p.send(Message::new("BatchTraced", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        ids.push(r.msg_id);
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let msgs = c.messages_of("MyTrace");
    assert!(c.messages_of(DEFAULT_TRACE_TOPIC).is_empty());
    let per_msg: Vec<usize> = msgs
        .iter()
        .map(|m| m.body().iter().filter(|b| **b == 2).count())
        .collect();
    assert!(per_msg.iter().all(|n| *n <= 20), "{per_msg:?}");
    assert_eq!(per_msg.iter().sum::<usize>(), 45);
    assert_eq!(msgs.len(), 3, "20 + 20 + 5 records: {per_msg:?}");
    let recs = records(&c, "MyTrace");
    let mut traced: Vec<String> = recs.iter().map(|(r, _)| r[5].clone()).collect();
    traced.sort();
    ids.sort();
    assert_eq!(traced, ids);
    c.shutdown().await;
}

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
async fn a_transaction_leaves_a_half_pub_record_and_an_end_transaction_record() {
    let c = cluster(&["TxTraced", DEFAULT_TRACE_TOPIC]).await;
    let p = Producer::builder("TxTraceGroup")
        .name_server(c.namesrv_addr())
        .enable_trace(TraceConfig::default())
        .start_transactional(Decide)
        .await
        .expect("start");
    let msg = Message::new("TxTraced", "tx")
        .with_tags("TagT")
        .with_keys(["order-9"]);
    let r = timeout(T, p.send_in_transaction(msg, TransactionState::Rollback))
        .await
        .expect("in time")
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let recs = records(&c, DEFAULT_TRACE_TOPIC);
    assert_eq!(recs.len(), 2, "{recs:?}");
    let pub_rec = recs.iter().find(|(r, _)| r[0] == "Pub").expect("pub");
    assert_eq!(pub_rec.0[11], "1", "half message");
    assert_eq!(pub_rec.0[5], r.send.msg_id);
    let (end, keys) = recs
        .iter()
        .find(|(r, _)| r[0] == "EndTransaction")
        .expect("end");
    let addr = addr_of(&c, "TxTraced", &r.send.queue.broker_name);
    let want = [
        "EndTransaction",
        end[1].as_str(),
        "DefaultRegion",
        "TxTraceGroup",
        "TxTraced",
        r.send.msg_id.as_str(),
        "TagT",
        "order-9",
        addr.as_str(),
        "2",
        r.send.msg_id.as_str(),
        "ROLLBACK_MESSAGE",
        "false",
    ];
    assert_eq!(end, &want);
    assert!(keys.contains(&r.send.msg_id) && keys.contains(&"order-9".to_owned()));
    c.shutdown().await;
}

/// A broker that never answers the trace messages holds shutdown no longer than its deadline
/// (the trace's flush shares it): what is left is cancelled; the user's sends were all stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_trace_broker_holds_shutdown_no_longer_than_its_deadline() {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    let (a, b) = (rmq_testkit::broker_name(0), rmq_testkit::broker_name(1));
    c.create_topic_on("OnA", &[(a.as_str(), 2)]);
    c.create_topic_on(DEFAULT_TRACE_TOPIC, &[(b.as_str(), 1)]);
    let p = Producer::builder("HungTraceGroup")
        .name_server(c.namesrv_addr())
        .shutdown_timeout(Duration::from_secs(1))
        .enable_trace(TraceConfig::default().with_max_delay(Duration::from_secs(60)))
        .start()
        .await
        .expect("start");
    c.brokers()[1].faults().set_black_hole(true);
    for i in 0..5 {
        timeout(T, p.send(Message::new("OnA", format!("m{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    let began = std::time::Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let took = began.elapsed();
    // 1 s of flush; then the cancelled trace sends, the trace producer's and the host's
    // UNREGISTER_CLIENT within the same deadline (each given at least 100 ms past it), plus
    // scheduling slack.
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1_500),
        "{took:?}"
    );
    let stats = p.trace_stats().expect("trace on");
    assert_eq!(
        (stats.records_sent, stats.messages_failed),
        (0, 1),
        "{stats:?}"
    );
    assert_eq!(c.messages_of("OnA").len(), 5);
    c.brokers()[1].faults().set_black_hole(false);
    c.shutdown().await;
}

/// A trace message that times out never fails the user's send (the reviewer's reproduction):
/// both brokers delay every answer 6 s; a trace message goes out, then the user's async send
/// (15 s, no retry); the trace message times out after 5 s, while the user's send waits. The trace producer has its own client
/// instance (its own connections) and sends asynchronously (a timeout closes no connection),
/// so the user's send is stored after 6 s, as with trace off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_timeout_never_fails_the_users_send() {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    let a = rmq_testkit::broker_name(0);
    // Both topics on one broker: the user's and the trace messages go to the same address.
    c.create_topic_on("SlowTopic", &[(a.as_str(), 2)]);
    c.create_topic_on(DEFAULT_TRACE_TOPIC, &[(a.as_str(), 1)]);
    let p = Producer::builder("SlowTraceGroup")
        .name_server(c.namesrv_addr())
        .retries(0)
        .retries_async(0)
        .shutdown_timeout(Duration::from_secs(1))
        .enable_trace(TraceConfig::default().with_max_delay(Duration::from_secs(1)))
        .start()
        .await
        .expect("start");
    // Its record's trace message leaves 1 s later, into the delay.
    timeout(T, p.send(Message::new("SlowTopic", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    let warm = tokio::time::Instant::now();
    // The heartbeat owed to a broker first sent to is answered before the delay begins (a
    // heartbeat timing out would close the user's connection by itself).
    for _ in 0..80 {
        let seen = c.brokers()[0]
            .heartbeats()
            .iter()
            .any(|h| h.producer_groups.iter().any(|g| g == "SlowTraceGroup"));
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_secs(6));
    }
    // The trace message is out (and times out 5 s later); the user's send goes after it.
    tokio::time::sleep_until(warm + Duration::from_millis(1_300)).await;
    let began = std::time::Instant::now();
    let fut = p
        .send_async(
            Message::new("SlowTopic", "slow"),
            SendOptions::new().timeout(Duration::from_secs(15)),
        )
        .await
        .expect("started");
    let r = timeout(T, fut).await.expect("in time");
    let took = began.elapsed();
    assert!(
        r.is_ok(),
        "the user's send failed after {took:?} with trace on: {r:?}"
    );
    assert!(took >= Duration::from_millis(5_500), "{took:?}");
    let stats = p.trace_stats().expect("trace on");
    assert!(
        stats.messages_failed >= 1,
        "the trace send timed out: {stats:?}"
    );
    for b in c.brokers() {
        b.faults().set_delay(Duration::ZERO);
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}
