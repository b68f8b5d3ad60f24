//! Decoder invariants shared by the cargo-fuzz target `decode_frame` and the corpus test.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;

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
