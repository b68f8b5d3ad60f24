//! Unit tests of the send kernel (a sibling file of `kernel.rs` to keep both short).

use std::collections::BTreeMap;

use rmq_common::compression::decompress;
use rmq_common::{ExtFields, ResponseCode};
use rmq_remoting::RemotingCommand;

use super::*;
use crate::error::ErrorKind;

const GOLDEN: &str = include_str!("../tests/fixtures/send_message_v2.golden");
const PRESET_ID: &str = "7F0000010F2C18B4AAC2000000000000";

/// `(key, value)` lines of the golden file, comments and blank lines dropped, `\uXXXX` decoded.
fn golden() -> Vec<(String, String)> {
    GOLDEN
        .lines()
        .map(|l| l.split_once("  #").map_or(l, |(v, _)| v).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| {
            let v = v
                .trim()
                .replace("\\u0001", "\u{1}")
                .replace("\\u0002", "\u{2}");
            (k.trim().to_owned(), v)
        })
        .collect()
}

fn golden_message() -> Message {
    let body: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .copied()
        .cycle()
        .take(5000)
        .collect();
    let mut msg = Message::new("GoldenTopic", body)
        .with_tags("TagA")
        .with_keys(["k1", "k2"])
        .with_user_property("region", "eu")
        .expect("user property");
    msg.properties_mut().insert(property::UNIQ_KEY, PRESET_ID);
    msg
}

/// [`build_request`] with its pre-encoded fields read back into `ext_fields`.
fn build_read_back(
    out: &Outgoing,
    w: &WireConsts,
    mq: &MessageQueue,
    born_timestamp_ms: i64,
) -> RemotingCommand {
    build_request(out, w, mq, born_timestamp_ms).materialize_ext()
}

fn cfg() -> ProducerConfig {
    ProducerConfig::new("GoldenGroup")
}

fn never_called() -> impl FnMut() -> String {
    || panic!("UNIQ_KEY preset: the generator must not be called")
}

fn counter_ids() -> impl FnMut() -> String {
    let mut n = 0u32;
    move || {
        n += 1;
        format!("ID{n:030}")
    }
}

#[test]
fn golden_send_message_v2_request() {
    let mut msg = golden_message();
    let out = prepare_single(&mut msg, &cfg(), &mut never_called());
    let mq = MessageQueue::new("GoldenTopic", "broker-a", 2);
    let req = build_read_back(&out, &WireConsts::new(&cfg()), &mq, 1_700_000_000_000);
    let lines = golden();
    let mut props_expected = BTreeMap::new();
    let mut checked = 0;
    for (key, value) in &lines {
        match key.as_str() {
            "code" => assert_eq!(req.code.to_string(), *value),
            "flag" => assert_eq!(req.flag.to_string(), *value),
            "language" => assert_eq!(req.language.name(), Some(value.as_str())),
            "absent" => assert_eq!(req.ext_fields.get(value), None, "{value} must be absent"),
            k if k.starts_with("ext.") => {
                assert_eq!(
                    req.ext_fields.get(&k[4..]),
                    Some(value.as_str()),
                    "ext field {k}"
                );
            }
            k if k.starts_with("prop.") => {
                props_expected.insert(k[5..].to_owned(), value.clone());
            }
            "properties.count" => {
                assert_eq!(
                    Properties::decode(req.ext_fields.get("i").expect("i"))
                        .len()
                        .to_string(),
                    *value
                );
            }
            "properties.trailing" => {
                assert!(req
                    .ext_fields
                    .get("i")
                    .expect("i")
                    .ends_with(value.as_str()));
            }
            "properties.pair" => {
                let i = req.ext_fields.get("i").expect("i");
                for seg in i.split('\u{2}').filter(|s| !s.is_empty()) {
                    assert_eq!(seg.matches(value.as_str()).count(), 1, "segment {seg:?}");
                }
            }
            "body.zlib_cmf" => assert_eq!(format!("{:02x}", req.body[0]), *value),
            "body.zlib_check" => {
                let check = (u32::from(req.body[0]) * 256 + u32::from(req.body[1])) % 31;
                assert_eq!(check.to_string(), *value);
                assert_eq!(req.body[1] & 0x20, 0, "FDICT");
            }
            "body.adler32" => {
                let n = req.body.len();
                let trailer = u32::from_be_bytes([
                    req.body[n - 4],
                    req.body[n - 3],
                    req.body[n - 2],
                    req.body[n - 1],
                ]);
                assert_eq!(trailer, adler32(msg.body()));
            }
            "body.inflated_len" => {
                let inflated = decompress(&req.body, 1 << 20).expect("zlib body");
                assert_eq!(inflated.len().to_string(), *value);
                assert_eq!(&inflated[..], &msg.body()[..]);
            }
            other => panic!("unknown golden key {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 25, "golden file parsed ({checked} lines)");
    let sent = Properties::decode(req.ext_fields.get("i").expect("i"));
    let sent: BTreeMap<String, String> = sent
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(sent, props_expected);
    // Nothing beyond the golden ext fields.
    let expected_keys = lines.iter().filter(|(k, _)| k.starts_with("ext.")).count() + 1; // + i
    assert_eq!(req.ext_fields.len(), expected_keys, "{:?}", req.ext_fields);
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

#[test]
fn uniq_key_set_once_and_kept() {
    let mut msg = Message::new("T", "small");
    let mut ids = counter_ids();
    let first = prepare_single(&mut msg, &cfg(), &mut ids);
    let second = prepare_single(&mut msg, &cfg(), &mut ids);
    assert_eq!(
        first.msg_id, second.msg_id,
        "kept across attempts and re-sends"
    );
    assert_eq!(
        msg.property(property::UNIQ_KEY),
        Some(first.msg_id.as_str())
    );
}

/// One wall-clock read per prepare: the generated `UNIQ_KEY` carries the time that is also the
/// first attempt's `bornTimestamp` (and the key is the one the result reports).
#[test]
fn the_uniq_key_and_the_born_timestamp_share_the_prepares_clock_read() {
    use rmq_common::message_id::month_start_utc_ms;
    let mut msg = Message::new("T", "small");
    let before = wall_ms();
    let out = prepare_single(&mut msg, &cfg(), &mut ProcessIds);
    assert!(out.born_ms >= before && out.born_ms <= wall_ms());
    assert_eq!(msg.property(property::UNIQ_KEY), Some(out.msg_id.as_str()));
    let prefix = crate::identity::uniq_ids().prefix().len();
    let time = &out.msg_id[prefix..prefix + 8];
    let since_month = (out.born_ms - month_start_utc_ms(out.born_ms)) as u32;
    assert_eq!(time, format!("{since_month:08X}"), "{}", out.msg_id);
    // The batch's inner ids too.
    let mut msgs = vec![Message::new("T", "a"), Message::new("T", "b")];
    let out = prepare_batch(&mut msgs, &mut ProcessIds).expect("batch");
    let since_month = (out.born_ms - month_start_utc_ms(out.born_ms)) as u32;
    for id in out.msg_id.split(',') {
        assert_eq!(
            &id[prefix..prefix + 8],
            format!("{since_month:08X}"),
            "{id}"
        );
    }
}

#[test]
fn compression_threshold_is_inclusive_and_message_keeps_its_body() {
    let cfg = cfg();
    for (len, compressed) in [(4095usize, false), (4096, true), (10_000, true), (1, false)] {
        let mut msg = Message::new("T", vec![b'x'; len]);
        let out = prepare_single(&mut msg, &cfg, &mut counter_ids());
        let flagged = out.sys_flag & 0x701 == 0x301;
        assert_eq!(flagged, compressed, "len {len}");
        assert_eq!(out.sys_flag & !0x301, 0, "no other bit, len {len}");
        assert_eq!(msg.body().len(), len, "caller's body untouched");
        if compressed {
            assert!(out.body.len() < len);
            assert_eq!(decompress(&out.body, len).expect("inflate").len(), len);
        } else {
            assert_eq!(out.body, msg.body());
        }
    }
}

#[test]
fn a_body_that_zlib_does_not_shrink_is_sent_as_it_is() {
    let cfg = cfg();
    // Incompressible bytes (a xorshift stream): zlib adds a few bytes of framing.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect();
    assert!(rmq_common::compression::compress(&noise, 5).len() > noise.len());
    let mut msg = Message::new("T", noise.clone());
    let out = prepare_single(&mut msg, &cfg, &mut counter_ids());
    assert_eq!(out.sys_flag & 0x701, 0, "not flagged compressed");
    assert_eq!(
        out.body.len(),
        noise.len(),
        "the original body, not a larger one"
    );
    assert!(
        out.body.len() <= 4 * 1024 * 1024,
        "within the broker's limit"
    );
}

#[test]
fn transaction_flag_and_retry_topic_fields() {
    let mut tx = Message::new("T", "b");
    tx.properties_mut().insert(property::TRAN_MSG, "true");
    let out = prepare_single(&mut tx, &cfg(), &mut counter_ids());
    assert_eq!(out.sys_flag, sysflag::TRANSACTION_PREPARED_TYPE);

    let mut retry = Message::new("%RETRY%group", "b");
    retry.properties_mut().insert(property::RECONSUME_TIME, "3");
    retry
        .properties_mut()
        .insert(property::MAX_RECONSUME_TIMES, "16");
    let out = prepare_single(&mut retry, &cfg(), &mut counter_ids());
    assert_eq!(
        (out.reconsume_times, out.max_reconsume_times),
        (3, Some(16))
    );
    assert!(!out.properties.contains(property::RECONSUME_TIME));
    let req = build_read_back(
        &out,
        &WireConsts::new(&cfg()),
        &MessageQueue::new("%RETRY%group", "b", 0),
        1,
    );
    assert_eq!(req.ext_fields.get("j"), Some("3"));
    assert_eq!(req.ext_fields.get("l"), Some("16"));
}

#[test]
fn batch_is_never_compressed_and_reports_inner_ids() {
    let mut msgs: Vec<Message> = (0..3)
        .map(|_| Message::new("T", vec![b'z'; 5000]))
        .collect();
    let out = prepare_batch(&mut msgs, &mut counter_ids()).expect("batch");
    assert_eq!(out.code, RequestCode::SEND_BATCH_MESSAGE);
    assert_eq!(out.sys_flag, 0);
    let inner: Vec<&str> = msgs
        .iter()
        .map(|m| m.property(property::UNIQ_KEY).expect("id"))
        .collect();
    assert_eq!(out.msg_id, inner.join(","));
    let decoded = rmq_common::batch::decode_batch(out.body.clone()).expect("decodes");
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[0].body().len(), 5000);
    let req = build_read_back(
        &out,
        &WireConsts::new(&cfg()),
        &MessageQueue::new("T", "b", 1),
        1,
    );
    assert_eq!(req.ext_fields.get("m"), Some("true"));
    // Brokers append the wrapper's properties to every record: only WAIT, so that each message
    // keeps its own UNIQ_KEY.
    let wrapper = Properties::decode(req.ext_fields.get("i").expect("i"));
    assert_eq!(wrapper.get(property::WAIT), Some("true"));
    assert_eq!(wrapper.get(property::UNIQ_KEY), None);
    assert_eq!(wrapper.len(), 1);

    let mut empty: Vec<Message> = Vec::new();
    assert!(prepare_batch(&mut empty, &mut counter_ids()).is_err());
}

fn response(code: ResponseCode, ext: &[(&str, &str)]) -> RemotingCommand {
    let mut resp = RemotingCommand::response(code, Some("remark".into()));
    resp.ext_fields = ext.iter().copied().collect::<ExtFields>();
    resp
}

const OK_EXT: [(&str, &str); 5] = [
    ("msgId", "7F00000100002A9F00000000004988BA"),
    ("queueId", "3"),
    ("queueOffset", "42"),
    ("transactionId", "TX"),
    ("TRACE_ON", "false"),
];

#[test]
fn response_codes_map_like_process_send_response() {
    let mut msg = Message::new("T", "b");
    let out = prepare_single(&mut msg, &cfg(), &mut counter_ids());
    let mq = MessageQueue::new("T", "broker-a", 0);
    for (code, status) in [
        (ResponseCode::SUCCESS, SendStatus::SendOk),
        (
            ResponseCode::FLUSH_DISK_TIMEOUT,
            SendStatus::FlushDiskTimeout,
        ),
        (
            ResponseCode::FLUSH_SLAVE_TIMEOUT,
            SendStatus::FlushSlaveTimeout,
        ),
        (
            ResponseCode::SLAVE_NOT_AVAILABLE,
            SendStatus::SlaveNotAvailable,
        ),
    ] {
        let r = process(&response(code, &OK_EXT), &out, &mq, "addr").expect("stored");
        assert_eq!(r.status, status);
        assert_eq!(
            r.queue,
            MessageQueue::new("T", "broker-a", 3),
            "queue id from the answer"
        );
        assert_eq!(
            (r.queue_offset, r.msg_id.as_str()),
            (42, out.msg_id.as_str())
        );
        assert_eq!(r.offset_msg_id, "7F00000100002A9F00000000004988BA");
        assert_eq!(r.transaction_id.as_deref(), Some("TX"));
        assert_eq!(r.region_id, "DefaultRegion");
        assert!(!r.trace_on);
    }
    for code in [1, 2, 13, 14, 16, 17, 1500, 12345] {
        match process(&response(ResponseCode(code), &OK_EXT), &out, &mq, "addr") {
            Err(e @ ErrorKind::Broker { .. }) => {
                assert_eq!(e.response_code(), Some(ResponseCode(code)));
                assert!(!e.maybe_stored());
            }
            other => panic!("code {code}: {other:?}"),
        }
    }
    let bad = process(
        &response(ResponseCode::SUCCESS, &[("queueId", "x")]),
        &out,
        &mq,
        "a",
    );
    assert!(matches!(bad, Err(ref e @ ErrorKind::InvalidResponse { .. }) if e.maybe_stored()));
}

#[test]
fn inner_batch_reports_the_broker_batch_id() {
    let mut msgs = vec![Message::new("T", "a"), Message::new("T", "b")];
    let out = prepare_batch(&mut msgs, &mut counter_ids()).expect("batch");
    let mq = MessageQueue::new("T", "broker-a", 0);
    let plain = process(&response(ResponseCode::SUCCESS, &OK_EXT), &out, &mq, "a").expect("ok");
    assert_eq!(plain.msg_id, out.msg_id);
    let mut ext = OK_EXT.to_vec();
    ext.push(("batchUniqId", "B"));
    ext.push(("MSG_REGION", "eu-1"));
    let inner = process(&response(ResponseCode::SUCCESS, &ext), &out, &mq, "a").expect("ok");
    assert_eq!(inner.msg_id, "B", "the broker's id of the inner batch");
    assert_eq!(inner.region_id, "eu-1");
}

#[test]
fn ext_fields_match_the_common_v2_encoder_in_content_and_order() {
    use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
    use rmq_common::CommandHeader;

    let mut retry = Message::new("%RETRY%g", "b").with_flag(-7);
    retry
        .properties_mut()
        .insert(property::RECONSUME_TIME, "21");
    retry
        .properties_mut()
        .insert(property::MAX_RECONSUME_TIMES, "3");
    let mut cases = vec![
        (
            prepare_single(&mut golden_message(), &cfg(), &mut never_called()),
            2,
            1_700_000_000_000,
        ),
        (
            prepare_single(&mut retry, &cfg(), &mut counter_ids()),
            31,
            5,
        ),
    ];
    let mut batch = vec![Message::new("T", "a"), Message::new("T", "b")];
    cases.push((
        prepare_batch(&mut batch, &mut counter_ids()).expect("batch"),
        16,
        0,
    ));
    let mut cfg = cfg();
    cfg.unit_mode = true;
    cfg.name_server.default_topic_queue_nums = 123;
    for (out, queue_id, born) in cases {
        let mq = MessageQueue::new(out.topic().to_owned(), "broker-x", queue_id);
        let req = build_read_back(&out, &WireConsts::new(&cfg), &mq, born);
        let expected = SendMessageRequestHeaderV2(SendMessageRequestHeader {
            producer_group: cfg.group.clone(),
            topic: out.topic().to_owned(),
            default_topic: cfg.name_server.default_topic.clone(),
            default_topic_queue_nums: cfg.name_server.default_topic_queue_nums,
            queue_id,
            sys_flag: out.sys_flag,
            born_timestamp: born,
            flag: out.flag,
            properties: Some(out.properties.to_string()),
            reconsume_times: Some(out.reconsume_times),
            unit_mode: Some(cfg.unit_mode),
            batch: Some(out.is_batch()),
            max_reconsume_times: out.max_reconsume_times,
            broker_name: Some("broker-x".into()),
        })
        .to_ext_fields();
        let got: Vec<(&str, &str)> = req.ext_fields.iter().collect();
        let want: Vec<(&str, &str)> = expected.iter().collect();
        assert_eq!(got, want, "{}", out.topic());
        assert_eq!(req.code, out.code.value());
    }
}

#[test]
fn born_timestamp_text_is_shared_within_a_millisecond_and_exact_across() {
    for ms in [
        0_i64,
        7,
        1_763_942_400_000,
        1_763_942_400_001,
        -1,
        i64::MAX,
        7,
    ] {
        let first = millis_text(ms);
        let again = millis_text(ms);
        assert_eq!(&*first, ms.to_string().as_str());
        assert_eq!(first, again);
        // The same millisecond shares one buffer instead of formatting again.
        assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
    }
}

#[test]
fn topic_and_broker_text_is_shared_by_consecutive_sends_and_exact_on_change() {
    for slot in [&LAST_TOPIC, &LAST_BROKER] {
        for text in ["T", "T", "broker-a", "", "broker-a", "T"] {
            let first = shared_text(slot, text);
            let again = shared_text(slot, text);
            assert_eq!(&*first, text);
            assert_eq!(first.as_bytes().as_ptr(), again.as_bytes().as_ptr());
        }
    }
}

/// [`process_response`] for `out` sent to `mq`.
fn process(
    resp: &RemotingCommand,
    out: &Outgoing,
    mq: &MessageQueue,
    addr: &str,
) -> Result<SendResult, ErrorKind> {
    process_response(resp, out.msg_id.clone(), out.is_batch(), mq.clone(), |_| {
        addr.to_owned()
    })
}

#[test]
fn a_reply_goes_out_as_send_reply_message_v2_with_the_v2_header() {
    let w = WireConsts::new(&cfg());
    let mq = MessageQueue::new("DefaultCluster_REPLY_TOPIC", "broker-a", 0);
    for (msg_type, code) in [
        (None, RequestCode::SEND_MESSAGE_V2),
        (Some("reply"), RequestCode::SEND_REPLY_MESSAGE_V2),
        (Some("request"), RequestCode::SEND_MESSAGE_V2),
    ] {
        let mut msg = Message::new("DefaultCluster_REPLY_TOPIC", "pong");
        if let Some(t) = msg_type {
            msg.properties_mut().insert(property::MSG_TYPE, t);
        }
        let out = prepare_single(&mut msg, &cfg(), &mut counter_ids());
        assert_eq!(out.code, code, "{msg_type:?}");
        assert!(!out.is_batch());
        let req = build_read_back(&out, &w, &mq, 1);
        assert_eq!(req.request_code(), code);
        // Brokers read 325 with the V2 (short) names, as 310.
        let header = rmq_common::SendMessageRequestHeader::read_for_code(code, &req.ext_fields)
            .expect("V2 header");
        assert_eq!(header.topic, "DefaultCluster_REPLY_TOPIC");
        assert_eq!(req.ext_fields.get("m"), Some("false"));
    }
}
