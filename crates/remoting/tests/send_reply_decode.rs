//! A send reply read end to end: the frame decoded (JSON fast path or full decoder), then its
//! typed header (`SendMessageResponseHeader::read_from`), for the captured real-server replies
//! and for replies with missing, extra, reordered, repeated or escaped fields.

use bytes::BytesMut;
use rmq_common::header::send::SendMessageResponseHeader;
use rmq_common::{CommandHeader, ExtFields, HeaderError};
use rmq_remoting::{RemotingCodec, RemotingCommand};
use tokio_util::codec::Decoder;

mod common;
use common::fixture;

/// A JSON frame whose header is `header` (no body).
fn frame(header: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    let len = u32::try_from(header.len()).expect("short header");
    buf.extend_from_slice(&(4 + len).to_be_bytes());
    buf.extend_from_slice(&len.to_be_bytes()); // high byte 0: JSON
    buf.extend_from_slice(header);
    buf
}

fn decode(mut buf: BytesMut) -> Option<RemotingCommand> {
    RemotingCodec::new().decode(&mut buf).ok().flatten()
}

/// A reply header with these ext fields (`ext` is the object's inside, as written).
fn reply(ext: &str) -> String {
    format!(
        r#"{{"code":0,"language":"JAVA","version":475,"opaque":7,"flag":1,"remark":null,"extFields":{{{ext}}},"serializeTypeCurrentRPC":"JSON"}}"#
    )
}

/// The typed header read from the decoded ext fields, checked against the same fields read
/// as an ordinary (owned) map.
fn read(ext: &str) -> Result<SendMessageResponseHeader, HeaderError> {
    let cmd = decode(frame(reply(ext).as_bytes())).unwrap_or_else(|| panic!("decodes: {ext}"));
    let owned: ExtFields = {
        let mut o = ExtFields::new();
        for (k, v) in cmd.ext_fields.iter() {
            o.push(k.into(), v.into());
        }
        o
    };
    let got = SendMessageResponseHeader::read_from(&cmd.ext_fields);
    assert_eq!(got, SendMessageResponseHeader::read_from(&owned), "{ext}");
    got
}

#[test]
fn captured_real_server_replies_read_into_the_typed_header() {
    for name in ["send_v2_json.resp.hex", "send_v2_rocketmq.resp.hex"] {
        let cmd = decode(BytesMut::from(&fixture(name)[..])).expect(name);
        let h = SendMessageResponseHeader::read_from(&cmd.ext_fields).expect(name);
        assert_eq!(h.msg_id.len(), 32, "{name}");
        assert_eq!(h.queue_id, 0, "{name}");
        assert_eq!(
            h.transaction_id.as_deref(),
            Some("7F0000010F2C18B4AAC2000000000000"),
            "{name}"
        );
        assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"), "{name}");
        assert_eq!(h.trace_on, Some(true), "{name}");
        assert_eq!((h.batch_uniq_id, h.recall_handle), (None, None), "{name}");
    }
}

#[test]
fn fields_in_any_order_with_extra_and_repeated_ones() {
    let want = SendMessageResponseHeader {
        msg_id: "AB".into(),
        queue_id: 3,
        queue_offset: -9,
        region_id: Some("r".into()),
        trace_on: Some(false),
        ..Default::default()
    };
    for ext in [
        r#""msgId":"AB","queueId":"3","queueOffset":"-9","MSG_REGION":"r","TRACE_ON":"false""#,
        r#""TRACE_ON":"false","MSG_REGION":"r","queueOffset":"-9","queueId":"3","msgId":"AB""#,
        r#""x":"1","queueOffset":"-9","y":"","msgId":"AB","queueId":"3","MSG_REGION":"r","TRACE_ON":"false","zé":"é""#,
        r#""msgId":"old","queueId":"0","queueOffset":"-9","MSG_REGION":"r","TRACE_ON":"false","msgId":"AB","queueId":"3""#,
        // Escapes and spaces: the full decoder's path, same answer.
        r#""msgId":"A\u0042","queueId" : "3","queueOffset":"-9","MSG_REGION":"\u0072","TRACE_ON":"false""#,
        // Numbers and a boolean as JSON writes them, not as strings: the full decoder's path.
        r#""msgId":"AB","queueId":3,"queueOffset":-9,"MSG_REGION":"r","TRACE_ON":false"#,
    ] {
        assert_eq!(read(ext), Ok(want.clone()), "{ext}");
    }
    let escaped =
        read(r#""msgId":"a\"b\\c\n","queueId":"1","queueOffset":"2","transactionId":"t\/x""#)
            .expect("escaped");
    assert_eq!(escaped.msg_id, "a\"b\\c\n");
    assert_eq!(escaped.transaction_id.as_deref(), Some("t/x"));
}

#[test]
fn many_fields_around_the_wanted_ones_read_back() {
    for extra in 0..16 {
        let mut ext: Vec<String> = (0..extra).map(|i| format!(r#""e{i}":"{i}""#)).collect();
        ext.insert(extra / 2, r#""msgId":"M""#.to_owned());
        ext.push(r#""queueId":"5","queueOffset":"6","recallHandle":"h""#.to_owned());
        let h = read(&ext.join(",")).expect("reads");
        assert_eq!((h.msg_id.as_str(), h.queue_id, h.queue_offset), ("M", 5, 6));
        assert_eq!(h.recall_handle.as_deref(), Some("h"), "{extra}");
    }
}

#[test]
fn missing_or_malformed_fields_are_typed_errors() {
    let missing = |field| Err(HeaderError::Missing { field });
    assert_eq!(read(r#""queueId":"1","queueOffset":"2""#), missing("msgId"));
    assert_eq!(read(r#""msgId":"X","queueOffset":"2""#), missing("queueId"));
    assert_eq!(read(r#""msgId":"X","queueId":"1""#), missing("queueOffset"));
    assert_eq!(read(""), missing("msgId"));
    assert_eq!(
        read(r#""msgId":"X","queueId":"1","queueOffset":"2e3""#),
        Err(HeaderError::Invalid {
            field: "queueOffset",
            value: "2e3".into(),
            expected: "i64",
        })
    );
    assert_eq!(
        read(r#""msgId":"X","queueId":"99999999999","queueOffset":"2""#),
        Err(HeaderError::Invalid {
            field: "queueId",
            value: "99999999999".into(),
            expected: "i32",
        })
    );
}

/// Every byte of a reply replaced by a few troublesome ones: decoding and reading answer
/// (a command or an error, a header or a typed error) and never panic.
#[test]
fn damaged_replies_never_panic() {
    let good = reply(r#""msgId":"AB","queueId":"3","queueOffset":"9","MSG_REGION":"r""#);
    let mut decoded = 0;
    for at in 0..good.len() {
        for b in [b'"', b'\\', b'}', b',', b':', 0x1F, 0xC3, b'a'] {
            let mut bytes = good.clone().into_bytes();
            bytes[at] = b;
            if let Some(cmd) = decode(frame(&bytes)) {
                decoded += 1;
                let _ = SendMessageResponseHeader::read_from(&cmd.ext_fields);
            }
        }
    }
    assert!(decoded > 0);
}
