//! The JSON header decoder over the headers captured from a real server and many damaged
//! variants of them: the fast path and the full decoder agree (same command, same ext entries
//! in the same order), nothing panics, and malformed input is a typed error.

use bytes::{Bytes, BytesMut};
use rmq_remoting::fuzzing::check_header;
use rmq_remoting::{DecodeError, RemotingCodec, RemotingCommand};
use tokio_util::codec::Decoder;

mod common;
use common::fixture;

/// The JSON header of a whole frame.
fn json_header(frame: &[u8]) -> &[u8] {
    assert_eq!(frame[4], 0, "a JSON header");
    let len = u32::from_be_bytes([0, frame[5], frame[6], frame[7]]) as usize;
    &frame[8..8 + len]
}

const RESPONSES: [&str; 5] = [
    "send_v2_json.resp.hex",
    "heartbeat_json.resp.hex",
    "route_tbw102_json.resp.hex",
    "route_unknown_topic_json.resp.hex",
    "send_v2_rocketmq.resp.hex",
];

#[test]
fn captured_headers_take_the_fast_path() {
    for name in RESPONSES {
        let frame = fixture(name);
        let decoded = check_header(json_header(&frame));
        assert!(decoded.json && decoded.json_fast, "{name}: {decoded:?}");
    }
}

#[test]
fn damaged_headers_never_panic_and_both_paths_agree() {
    // Bytes that change the shape: quotes, escapes, control and non-ASCII bytes, structure,
    // a `null`'s first letter, whitespace.
    const INTO: [u8; 12] = [
        b'"', b'\\', 0x01, 0xC3, 0xFF, b'}', b'{', b',', b':', b'n', b' ', b'0',
    ];
    let mut fast = 0;
    for name in ["send_v2_json.resp.hex", "route_unknown_topic_json.resp.hex"] {
        let frame = fixture(name);
        let header = json_header(&frame).to_vec();
        for cut in 0..header.len() {
            check_header(&header[..cut]);
        }
        for at in 0..header.len() {
            for b in INTO {
                let mut h = header.clone();
                h[at] = b;
                if check_header(&h).json_fast {
                    fast += 1;
                }
                h.insert(at, b);
                check_header(&h);
            }
        }
    }
    // Some damage keeps the common shape (a digit for a digit, a letter inside a string).
    assert!(fast > 100, "{fast} damaged headers took the fast path");
}

#[test]
fn malformed_headers_are_typed_errors() {
    for header in [
        &br#"{"code":0,"extFields":{"msgId":"AB""#[..],
        br#"{"code":0,"extFields":{"msgId":AB}}"#,
        br#"{"code":"0"}"#,
        b"{\"remark\":\"\xFF\"}",
        br#"{"code":0}}"#,
        b"",
    ] {
        let mut frame = BytesMut::new();
        let len = u32::try_from(4 + header.len()).unwrap();
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&u32::try_from(header.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(header);
        let got = RemotingCodec::new().decode(&mut frame);
        assert!(
            matches!(got, Err(DecodeError::Json(_))),
            "{:?}: {got:?}",
            String::from_utf8_lossy(header)
        );
    }
}

#[test]
fn a_captured_reply_split_anywhere_decodes_the_same() {
    let frame = fixture("send_v2_json.resp.hex");
    let whole = RemotingCommand::decode(Bytes::copy_from_slice(&frame[4..])).expect("decodes");
    assert_eq!(whole.ext_fields.get("queueOffset"), Some("0"));
    assert_eq!(whole.remark, None);
    // Two frames back to back, cut at every pair of points (as reads may deliver them).
    let two: Vec<u8> = [frame.clone(), frame.clone()].concat();
    for a in 0..two.len() {
        for b in (a..two.len()).step_by(7) {
            let mut codec = RemotingCodec::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in [&two[..a], &two[a..b], &two[b..]] {
                buf.extend_from_slice(piece);
                while let Some(cmd) = codec.decode(&mut buf).expect("valid frames") {
                    got.push(cmd);
                }
            }
            assert_eq!(got, [whole.clone(), whole.clone()], "cut at {a}, {b}");
            for cmd in &got {
                assert!(cmd.ext_fields.iter().eq(whole.ext_fields.iter()));
            }
        }
    }
}
