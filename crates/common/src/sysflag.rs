//! `sysFlag` bits (`MessageSysFlag.java`, PROTOCOL §4.3).

/// The body is compressed (see [`compression_type`] for the algorithm).
pub const COMPRESSED_FLAG: i32 = 0x1;
/// Multiple tags (set by the broker for MULTI_TAG topics).
pub const MULTI_TAGS_FLAG: i32 = 0x2;
/// Transaction type: none.
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// Transaction type: a prepared (half) message.
pub const TRANSACTION_PREPARED_TYPE: i32 = 0x4;
/// Transaction type: commit.
pub const TRANSACTION_COMMIT_TYPE: i32 = 0x8;
/// Transaction type: rollback.
pub const TRANSACTION_ROLLBACK_TYPE: i32 = 0xC;
/// Mask of the transaction type bits.
pub const TRANSACTION_MASK: i32 = 0xC;
/// The born host is IPv6 in the stored format.
pub const BORNHOST_V6_FLAG: i32 = 0x10;
/// The store host is IPv6 in the stored format.
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;
/// Inner batch: needs unwrapping.
pub const NEED_UNWRAP_FLAG: i32 = 0x40;
/// Inner batch.
pub const INNER_BATCH_FLAG: i32 = 0x80;
/// Mask of the compression type bits (4.9.4+).
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;
/// Compression type LZ4 (LZ4 frame format).
pub const COMPRESSION_LZ4: i32 = 0x100;
/// Compression type ZSTD.
pub const COMPRESSION_ZSTD: i32 = 0x200;
/// Compression type ZLIB (the Java default; also what type bits 0 mean, for pre-4.9.4 peers).
pub const COMPRESSION_ZLIB: i32 = 0x300;

/// The transaction type bits of `flag` (`MessageSysFlag.getTransactionValue`).
///
/// ```
/// use rmq_common::sysflag;
/// assert_eq!(sysflag::transaction_value(0x301 | 0x4), sysflag::TRANSACTION_PREPARED_TYPE);
/// ```
#[must_use]
pub const fn transaction_value(flag: i32) -> i32 {
    flag & TRANSACTION_MASK
}

/// `flag` with its transaction type replaced by `ty` (`MessageSysFlag.resetTransactionValue`).
///
/// ```
/// use rmq_common::sysflag;
/// assert_eq!(sysflag::reset_transaction_value(0x5, sysflag::TRANSACTION_COMMIT_TYPE), 0x9);
/// ```
#[must_use]
pub const fn reset_transaction_value(flag: i32, ty: i32) -> i32 {
    (flag & !TRANSACTION_MASK) | (ty & TRANSACTION_MASK)
}

/// The compression type bits of `flag`, with 0 read as ZLIB as Java does.
///
/// ```
/// use rmq_common::sysflag;
/// assert_eq!(sysflag::compression_type(0x1), sysflag::COMPRESSION_ZLIB);
/// assert_eq!(sysflag::compression_type(0x201), sysflag::COMPRESSION_ZSTD);
/// ```
#[must_use]
pub const fn compression_type(flag: i32) -> i32 {
    match flag & COMPRESSION_TYPE_MASK {
        0 => COMPRESSION_ZLIB,
        t => t,
    }
}

/// Whether `flag` has `bit` set.
///
/// ```
/// assert!(rmq_common::sysflag::has(0x301, rmq_common::sysflag::COMPRESSED_FLAG));
/// ```
#[must_use]
pub const fn has(flag: i32, bit: i32) -> bool {
    flag & bit == bit
}
