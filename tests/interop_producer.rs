//! Interop with a real cluster (`scripts/rocketmq-dev.sh start`): what the producer sends is stored
//! with exactly the bytes and properties sent, read back with `VIEW_MESSAGE_BY_ID` (33) at the
//! commit-log offset of the offset message id, from the broker that stored it, and decoded with
//! rmq-common's stored-message decoder; a broker stopped mid-run loses no acknowledged message.
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_common::compression::compress;
use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::MessageExt;
use rmq_common::Message;
use rmq_producer::{HashSelector, Producer, SendOptions, SendResult, SendStatus};
use rmq_remoting::{RemotingClient, RemotingConfig};
use support::commit_log::{view, walk_commit_log, Stored};
use support::load::{locked, send_logged, Log, Outcome};
use support::{
    cluster_exclusive, cluster_shared, real_cluster, unique_topic, BrokerRestart, RealCluster,
    INTEROP_TIMEOUT as T, RESTART_TIMEOUT,
};
use tokio::time::timeout;

/// Reads back the message(s) of a send result from the broker that stored them.
async fn read_back(client: &RemotingClient, cluster: &RealCluster, r: &SendResult) -> Vec<Stored> {
    let addr = cluster
        .broker_addr(&r.queue.broker_name)
        .expect("broker of the result");
    let mut out = Vec::new();
    for id in r.offset_msg_id.split(',') {
        let offset = OffsetMessageId::decode(id)
            .expect("offset message id")
            .commit_log_offset;
        // A broker just restarted may not serve reads yet: ask again, within a bound.
        let deadline = Instant::now() + T;
        let stored = loop {
            let found = timeout(T, view(client, addr, &r.queue.topic, offset))
                .await
                .ok()
                .flatten();
            if let Some(s) = found {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} not found on {} within {T:?}",
                r.queue.broker_name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        out.push(stored);
    }
    out
}

/// Every property sent is stored with the same value (the broker may add its own).
fn assert_properties(sent: &Message, stored: &MessageExt) {
    for (k, v) in sent.properties().iter() {
        assert_eq!(stored.message.property(k), Some(v), "property {k}");
    }
}

fn sample(topic: &str, i: usize, body: impl Into<Bytes>) -> Message {
    Message::new(topic, body)
        .with_tags(format!("Tag{i}"))
        .with_keys([format!("key-{i}"), format!("alt-{i}")])
        .with_user_property("seq", i.to_string())
        .expect("property")
        .with_user_property("lang", "rust")
        .expect("property")
}

async fn start(cluster: &RealCluster) -> Producer {
    timeout(
        T,
        Producer::builder("RmqInteropProducer")
            .name_server(&cluster.namesrv)
            .start(),
    )
    .await
    .expect("start in time")
    .expect("start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_every_send_form_is_stored_exactly() {
    let Some(cluster) = real_cluster("interop_every_send_form_is_stored_exactly") else {
        return;
    };
    // Never while another test of this binary stops a broker.
    let _shared = timeout(Duration::from_secs(600), cluster_shared())
        .await
        .expect("cluster lock in time");
    let topic = unique_topic("RmqProducerForms");
    let p = start(&cluster).await;
    let client = RemotingClient::new(RemotingConfig::default());

    // Sync (the first send also auto-creates the topic through TBW102).
    let msg = sample(&topic, 0, "sync body");
    let r = timeout(T, p.send(msg.clone()))
        .await
        .expect("in time")
        .expect("sync send");
    assert_eq!(r.status, SendStatus::SendOk);
    let stored = read_back(&client, &cluster, &r).await;
    assert_eq!(stored[0].ext.message.body(), msg.body());
    assert_eq!(stored[0].ext.message.topic(), topic);
    assert_eq!(stored[0].ext.uniq_key(), Some(r.msg_id.as_str()));
    assert_eq!(
        (stored[0].ext.queue_id, stored[0].ext.queue_offset),
        (r.queue.queue_id, r.queue_offset)
    );
    assert_properties(&msg, &stored[0].ext);

    // Async.
    let msg = sample(&topic, 1, "async body");
    let fut = timeout(T, p.send_async(msg.clone(), SendOptions::new()))
        .await
        .expect("in time")
        .expect("admitted");
    let r = timeout(T, fut).await.expect("in time").expect("async send");
    let stored = read_back(&client, &cluster, &r).await;
    assert_eq!(stored[0].ext.message.body(), msg.body());
    assert_properties(&msg, &stored[0].ext);

    // Selector: the same key keeps its queue.
    let msg = sample(&topic, 2, "ordered body");
    let r1 = timeout(
        T,
        p.send_with(
            msg.clone(),
            SendOptions::new().selector(HashSelector::new("order-42")),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    let r2 = timeout(
        T,
        p.send_with(
            sample(&topic, 3, "ordered 2"),
            SendOptions::new().selector(HashSelector::new("order-42")),
        ),
    )
    .await
    .expect("in time")
    .expect("sent");
    assert_eq!(r1.queue, r2.queue);
    assert!(r2.queue_offset > r1.queue_offset);
    let stored = read_back(&client, &cluster, &r1).await;
    assert_eq!(stored[0].ext.message.body(), msg.body());
    assert_properties(&msg, &stored[0].ext);

    // Compressed: 64 KiB of text; the stored bytes are the zlib stream the producer wrote.
    let body: Bytes = (0..65_536u32)
        .map(|i| b"the quick brown fox "[(i % 20) as usize])
        .collect::<Vec<u8>>()
        .into();
    let msg = sample(&topic, 4, body.clone());
    let r = timeout(T, p.send(msg.clone()))
        .await
        .expect("in time")
        .expect("compressed send");
    let stored = read_back(&client, &cluster, &r).await;
    assert_eq!(
        stored[0].raw_sys_flag() & 0x701,
        0x301,
        "COMPRESSED | ZLIB stored"
    );
    assert_eq!(
        stored[0].raw_body(),
        Bytes::from(compress(&body, 5)),
        "exactly the bytes sent"
    );
    assert_eq!(
        stored[0].ext.message.body(),
        &body,
        "inflates to the original"
    );
    assert_properties(&msg, &stored[0].ext);

    // Batch: one record per message, each with its own UNIQ_KEY.
    let batch: Vec<Message> = (10..13)
        .map(|i| sample(&topic, 5, format!("batch {i}")))
        .collect();
    let r = timeout(T, p.send_batch(batch.clone(), SendOptions::new()))
        .await
        .expect("in time")
        .expect("batch send");
    let stored = read_back(&client, &cluster, &r).await;
    assert_eq!(stored.len(), 3);
    let ids: Vec<&str> = r.msg_id.split(',').collect();
    for ((sent, s), id) in batch.iter().zip(&stored).zip(ids) {
        assert_eq!(s.ext.message.body(), sent.body());
        assert_eq!(s.ext.uniq_key(), Some(id));
        for (k, v) in sent.properties().iter() {
            assert_eq!(s.ext.message.property(k), Some(v), "batch property {k}");
        }
    }

    // Oneway: no result, so find it by walking each broker's commit log from a known record.
    let mut starts: BTreeMap<String, i64> = BTreeMap::new();
    for i in 0..8 {
        if starts.len() == cluster.brokers.len() {
            break;
        }
        let r = timeout(T, p.send(sample(&topic, 6, format!("marker {i}"))))
            .await
            .expect("in time")
            .expect("sent");
        let offset = OffsetMessageId::decode(&r.offset_msg_id)
            .expect("id")
            .commit_log_offset;
        starts.entry(r.queue.broker_name.clone()).or_insert(offset);
    }
    let marker = format!("oneway {}", topic);
    let msg = sample(&topic, 7, marker.clone());
    timeout(T, p.send_oneway(msg.clone(), SendOptions::new()))
        .await
        .expect("in time")
        .expect("written");
    let found = timeout(T, async {
        loop {
            for (broker, start) in &starts {
                let addr = cluster.broker_addr(broker).expect("addr");
                let mut offset = *start;
                for _ in 0..256 {
                    let Some(s) = view(&client, addr, &topic, offset).await else {
                        break;
                    };
                    if s.ext.message.body().as_ref() == marker.as_bytes() {
                        return s;
                    }
                    offset += i64::try_from(s.raw.len()).expect("record size");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the oneway message is stored");
    assert_properties(&msg, &found.ext);

    timeout(T, p.shutdown()).await.expect("shutdown in time");
}

/// Tasks sending at once while broker-b is stopped and started again.
const LOAD_TASKS: usize = 8;
/// Pause of each task between two sends (8 tasks: at most ~160 sends/s in all).
const LOAD_PACE: Duration = Duration::from_millis(50);
/// Sends per task at most (the scenario normally ends long before).
const LOAD_MAX_PER_TASK: usize = 6_000;
/// Load before the stop, and after the kill before the restart.
const LOAD_SETTLE: Duration = Duration::from_secs(3);
/// How long after `start-broker` traffic must be back on broker-b: the fault table's isolation
/// (10 s at most for a failed connect, 30 s for a 15 s latency) plus a route poll (30 s).
const RECOVERY_BOUND: Duration = Duration::from_secs(90);
/// How soon after the kill (or the last failure it caused) sends must succeed on broker-a.
const FAILOVER_BOUND: Duration = Duration::from_secs(5);

/// Waits (bounded by `bound`) until an outcome satisfies `pred`; returns when it ended.
async fn wait_for_outcome(
    log: &Log,
    bound: Duration,
    mut pred: impl FnMut(&Outcome) -> bool,
) -> Option<Instant> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(at) = locked(log)
            .iter()
            .filter(|o| pred(o))
            .map(|o| o.ended)
            .min()
        {
            return Some(at);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Broker killed mid-load: 8 tasks send while `stop-broker broker-b` runs. Every send resolves;
/// every acknowledged message is read back from the commit log of the broker that acknowledged
/// it (duplicates, allowed by at-least-once, are counted); sends go on on broker-a soon after the
/// kill; after `start-broker`, traffic returns to broker-b within the isolation window plus a
/// route poll. A one-line JSON summary goes to stderr (`RELIABILITY.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_stopping_a_broker_loses_no_acknowledged_message() {
    broker_down_under_load(
        "interop_stopping_a_broker_loses_no_acknowledged_message",
        Down::Stop,
    )
    .await;
}

/// The same with `kill -KILL` instead of `stop-broker`: no graceful shutdown, connections reset,
/// and the name server keeps routing to broker-b until it expires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_killing_a_broker_loses_no_acknowledged_message() {
    broker_down_under_load(
        "interop_killing_a_broker_loses_no_acknowledged_message",
        Down::Kill,
    )
    .await;
}

/// How broker-b goes down.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// `rocketmq-dev.sh stop-broker broker-b`: SIGTERM (SIGKILL after 5 s).
    Stop,
    /// SIGKILL at once.
    Kill,
}

async fn broker_down_under_load(name: &str, how: Down) {
    let Some(cluster) = real_cluster(name) else {
        return;
    };
    if cluster.script.is_none() || cluster.brokers.len() < 2 {
        eprintln!("{name}: skipped: needs RMQ_INTEROP_SCRIPT and two brokers");
        return;
    }
    // Alone: no other test of this binary uses the cluster while broker-b is down.
    let _exclusive = timeout(Duration::from_secs(600), cluster_exclusive())
        .await
        .expect("cluster lock in time");
    let topic = unique_topic("RmqProducerFailover");
    let p = start(&cluster).await;
    let client = RemotingClient::new(RemotingConfig::default());
    let log: Log = Arc::default();

    // Create the topic on both brokers and learn its route.
    let deadline = Instant::now() + T;
    for i in 0.. {
        let brokers: BTreeSet<String> = locked(&log)
            .iter()
            .filter_map(|o| o.broker().map(str::to_owned))
            .collect();
        if brokers.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the topic never reached both brokers"
        );
        assert!(
            send_logged(&p, &log, &topic, format!("warm-{i}"), T).await,
            "warm-up send {i} resolved in time"
        );
        if let Some(Err((e, _))) = locked(&log).last().map(|o| &o.result) {
            panic!("warm-up send {i} failed: {e}");
        }
        if (i + 1) % 8 == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Each broker's commit log is read back from its first record of the topic.
    let mut walk_from: BTreeMap<String, i64> = BTreeMap::new();
    for o in locked(&log).iter() {
        let r = o.result.as_ref().expect("warm-up acknowledged");
        let offset = OffsetMessageId::decode(&r.offset_msg_id)
            .expect("offset message id")
            .commit_log_offset;
        let e = walk_from
            .entry(r.queue.broker_name.clone())
            .or_insert(offset);
        *e = (*e).min(offset);
    }

    // The load: LOAD_TASKS tasks, each bounded in count and time, stopped by `stop`.
    let stop = Arc::new(AtomicBool::new(false));
    let unresolved = Arc::new(AtomicUsize::new(0));
    let hard_stop = Instant::now() + Duration::from_secs(240);
    let tasks: Vec<_> = (0..LOAD_TASKS)
        .map(|t| {
            let (p, log, topic) = (p.clone(), log.clone(), topic.clone());
            let (stop, unresolved) = (stop.clone(), unresolved.clone());
            tokio::spawn(async move {
                for i in 0..LOAD_MAX_PER_TASK {
                    if stop.load(Ordering::SeqCst) || Instant::now() >= hard_stop {
                        break;
                    }
                    if !send_logged(&p, &log, &topic, format!("load-{t}-{i}"), T).await {
                        unresolved.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(LOAD_PACE).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(LOAD_SETTLE).await;

    // Whatever happens from here (a failed assertion included), broker-b is started again.
    let mut restart = BrokerRestart::new(&cluster, "broker-b");
    restart.mark_stopped();
    let stop_begun = Instant::now();
    let down = {
        let cluster = cluster.clone();
        timeout(
            T,
            tokio::task::spawn_blocking(move || match how {
                Down::Stop => {
                    let out = support::run_script(&cluster, &["stop-broker", "broker-b"]);
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&out.stderr).into_owned())
                    }
                }
                Down::Kill => support::kill_broker_hard(&cluster, "broker-b", T),
            }),
        )
        .await
        .expect("broker-b down in time")
        .expect("script task")
    };
    let killed = Instant::now();
    down.unwrap_or_else(|e| panic!("{how:?} broker-b: {e}"));
    tokio::time::sleep(LOAD_SETTLE).await;

    // Failover: from the kill, or from the last failure it caused if later, to the first
    // success on broker-a.
    let down_failures: Vec<(Instant, String)> = locked(&log)
        .iter()
        .filter(|o| o.ended >= stop_begun)
        .filter_map(|o| o.result.as_ref().err().map(|(e, _)| (o.ended, e.clone())))
        .collect();
    let last_failure = down_failures.iter().map(|(at, _)| *at).max();
    let from = last_failure.map_or(killed, |f| f.max(killed));
    let first_on_a = wait_for_outcome(&log, FAILOVER_BOUND, |o| {
        o.started >= from && o.broker() == Some("broker-a")
    })
    .await;
    let failover = first_on_a.map(|at| at.saturating_duration_since(from));
    // The longest time without any successful send, from the stop to now.
    let stall = {
        let mut ends: Vec<Instant> = locked(&log)
            .iter()
            .filter(|o| o.result.is_ok() && o.ended >= stop_begun)
            .map(|o| o.ended)
            .collect();
        ends.push(stop_begun);
        ends.push(Instant::now());
        ends.sort();
        ends.windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    };
    // The last sends before the restart all went to broker-a.
    let before_restart: Vec<String> = {
        let log = locked(&log);
        let mut done: Vec<&Outcome> = log
            .iter()
            .filter(|o| o.started >= killed && o.result.is_ok())
            .collect();
        done.sort_by_key(|o| o.ended);
        done.iter()
            .rev()
            .take(40)
            .filter_map(|o| o.broker().map(str::to_owned))
            .collect()
    };

    let restart_begun = Instant::now();
    let restarted = tokio::task::spawn_blocking(move || restart.restart());
    timeout(RESTART_TIMEOUT + Duration::from_secs(10), restarted)
        .await
        .expect("start-broker in time")
        .expect("script task")
        .expect("start-broker");
    let routable = Instant::now();
    let back_on_b = wait_for_outcome(&log, RECOVERY_BOUND, |o| {
        o.started >= restart_begun && o.broker() == Some("broker-b")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        timeout(T + Duration::from_secs(10), t)
            .await
            .expect("load task ends")
            .expect("load task");
    }

    // Read back: every record of the topic in both commit logs.
    let mut stored: HashMap<String, BTreeMap<i64, Stored>> = HashMap::new();
    for (broker, from) in &walk_from {
        let addr = cluster.broker_addr(broker).expect("broker address");
        stored.insert(
            broker.clone(),
            walk_commit_log(&client, addr, &topic, *from).await,
        );
    }
    let walked: usize = stored.values().map(BTreeMap::len).sum();
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut where_stored: HashMap<String, Vec<String>> = HashMap::new();
    for (broker, records) in &stored {
        for (offset, s) in records {
            if let Some(k) = s.ext.uniq_key() {
                *copies.entry(k.to_owned()).or_default() += 1;
                where_stored
                    .entry(k.to_owned())
                    .or_default()
                    .push(format!("{broker}@{offset}"));
            }
        }
    }
    for (k, at) in &where_stored {
        if at.len() > 1 {
            eprintln!("{name}: duplicate {k} stored at {at:?}");
        }
    }
    let log = std::mem::take(&mut *locked(&log));
    let (mut acked, mut failed, mut read_back_ok, mut lost) = (0usize, 0usize, 0usize, 0usize);
    let (mut maybe_stored, mut stored_unacked) = (0usize, 0usize);
    for o in &log {
        match &o.result {
            Ok(r) => {
                acked += 1;
                let offset = OffsetMessageId::decode(&r.offset_msg_id)
                    .expect("offset message id")
                    .commit_log_offset;
                let walked = stored
                    .get(&r.queue.broker_name)
                    .and_then(|m| m.get(&offset));
                let found = match walked {
                    Some(s) => Some((
                        s.ext.uniq_key().map(str::to_owned),
                        s.ext.message.body().clone(),
                    )),
                    // Not met by the walk: ask for it alone (retried within a bound).
                    None => read_back(&client, &cluster, r)
                        .await
                        .into_iter()
                        .next()
                        .map(|s| {
                            (
                                s.ext.uniq_key().map(str::to_owned),
                                s.ext.message.body().clone(),
                            )
                        }),
                };
                match found {
                    Some((uniq, body))
                        if uniq.as_deref() == Some(r.msg_id.as_str()) && body == o.body =>
                    {
                        read_back_ok += 1;
                    }
                    other => {
                        lost += 1;
                        eprintln!("{name}: acknowledged {r} not read back as sent: {other:?}");
                    }
                }
            }
            Err((e, maybe)) => {
                failed += 1;
                if *maybe {
                    maybe_stored += 1;
                }
                if copies.contains_key(&o.uniq) {
                    stored_unacked += 1;
                }
                eprintln!("{name}: failed (maybe stored: {maybe}): {e}");
            }
        }
    }
    let duplicates: usize = log
        .iter()
        .filter_map(|o| copies.get(&o.uniq))
        .map(|n| n.saturating_sub(1))
        .sum();
    let unresolved = unresolved.load(Ordering::SeqCst);
    let on_b_after = log
        .iter()
        .filter(|o| o.started >= restart_begun && o.broker() == Some("broker-b"))
        .count();
    let opt_ms = |d: Option<Duration>| d.map_or_else(|| "null".to_owned(), |d| ms(d).to_string());
    eprintln!(
        "RELIABILITY {{\"scenario\":\"broker_down_mid_load_{how:?}\",\"load\":\"{LOAD_TASKS} tasks x sync send every {}ms\",\"sent\":{},\"acked\":{acked},\"failed\":{failed},\"failed_maybe_stored\":{maybe_stored},\"unresolved\":{unresolved},\"read_back\":{read_back_ok},\"records_walked\":{walked},\"lost\":{lost},\"duplicates\":{duplicates},\"stored_unacked\":{stored_unacked},\"down_ms\":{},\"failover_ms\":{},\"stall_ms\":{},\"recovery_ms_after_start_broker\":{},\"recovery_ms_after_restart_begun\":{},\"start_broker_ms\":{},\"on_broker_b_after_restart\":{on_b_after}}}",
        ms(LOAD_PACE),
        log.len() + unresolved,
        ms(killed - stop_begun),
        opt_ms(failover),
        ms(stall),
        opt_ms(back_on_b.map(|at| at.saturating_duration_since(routable))),
        opt_ms(back_on_b.map(|at| at - restart_begun)),
        ms(routable - restart_begun),
    );

    assert_eq!(unresolved, 0, "every send resolves within {T:?}");
    assert_eq!(lost, 0, "every acknowledged message is read back");
    assert_eq!(read_back_ok, acked);
    assert!(
        walked >= acked,
        "the commit-log walk met every acknowledged message: {walked} < {acked}"
    );
    assert!(
        failover.is_some_and(|d| d <= FAILOVER_BOUND),
        "sends go on on broker-a within {FAILOVER_BOUND:?} of the kill: {failover:?} (failures: {down_failures:?})"
    );
    assert!(
        before_restart.len() >= 20 && before_restart.iter().all(|b| b == "broker-a"),
        "the sends before the restart went to broker-a: {before_restart:?}"
    );
    assert!(
        back_on_b.is_some(),
        "traffic back on broker-b within {RECOVERY_BOUND:?} of start-broker"
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}
