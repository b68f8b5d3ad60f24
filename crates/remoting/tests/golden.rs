//! Golden frames: our encoder produces, byte for byte, what the Java layout produces, and every
//! response captured from the real server decodes.
//!
//! Fixtures live in `tests/fixtures/*.hex`: hex with a `#` comment on each field.

use bytes::{Bytes, BytesMut};
use rmq_common::{ExtFields, LanguageCode, RequestCode, ResponseCode};
use rmq_remoting::{RemotingCodec, RemotingCommand, SerializeType};
use tokio_util::codec::Decoder;

mod common;
use common::fixture;

fn encode(cmd: &RemotingCommand) -> Vec<u8> {
    let mut buf = BytesMut::new();
    cmd.encode(&mut buf).expect("encodes");
    buf.to_vec()
}

fn decode_whole(bytes: &[u8]) -> RemotingCommand {
    let mut buf = BytesMut::from(bytes);
    let cmd = RemotingCodec::new()
        .decode(&mut buf)
        .expect("decodes")
        .expect("complete frame");
    assert!(buf.is_empty(), "exactly one frame");
    cmd
}

/// The V2 send header of the fixtures, in Java's field order `a`..`n` (`l` absent).
fn send_v2_ext() -> ExtFields {
    [
        ("a", "FixtureGroup"),
        ("b", "FixtureTopic"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "0"),
        ("f", "0"),
        ("g", "1763942400000"),
        ("h", "0"),
        ("i", "TAGS\u{1}TagA\u{2}KEYS\u{1}k1 k2\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}WAIT\u{1}true\u{2}"),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
        ("n", "broker-a"),
    ]
    .into_iter()
    .collect()
}

fn java_request(
    code: RequestCode,
    ext: ExtFields,
    opaque: i32,
    st: SerializeType,
) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(code, ext).with_serialize_type(st);
    cmd.version = 437;
    cmd.opaque = opaque;
    assert_eq!(cmd.language, LanguageCode::JAVA);
    cmd
}

fn assert_golden(name: &str, cmd: &RemotingCommand) {
    let want = fixture(name);
    let got = encode(cmd);
    assert_eq!(
        hex(&got),
        hex(&want),
        "{name}: encoder output differs from the Java layout"
    );
    assert_eq!(
        &decode_whole(&want),
        cmd,
        "{name}: decodes back to the command"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn send_message_v2_json_is_byte_exact() {
    let cmd = java_request(
        RequestCode::SEND_MESSAGE_V2,
        send_v2_ext(),
        1,
        SerializeType::Json,
    )
    .with_body(Bytes::from_static(b"hello fixture"));
    assert_golden("send_v2_json.req.hex", &cmd);
}

#[test]
fn send_message_v2_rocketmq_is_byte_exact() {
    let cmd = java_request(
        RequestCode::SEND_MESSAGE_V2,
        send_v2_ext(),
        2,
        SerializeType::RocketMq,
    )
    .with_body(Bytes::from_static(b"hello fixture"));
    assert_golden("send_v2_rocketmq.req.hex", &cmd);
}

fn topic(t: &str) -> ExtFields {
    [("topic", t)].into_iter().collect()
}

#[test]
fn route_requests_are_byte_exact() {
    let json = java_request(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        topic("TBW102"),
        1,
        SerializeType::Json,
    );
    assert_golden("route_tbw102_json.req.hex", &json);
    let bin = java_request(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        topic("TBW102"),
        1,
        SerializeType::RocketMq,
    );
    assert_golden("route_tbw102_rocketmq.req.hex", &bin);
    let unknown = java_request(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        topic("NoSuchTopicFixture"),
        1,
        SerializeType::Json,
    );
    assert_golden("route_unknown_topic_json.req.hex", &unknown);
}

#[test]
fn appendix_b_examples_are_byte_exact() {
    for (name, st) in [
        ("appendix_b_route_json.hex", SerializeType::Json),
        ("appendix_b_route_rocketmq.hex", SerializeType::RocketMq),
    ] {
        let mut cmd =
            RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, topic("TopicTest"))
                .with_serialize_type(st);
        cmd.version = 479;
        cmd.opaque = 1;
        assert_golden(name, &cmd);
    }
}

#[test]
fn heartbeat_request_decodes() {
    // Java 5 writes `"extFields":{}` for a header with no fields; we decode it as empty ext
    // fields (and our encoder omits an empty map, as Java 4 does for a null one).
    let cmd = decode_whole(&fixture("heartbeat_json.req.hex"));
    assert_eq!(cmd.request_code(), RequestCode::HEART_BEAT);
    assert_eq!(cmd.opaque, 3);
    assert!(cmd.ext_fields.is_empty());
    let body: serde_json::Value = serde_json::from_slice(&cmd.body).expect("JSON body");
    assert_eq!(body["producerDataSet"][0]["groupName"], "FixtureGroup");
}

fn assert_server_response(cmd: &RemotingCommand, code: ResponseCode, opaque: i32) {
    assert!(cmd.is_response());
    assert!(!cmd.is_oneway());
    assert_eq!(cmd.response_code(), code);
    assert_eq!(cmd.opaque, opaque);
    assert_eq!(cmd.language, LanguageCode::RUST);
    assert_eq!(cmd.version, 474);
    assert_eq!(cmd.serialize_type, SerializeType::Json);
}

#[test]
fn send_responses_decode() {
    for (name, opaque) in [
        ("send_v2_json.resp.hex", 1),
        ("send_v2_rocketmq.resp.hex", 2),
    ] {
        let cmd = decode_whole(&fixture(name));
        assert_server_response(&cmd, ResponseCode::SUCCESS, opaque);
        assert_eq!(cmd.remark, None, "{name}: remark null");
        let ext = &cmd.ext_fields;
        assert_eq!(ext.get("msgId").map(str::len), Some(32), "{name}");
        assert_eq!(ext.get("queueId"), Some("0"));
        assert!(ext
            .get("queueOffset")
            .and_then(|v| v.parse::<i64>().ok())
            .is_some());
        assert_eq!(
            ext.get("transactionId"),
            Some("7F0000010F2C18B4AAC2000000000000")
        );
        assert_eq!(ext.get("MSG_REGION"), Some("DefaultRegion"));
        assert_eq!(ext.get("TRACE_ON"), Some("true"));
        assert!(cmd.body.is_empty());
    }
}

#[test]
fn route_responses_decode() {
    for name in [
        "route_tbw102_json.resp.hex",
        "route_tbw102_rocketmq.resp.hex",
    ] {
        let cmd = decode_whole(&fixture(name));
        assert_server_response(&cmd, ResponseCode::SUCCESS, 1);
        assert_eq!(cmd.body.len(), 552, "{name}");
        let route: serde_json::Value = serde_json::from_slice(&cmd.body).expect("route JSON");
        assert_eq!(
            route["brokerDatas"].as_array().map(Vec::len),
            Some(2),
            "{name}"
        );
    }
    let cmd = decode_whole(&fixture("route_unknown_topic_json.resp.hex"));
    assert_server_response(&cmd, ResponseCode::TOPIC_NOT_EXIST, 1);
    assert_eq!(cmd.remark.as_deref(), Some("Topic route was not found"));
    assert!(cmd.ext_fields.is_empty(), "extFields null");
}

#[test]
fn heartbeat_response_decodes() {
    let cmd = decode_whole(&fixture("heartbeat_json.resp.hex"));
    assert_server_response(&cmd, ResponseCode::SUCCESS, 3);
    assert_eq!(cmd.ext_fields.get("IS_SUB_CHANGE"), Some("true"));
    assert_eq!(cmd.ext_fields.get("IS_SUPPORT_HEART_BEAT_V2"), Some("true"));
}

#[test]
fn every_captured_response_decodes() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".resp.hex") {
            let cmd = decode_whole(&fixture(&name));
            assert!(cmd.is_response(), "{name}");
            // and it survives our own encoder
            assert_eq!(decode_whole(&encode(&cmd)), cmd, "{name}");
            n += 1;
        }
    }
    assert_eq!(n, 6, "all six captured responses were checked");
}
