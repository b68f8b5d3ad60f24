//! LZ4 bodies in the LZ4 frame format, written exactly as lz4-java's
//! `LZ4FrameOutputStream(out)` writes them (Java's `Lz4Compressor`).
//!
//! ```text
//! magic 04 22 4D 18 | FLG 0x60 | BD 0x70 | HC 0x73 |
//! { size u32 LE (bit 31: stored raw) | block } ... | end mark 00 00 00 00
//! ```
//!
//! FLG 0x60 is version 1 with independent blocks and nothing else (no block checksums, no
//! content size, no content checksum); BD 0x70 is the 4 MiB maximum block size; HC is the
//! second byte of the xxHash32 of FLG and BD. A block whose compressed form is not smaller is
//! stored raw, as lz4-java does. Reading takes any valid frame (checksums, linked blocks,
//! content size, several frames).

use super::{read_limited, CompressionError, CompressionType, ReadLimited};

/// The frame magic number, little-endian.
const MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];
/// FLG: version 01, block independence.
const FLG: u8 = 0x60;
/// BD: maximum block size 4 MiB (indicator 7).
const BD: u8 = 0x70;
/// HC: `(xxh32([FLG, BD], seed 0) >> 8) & 0xFF`.
const HC: u8 = 0x73;
/// Largest uncompressed block.
const MAX_BLOCK: usize = 4 << 20;
/// Bit 31 of a block size: the block is stored uncompressed.
const RAW_BLOCK: u32 = 0x8000_0000;

/// `data` as one LZ4 frame.
pub(super) fn compress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 32);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[FLG, BD, HC]);
    for chunk in data.chunks(MAX_BLOCK) {
        let packed = lz4_flex::block::compress(chunk);
        // A chunk is at most 4 MiB: its length fits in the 31 bits of the size word.
        let len = |b: &[u8]| u32::try_from(b.len()).unwrap_or(u32::MAX >> 1);
        let (word, body) = if packed.len() < chunk.len() {
            (len(&packed), packed.as_slice())
        } else {
            (len(chunk) | RAW_BLOCK, chunk)
        };
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(body);
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// The content of the LZ4 frame(s) in `data`, at most `limit` bytes.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    read_limited(lz4_flex::frame::FrameDecoder::new(data), data.len(), limit).map_err(|e| match e {
        ReadLimited::Io(source) => CompressionError::CorruptFrame {
            ty: CompressionType::Lz4,
            source,
        },
        ReadLimited::TooLarge => CompressionError::TooLarge { limit },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_lz4_java_default_and_matches_lz4_flex() {
        // lz4_flex's own encoder with lz4-java's default settings writes the same descriptor,
        // so HC is the right xxHash byte.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max4MB)
            .block_mode(lz4_flex::frame::BlockMode::Independent);
        let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        std::io::Write::write_all(&mut enc, b"x").expect("write");
        let theirs = enc.finish().expect("finish");
        let ours = compress(b"x");
        assert_eq!(&ours[..7], &theirs[..7]);
        assert_eq!(&ours[..7], &[0x04, 0x22, 0x4D, 0x18, 0x60, 0x70, 0x73]);
        assert_eq!(ours, theirs, "one raw block and the end mark");
    }

    #[test]
    fn blocks_split_at_4_mib_and_round_trip() {
        // A first block of zeros (compresses), a second of noise (stored raw).
        let mut data = vec![0u8; MAX_BLOCK + 1000];
        let mut x: u32 = 0x9E37_79B9;
        for b in &mut data[MAX_BLOCK..] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x.to_le_bytes()[0];
        }
        let z = compress(&data);
        let first = u32::from_le_bytes([z[7], z[8], z[9], z[10]]);
        assert!(first & RAW_BLOCK == 0 && (first as usize) < MAX_BLOCK);
        let at = 11 + first as usize;
        let second = u32::from_le_bytes([z[at], z[at + 1], z[at + 2], z[at + 3]]);
        assert_eq!(second, 1000 | RAW_BLOCK);
        assert_eq!(z.len(), at + 4 + 1000 + 4);
        assert_eq!(decompress(&z, data.len()).expect("decode"), data);
        assert!(matches!(
            decompress(&z, data.len() - 1),
            Err(CompressionError::TooLarge { .. })
        ));
    }

    #[test]
    fn incompressible_blocks_are_stored_raw_and_empty_input_is_a_bare_frame() {
        let z = compress(b"abc");
        assert_eq!(
            z,
            [4, 0x22, 0x4D, 0x18, 0x60, 0x70, 0x73, 3, 0, 0, 0x80, b'a', b'b', b'c', 0, 0, 0, 0]
        );
        let empty = compress(b"");
        assert_eq!(empty, [4, 0x22, 0x4D, 0x18, 0x60, 0x70, 0x73, 0, 0, 0, 0]);
        assert_eq!(decompress(&empty, 0).expect("empty"), b"");
        assert!(matches!(
            decompress(b"not lz4", 100),
            Err(CompressionError::CorruptFrame { .. })
        ));
    }
}
