//! [`SendMessageResponseHeader::read_from`] on fields still in their JSON text (the known-key
//! walk) against the same fields as ordinary entries (the general loop): the same header or
//! the same error, on every input.

use bytestring::ByteString;
use proptest::prelude::*;

use super::SendMessageResponseHeader;
use crate::{CommandHeader, ExtFields, HeaderError};

/// Both readings of the JSON object `obj` (which must have the plain shape): from the text, and
/// from the entries pushed one by one into an ordinary map.
fn both(
    obj: &str,
) -> (
    Result<SendMessageResponseHeader, HeaderError>,
    Result<SendMessageResponseHeader, HeaderError>,
) {
    let src = ByteString::from(obj);
    let (json, end) = ExtFields::from_plain_json(&src, 0).unwrap_or_else(|| panic!("{obj}"));
    assert_eq!(end, obj.len(), "{obj}");
    let mut owned = ExtFields::new();
    for (k, v) in json.entries() {
        owned.push(k, v);
    }
    assert!(owned.as_json().is_none());
    assert_eq!(json.as_json().is_some(), !json.is_empty(), "{obj}");
    (
        SendMessageResponseHeader::read_from(&json),
        SendMessageResponseHeader::read_from(&owned),
    )
}

#[test]
fn the_known_key_walk_reads_as_the_general_loop() {
    let full = r#""msgId":"7F00000100002A9F00000000004988BA","queueId":"3","queueOffset":"42","MSG_REGION":"DefaultRegion","TRACE_ON":"true""#;
    for obj in [
        // nullbroker's and rocketmq-rust's replies (the latter in fixtures/real-server)
        format!("{{{full}}}"),
        r#"{"MSG_REGION":"DefaultRegion","TRACE_ON":"true","msgId":"7F00000100002A9F00000000004988BA","queueId":"0","queueOffset":"0","transactionId":"7F0000010F2C18B4AAC2000000000000"}"#.to_owned(),
        // every key, some twice (the last counts), unknown keys between them
        r#"{"msgId":"A","x":"y","queueId":"1","queueOffset":"2","transactionId":"t","batchUniqId":"b","MSG_REGION":"r","TRACE_ON":"false","recallHandle":"h","msgId":"B","queueId":"-7","MSG_REGION":"","":""}"#.to_owned(),
        // unicode keys and values, names that start like a known one
        r#"{"msgId":"é€😀","queueId":"0","queueOffset":"9223372036854775807","msgIdx":"no","msgI":"no","queueIds":"x","queueOffsetX":"x","TRACE_ONE":"x","MSG_REGIONS":"x","recallHandl":"x","batchUniqI":"x","transactionIdé":"x","é":"ü"}"#.to_owned(),
        // missing keys: every required one in turn, and everything
        r#"{"queueId":"1","queueOffset":"2"}"#.to_owned(),
        r#"{"msgId":"A","queueOffset":"2"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"1"}"#.to_owned(),
        r#"{}"#.to_owned(),
        r#"{"other":"1"}"#.to_owned(),
        // numbers as Rust's `parse` takes or refuses them
        r#"{"msgId":"A","queueId":"+1","queueOffset":"-0"}"#.to_owned(),
        r#"{"msgId":"A","queueId":" 1","queueOffset":"2"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"2147483648","queueOffset":"2"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"1","queueOffset":"9223372036854775808"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"","queueOffset":"2"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"1","queueOffset":"1.0"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"x1","queueOffset":"2","queueId":"1"}"#.to_owned(),
        r#"{"msgId":"A","queueId":"1","queueId":"x1","queueOffset":"2"}"#.to_owned(),
        // TRACE_ON: true unless exactly "false"
        r#"{"msgId":"","queueId":"0","queueOffset":"0","TRACE_ON":"FALSE"}"#.to_owned(),
        r#"{"msgId":"","queueId":"0","queueOffset":"0","TRACE_ON":""}"#.to_owned(),
        r#"{"msgId":"","queueId":"0","queueOffset":"0","TRACE_ON":"false","TRACE_ON":"true"}"#.to_owned(),
        // keys and values containing what the walk looks for
        r#"{"msgId\u":"x","msgId":"A:B,C}","q":"queueId","queueId":"5","queueOffset":"6","}":":"}"#
            .replace("\\u", "~"),
    ] {
        let (fast, general) = both(&obj);
        assert_eq!(fast, general, "{obj}");
    }
    // the common reply reads as expected, not only as the general loop
    let (fast, _) = both(&format!("{{{full}}}"));
    let h = fast.expect("a full reply");
    assert_eq!(
        (h.msg_id.as_str(), h.queue_id, h.queue_offset),
        ("7F00000100002A9F00000000004988BA", 3, 42)
    );
    assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"));
    assert_eq!(h.trace_on, Some(true));
    assert_eq!(
        both(r#"{"queueId":"1"}"#).0,
        Err(HeaderError::Missing { field: "msgId" })
    );
}

/// Keys around the known ones: the names, their prefixes and extensions, others.
fn key() -> impl Strategy<Value = String> {
    let names = [
        "msgId",
        "queueId",
        "queueOffset",
        "transactionId",
        "batchUniqId",
        "MSG_REGION",
        "TRACE_ON",
        "recallHandle",
    ];
    prop_oneof![
        4 => proptest::sample::select(names.to_vec()).prop_map(str::to_owned),
        1 => (proptest::sample::select(names.to_vec()), 0..14usize)
            .prop_map(|(n, cut)| n[..cut.min(n.len())].to_owned()),
        1 => (proptest::sample::select(names.to_vec()), "[a-zé\"]{1,2}")
            .prop_map(|(n, tail)| format!("{n}{}", tail.replace('"', "_"))),
        1 => "[a-zA-Z_é]{0,12}",
    ]
}

/// Values: numbers (in and out of range, signed, padded), words, unicode, empty.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<i32>().prop_map(|n| n.to_string()),
        4 => any::<i64>().prop_map(|n| n.to_string()),
        4 => "[-+ 0-9a-fA-F.é]{0,20}",
        // past the 256 bytes whose ends are kept
        1 => "[0-9a-z]{100,200}",
        2 => Just("false".to_owned()),
        2 => Just("true".to_owned()),
        2 => Just(String::new()),
    ]
}

proptest! {
    #[test]
    fn any_entries_read_alike(entries in proptest::collection::vec((key(), value()), 0..24)) {
        let body: Vec<String> = entries.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
        let obj = format!("{{{}}}", body.join(","));
        let (fast, general) = both(&obj);
        prop_assert_eq!(fast, general, "{}", obj);
    }
}
