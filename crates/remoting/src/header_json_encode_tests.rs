//! The encoder's staged paths (escapes gathered on the stack, entries gathered on the stack)
//! against a byte-at-a-time reference of fastjson's escaping: every position, every control
//! character, non-ASCII text, and lengths around the stage's size.

use bytes::BytesMut;
use proptest::prelude::*;
use rmq_common::{ExtFields, RequestCode};

use super::*;
use crate::command::RemotingCommand;

/// fastjson's escaping, one byte at a time (the reference).
fn reference(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn put(s: &str) -> String {
    let mut b = BytesMut::new();
    put_str(&mut b, s);
    String::from_utf8(b.to_vec()).expect("UTF-8")
}

#[test]
fn every_control_character_at_every_position_and_run_length() {
    for c in (0u8..0x20).chain([b'"', b'\\']) {
        let special = char::from(c);
        for len in [1, 2, 7, 8, 9, 21, 22, 23, 64, 127, 128, 129, 200, 300] {
            for at in [0, 1, len / 2, len - 1] {
                let s: String = (0..len)
                    .map(|i| if i == at { special } else { 'x' })
                    .collect();
                assert_eq!(put(&s), reference(&s), "{c:#x} at {at} of {len}");
            }
        }
    }
}

#[test]
fn strings_that_are_all_escapes_cross_the_stage_at_every_offset() {
    // 1 to 200 escapes of 2 or 6 bytes each: the stage (128 bytes) fills at every alignment.
    for n in 1..200 {
        for unit in ["\u{1}", "\"", "\u{1}a", "ab\u{2}", "é\u{1f}"] {
            let s = unit.repeat(n);
            assert_eq!(put(&s), reference(&s), "{unit:?} x {n}");
        }
    }
    // a long clean run after an escape (larger than the stage)
    let s = format!("\u{1}{}\u{2}{}", "y".repeat(500), "z".repeat(3));
    assert_eq!(put(&s), reference(&s));
}

#[test]
fn properties_like_a_producer_sends() {
    let s =
        "TAGS\u{1}TagA\u{2}UNIQ_KEY\u{1}7F0000010F2C18B4AAC2000000000000\u{2}WAIT\u{1}true\u{2}";
    assert_eq!(put(s), reference(s));
    assert_eq!(
        put("KEYS\u{1}k\u{2}"),
        "\"KEYS\\u0001k\\u0002\"",
        "uppercase hex, as fastjson"
    );
}

/// The `extFields` object as the reference writes it.
fn reference_entries(entries: &[(String, String)]) -> String {
    let members: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}:{}", reference(k), reference(v)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn header_ext(entries: &[(String, String)]) -> String {
    let mut ext = ExtFields::new();
    for (k, v) in entries {
        ext.push(k.as_str().into(), v.as_str().into());
    }
    let cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2, ext);
    let mut b = BytesMut::new();
    encode(&cmd, &mut b);
    let text = String::from_utf8(b.to_vec()).expect("UTF-8");
    let start = text.find("\"extFields\":").expect("has ext") + "\"extFields\":".len();
    let end = text.find(",\"flag\":").expect("has flag");
    text[start..end].to_owned()
}

#[test]
fn entries_clean_escaped_long_and_many_are_written_as_the_reference() {
    let long = "v".repeat(300);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("a", "1")],
        vec![("key", "value")],
        vec![("a", "\u{1}"), ("b", "2")],
        vec![("a", "1"), ("q\"k", "2"), ("c", "3")],
        vec![("long", long.as_str()), ("a", "1")],
        vec![("a", "1"), ("long", long.as_str())],
        vec![("é", "ü€😀"), ("", "")],
    ];
    for case in cases {
        let entries: Vec<(String, String)> = case
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(
            header_ext(&entries),
            reference_entries(&entries),
            "{case:?}"
        );
    }
    // enough entries to flush the stage (256 bytes) at many offsets
    for n in 1..80 {
        let entries: Vec<(String, String)> = (0..n)
            .map(|i| (format!("k{i}"), "x".repeat(i % 17)))
            .collect();
        assert_eq!(header_ext(&entries), reference_entries(&entries), "{n}");
    }
}

#[test]
fn entries_after_pre_encoded_ones_get_their_comma() {
    let mut b = crate::EncodedExtFields::builder(0);
    b.str("a", "1");
    let mut cmd = RemotingCommand::request_encoded(RequestCode::SEND_MESSAGE_V2, b.build());
    cmd.ext_fields.push("b".into(), "2".into());
    cmd.ext_fields.push("c\u{1}".into(), "3".into());
    let mut out = BytesMut::new();
    encode(&cmd, &mut out);
    let text = String::from_utf8(out.to_vec()).expect("UTF-8");
    assert!(
        text.contains(r#""extFields":{"a":"1","b":"2","c\u0001":"3"}"#),
        "{text}"
    );
}

proptest! {
    #[test]
    fn any_string_is_escaped_as_the_reference(s in any::<String>()) {
        prop_assert_eq!(put(&s), reference(&s));
    }

    #[test]
    fn control_heavy_strings_are_escaped_as_the_reference(
        s in proptest::collection::vec(prop_oneof![Just('\u{1}'), Just('"'), Just('a'), Just('é'), Just('\n')], 0..400)
    ) {
        let s: String = s.into_iter().collect();
        prop_assert_eq!(put(&s), reference(&s));
    }

    #[test]
    fn any_entries_are_written_as_the_reference(
        entries in proptest::collection::vec((".{0,12}", ".{0,40}"), 0..20)
    ) {
        prop_assume!(!entries.is_empty());
        prop_assert_eq!(header_ext(&entries), reference_entries(&entries));
    }
}
