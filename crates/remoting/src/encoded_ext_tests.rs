//! Golden comparisons: a frame with pre-encoded ext fields is byte-identical to the frame of the
//! same entries in an [`ExtFields`], in both header types, whatever the entries hold.

use bytes::{Bytes, BytesMut};
use rmq_common::{ExtFields, RequestCode};

use super::*;
use crate::command::{RemotingCommand, SerializeType};

/// Entries that need every kind of escape, and some that need none.
fn tables() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![],
        vec![("a", "1")],
        vec![("a", ""), ("b", "x")],
        vec![
            ("a", "GroupA"),
            ("b", "TopicTest"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "0"),
            ("f", "-2147483648"),
            ("g", "1763942400000"),
            ("h", "-1"),
            (
                "i",
                "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}WAIT\u{1}true\u{2}",
            ),
            ("j", "0"),
            ("k", "false"),
            ("m", "false"),
            ("n", "broker-a"),
        ],
        vec![
            ("q\"uote", "a\"b"),
            ("back\\slash", "c:\\dir\\"),
            ("uni", "é€😀 — ü"),
            ("ctl", "\u{0}\u{1}\u{2}\u{8}\u{9}\n\u{b}\u{c}\r\u{1f}\u{7f}"),
            (
                "long",
                "abcdefghijklmnopqrstuvwxyz0123456789\"abcdefghijklmnop\\",
            ),
        ],
        // duplicates are sent as they are
        vec![("a", "1"), ("a", "2")],
    ]
}

fn frame(cmd: &RemotingCommand) -> BytesMut {
    let mut b = BytesMut::new();
    cmd.encode(&mut b).expect("encodes");
    b
}

fn plain(entries: &[(&str, &str)], st: SerializeType) -> RemotingCommand {
    let mut ext = ExtFields::new();
    for (k, v) in entries {
        ext.push((*k).into(), (*v).into());
    }
    let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext)
        .with_body(Bytes::from_static(b"body"))
        .with_serialize_type(st);
    cmd.opaque = -7;
    cmd.remark = Some("r\"k".into());
    cmd
}

/// The first `split` entries encoded, the rest left in `ext_fields`.
fn split(entries: &[(&str, &str)], at: usize, st: SerializeType) -> RemotingCommand {
    let mut b = EncodedExtFields::builder(8);
    for (k, v) in &entries[..at] {
        b.str(k, v);
    }
    let mut cmd = plain(&entries[at..], st);
    cmd.encoded_ext = Some(b.build());
    cmd
}

#[test]
fn encoded_entries_give_the_same_frame_at_every_split_in_both_header_types() {
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        for entries in tables() {
            let want = frame(&plain(&entries, st));
            for at in 0..=entries.len() {
                let cmd = split(&entries, at, st);
                assert_eq!(frame(&cmd), want, "{st:?} {entries:?} split at {at}");
                // and the entries read back are the same, in the same order
                let back = cmd.clone().materialize_ext();
                assert_eq!(back.encoded_ext, None);
                let got: Vec<(&str, &str)> = back.ext_fields.iter().collect();
                assert_eq!(got, entries, "{st:?} split at {at}");
                assert_eq!(frame(&back), want);
            }
        }
    }
}

#[test]
fn the_frame_decodes_to_the_entries() {
    for entries in tables() {
        let cmd = split(&entries, entries.len(), SerializeType::Json);
        let f = frame(&cmd).freeze();
        let back = RemotingCommand::decode(f.slice(4..)).expect("decodes");
        let got: Vec<(&str, &str)> = back.ext_fields.iter().collect();
        assert_eq!(got, entries);
        assert_eq!(back.encoded_ext, None);
    }
}

#[test]
fn numbers_and_booleans_are_written_as_java_strings() {
    for v in [0, 1, -1, 9, 10, i64::from(i32::MIN), i64::MAX, i64::MIN] {
        let mut b = EncodedExtFields::builder(0);
        b.int("g", v);
        let want = format!("\"g\":\"{v}\"");
        assert_eq!(b.build().as_json(), want.as_bytes());
    }
    let mut b = EncodedExtFields::builder(0);
    b.bool("k", true).bool("m", false);
    assert_eq!(b.build().as_json(), br#""k":"true","m":"false""#);
}

#[test]
fn integers_of_every_length_and_sign_are_their_decimal_text() {
    let mut values = vec![0, i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1];
    let mut p: i64 = 1;
    for _ in 0..19 {
        for v in [p - 1, p, p + 1, p * 5, p.saturating_mul(9)] {
            values.extend([v, -v]);
        }
        p = p.saturating_mul(10);
    }
    for v in values {
        for (key, comma) in [("g", false), ("g", true), ("born", true), ("q\"", true)] {
            let mut b = EncodedExtFields::builder(0);
            let mut want = String::new();
            if comma {
                b.bool("x", true);
                want.push_str(r#""x":"true","#);
            }
            b.int(key, v);
            want.push_str(&format!("{}:\"{v}\"", serde_json::to_string(key).unwrap()));
            assert_eq!(
                String::from_utf8_lossy(b.build().as_json()),
                want,
                "{key} {v}"
            );
        }
    }
}

#[test]
fn one_byte_keys_that_need_escapes_take_the_slow_path() {
    for k in ["\"", "\\", "\u{0}", "\u{1f}"] {
        let mut b = EncodedExtFields::builder(0);
        b.int(k, 1).str(k, "v").bool(k, false);
        let mut ext = ExtFields::new();
        for v in ["1", "v", "false"] {
            ext.push(k.into(), v.into());
        }
        let (x, y) = same_frame(b.build(), ext);
        assert_eq!(x, y, "{k:?}");
    }
}

#[test]
fn extend_joins_encoded_parts_and_skips_empty_ones() {
    let mut a = EncodedExtFields::builder(0);
    a.str("a", "1");
    let a = a.build();
    let mut b = EncodedExtFields::builder(0);
    assert!(b.is_empty());
    b.extend(&EncodedExtFields::default())
        .extend(&a)
        .extend(&EncodedExtFields::default())
        .str("b", "2")
        .extend(&a);
    assert_eq!(b.len(), 23);
    assert_eq!(b.build().as_json(), br#""a":"1","b":"2","a":"1""#);
    assert_eq!(
        EncodedExtFields::from(&ExtFields::new()),
        EncodedExtFields::default()
    );
}

#[test]
fn decode_header_reads_encoded_entries_too() {
    use rmq_common::header::route::GetRouteInfoRequestHeader;
    let mut b = EncodedExtFields::builder(0);
    b.str("topic", "T1");
    let req = RemotingCommand::request_encoded(RequestCode::GET_ROUTEINFO_BY_TOPIC, b.build());
    let h: GetRouteInfoRequestHeader = req.decode_header().expect("header");
    assert_eq!(h.topic, "T1");
}

#[test]
fn signing_covers_the_encoded_entries() {
    use crate::acl::{AclHook, Credentials, SIGNATURE};
    let hook = AclHook::new(Credentials::new("ak", "sk"));
    let entries = &tables()[3];
    let mut fast = split(entries, entries.len(), SerializeType::Json);
    let mut slow = plain(entries, SerializeType::Json);
    hook.sign(&mut fast);
    hook.sign(&mut slow);
    assert!(fast.ext_fields.get(SIGNATURE).is_some());
    assert_eq!(fast, slow);
    assert_eq!(frame(&fast), frame(&slow));
}

/// The frames of `encoded` and of `ext` (the header encoder's own writing).
fn same_frame(encoded: EncodedExtFields, ext: ExtFields) -> (BytesMut, BytesMut) {
    let fast = RemotingCommand::request_encoded(RequestCode::SEND_MESSAGE_V2, encoded);
    let slow = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext);
    (frame(&fast), frame(&slow))
}

#[test]
fn short_long_and_escaped_keys_are_written_alike_by_every_method() {
    let long32 = "k".repeat(32);
    let long33 = "k".repeat(33);
    for key in ["k", long32.as_str(), long33.as_str(), "q\"k", "\u{1}", "é"] {
        let mut b = EncodedExtFields::builder(0);
        b.str("first", "x")
            .int(key, -12)
            .bool(key, true)
            .str(key, "v\"");
        let mut ext = ExtFields::new();
        for (k, v) in [("first", "x"), (key, "-12"), (key, "true"), (key, "v\"")] {
            ext.push(k.into(), v.into());
        }
        let (x, y) = same_frame(b.build(), ext);
        assert_eq!(x, y, "{key:?}");
        // and as the first entry (no comma)
        let mut b = EncodedExtFields::builder(0);
        b.int(key, 0);
        let mut ext = ExtFields::new();
        ext.push(key.into(), "0".into());
        let (x, y) = same_frame(b.build(), ext);
        assert_eq!(x, y, "{key:?} first");
    }
}

#[test]
fn builders_sharing_a_chunk_keep_their_own_bytes() {
    let expected = |i: usize| {
        format!(
            r#""a":"{i}","b":"{}""#,
            "x\u{1}".repeat(i % 40).replace('\u{1}', "\\u0001")
        )
    };
    let mut kept: Vec<(usize, EncodedExtFields)> = Vec::new();
    // Enough builders to fill several chunks, some dropped early, some kept to the end.
    for i in 0..400 {
        let mut b = EncodedExtFields::builder(16 + i % 40 * 7);
        b.int("a", i as i64).str("b", &"x\u{1}".repeat(i % 40));
        kept.push((i, b.build()));
        if i % 3 == 0 {
            let (j, first) = kept.remove(0);
            assert_eq!(first.as_json(), expected(j).as_bytes(), "{j}");
        }
    }
    for (i, e) in &kept {
        assert_eq!(e.as_json(), expected(*i).as_bytes(), "{i}");
    }
    // A builder made and built while another is being written.
    let mut outer = EncodedExtFields::builder(16);
    outer.str("o", "1");
    let inner = {
        let mut b = EncodedExtFields::builder(16);
        b.str("i", "2");
        b.build()
    };
    outer.extend(&inner).str("p", "3");
    assert_eq!(outer.build().as_json(), br#""o":"1","i":"2","p":"3""#);
    assert_eq!(inner.as_json(), br#""i":"2""#);
    // Larger than a chunk, and a builder dropped unbuilt.
    let long = "y".repeat(10_000);
    let mut big = EncodedExtFields::builder(10_010);
    big.str("l", &long);
    drop(EncodedExtFields::builder(8));
    let big = big.build();
    assert_eq!(big.as_json().len(), long.len() + 6);
    assert_eq!(big.to_ext_fields().get("l"), Some(long.as_str()));
}

#[test]
fn a_detached_value_leaves_the_shared_chunk() {
    // Built one after the other on one thread: the second sits right after the first, in
    // one allocation.
    let mut b = EncodedExtFields::builder(16);
    b.str("a", "group");
    let first = b.build();
    let mut b = EncodedExtFields::builder(16);
    b.str("b", "topic");
    let second = b.build();
    let start = first.as_json().as_ptr() as usize;
    assert_eq!(
        second.as_json().as_ptr() as usize,
        start + first.as_json().len(),
        "consecutive builds share a chunk"
    );
    let end = second.as_json().as_ptr() as usize + second.as_json().len();
    let kept = first.detach();
    assert_eq!(kept.as_json(), br#""a":"group""#);
    // The chunk stays allocated (`second` holds it): a copy of its own cannot lie inside.
    let at = kept.as_json().as_ptr() as usize;
    assert!(
        at + kept.as_json().len() <= start || at >= end,
        "the detached entries still point into the shared chunk"
    );
    assert_eq!(second.as_json(), br#""b":"topic""#);
}
