//! Zstandard bodies, written as zstd-jni's `ZstdOutputStream(out, level)` writes them in
//! Java's `ZstdCompressor` (write, flush, close: one frame without content size or checksum,
//! its data blocks ended by the flush, then an empty last block). Reading takes any valid
//! frame (several frames too).

use std::io::Write;

use super::{read_limited, CompressionError, CompressionType, ReadLimited};

fn frame_error(source: std::io::Error) -> CompressionError {
    CompressionError::CorruptFrame {
        ty: CompressionType::Zstd,
        source,
    }
}

/// `data` as one zstd frame at `level` (at most 22).
pub(super) fn compress(data: &[u8], level: u32) -> Result<Vec<u8>, CompressionError> {
    let level = i32::try_from(level).unwrap_or(i32::MAX);
    let mut enc = ::zstd::stream::Encoder::new(Vec::with_capacity(data.len() / 2 + 32), level)
        .map_err(frame_error)?;
    enc.write_all(data).map_err(frame_error)?;
    // As Java: flush ends the data blocks, close (finish) adds the empty last block.
    enc.flush().map_err(frame_error)?;
    enc.finish().map_err(frame_error)
}

/// The content of the zstd frame(s) in `data`, at most `limit` bytes.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let dec = ::zstd::stream::read::Decoder::with_buffer(data).map_err(frame_error)?;
    read_limited(dec, data.len(), limit).map_err(|e| match e {
        ReadLimited::Io(source) => frame_error(source),
        ReadLimited::TooLarge => CompressionError::TooLarge { limit },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_has_no_content_size_and_ends_with_an_empty_last_block() {
        let z = compress(b"hello rocketmq", 5).expect("zstd");
        assert_eq!(&z[..4], &[0x28, 0xB5, 0x2F, 0xFD], "magic");
        assert_eq!(
            z[4], 0x00,
            "frame header: no content size, no checksum, windowed"
        );
        assert_eq!(
            &z[z.len() - 3..],
            &[0x01, 0x00, 0x00],
            "empty last raw block"
        );
        assert_eq!(decompress(&z, 14).expect("decode"), b"hello rocketmq");
    }

    #[test]
    fn limit_and_corrupt_input() {
        let z = compress(&[7u8; 10_000], 22).expect("zstd");
        assert!(matches!(
            decompress(&z, 9_999),
            Err(CompressionError::TooLarge { limit: 9_999 })
        ));
        assert_eq!(decompress(&z, 10_000).expect("fits").len(), 10_000);
        assert!(matches!(
            decompress(b"definitely not zstd", 100),
            Err(CompressionError::CorruptFrame { .. })
        ));
    }
}
