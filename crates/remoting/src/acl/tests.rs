//! Signatures checked against an independent HMAC-SHA1 / Base64 computation (Python's `hmac`,
//! `hashlib` and `base64` over the same concatenation Java's `AclUtils.combineRequestContent`
//! builds).

use bytes::Bytes;
use rmq_common::RequestCode;

use super::*;

/// The V2 send header of a message with tags-less properties, as the producer writes it.
fn send_request() -> RemotingCommand {
    let mut ext = ExtFields::new();
    for (k, v) in [
        ("a", "ProducerGroupA"),
        ("b", "TopicTest"),
        ("c", "TBW102"),
        ("d", "4"),
        ("e", "1"),
        ("f", "0"),
        ("g", "1763942400000"),
        ("h", "0"),
        (
            "i",
            "WAIT\u{1}true\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}",
        ),
        ("j", "0"),
        ("k", "false"),
        ("m", "false"),
        ("n", "broker-a"),
    ] {
        ext.insert(k, v);
    }
    RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext)
        .with_body(Bytes::from_static(b"Hello RocketMQ"))
}

#[test]
fn a_send_request_is_signed_like_java() {
    let hook = AclHook::new(Credentials::new("RocketMQ", "12345678").with_security_token("tok-1"));
    let mut req = send_request();
    hook.sign(&mut req);
    assert_eq!(req.ext_fields.get(ACCESS_KEY), Some("RocketMQ"));
    assert_eq!(req.ext_fields.get(SECURITY_TOKEN), Some("tok-1"));
    // Python: base64(hmac(b"12345678", "RocketMQ" + "tok-1" + values of a..n + body, sha1)).
    assert_eq!(
        req.ext_fields.get(SIGNATURE),
        Some("QYuJoTUuBsOnOIoSO8AD10tW8Sk=")
    );
    // Nothing else changed.
    assert_eq!(req.ext_fields.get("b"), Some("TopicTest"));
    assert_eq!(req.body, Bytes::from_static(b"Hello RocketMQ"));
}

#[test]
fn no_token_no_body_and_signing_again_gives_the_same_fields() {
    let hook = AclHook::new(Credentials::new("RocketMQ", "12345678"));
    let mut ext = ExtFields::new();
    ext.insert("topic", "TopicTest");
    let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, ext);
    hook.sign(&mut req);
    assert_eq!(req.ext_fields.get(SECURITY_TOKEN), None);
    assert_eq!(
        req.ext_fields.get(SIGNATURE),
        Some("0jiwhsaYp5ObE5GObbZH1I8/FT4=")
    );
    // A retry signs the same request again: `Signature` is not signed, keys are replaced.
    let first = req.ext_fields.to_sorted().len();
    hook.sign(&mut req);
    assert_eq!(req.ext_fields.to_sorted().len(), first);
    assert_eq!(
        req.ext_fields.get(SIGNATURE),
        Some("0jiwhsaYp5ObE5GObbZH1I8/FT4=")
    );
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let c = Credentials::new("ak", "very-secret").with_security_token("tok-secret");
    let shown = format!("{:?} {:?}", c, AclHook::new(c.clone()));
    assert!(shown.contains("ak"), "{shown}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(!shown.contains("tok-secret"), "{shown}");
    assert_eq!(c.access_key(), "ak");
}
