//! Golden bytes of the send request: the pre-encoded header ([`build_request`] for JSON
//! producers without ACL) gives, for a table of messages and producer settings, the very frame
//! that the header as [`ExtFields`] ([`build_request_fields`], the encoder of every other
//! request) gives.

use bytes::BytesMut;
use rmq_common::compression::CompressionType;
use rmq_common::{property, Message, MessageQueue};
use rmq_remoting::acl::Credentials;
use rmq_remoting::{RemotingCommand, SerializeType};

use super::*;

fn ids() -> impl FnMut() -> String {
    let mut n = 0u32;
    move || {
        n += 1;
        format!("7F0000010F2C18B4AAC2{n:012X}")
    }
}

fn frame(req: &RemotingCommand) -> BytesMut {
    let mut req = req.clone();
    req.opaque = 4242;
    let mut b = BytesMut::new();
    req.encode(&mut b).expect("encodes");
    b
}

/// Messages covering every header field's cases.
fn singles() -> Vec<Message> {
    let big: Vec<u8> = b"abcdefgh".iter().copied().cycle().take(6000).collect();
    let mut ctl = Message::new("TopicCtl", "x");
    ctl.properties_mut()
        .insert("user\u{1}key", "v\u{2}w\u{0}\u{1f}\t\n\r\u{8}\u{c}");
    let mut tran = Message::new("TopicTx", "t");
    tran.properties_mut().insert(property::TRAN_MSG, "true");
    let mut retry = Message::new("%RETRY%GroupA", "r").with_flag(-1);
    retry.properties_mut().insert(property::RECONSUME_TIME, "3");
    retry
        .properties_mut()
        .insert(property::MAX_RECONSUME_TIMES, "16");
    let mut retry_no_max = Message::new("%RETRY%GroupA", "r");
    retry_no_max
        .properties_mut()
        .insert(property::RECONSUME_TIME, "1");
    let mut reply = Message::new("DefaultCluster_REPLY_TOPIC", "pong");
    reply.properties_mut().insert(property::MSG_TYPE, "reply");
    vec![
        Message::new("TopicTest", "hello"),
        Message::new("T", "").with_flag(i32::MIN),
        Message::new("TopicTest", "b").with_flag(-7),
        Message::new("TopicTest", "b").with_flag(i32::MAX),
        Message::new("TopicTest", "b")
            .with_tags("Tag\"A\\B")
            .with_keys(["k\"1", "k\\2", "ключ", "🔑"])
            .with_user_property("quote\"d", "va\"l\\ue")
            .expect("property")
            .with_user_property("unicode", "é€😀")
            .expect("property"),
        ctl,
        tran,
        retry,
        retry_no_max,
        reply,
        Message::new("TopicBig", big.clone()),
        Message::new("TopicBig", big).with_delay_level(3),
    ]
}

fn configs() -> Vec<ProducerConfig> {
    let mut out = Vec::new();
    for ty in [
        CompressionType::Zlib,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        let mut cfg = ProducerConfig::new("GroupA");
        cfg.compress_type = ty;
        out.push(cfg);
    }
    let mut cfg = ProducerConfig::new("Group_B-1%x");
    cfg.unit_mode = true;
    cfg.name_server.default_topic = "TBW\"102".into();
    cfg.name_server.default_topic_queue_nums = 123;
    cfg.language = LanguageCode::RUST;
    out.push(cfg);
    out
}

/// The pre-encoded frame equals the `ExtFields` frame for `out`, on queues and times that take
/// 0, 1 and many digits.
fn check(out: &Outgoing, cfg: &ProducerConfig, sys_flags: &mut Vec<i32>) {
    let w = WireConsts::new(cfg);
    assert!(
        w.encoded.is_some(),
        "JSON without credentials is pre-encoded"
    );
    sys_flags.push(out.sys_flag);
    for (queue_id, born) in [(0, 1_700_000_000_000), (7, 0), (1023, -1), (-1, i64::MAX)] {
        for broker in ["broker-a", "b\"r\\k", ""] {
            let mq = MessageQueue::new(out.topic().to_owned(), broker, queue_id);
            let fast = build_request(out, &w, &mq, born);
            assert!(fast.encoded_ext.is_some() && fast.ext_fields.is_empty());
            let slow = build_request_fields(out, &w, &mq, born);
            assert!(slow.encoded_ext.is_none());
            assert_eq!(
                frame(&fast),
                frame(&slow),
                "{} sys {:#x} queue {queue_id} broker {broker:?}",
                out.topic(),
                out.sys_flag
            );
            assert_eq!(fast.clone().materialize_ext(), slow);
        }
    }
}

#[test]
fn pre_encoded_send_requests_are_byte_identical_to_the_ext_fields_encoding() {
    let mut sys_flags = Vec::new();
    for cfg in configs() {
        for mut msg in singles() {
            let out = prepare_single(&mut msg, &cfg, &mut ids());
            check(&out, &cfg, &mut sys_flags);
        }
        let mut batch = vec![
            Message::new("TopicBatch", "a")
                .with_keys(["k\"1"])
                .with_wait_store_msg_ok(false),
            Message::new("TopicBatch", "b").with_wait_store_msg_ok(false),
        ];
        let out = prepare_batch(&mut batch, &mut ids()).expect("batch");
        check(&out, &cfg, &mut sys_flags);
    }
    // every sys flag case the producer writes was met: none, transaction, each compression
    sys_flags.sort_unstable();
    sys_flags.dedup();
    for want in [0, 0x4, 0x101, 0x201, 0x301] {
        assert!(
            sys_flags.contains(&want),
            "{want:#x} not covered: {sys_flags:x?}"
        );
    }
}

#[test]
fn signed_or_rocketmq_producers_keep_the_ext_fields_header() {
    let mut signed = ProducerConfig::new("GroupA");
    signed.credentials = Some(Credentials::new("ak", "sk"));
    let mut binary = ProducerConfig::new("GroupA");
    binary.serialize_type = SerializeType::RocketMq;
    for cfg in [signed, binary] {
        let w = WireConsts::new(&cfg);
        assert!(w.encoded.is_none());
        let out = prepare_single(&mut Message::new("T", "x"), &cfg, &mut ids());
        let req = build_request(&out, &w, &MessageQueue::new("T", "b", 1), 5);
        assert!(req.encoded_ext.is_none());
        assert_eq!(req.ext_fields.get("b"), Some("T"));
    }
}

#[test]
fn cached_heads_follow_the_topic_and_the_producer() {
    // Two producers (different group, default topic and unit mode) and topics alternating on
    // one thread, one of them needing escapes: every pre-encoded frame still equals the
    // ExtFields one, so no head is reused for another topic or another producer.
    let cfgs = configs();
    let (first, second) = (&cfgs[0], &cfgs[3]);
    let topics = [
        "TopicA",
        "TopicB",
        "Top\"ic\\\u{1}C",
        "TopicA",
        "TopicA",
        "TopicB",
    ];
    let consts = [WireConsts::new(first), WireConsts::new(second)];
    for round in 0..3 {
        for (i, topic) in topics.iter().enumerate() {
            let w = &consts[(i + round) % 2];
            let cfg = if (i + round) % 2 == 0 { first } else { second };
            let out = prepare_single(&mut Message::new(*topic, "x"), cfg, &mut ids());
            let mq = MessageQueue::new(*topic, "broker-a", 1);
            let fast = build_request(&out, w, &mq, 1_700_000_000_000);
            let slow = build_request_fields(&out, w, &mq, 1_700_000_000_000);
            assert_eq!(frame(&fast), frame(&slow), "{topic:?} round {round}");
            assert_eq!(fast.materialize_ext().ext_fields.get("b"), Some(*topic));
        }
    }
    // A clone of a producer's constants is the same producer.
    let clone = consts[0].clone();
    let out = prepare_single(&mut Message::new("TopicA", "x"), first, &mut ids());
    let mq = MessageQueue::new("TopicA", "broker-a", 1);
    assert_eq!(
        frame(&build_request(&out, &clone, &mq, 5)),
        frame(&build_request_fields(&out, &consts[0], &mq, 5))
    );
}

#[test]
fn tails_follow_the_message_and_the_broker() {
    // Consecutive sends on one thread to one broker that differ in one of the tail's values
    // only (reconsume times, max reconsume times, batch or not), then in the broker only:
    // every pre-encoded frame equals the ExtFields one (a tail written once and reused, as
    // the head is, must be keyed by all of them).
    let cfg = &configs()[0];
    let w = WireConsts::new(cfg);
    let retry = |times: &str, max: Option<&str>| {
        let mut m = Message::new("%RETRY%GroupA", "r");
        m.properties_mut().insert(property::RECONSUME_TIME, times);
        if let Some(max) = max {
            m.properties_mut()
                .insert(property::MAX_RECONSUME_TIMES, max);
        }
        prepare_single(&mut m, cfg, &mut ids())
    };
    let single = || prepare_single(&mut Message::new("TopicA", "x"), cfg, &mut ids());
    let batch = || {
        let mut msgs = vec![Message::new("TopicA", "a"), Message::new("TopicA", "b")];
        prepare_batch(&mut msgs, &mut ids()).expect("batch")
    };
    let sends = [
        (single(), "broker-a"),
        (batch(), "broker-a"),
        (single(), "broker-a"),
        (retry("3", Some("16")), "broker-a"),
        (retry("1", Some("16")), "broker-a"),
        (retry("1", Some("17")), "broker-a"),
        (retry("1", None), "broker-a"),
        (retry("0", None), "broker-a"),
        (single(), "broker-a"),
        (single(), "broker-b"),
        (single(), "broker-a"),
    ];
    for (i, (out, broker)) in sends.iter().enumerate() {
        let mq = MessageQueue::new(out.topic().to_owned(), *broker, 1);
        let fast = build_request(out, &w, &mq, 1_700_000_000_000);
        let slow = build_request_fields(out, &w, &mq, 1_700_000_000_000);
        assert_eq!(frame(&fast), frame(&slow), "send {i} to {broker}");
    }
}
