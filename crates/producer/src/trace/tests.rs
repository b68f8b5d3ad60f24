//! Golden trace texts built from Java's `TraceDataEncoder` rules (fields in Java's order split by
//! `\u{1}`, each record ended by `\u{2}`, `null` for absent strings, the message type's
//! ordinal), the hook's rules, packing, and the queue dropping instead of blocking.

use std::time::Duration;

use rmq_common::{property, Message, MessageQueue, Properties};

use super::dispatcher::{trace_group, Tracer};
use super::encoder::{encode, keys_of, pack, CONTENT_SPLITOR, FIELD_SPLITOR};
use super::record::{
    end_record, msg_type_of, pub_record, EndTx, EndTxRecord, MsgType, PubRecord, TraceRecord,
};
use super::TraceConfig;
use crate::config::ProducerConfig;
use crate::kernel::{prepare_batch, prepare_single};
use crate::send_result::{SendResult, SendStatus};
use crate::transaction::TransactionState;

/// A record's text from its fields, as Java's encoder joins them.
fn java_text(fields: &[&str]) -> String {
    let mut s = fields.join(&CONTENT_SPLITOR.to_string());
    s.push(FIELD_SPLITOR);
    s
}

fn text(r: &TraceRecord) -> String {
    let mut s = String::new();
    encode(r, &mut s);
    s
}

fn pub_rec() -> PubRecord {
    PubRecord {
        timestamp_ms: 1_700_000_000_123,
        region: "DefaultRegion".into(),
        group: "pg".into(),
        topic: "TopicA".into(),
        msg_id: "7F0000010001".into(),
        tags: Some("TagA".into()),
        keys: Some("k1 k2".into()),
        store_host: "127.0.0.1:10911".into(),
        body_length: 11,
        cost_ms: 4,
        msg_type: MsgType::Normal,
        offset_msg_id: "7F00000100002A9F0000000000000000".into(),
        success: true,
    }
}

fn end_rec() -> EndTxRecord {
    EndTxRecord {
        timestamp_ms: 1_700_000_000_456,
        region: "DefaultRegion".into(),
        group: "txg".into(),
        topic: "TxTopic".into(),
        msg_id: "ID1".into(),
        tags: None,
        keys: None,
        store_host: "127.0.0.1:10921".into(),
        transaction_id: Some("ID1".into()),
        state: TransactionState::Commit,
        from_check: false,
    }
}

#[test]
fn pub_records_are_java_texts() {
    let base = pub_rec();
    let cases: Vec<(PubRecord, Vec<&str>)> = vec![
        (
            base.clone(),
            vec![
                "Pub",
                "1700000000123",
                "DefaultRegion",
                "pg",
                "TopicA",
                "7F0000010001",
                "TagA",
                "k1 k2",
                "127.0.0.1:10911",
                "11",
                "4",
                "0",
                "7F00000100002A9F0000000000000000",
                "true",
            ],
        ),
        (
            PubRecord {
                tags: None,
                keys: None,
                success: false,
                msg_type: MsgType::Delay,
                region: "cn-hz".into(),
                ..base.clone()
            },
            vec![
                "Pub",
                "1700000000123",
                "cn-hz",
                "pg",
                "TopicA",
                "7F0000010001",
                "null",
                "null",
                "127.0.0.1:10911",
                "11",
                "4",
                "3",
                "7F00000100002A9F0000000000000000",
                "false",
            ],
        ),
        (
            PubRecord {
                msg_type: MsgType::TransHalf,
                cost_ms: i64::from(i32::MAX) + 10,
                body_length: 0,
                ..base.clone()
            },
            vec![
                "Pub",
                "1700000000123",
                "DefaultRegion",
                "pg",
                "TopicA",
                "7F0000010001",
                "TagA",
                "k1 k2",
                "127.0.0.1:10911",
                "0",
                "2147483647",
                "1",
                "7F00000100002A9F0000000000000000",
                "true",
            ],
        ),
    ];
    for (rec, fields) in cases {
        assert_eq!(fields.len(), 14, "Java's Pub record has 14 fields");
        assert_eq!(
            text(&TraceRecord::Pub(Box::new(rec.clone()))),
            java_text(&fields),
            "{rec:?}"
        );
    }
}

#[test]
fn end_transaction_records_are_java_texts() {
    let base = end_rec();
    let cases: Vec<(EndTxRecord, Vec<&str>)> = vec![
        (
            base.clone(),
            vec![
                "EndTransaction",
                "1700000000456",
                "DefaultRegion",
                "txg",
                "TxTopic",
                "ID1",
                "null",
                "null",
                "127.0.0.1:10921",
                "2",
                "ID1",
                "COMMIT_MESSAGE",
                "false",
            ],
        ),
        (
            EndTxRecord {
                state: TransactionState::Rollback,
                from_check: true,
                tags: Some("T".into()),
                keys: Some("a".into()),
                transaction_id: None,
                ..base.clone()
            },
            vec![
                "EndTransaction",
                "1700000000456",
                "DefaultRegion",
                "txg",
                "TxTopic",
                "ID1",
                "T",
                "a",
                "127.0.0.1:10921",
                "2",
                "null",
                "ROLLBACK_MESSAGE",
                "true",
            ],
        ),
        (
            EndTxRecord {
                state: TransactionState::Unknown,
                ..base.clone()
            },
            vec![
                "EndTransaction",
                "1700000000456",
                "DefaultRegion",
                "txg",
                "TxTopic",
                "ID1",
                "null",
                "null",
                "127.0.0.1:10921",
                "2",
                "ID1",
                "UNKNOW",
                "false",
            ],
        ),
    ];
    for (rec, fields) in cases {
        assert_eq!(
            fields.len(),
            13,
            "Java's EndTransaction record has 13 fields"
        );
        assert_eq!(
            text(&TraceRecord::EndTransaction(Box::new(rec.clone()))),
            java_text(&fields),
            "{rec:?}"
        );
    }
}

#[test]
fn message_types_follow_javas_send_kernel() {
    let cases: &[(&[(&str, &str)], MsgType)] = &[
        (&[], MsgType::Normal),
        (&[(property::TAGS, "A")], MsgType::Normal),
        (&[(property::TRAN_MSG, "true")], MsgType::TransHalf),
        (&[(property::TRAN_MSG, "false")], MsgType::Normal),
        (&[(property::DELAY, "3")], MsgType::Delay),
        (&[("__STARTDELIVERTIME", "1")], MsgType::Delay),
        (&[(property::TIMER_DELIVER_MS, "1")], MsgType::Delay),
        (&[(property::TIMER_DELAY_SEC, "1")], MsgType::Delay),
        (&[(property::TIMER_DELAY_MS, "1")], MsgType::Delay),
        // Java sets the half type first, then the delay type over it.
        (
            &[(property::TRAN_MSG, "true"), (property::DELAY, "2")],
            MsgType::Delay,
        ),
    ];
    for (props, want) in cases {
        let mut p = Properties::default();
        for (k, v) in *props {
            p.insert(*k, *v);
        }
        assert_eq!(msg_type_of(&p.encode()), *want, "{props:?}");
        assert!(want.ordinal() <= 4);
    }
    assert_eq!(
        [
            MsgType::Normal,
            MsgType::TransHalf,
            MsgType::TransCommit,
            MsgType::Delay,
            MsgType::Order
        ]
        .map(MsgType::ordinal),
        [0, 1, 2, 3, 4]
    );
}

fn result(msg_id: &str, trace_on: bool, region: &str, status: SendStatus) -> SendResult {
    SendResult {
        status,
        msg_id: msg_id.into(),
        offset_msg_id: "OFF".into(),
        queue: MessageQueue::new("T", "broker-a", 1),
        queue_offset: 7,
        transaction_id: None,
        region_id: region.to_owned().into(),
        trace_on,
        recall_handle: None,
    }
}

#[test]
fn pub_record_from_a_send() {
    let cfg = ProducerConfig {
        namespace: Some("ns".into()),
        ..ProducerConfig::new("pg")
    };
    let mut msg = Message::new("Orders", "hello world")
        .with_tags("TagA")
        .with_keys(["k1", "k2"]);
    let out = prepare_single(&mut msg, &cfg, &mut || "ID1".to_owned());
    assert_eq!(out.topic(), "ns%Orders", "the wire topic is wrapped");
    let r = result("ID1", true, "", SendStatus::SendOk);
    let rec = pub_record(
        "ns%pg",
        &out,
        Some("127.0.0.1:10911"),
        Duration::from_millis(9),
        1_000,
        &r,
    )
    .expect("traced");
    let want = PubRecord {
        timestamp_ms: 991,
        region: "DefaultRegion".into(),
        group: "pg".into(),
        topic: "Orders".into(),
        msg_id: "ID1".into(),
        tags: Some("TagA".into()),
        keys: Some("k1 k2".into()),
        store_host: "127.0.0.1:10911".into(),
        body_length: 11,
        cost_ms: 9,
        msg_type: MsgType::Normal,
        offset_msg_id: "OFF".into(),
        success: true,
    };
    assert_eq!(rec, want);
    // A stored-but-not-OK answer is traced as a failure; TRACE_ON=false is not traced.
    let flush = result("ID1", true, "r1", SendStatus::FlushDiskTimeout);
    let rec = pub_record("pg", &out, None, Duration::ZERO, 1_000, &flush).expect("traced");
    assert!(!rec.success);
    assert_eq!(rec.region, "r1");
    assert_eq!(rec.store_host, "");
    let off = result("ID1", false, "DefaultRegion", SendStatus::SendOk);
    assert_eq!(
        pub_record("pg", &out, None, Duration::ZERO, 1_000, &off),
        None
    );
}

#[test]
fn pub_record_body_length_is_the_body_sent() {
    let cfg = ProducerConfig {
        compress_threshold: 10,
        ..ProducerConfig::new("pg")
    };
    let mut msg = Message::new("T", vec![b'a'; 4000]);
    let out = prepare_single(&mut msg, &cfg, &mut || "ID".to_owned());
    assert!(out.body.len() < 4000, "compressed");
    let r = result("ID", true, "DefaultRegion", SendStatus::SendOk);
    let rec = pub_record("pg", &out, None, Duration::ZERO, 0, &r).expect("traced");
    assert_eq!(rec.body_length, out.body.len());

    let mut msgs = vec![
        Message::new("T", "a").with_tags("X"),
        Message::new("T", "b"),
    ];
    let mut n = 0;
    let out = prepare_batch(&mut msgs, &mut || {
        n += 1;
        format!("B{n}")
    })
    .expect("batch");
    let r = result("B1,B2", true, "DefaultRegion", SendStatus::SendOk);
    let rec = pub_record("pg", &out, None, Duration::ZERO, 0, &r).expect("traced");
    assert_eq!(
        (rec.msg_id.as_str(), rec.body_length),
        ("B1,B2", out.body.len())
    );
    assert_eq!(
        (rec.tags, rec.keys),
        (None, None),
        "a batch has no tags or keys of its own"
    );
    let no_keys = TraceRecord::Pub(Box::new(PubRecord {
        keys: None,
        ..pub_rec()
    }));
    let keys: Vec<&str> = keys_of(&no_keys).collect();
    assert_eq!(keys, ["7F0000010001"]);
}

#[test]
fn end_record_from_a_transaction() {
    let mut props = Properties::default();
    props.insert(property::TAGS, "T");
    props.insert(property::KEYS, "order-1");
    let end = EndTx {
        group: "ns%txg",
        topic: "ns%TxTopic",
        props: &props,
        msg_id: "ID9",
        transaction_id: Some("ID9"),
        store_host: Some("127.0.0.1:10911"),
        state: TransactionState::Rollback,
        from_check: true,
    };
    let rec = end_record(&end, 42);
    assert_eq!(
        (
            rec.group.as_str(),
            rec.topic.as_str(),
            rec.region.as_str(),
            rec.timestamp_ms
        ),
        ("txg", "TxTopic", "DefaultRegion", 42)
    );
    let mut with_region = props.clone();
    with_region.insert(property::MSG_REGION, "cn-sh");
    let rec = end_record(
        &EndTx {
            props: &with_region,
            ..end
        },
        42,
    );
    assert_eq!(
        rec.region, "cn-sh",
        "a checked-back message carries its region"
    );
}

#[test]
fn keys_are_the_ids_then_the_message_keys() {
    let rec = TraceRecord::Pub(Box::new(PubRecord {
        msg_id: "B1,B2,B3".into(),
        keys: Some("k1 k2".into()),
        ..pub_rec()
    }));
    assert_eq!(
        keys_of(&rec).collect::<Vec<_>>(),
        ["B1", "B2", "B3", "k1", "k2"]
    );
}

fn rec_of(topic: &str, id: &str, keys: Option<&str>) -> TraceRecord {
    TraceRecord::Pub(Box::new(PubRecord {
        topic: topic.into(),
        msg_id: id.into(),
        keys: keys.map(str::to_owned),
        ..pub_rec()
    }))
}

#[test]
fn packing_groups_topics_and_splits_at_the_size_limit() {
    let records = vec![
        rec_of("A", "1", Some("k")),
        rec_of("B", "2", None),
        rec_of("A", "3", Some("k")),
    ];
    let msgs = pack(&records, 1_000_000);
    assert_eq!(msgs.len(), 2, "one message per topic");
    assert_eq!(
        msgs[0].body,
        format!("{}{}", text(&records[0]), text(&records[2]))
    );
    assert_eq!(msgs[0].keys, ["1", "k", "3"], "distinct, ids first");
    assert_eq!((msgs[0].records, msgs[1].records), (2, 1));
    assert_eq!(msgs[1].keys, ["2"]);

    // Exactly two records fit: a third starts a new message.
    let same: Vec<TraceRecord> = (0..5).map(|i| rec_of("A", &format!("{i}"), None)).collect();
    let one = text(&same[0]).len();
    let msgs = pack(&same, 2 * one);
    assert_eq!(
        msgs.iter().map(|m| m.records).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert!(msgs.iter().all(|m| m.body.len() <= 2 * one));
    // A record over the limit goes alone.
    let msgs = pack(&same[..2], one - 1);
    assert_eq!(msgs.iter().map(|m| m.records).collect::<Vec<_>>(), [1, 1]);
    let all: String = msgs.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(all, format!("{}{}", text(&same[0]), text(&same[1])));
}

#[test]
fn trace_group_follows_java() {
    let plain = ProducerConfig::new("pg");
    assert_eq!(trace_group(&plain, 1), "_INNER_TRACE_PRODUCER-pg-PRODUCE-1");
    // A running producer's group is in its namespace; the trace group has the user's group.
    let mut namespaced = crate::namespace::wire_config(ProducerConfig {
        namespace: Some("ns".into()),
        ..ProducerConfig::new("pg")
    });
    assert_eq!(namespaced.group, "ns%pg");
    assert_eq!(
        trace_group(&namespaced, 12),
        "_INNER_TRACE_PRODUCER-pg-PRODUCE-12"
    );
    namespaced.namespace = None;
    assert_eq!(
        trace_group(&namespaced, 2),
        "_INNER_TRACE_PRODUCER-ns%pg-PRODUCE-2",
        "no namespace: the group as it is"
    );
    assert_eq!(TraceConfig::default().with_batch_size(0).batch(), 1);
    assert_eq!(
        TraceConfig::default().with_topic("  ").topic,
        "RMQ_SYS_TRACE_TOPIC"
    );
}

/// A full queue drops records at once and counts them: appending never waits (the worker has
/// not even run yet on this single-threaded, paused runtime).
#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_without_blocking() {
    let host = ProducerConfig {
        name_server: rmq_nameserver_client::NameServerConfig::new(["127.0.0.1:1"]),
        ..ProducerConfig::new("pg")
    };
    let cfg = TraceConfig::default()
        .with_queue_capacity(4)
        .with_max_delay(Duration::from_secs(3600));
    let tracer = Tracer::start(&host, cfg).await.expect("tracer");
    let t0 = tokio::time::Instant::now();
    for i in 0..10 {
        tracer.append(rec_of("A", &format!("{i}"), None));
    }
    assert_eq!(t0.elapsed(), Duration::ZERO);
    let stats = tracer.stats();
    assert_eq!((stats.queued, stats.dropped), (4, 6));
    assert!(stats.group.starts_with("_INNER_TRACE_PRODUCER-pg-PRODUCE-"));
    // Shutdown bounds the flush by its deadline even though nothing can be sent.
    tracer
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(1))
        .await;
    tracer.append(rec_of("A", "late", None));
    assert_eq!(
        tracer.stats().dropped,
        7,
        "after shutdown records are dropped"
    );
}
