//! zlib compression of message bodies (Java's `ZlibCompressor`, PROTOCOL §4.4).
//!
//! Java wraps `java.util.zip.Deflater` in a `DeflaterOutputStream`: a zlib stream (2-byte
//! header, Adler-32 trailer), not raw deflate and not gzip.

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

/// The Java client's default level (`rocketmq.message.compressLevel`).
pub const DEFAULT_LEVEL: u32 = 5;

/// A body could not be decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The input is not a valid zlib stream.
    #[error("corrupt zlib stream")]
    Corrupt(#[source] std::io::Error),
    /// The output would exceed the limit.
    #[error("decompressed body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The compression type bits name an algorithm this crate does not implement (LZ4, ZSTD).
    #[error("unsupported compression type 0x{0:x}")]
    Unsupported(i32),
}

impl CompressionError {
    /// A copy (the I/O cause copied as its kind and text), for an error handed to several
    /// waiters.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Self::Corrupt(e) => Self::Corrupt(io(e)),
            Self::TooLarge { limit } => Self::TooLarge { limit: *limit },
            Self::Unsupported(ty) => Self::Unsupported(*ty),
        }
    }
}

/// Compresses `data` as a zlib stream at `level` (0–9; higher values are clamped to 9).
///
/// ```
/// use rmq_common::compression::{compress, decompress};
/// let z = compress(b"hello hello hello hello", 5);
/// assert_eq!(z[0], 0x78); // zlib header
/// assert_eq!(decompress(&z, 1024)?, b"hello hello hello hello");
/// # Ok::<(), rmq_common::compression::CompressionError>(())
/// ```
#[must_use]
pub fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 16),
        Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    let written = enc.write_all(data).and_then(|()| enc.finish());
    written.unwrap_or_else(|e| unreachable!("zlib into a Vec failed: {e}"))
}

/// Decompresses a zlib stream, refusing to produce more than `limit` bytes.
///
/// # Errors
/// [`CompressionError::Corrupt`] for an invalid stream, [`CompressionError::TooLarge`] when the
/// output would exceed `limit`.
pub fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(3).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    ZlibDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(CompressionError::Corrupt)?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_levels() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for level in [0, 1, 5, 9, 42] {
            let z = compress(&data, level);
            assert_eq!(
                decompress(&z, data.len()).expect("inflate"),
                data,
                "level {level}"
            );
        }
    }

    #[test]
    fn limit_is_enforced() {
        let z = compress(&[0u8; 4096], 9);
        assert!(matches!(
            decompress(&z, 4095),
            Err(CompressionError::TooLarge { limit: 4095 })
        ));
        assert_eq!(decompress(&z, 4096).expect("fits").len(), 4096);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        assert!(matches!(
            decompress(b"not zlib at all", 100),
            Err(CompressionError::Corrupt(_))
        ));
        let mut z = compress(b"some data some data", 5);
        let last = z.len() - 1;
        z[last] ^= 0xFF; // break the Adler-32
        assert!(matches!(
            decompress(&z, 100),
            Err(CompressionError::Corrupt(_))
        ));
    }

    #[test]
    fn inflates_java_stream() {
        // java.util.zip.DeflaterOutputStream(new Deflater(5)) of "hi": 78 5E CB C8 04 00 01 3B 00 D2
        let java = [0x78, 0x5E, 0xCB, 0xC8, 0x04, 0x00, 0x01, 0x3B, 0x00, 0xD2];
        assert_eq!(decompress(&java, 10).expect("inflate"), b"hi");
    }
}
