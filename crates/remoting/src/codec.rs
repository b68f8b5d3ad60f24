//! [`RemotingCodec`]: the frame codec for tokio-util's `Framed`, `FramedRead` and `FramedWrite`.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::{DecodeError, EncodeError};

/// Java's `FRAME_MAX_LENGTH` default: 16 MiB, compared against `length field + 4`.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 16 * 1024 * 1024;

/// The most room one decode call reserves beyond what is buffered for an incomplete frame: the
/// buffer grows with the bytes that actually arrive, not with what a length field announces.
const RESERVE_STEP: usize = 64 * 1024;

/// Encodes and decodes whole frames, with a maximum frame length.
///
/// Following Netty's `LengthFieldBasedFrameDecoder` as Java configures it, a frame is accepted
/// when `length field + 4 <= max_frame_length`. An oversize frame, a length field shorter than
/// the header-length word, an unknown serialize type, or a header longer than the frame is an
/// error as soon as the first 4 (or 8) bytes are there, before any room is reserved for it.
/// An incomplete frame consumes nothing, and reserves room for at most 64 KiB more of it per
/// call: four bytes from a peer cannot make a connection hold 16 MiB.
///
/// ```
/// use bytes::BytesMut;
/// use rmq_common::{ExtFields, RequestCode};
/// use rmq_remoting::{RemotingCodec, RemotingCommand};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = RemotingCodec::new();
/// let mut buf = BytesMut::new();
/// let req = RemotingCommand::request(RequestCode::HEART_BEAT, ExtFields::new());
/// codec.encode(&req, &mut buf).unwrap();
/// let mut partial = buf.split_to(5);
/// assert!(codec.decode(&mut partial).unwrap().is_none());
/// assert_eq!(partial.len(), 5); // nothing consumed
/// partial.unsplit(buf);
/// assert_eq!(codec.decode(&mut partial).unwrap(), Some(req));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RemotingCodec {
    max_frame_length: usize,
}

impl Default for RemotingCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl RemotingCodec {
    /// A codec with the 16 MiB default limit.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
        }
    }

    /// A codec accepting frames whose `length field + 4` is at most `max` bytes.
    #[must_use]
    pub const fn with_max_frame_length(max: usize) -> Self {
        Self {
            max_frame_length: max,
        }
    }

    /// The limit.
    #[must_use]
    pub const fn max_frame_length(&self) -> usize {
        self.max_frame_length
    }

    /// Checks what can be checked of the frame at the start of `src` without consuming it.
    /// Returns the whole frame length (prefix included) once the length field is there.
    pub(crate) fn check_prefix(&self, src: &[u8]) -> Result<Option<usize>, DecodeError> {
        let Some(len_bytes) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        let total = u64::from(len) + 4;
        if total > self.max_frame_length as u64 || len > i32::MAX as u32 {
            return Err(DecodeError::FrameTooLarge {
                len: total,
                max: self.max_frame_length,
            });
        }
        if len < 4 {
            return Err(DecodeError::FrameTooShort { len });
        }
        if let Some(w) = src.get(4..8) {
            let kind = w[0];
            if SerializeType::from_code(kind).is_none() {
                return Err(DecodeError::UnknownSerializeType(kind));
            }
            let header_len = u32::from_be_bytes([0, w[1], w[2], w[3]]) as usize;
            let available = len as usize - 4;
            if header_len > available {
                return Err(DecodeError::HeaderTooLong {
                    header_len,
                    available,
                });
            }
        }
        // total <= max_frame_length, which is a usize.
        Ok(Some(total as usize))
    }
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, DecodeError> {
        let Some(total) = self.check_prefix(src)? else {
            return Ok(None);
        };
        if src.len() < total {
            // Grow in steps with what arrives (and never past the frame, which is within
            // max_frame_length, checked above).
            src.reserve((total - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        let mut frame = src.split_to(total).freeze();
        frame.advance(4);
        RemotingCommand::decode(frame).map(Some)
    }

    /// At the end of the stream, bytes of an unfinished frame are
    /// [`DecodeError::Truncated`] (tokio-util's default is an anonymous I/O error).
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, DecodeError> {
        if let Some(cmd) = self.decode(src)? {
            return Ok(Some(cmd));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let expected = self.check_prefix(src)?.unwrap_or(4);
        Err(DecodeError::Truncated {
            received: src.len(),
            expected,
        })
    }
}

impl Encoder<&RemotingCommand> for RemotingCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: &RemotingCommand, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        item.encode_head(dst)?;
        let len = dst.len() - start + item.body.len();
        if len > self.max_frame_length {
            dst.truncate(start);
            return Err(EncodeError::FrameTooLarge {
                len,
                max: self.max_frame_length,
            });
        }
        dst.extend_from_slice(&item.body);
        Ok(())
    }
}

impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = EncodeError;

    fn encode(&mut self, item: RemotingCommand, dst: &mut BytesMut) -> Result<(), EncodeError> {
        Encoder::<&RemotingCommand>::encode(self, &item, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(b: &[u8]) -> BytesMut {
        BytesMut::from(b)
    }

    #[test]
    fn oversize_is_rejected_before_reserving() {
        let mut c = RemotingCodec::with_max_frame_length(1024);
        // length 1021 + 4 = 1025 > 1024
        let mut b = buf(&[0, 0, 0x03, 0xFD]);
        let cap = b.capacity();
        assert!(matches!(
            c.decode(&mut b),
            Err(DecodeError::FrameTooLarge {
                len: 1025,
                max: 1024
            })
        ));
        assert_eq!(b.capacity(), cap);
        // length 1020 + 4 = 1024 is allowed (Java's rule) and reserves at most the frame
        let mut b = buf(&[0, 0, 0x03, 0xFC]);
        assert!(c.decode(&mut b).unwrap().is_none());
        assert_eq!(b.len(), 4);
        assert!(b.capacity() <= 1024 * 2);
        // negative as a Java int
        let mut b = buf(&[0x80, 0, 0, 0]);
        assert!(RemotingCodec::new().decode(&mut b).is_err());
    }

    #[test]
    fn a_length_field_alone_reserves_one_step_not_the_frame() {
        let mut c = RemotingCodec::new();
        // announces 16 MiB - 4 (the largest allowed frame)
        let len = u32::try_from(DEFAULT_MAX_FRAME_LENGTH - 4).unwrap();
        let mut b = buf(&len.to_be_bytes());
        assert!(c.decode(&mut b).unwrap().is_none());
        assert_eq!(b.len(), 4);
        assert!(
            b.capacity() <= 2 * (4 + RESERVE_STEP),
            "reserved {} bytes for 4 received",
            b.capacity()
        );
        // with more of the frame buffered, one call still adds at most a step
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&vec![0u8; 200 * 1024]);
        let before = b.len();
        assert!(c.decode(&mut b).unwrap().is_none());
        assert_eq!(b.len(), before);
        assert!(b.capacity() <= 2 * (before + RESERVE_STEP));
        assert!(b.capacity() < DEFAULT_MAX_FRAME_LENGTH / 4);
    }

    #[test]
    fn a_frame_arriving_in_pieces_decodes() {
        let mut c = RemotingCodec::new();
        let cmd = RemotingCommand::request(rmq_common::RequestCode::HEART_BEAT, Default::default())
            .with_body(vec![9u8; 300 * 1024]);
        let mut whole = BytesMut::new();
        c.encode(&cmd, &mut whole).unwrap();
        let mut b = BytesMut::new();
        let mut decoded = None;
        for piece in whole.chunks(10_000) {
            b.extend_from_slice(piece);
            if let Some(d) = c.decode(&mut b).unwrap() {
                decoded = Some(d);
            }
        }
        assert_eq!(decoded, Some(cmd));
        assert!(b.is_empty());
    }

    #[test]
    fn inconsistent_frames() {
        let mut c = RemotingCodec::new();
        assert!(matches!(
            c.decode(&mut buf(&[0, 0, 0, 3, 0, 0, 0])),
            Err(DecodeError::FrameTooShort { len: 3 })
        ));
        assert!(matches!(
            c.decode(&mut buf(&[0, 0, 0, 8, 2, 0, 0, 0])),
            Err(DecodeError::UnknownSerializeType(2))
        ));
        assert!(matches!(
            c.decode(&mut buf(&[0, 0, 0, 8, 0, 0, 0, 5])),
            Err(DecodeError::HeaderTooLong {
                header_len: 5,
                available: 4
            })
        ));
        // header length word masked to 24 bits: type 1, length 0 -> binary header too short
        assert!(matches!(
            c.decode(&mut buf(&[0, 0, 0, 4, 1, 0, 0, 0])),
            Err(DecodeError::Binary(_))
        ));
    }

    #[test]
    fn the_end_of_the_stream_inside_a_frame_is_truncated() {
        let mut c = RemotingCodec::new();
        let mut whole = BytesMut::new();
        let cmd = RemotingCommand::request(rmq_common::RequestCode::HEART_BEAT, Default::default());
        c.encode(&cmd, &mut whole).unwrap();
        let total = whole.len();
        let mut cut = buf(&whole[..total - 1]);
        assert!(matches!(
            c.decode_eof(&mut cut),
            Err(DecodeError::Truncated { received, expected })
                if received == total - 1 && expected == total
        ));
        assert!(matches!(
            c.decode_eof(&mut buf(&[0, 0])),
            Err(DecodeError::Truncated {
                received: 2,
                expected: 4
            })
        ));
        assert!(c.decode_eof(&mut BytesMut::new()).unwrap().is_none());
        assert_eq!(c.decode_eof(&mut whole).unwrap(), Some(cmd));
    }

    #[test]
    fn encoder_enforces_limit() {
        let mut c = RemotingCodec::with_max_frame_length(64);
        let cmd = RemotingCommand::request(rmq_common::RequestCode::HEART_BEAT, Default::default())
            .with_body(vec![0u8; 100]);
        let mut dst = BytesMut::new();
        assert!(matches!(
            c.encode(&cmd, &mut dst),
            Err(EncodeError::FrameTooLarge { .. })
        ));
        assert!(dst.is_empty());
    }
}
