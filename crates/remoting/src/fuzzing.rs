//! Decoder invariants shared by the cargo-fuzz targets (`decode_frame`, `decode_header`) and the
//! corpus test.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use rmq_common::header::send::SendMessageResponseHeader;
use rmq_common::{CommandHeader, ExtFields, LanguageCode};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;
use crate::{header_binary, header_json, header_json_fast};

/// The frame limit used by [`check_decode`]: small, so the fuzzer reaches the limit checks.
pub const FUZZ_MAX_FRAME_LENGTH: usize = 64 * 1024;

/// Runs the frame decoder over `bytes` and panics if an invariant breaks:
///
/// 1. decoding never panics;
/// 2. an incomplete frame (`Ok(None)`) consumes nothing;
/// 3. a decoded frame consumes exactly the frame its length field declares, and that frame is
///    within the limit;
/// 4. the decoder never reserves room beyond the frame limit;
/// 5. a decoded command re-encodes to a frame that decodes to the same command;
/// 6. feeding the same bytes in two pieces (split at a point derived from the input) yields the
///    same commands and the same outcome.
///
/// # Panics
/// When an invariant does not hold (that is the point).
pub fn check_decode(bytes: &[u8]) {
    let whole = run(bytes, bytes.len());
    let split = bytes.first().map_or(0, |b| usize::from(*b) * 7 + 1) % (bytes.len() + 1);
    let pieces = run(bytes, split);
    assert_eq!(whole, pieces, "decoding depends on how the input is split");
}

/// Decodes `bytes`, delivering the first `first` bytes, then the rest; returns the commands and
/// whether decoding ended in an error.
fn run(bytes: &[u8], first: usize) -> (Vec<RemotingCommand>, bool) {
    let mut codec = RemotingCodec::with_max_frame_length(FUZZ_MAX_FRAME_LENGTH);
    let mut out = Vec::new();
    let mut buf = BytesMut::from(&bytes[..first]);
    let mut rest = &bytes[first..];
    loop {
        let before = buf.clone();
        let cap_before = buf.capacity();
        match codec.decode(&mut buf) {
            Ok(Some(cmd)) => {
                assert!(before.len() >= 4, "decoded without a length field");
                let declared =
                    u32::from_be_bytes([before[0], before[1], before[2], before[3]]) as usize;
                assert!(
                    declared + 4 <= FUZZ_MAX_FRAME_LENGTH,
                    "accepted a frame over the limit"
                );
                assert_eq!(
                    before.len() - buf.len(),
                    declared + 4,
                    "consumed something other than one declared frame"
                );
                assert_eq!(
                    &before[declared + 4..],
                    &buf[..],
                    "the remaining bytes changed"
                );
                check_round_trip(&cmd);
                out.push(cmd);
            }
            Ok(None) => {
                assert_eq!(before, buf, "an incomplete frame consumed bytes");
                assert!(
                    buf.capacity() <= cap_before.max(2 * FUZZ_MAX_FRAME_LENGTH),
                    "reserved {} bytes past the limit",
                    buf.capacity()
                );
                if rest.is_empty() {
                    return (out, false);
                }
                buf.extend_from_slice(rest);
                rest = &[];
            }
            Err(_) => return (out, true),
        }
    }
}

/// A decoded command must survive encode → decode unchanged, in its own serialization.
fn check_round_trip(cmd: &RemotingCommand) {
    let mut codec = RemotingCodec::with_max_frame_length(usize::MAX);
    let mut buf = BytesMut::new();
    if codec.encode(cmd, &mut buf).is_err() {
        // e.g. a ROCKETMQ header that grew when invalid UTF-8 was replaced past 24 bits
        return;
    }
    let back = codec
        .decode(&mut buf)
        .expect("re-encoded frame decodes")
        .expect("complete frame");
    assert_eq!(&back, cmd, "encode(decode(x)) changed the command");
    assert!(buf.is_empty());
}

/// Inputs up to this length always decode (ROCKETMQ) to a command that re-encodes: replacing
/// invalid UTF-8 at most triples a string, which keeps every key under `i16::MAX` bytes and the
/// header under the 24-bit limit.
const HEADER_ALWAYS_ENCODES: usize = 10_000;

/// Runs both header decoders (JSON and ROCKETMQ binary) over `bytes`, taken as one header, and
/// panics if an invariant breaks:
///
/// 1. decoding never panics, in either serialization;
/// 2. a decoded header re-encodes in its own serialization (JSON always; ROCKETMQ whenever the
///    input is at most `HEADER_ALWAYS_ENCODES` = 10 000 bytes), and that encoding decodes to the
///    same command with the same ext entries in the same order (duplicates included) and
///    re-encodes to the same bytes;
/// 3. a ROCKETMQ header carried over to JSON decodes to the same command, with the language
///    read as JSON can name it (an unnamed language code becomes `OTHER`);
/// 4. a JSON header carried over to ROCKETMQ (when it fits: codes and versions are `i16` there)
///    decodes to the same command under Java's "length 0 = null" rule: an empty remark is
///    absent, an empty key is skipped, an empty value removes its key;
/// 5. what the JSON fast path accepts, the full JSON decoder accepts too, with the same result.
///
/// Returns which decoders accepted the input (the corpus test checks both stay covered).
///
/// # Panics
/// When an invariant does not hold (that is the point).
pub fn check_header(bytes: &[u8]) -> HeaderDecoded {
    let header = Bytes::copy_from_slice(bytes);
    let mut decoded = HeaderDecoded::default();
    if let Some(fast) = header_json_fast::decode(&header) {
        let full = header_json::decode_full(&header);
        assert_eq!(
            full.as_ref().ok(),
            Some(&fast),
            "the JSON fast path disagrees with the full decoder"
        );
        if let Ok(full) = &full {
            assert_same(&fast, full, "the JSON fast path");
            // A send reply's header read from the fast path's entries (still the frame's text:
            // the known-key walk) and from the full decoder's (ordinary entries).
            assert_eq!(
                SendMessageResponseHeader::read_from(&fast.ext_fields),
                SendMessageResponseHeader::read_from(&full.ext_fields),
                "the send reply header read from the fast path's text"
            );
        }
        decoded.json_fast = true;
    }
    if let Ok(cmd) = header_json::decode(&header) {
        decoded.json = true;
        let json = json_round_trip(&cmd);
        assert_eq!(json, cmd, "JSON: decode(encode(h)) changed the header");
        let mut bin = BytesMut::new();
        if header_binary::encode(&cmd, &mut bin).is_ok() {
            let back = header_binary::decode(&bin.freeze()).expect("JSON header as ROCKETMQ");
            let want = java_nulls(&cmd);
            assert_same(&back, &want, "JSON header carried over to ROCKETMQ");
        }
    }
    if let Ok(cmd) = header_binary::decode(&header) {
        decoded.binary = true;
        match binary_round_trip(&cmd) {
            Some(back) => assert_same(&back, &cmd, "ROCKETMQ: decode(encode(h))"),
            None => assert!(
                bytes.len() > HEADER_ALWAYS_ENCODES,
                "a decoded ROCKETMQ header of {} bytes does not re-encode",
                bytes.len()
            ),
        }
        let json = json_round_trip(&cmd);
        let mut want = cmd.clone();
        if want.language.name().is_none() {
            want.language = LanguageCode::OTHER;
        }
        assert_same(&json, &want, "ROCKETMQ header carried over to JSON");
    }
    decoded
}

/// Which header decoders accepted an input of [`check_header`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderDecoded {
    /// The JSON decoder accepted it.
    pub json: bool,
    /// The ROCKETMQ binary decoder accepted it.
    pub binary: bool,
    /// The JSON fast path accepted it (and agreed with the full JSON decoder).
    pub json_fast: bool,
}

/// JSON-encodes `cmd`'s header, decodes it, checks the second encoding is byte-identical.
fn json_round_trip(cmd: &RemotingCommand) -> RemotingCommand {
    let mut first = BytesMut::new();
    header_json::encode(cmd, &mut first);
    let first = first.freeze();
    let back = header_json::decode(&first).unwrap_or_else(|e| {
        panic!(
            "the JSON encoder wrote a header its decoder rejects ({e}): {:?}",
            String::from_utf8_lossy(&first)
        )
    });
    let mut second = BytesMut::new();
    header_json::encode(&back, &mut second);
    assert_eq!(first, second.freeze(), "JSON: encoding is not stable");
    back
}

/// ROCKETMQ-encodes `cmd`'s header (`None` when it does not fit), decodes it, checks the second
/// encoding is byte-identical.
fn binary_round_trip(cmd: &RemotingCommand) -> Option<RemotingCommand> {
    let mut first = BytesMut::new();
    header_binary::encode(cmd, &mut first).ok()?;
    let first = first.freeze();
    let back = header_binary::decode(&first).unwrap_or_else(|e| {
        panic!("the ROCKETMQ encoder wrote a header its decoder rejects ({e}): {first:?}")
    });
    let mut second = BytesMut::new();
    header_binary::encode(&back, &mut second).expect("a re-decoded header re-encodes");
    assert_eq!(first, second.freeze(), "ROCKETMQ: encoding is not stable");
    Some(back)
}

/// Equal commands with the same raw ext entries (order and duplicates included).
fn assert_same(got: &RemotingCommand, want: &RemotingCommand, what: &str) {
    assert_eq!(got, want, "{what} changed the header");
    let entries = |c: &RemotingCommand| c.ext_fields.entries().collect::<Vec<_>>();
    assert_eq!(
        entries(got),
        entries(want),
        "{what} changed the ext entries"
    );
}

/// `cmd` as the ROCKETMQ decoder reads it back: Java's "length 0 = null" rule applied.
fn java_nulls(cmd: &RemotingCommand) -> RemotingCommand {
    let mut out = cmd.clone();
    out.remark = cmd.remark.clone().filter(|r| !r.is_empty());
    let mut ext = ExtFields::new();
    for (k, v) in cmd.ext_fields.iter() {
        if k.is_empty() {
            continue;
        }
        if v.is_empty() {
            ext.remove(k);
        } else {
            ext.push(ByteString::from(k), ByteString::from(v));
        }
    }
    out.ext_fields = ext;
    out
}
