//! Compression of message bodies (Java's `Compressor`s, PROTOCOL §4.4).
//!
//! Three algorithms, as Java 5.x's `CompressionType` names them, each flagged in the `sysFlag`
//! type bits next to [`COMPRESSED_FLAG`](crate::sysflag::COMPRESSED_FLAG):
//!
//! | [`CompressionType`] | Java | wire format | type bits |
//! |---|---|---|---|
//! | `Zlib` (default) | `ZlibCompressor`: `DeflaterOutputStream(new Deflater(level))` | zlib stream (2-byte header, Adler-32 trailer), not raw deflate, not gzip | `0x300` (0 from pre-4.9.4 peers) |
//! | `Lz4` | `Lz4Compressor`: lz4-java `LZ4FrameOutputStream(out)` | LZ4 frame: 4 MiB independent blocks, no checksums, no content size | `0x100` |
//! | `Zstd` | `ZstdCompressor`: zstd-jni `ZstdOutputStream(out, level)` | zstd frame | `0x200` |
//!
//! [`compress`] / [`decompress`] are the zlib functions; [`CompressionType::compress`] and
//! [`CompressionType::decompress`] pick the algorithm.

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

use crate::sysflag;

mod lz4;
mod zstd;

/// The Java client's default level (`rocketmq.message.compressLevel`), used for zlib and zstd.
pub const DEFAULT_LEVEL: u32 = 5;

/// The highest zstd level.
pub const ZSTD_MAX_LEVEL: u32 = 22;

/// A body could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// The input is not a valid zlib stream.
    #[error("corrupt zlib stream")]
    Corrupt(#[source] std::io::Error),
    /// The input is not a valid LZ4 or zstd frame (or the compressor failed).
    #[error("corrupt {ty} frame")]
    CorruptFrame {
        /// The algorithm.
        ty: CompressionType,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output would exceed the limit.
    #[error("decompressed body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that was hit.
        limit: usize,
    },
    /// The compression type bits name no known algorithm (Java knows 1 to 3; 4 to 7 are free).
    #[error("unsupported compression type 0x{0:x}")]
    Unsupported(i32),
}

impl CompressionError {
    /// A copy (an I/O cause copied as its kind and text), for an error handed to several
    /// waiters.
    #[must_use]
    pub fn duplicate(&self) -> Self {
        let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
        match self {
            Self::Corrupt(e) => Self::Corrupt(io(e)),
            Self::CorruptFrame { ty, source } => Self::CorruptFrame {
                ty: *ty,
                source: io(source),
            },
            Self::TooLarge { limit } => Self::TooLarge { limit: *limit },
            Self::Unsupported(ty) => Self::Unsupported(*ty),
        }
    }
}

/// A compression algorithm (Java's `CompressionType`).
///
/// ```
/// use rmq_common::compression::CompressionType;
/// use rmq_common::sysflag;
/// let ty: CompressionType = "lz4".parse()?;
/// assert_eq!(ty, CompressionType::Lz4);
/// assert_eq!(ty.sys_flag(), sysflag::COMPRESSION_LZ4);
/// assert_eq!(CompressionType::from_sys_flag(0x201)?, CompressionType::Zstd);
/// assert_eq!(CompressionType::from_sys_flag(0x1)?, CompressionType::Zlib); // pre-4.9.4 peers
/// let body = b"hello hello hello hello hello".repeat(10);
/// for ty in [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd] {
///     let z = ty.compress(&body, 5)?;
///     assert_eq!(ty.decompress(&z, body.len())?, body);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CompressionType {
    /// zlib (`ZLIB`, the Java default).
    #[default]
    Zlib,
    /// LZ4 frame format (`LZ4`).
    Lz4,
    /// Zstandard (`ZSTD`).
    Zstd,
}

impl CompressionType {
    /// The `sysFlag` type bits (`getCompressionFlag`), to be set with
    /// [`COMPRESSED_FLAG`](sysflag::COMPRESSED_FLAG).
    #[must_use]
    pub const fn sys_flag(self) -> i32 {
        match self {
            Self::Zlib => sysflag::COMPRESSION_ZLIB,
            Self::Lz4 => sysflag::COMPRESSION_LZ4,
            Self::Zstd => sysflag::COMPRESSION_ZSTD,
        }
    }

    /// The algorithm named by the type bits of `flag` (`findByValue`: 0 is zlib, for peers
    /// older than 4.9.4).
    ///
    /// # Errors
    /// [`CompressionError::Unsupported`] for the type bits 4 to 7.
    pub const fn from_sys_flag(flag: i32) -> Result<Self, CompressionError> {
        match sysflag::compression_type(flag) {
            sysflag::COMPRESSION_LZ4 => Ok(Self::Lz4),
            sysflag::COMPRESSION_ZSTD => Ok(Self::Zstd),
            sysflag::COMPRESSION_ZLIB => Ok(Self::Zlib),
            other => Err(CompressionError::Unsupported(other)),
        }
    }

    /// Java's constant name: `ZLIB`, `LZ4` or `ZSTD`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Zlib => "ZLIB",
            Self::Lz4 => "LZ4",
            Self::Zstd => "ZSTD",
        }
    }

    /// Compresses `data` as Java's compressor of this type does. `level` is zlib's (0 to 9,
    /// higher clamped) or zstd's (1 to 22, higher clamped; 0 is zstd's default, 3); LZ4 has
    /// none (Java's `Lz4Compressor` ignores it).
    ///
    /// # Errors
    /// [`CompressionError::CorruptFrame`] if the zstd library fails (it does not on valid
    /// levels; kept typed rather than a panic).
    pub fn compress(self, data: &[u8], level: u32) -> Result<Vec<u8>, CompressionError> {
        match self {
            Self::Zlib => Ok(compress(data, level)),
            Self::Lz4 => Ok(lz4::compress(data)),
            Self::Zstd => zstd::compress(data, level.min(ZSTD_MAX_LEVEL)),
        }
    }

    /// Decompresses `data`, refusing to produce more than `limit` bytes.
    ///
    /// # Errors
    /// [`CompressionError::Corrupt`] / [`CompressionError::CorruptFrame`] for invalid input,
    /// [`CompressionError::TooLarge`] when the output would exceed `limit`.
    pub fn decompress(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
        match self {
            Self::Zlib => decompress(data, limit),
            Self::Lz4 => lz4::decompress(data, limit),
            Self::Zstd => zstd::decompress(data, limit),
        }
    }
}

impl fmt::Display for CompressionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `zlib`, `lz4` or `zstd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported compress type name: {0:?} (expected zlib, lz4 or zstd)")]
pub struct ParseCompressionTypeError(pub String);

impl FromStr for CompressionType {
    type Err = ParseCompressionTypeError;

    /// Java's `CompressionType.of`: the name trimmed, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "ZLIB" => Ok(Self::Zlib),
            "LZ4" => Ok(Self::Lz4),
            "ZSTD" => Ok(Self::Zstd),
            _ => Err(ParseCompressionTypeError(s.to_owned())),
        }
    }
}

/// Reads `reader` to its end, refusing more than `limit` bytes.
fn read_limited(
    mut reader: impl Read,
    size_hint: usize,
    limit: usize,
) -> Result<Vec<u8>, ReadLimited> {
    let mut out = Vec::with_capacity(size_hint.saturating_mul(3).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    (&mut reader)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(ReadLimited::Io)?;
    if out.len() > limit {
        return Err(ReadLimited::TooLarge);
    }
    Ok(out)
}

/// Why [`read_limited`] failed.
enum ReadLimited {
    Io(std::io::Error),
    TooLarge,
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
    read_limited(ZlibDecoder::new(data), data.len(), limit).map_err(|e| match e {
        ReadLimited::Io(source) => CompressionError::Corrupt(source),
        ReadLimited::TooLarge => CompressionError::TooLarge { limit },
    })
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
