//! Interop with a real cluster (`scripts/rocketmq-dev.sh start`): what the producer sends is stored
//! with exactly the bytes and properties sent, read back with `VIEW_MESSAGE_BY_ID` (33) at the
//! commit-log offset of the offset message id, from the broker that stored it, and decoded with
//! rmq-common's stored-message decoder; a broker stopped mid-run loses no acknowledged message.
//!
//! Skipped (with a note) when the cluster is not configured, failed when `CI` is set without it.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmq_common::compression::compress;
use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::{decode_stored_message, MessageExt};
use rmq_common::{Message, RequestCode, ResponseCode, ViewMessageRequestHeader};
use rmq_producer::{HashSelector, Producer, SendOptions, SendResult, SendStatus};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use support::{
    cluster_exclusive, cluster_shared, real_cluster, unique_topic, BrokerRestart, RealCluster,
    INTEROP_TIMEOUT as T, RESTART_TIMEOUT,
};
use tokio::time::timeout;

/// A stored message read back: the raw record and its decoded form.
struct Stored {
    raw: Bytes,
    ext: MessageExt,
}

impl Stored {
    /// `sysFlag` as stored (byte 36 of the record), before the decoder clears the compression bit.
    fn raw_sys_flag(&self) -> i32 {
        i32::from_be_bytes([self.raw[36], self.raw[37], self.raw[38], self.raw[39]])
    }

    /// The body bytes exactly as stored (compressed when the producer compressed them).
    fn raw_body(&self) -> Bytes {
        let sys_flag = self.raw_sys_flag();
        let born_host = if sys_flag & 0x10 != 0 { 20 } else { 8 };
        let store_host = if sys_flag & 0x20 != 0 { 20 } else { 8 };
        // totalSize..sysFlag (40), bornTimestamp (8), bornHost, storeTimestamp (8), storeHost,
        // reconsumeTimes (4), preparedTransactionOffset (8), then bodyLen and the body.
        let at = 40 + 8 + born_host + 8 + store_host + 4 + 8;
        let len = i32::from_be_bytes([
            self.raw[at],
            self.raw[at + 1],
            self.raw[at + 2],
            self.raw[at + 3],
        ]);
        self.raw
            .slice(at + 4..at + 4 + usize::try_from(len).expect("body length"))
    }
}

/// `VIEW_MESSAGE_BY_ID` at `offset` on the broker at `addr`.
async fn view(client: &RemotingClient, addr: &str, topic: &str, offset: i64) -> Option<Stored> {
    let header = ViewMessageRequestHeader {
        topic: Some(topic.to_owned()),
        offset,
    };
    let req = RemotingCommand::request_with_header(RequestCode::VIEW_MESSAGE_BY_ID, &header);
    let resp = client
        .invoke_sync(addr, req, Duration::from_secs(5))
        .await
        .ok()?;
    if resp.response_code() != ResponseCode::SUCCESS || resp.body.is_empty() {
        return None;
    }
    let raw = resp.body.clone();
    let ext = decode_stored_message(&mut resp.body.clone()).ok()?;
    Some(Stored { raw, ext })
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_stopping_a_broker_loses_no_acknowledged_message() {
    let Some(cluster) = real_cluster("interop_stopping_a_broker_loses_no_acknowledged_message")
    else {
        return;
    };
    if cluster.script.is_none() || cluster.brokers.len() < 2 {
        eprintln!("interop_stopping_a_broker_loses_no_acknowledged_message: skipped: needs RMQ_INTEROP_SCRIPT and two brokers");
        return;
    }
    // Alone: no other test of this binary uses the cluster while broker-b is down.
    let _exclusive = timeout(Duration::from_secs(600), cluster_exclusive())
        .await
        .expect("cluster lock in time");
    let topic = unique_topic("RmqProducerFailover");
    let p = start(&cluster).await;
    let client = RemotingClient::new(RemotingConfig::default());
    // Create the topic on both brokers and learn its route.
    let mut acked: Vec<(Message, SendResult)> = Vec::new();
    let deadline = Instant::now() + T;
    while acked
        .iter()
        .map(|(_, r)| r.queue.broker_name.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the topic never reached both brokers"
        );
        let msg = sample(&topic, acked.len(), format!("before {}", acked.len()));
        let r = timeout(T, p.send(msg.clone()))
            .await
            .expect("in time")
            .expect("sent");
        acked.push((msg, r));
        if acked.len().is_multiple_of(8) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Whatever happens from here (a failed assertion included), broker-b is started again.
    let mut restart = BrokerRestart::new(&cluster, "broker-b");
    restart.mark_stopped();
    let stop = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || {
            support::run_script(&cluster, &["stop-broker", "broker-b"])
        })
    };
    let mut failed = 0usize;
    let mut after_stop: Vec<String> = Vec::new();
    let mut stopped_at: Option<Instant> = None;
    let run_until = Instant::now() + Duration::from_secs(60);
    for i in 0..20_000 {
        if Instant::now() > run_until {
            break;
        }
        let msg = sample(&topic, i, format!("during {i}"));
        match timeout(T, p.send(msg.clone())).await.expect("in time") {
            Ok(r) => {
                if stopped_at.is_some() {
                    after_stop.push(r.queue.broker_name.clone());
                }
                acked.push((msg, r));
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "send {i} failed while broker-b stops: {e} (maybe stored: {})",
                    e.maybe_stored()
                );
            }
        }
        if stopped_at.is_none() && stop.is_finished() {
            stopped_at = Some(Instant::now());
        }
        if after_stop.len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = timeout(T, stop)
        .await
        .expect("stop-broker in time")
        .expect("script");
    assert!(
        out.status.success(),
        "stop-broker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        after_stop.len() >= 40,
        "sends kept succeeding after the stop ({failed} failed)"
    );
    assert!(
        after_stop[after_stop.len() - 20..]
            .iter()
            .all(|b| b == "broker-a"),
        "later sends go to the other broker: {after_stop:?}"
    );

    let restarted = tokio::task::spawn_blocking(move || restart.restart());
    timeout(RESTART_TIMEOUT + Duration::from_secs(10), restarted)
        .await
        .expect("start-broker in time")
        .expect("script task")
        .expect("start-broker");

    // Every acknowledged message is stored, with its body, on the broker that acknowledged it.
    for (msg, r) in &acked {
        let stored = read_back(&client, &cluster, r).await;
        assert_eq!(stored[0].ext.message.body(), msg.body(), "{r}");
        assert_eq!(stored[0].ext.uniq_key(), Some(r.msg_id.as_str()));
    }
    eprintln!(
        "{} acknowledged and read back, {failed} failed during the stop",
        acked.len()
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
}
