//! Property tests: header round trips in both serializations, and frame streams split at
//! random points decode to the same list; pre-encoded ext fields give the same frames.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rmq_common::{ExtFields, LanguageCode};
use rmq_remoting::{EncodedExtFields, RemotingCodec, RemotingCommand, SerializeType};
use tokio_util::codec::{Decoder, Encoder};

/// Strings including the characters that need escaping in JSON and multi-byte UTF-8.
fn text(min: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => Just('\u{1}'),
            1 => Just('\u{2}'),
            1 => Just('"'),
            1 => Just('\\'),
            1 => Just('\n'),
            1 => Just('é'),
            1 => Just('中'),
            1 => Just('\u{1F600}'),
        ],
        min..16,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A command that both serializations can carry exactly. ROCKETMQ turns empty strings into
/// "absent", so remarks and values are non-empty; codes and versions fit an i16; languages are
/// the named ones (JSON writes names).
fn command() -> impl Strategy<Value = RemotingCommand> {
    (
        any::<i16>(),
        0u8..=13,
        any::<i16>(),
        any::<i32>(),
        any::<i32>(),
        proptest::option::of(text(1)),
        proptest::collection::btree_map(text(1), text(1), 0..8),
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(
            |(code, lang, version, opaque, flag, remark, ext, body, binary)| {
                let mut ext_fields = ExtFields::new();
                for (k, v) in ext {
                    ext_fields.insert(k, v);
                }
                RemotingCommand {
                    code: i32::from(code),
                    language: LanguageCode(lang),
                    version: i32::from(version),
                    opaque,
                    flag,
                    remark,
                    ext_fields,
                    encoded_ext: None,
                    body: Bytes::from(body),
                    serialize_type: if binary {
                        SerializeType::RocketMq
                    } else {
                        SerializeType::Json
                    },
                }
            },
        )
}

fn encode_all(cmds: &[RemotingCommand]) -> BytesMut {
    let mut codec = RemotingCodec::new();
    let mut buf = BytesMut::new();
    for c in cmds {
        codec.encode(c, &mut buf).expect("encodes");
    }
    buf
}

proptest! {
    /// The ext fields pre-encoded (`EncodedExtFields`, any split between the encoded part and
    /// the map) give the same frame as the map alone.
    #[test]
    fn pre_encoded_ext_fields_give_the_same_frame(cmd in command(), at in 0usize..9) {
        let entries: Vec<(String, String)> = cmd
            .ext_fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let at = at.min(entries.len());
        let mut b = EncodedExtFields::builder(0);
        for (k, v) in &entries[..at] {
            b.str(k, v);
        }
        let mut split = cmd.clone();
        split.ext_fields = entries[at..].iter().cloned().collect();
        split.encoded_ext = Some(b.build());
        let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
        cmd.encode(&mut want).unwrap();
        split.encode(&mut got).unwrap();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn header_round_trips(cmd in command()) {
        let mut buf = encode_all(std::slice::from_ref(&cmd));
        let back = RemotingCodec::new().decode(&mut buf).expect("decodes").expect("complete");
        prop_assert_eq!(back, cmd);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn json_round_trips_any_code_and_empty_strings(
        code in any::<i32>(), version in any::<i32>(), remark in proptest::option::of(text(0)),
        value in text(0),
    ) {
        let mut cmd = RemotingCommand::request(code.into(), [("k", value)].into_iter().collect());
        cmd.version = version;
        cmd.remark = remark;
        let mut buf = encode_all(std::slice::from_ref(&cmd));
        let back = RemotingCodec::new().decode(&mut buf).expect("decodes").expect("complete");
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn split_stream_decodes_to_the_same_list(
        cmds in proptest::collection::vec(command(), 0..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let stream = encode_all(&cmds).freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        points.dedup();

        let mut codec = RemotingCodec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for w in points.windows(2) {
            buf.extend_from_slice(&stream[w[0]..w[1]]);
            while let Some(cmd) = codec.decode(&mut buf).expect("valid stream") {
                out.push(cmd);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, cmds);
    }
}
