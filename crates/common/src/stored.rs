//! The stored-message format (`MessageDecoder.encode` / `decode`, PROTOCOL §6.3): the body of
//! `CHECK_TRANSACTION_STATE`, of view-by-id answers and of pull results.
//!
//! ```text
//! totalSize i32 | magicCode i32 | bodyCRC i32 | queueId i32 | flag i32 | queueOffset i64 |
//! physicalOffset i64 | sysFlag i32 | bornTimestamp i64 | bornHost (4|16 + port i32) |
//! storeTimestamp i64 | storeHost (4|16 + port i32) | reconsumeTimes i32 |
//! preparedTransactionOffset i64 | bodyLen i32, body | topicLen (i8 V1 | i16 V2), topic |
//! propertiesLen i16, properties
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compression::{CompressionError, CompressionType};
use crate::message_id::OffsetMessageId;
use crate::sysflag;
use crate::{property, Message, Properties};

/// Magic code of the V1 format (1-byte topic length), `0xDAA320A7`.
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic code of the V2 format (2-byte topic length), `0xDAA320AB`.
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Default limit for an inflated (decompressed) body: 16 MiB.
pub const DEFAULT_INFLATE_LIMIT: usize = 16 * 1024 * 1024;

/// A stored message: the [`Message`] plus what the broker recorded.
///
/// ```
/// use rmq_common::stored::{decode_stored_message, encode_stored_message, MessageExt};
/// use rmq_common::Message;
/// let ext = MessageExt { message: Message::new("T", "hi"), commit_log_offset: 42, ..Default::default() };
/// let mut wire = encode_stored_message(&ext);
/// let back = decode_stored_message(&mut wire)?;
/// assert_eq!(back, ext);
/// assert!(wire.is_empty());
/// # Ok::<(), rmq_common::stored::StoredMessageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// Topic, flag, body and properties.
    pub message: Message,
    /// Queue id.
    pub queue_id: i32,
    /// Consume-queue offset.
    pub queue_offset: i64,
    /// Commit-log (physical) offset.
    pub commit_log_offset: i64,
    /// System flag ([`crate::sysflag`]); the IPv6 bits are derived from the hosts on encode.
    pub sys_flag: i32,
    /// Born timestamp (epoch ms).
    pub born_timestamp: i64,
    /// Producer address.
    pub born_host: SocketAddr,
    /// Store timestamp (epoch ms).
    pub store_timestamp: i64,
    /// Broker address.
    pub store_host: SocketAddr,
    /// Reconsume times.
    pub reconsume_times: i32,
    /// Prepared transaction offset.
    pub prepared_transaction_offset: i64,
    /// Body CRC as recorded (not checked).
    pub body_crc: i32,
}

impl Default for MessageExt {
    fn default() -> Self {
        let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        Self {
            message: Message::from_parts(String::new(), 0, Bytes::new(), Properties::new()),
            queue_id: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body_crc: 0,
        }
    }
}

impl MessageExt {
    /// The offset message id (store host + commit-log offset), as the decoder's `msgId`.
    #[must_use]
    pub fn offset_msg_id(&self) -> OffsetMessageId {
        OffsetMessageId::new(self.store_host, self.commit_log_offset)
    }

    /// The client's unique id (`UNIQ_KEY`), if present.
    #[must_use]
    pub fn uniq_key(&self) -> Option<&str> {
        self.message.property(property::UNIQ_KEY)
    }
}

/// A stored message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredMessageError {
    /// The buffer ends before `field`.
    #[error("stored message truncated at `{field}`")]
    Truncated {
        /// The field that did not fit.
        field: &'static str,
    },
    /// `totalSize` is impossible (negative, too small, or past the buffer).
    #[error("stored message totalSize {size} is invalid ({remaining} bytes available)")]
    BadTotalSize {
        /// The size read.
        size: i32,
        /// Bytes available from the start of the record.
        remaining: usize,
    },
    /// An unknown magic code.
    #[error("unknown stored message magic code 0x{:08X}", *.0 as u32)]
    BadMagic(i32),
    /// A negative length field.
    #[error("negative `{field}`")]
    NegativeLength {
        /// The field.
        field: &'static str,
    },
    /// A host port outside 0..=65535.
    #[error("invalid port {port} in `{field}`")]
    BadPort {
        /// The field.
        field: &'static str,
        /// The value read.
        port: i32,
    },
    /// The compressed body could not be inflated.
    #[error("compressed body cannot be inflated")]
    Decompress(#[from] CompressionError),
    /// A field is too long for its length prefix (encode).
    #[error("`{field}` is {len} bytes, more than its length field allows")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
}

struct Reader<'a> {
    buf: &'a mut Bytes,
}

impl Reader<'_> {
    fn need(&self, n: usize, field: &'static str) -> Result<(), StoredMessageError> {
        if self.buf.remaining() < n {
            return Err(StoredMessageError::Truncated { field });
        }
        Ok(())
    }
    fn i16(&mut self, field: &'static str) -> Result<i16, StoredMessageError> {
        self.need(2, field)?;
        Ok(self.buf.get_i16())
    }
    fn i32(&mut self, field: &'static str) -> Result<i32, StoredMessageError> {
        self.need(4, field)?;
        Ok(self.buf.get_i32())
    }
    fn i64(&mut self, field: &'static str) -> Result<i64, StoredMessageError> {
        self.need(8, field)?;
        Ok(self.buf.get_i64())
    }
    fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes, StoredMessageError> {
        self.need(n, field)?;
        Ok(self.buf.split_to(n))
    }
    fn host(&mut self, v6: bool, field: &'static str) -> Result<SocketAddr, StoredMessageError> {
        let ip = if v6 {
            let raw = self.bytes(16, field)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&raw);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let raw = self.bytes(4, field)?;
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
        };
        let port = self.i32(field)?;
        let port = u16::try_from(port).map_err(|_| StoredMessageError::BadPort { field, port })?;
        Ok(SocketAddr::new(ip, port))
    }
}

/// Decodes one stored message from the front of `buf` and advances `buf` past it (by its
/// `totalSize`). A compressed body is decompressed (zlib, LZ4 or zstd, by the type bits; at
/// most [`DEFAULT_INFLATE_LIMIT`]) and [`sysflag::COMPRESSED_FLAG`] cleared (the type bits
/// stay). On error `buf` is left unchanged.
///
/// # Errors
/// [`StoredMessageError`] for a truncated or inconsistent record or a body that cannot be
/// decompressed (corrupt, too large, or unknown type bits 4 to 7).
pub fn decode_stored_message(buf: &mut Bytes) -> Result<MessageExt, StoredMessageError> {
    decode_stored_message_with_limit(buf, DEFAULT_INFLATE_LIMIT)
}

/// [`decode_stored_message`] with an explicit limit for the inflated body.
///
/// # Errors
/// As [`decode_stored_message`].
pub fn decode_stored_message_with_limit(
    buf: &mut Bytes,
    inflate_limit: usize,
) -> Result<MessageExt, StoredMessageError> {
    // On a clone (a reference count), so that `buf` stays where it was when inflating fails.
    let mut rest = buf.clone();
    let ext = decode_stored_message_raw(&mut rest)?.inflate(inflate_limit)?;
    *buf = rest;
    Ok(ext)
}

/// Decodes one stored message like [`decode_stored_message`] but leaves a compressed body as
/// stored ([`sysflag::COMPRESSED_FLAG`] still set): cheap (no inflation), for a reader that
/// looks at the properties first; [`MessageExt::inflate`] finishes the work.
///
/// ```
/// use rmq_common::stored::{decode_stored_message_raw, encode_stored_message, MessageExt};
/// use rmq_common::{compression, sysflag, Message};
/// let body = compression::compress(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 5);
/// let ext = MessageExt {
///     message: Message::new("T", body),
///     sys_flag: sysflag::COMPRESSED_FLAG,
///     ..Default::default()
/// };
/// let raw = decode_stored_message_raw(&mut encode_stored_message(&ext))?;
/// assert!(sysflag::has(raw.sys_flag, sysflag::COMPRESSED_FLAG));
/// let full = raw.inflate(1024)?;
/// assert_eq!(full.message.body().len(), 32);
/// assert!(!sysflag::has(full.sys_flag, sysflag::COMPRESSED_FLAG));
/// # Ok::<(), rmq_common::stored::StoredMessageError>(())
/// ```
///
/// # Errors
/// As [`decode_stored_message`], inflation aside.
pub fn decode_stored_message_raw(buf: &mut Bytes) -> Result<MessageExt, StoredMessageError> {
    if buf.remaining() < 4 {
        return Err(StoredMessageError::Truncated { field: "totalSize" });
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let total = usize::try_from(size)
        .ok()
        .filter(|&t| t >= 8 && t <= buf.remaining())
        .ok_or(StoredMessageError::BadTotalSize {
            size,
            remaining: buf.remaining(),
        })?;
    let mut record = buf.slice(4..total);
    let ext = decode_record(&mut record)?;
    buf.advance(total);
    Ok(ext)
}

impl MessageExt {
    /// Inflates a compressed body (at most `limit` bytes) and clears
    /// [`sysflag::COMPRESSED_FLAG`]; a body not compressed is returned as it is.
    ///
    /// # Errors
    /// The body cannot be inflated (corrupt, over `limit`, or an unknown compression type).
    pub fn inflate(mut self, limit: usize) -> Result<Self, StoredMessageError> {
        if sysflag::has(self.sys_flag, sysflag::COMPRESSED_FLAG) {
            let ty = CompressionType::from_sys_flag(self.sys_flag)?;
            let body = ty.decompress(self.message.body(), limit)?;
            self.message.set_body(body);
            self.sys_flag &= !sysflag::COMPRESSED_FLAG;
        }
        Ok(self)
    }
}

fn decode_record(rec: &mut Bytes) -> Result<MessageExt, StoredMessageError> {
    let mut r = Reader { buf: rec };
    let magic = r.i32("magicCode")?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(StoredMessageError::BadMagic(magic));
    }
    let body_crc = r.i32("bodyCRC")?;
    let queue_id = r.i32("queueId")?;
    let flag = r.i32("flag")?;
    let queue_offset = r.i64("queueOffset")?;
    let commit_log_offset = r.i64("physicalOffset")?;
    let sys_flag = r.i32("sysFlag")?;
    let born_timestamp = r.i64("bornTimestamp")?;
    let born_host = r.host(
        sysflag::has(sys_flag, sysflag::BORNHOST_V6_FLAG),
        "bornHost",
    )?;
    let store_timestamp = r.i64("storeTimestamp")?;
    let store_host = r.host(
        sysflag::has(sys_flag, sysflag::STOREHOSTADDRESS_V6_FLAG),
        "storeHost",
    )?;
    let reconsume_times = r.i32("reconsumeTimes")?;
    let prepared_transaction_offset = r.i64("preparedTransactionOffset")?;
    let body_len = r.i32("bodyLength")?;
    let body_len = usize::try_from(body_len).map_err(|_| StoredMessageError::NegativeLength {
        field: "bodyLength",
    })?;
    let body = r.bytes(body_len, "body")?;
    let topic_len = if magic == MAGIC_V1 {
        r.need(1, "topicLength")?;
        usize::from(r.buf.get_u8())
    } else {
        usize::from(r.i16("topicLength")? as u16)
    };
    let topic = r.bytes(topic_len, "topic")?;
    // Java reads a signed short and skips the properties when it is not positive.
    let props_len = usize::try_from(r.i16("propertiesLength")?).unwrap_or(0);
    let props = r.bytes(props_len, "properties")?;
    let properties = Properties::decode(&String::from_utf8_lossy(&props));
    let message = Message::from_parts(String::from_utf8_lossy(&topic), flag, body, properties);
    Ok(MessageExt {
        message,
        queue_id,
        queue_offset,
        commit_log_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body_crc,
    })
}

/// Decodes every stored message in `buf` (a pull result or view answer holds several).
///
/// # Errors
/// The first [`StoredMessageError`] met.
///
/// ```
/// use rmq_common::stored::{decode_stored_messages, encode_stored_message, MessageExt};
/// use rmq_common::Message;
/// let a = MessageExt { message: Message::new("T", "a"), ..Default::default() };
/// let b = MessageExt { message: Message::new("T", "b"), queue_offset: 1, ..Default::default() };
/// let wire = [encode_stored_message(&a), encode_stored_message(&b)].concat();
/// assert_eq!(decode_stored_messages(wire.into())?, [a, b]);
/// # Ok::<(), rmq_common::stored::StoredMessageError>(())
/// ```
pub fn decode_stored_messages(mut buf: Bytes) -> Result<Vec<MessageExt>, StoredMessageError> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        out.push(decode_stored_message(&mut buf)?);
    }
    Ok(out)
}

/// Encodes `ext` like Java's `MessageDecoder.encode(messageExt, false)`, for test brokers.
///
/// The body is written as it is (set [`sysflag::COMPRESSED_FLAG`] yourself for a compressed
/// one); the IPv6 bits of `sysFlag` follow the hosts; magic V1 is used unless the topic is
/// longer than 127 bytes (then V2). Properties over 32767 bytes get Java's `(short)` cast, i.e.
/// a broken record: use [`try_encode_stored_message`] to have them refused.
#[must_use]
pub fn encode_stored_message(ext: &MessageExt) -> Bytes {
    let props = ext.message.properties().encode();
    write_record(ext, &props)
}

/// [`encode_stored_message`] that refuses fields too long for their length prefix.
///
/// # Errors
/// [`StoredMessageError::TooLong`] for a topic over 32767 bytes, properties over 32767 bytes
/// or a body over `i32::MAX`.
pub fn try_encode_stored_message(ext: &MessageExt) -> Result<Bytes, StoredMessageError> {
    let props = ext.message.properties().encode();
    let limit = i16::MAX as usize;
    let checks = [
        ("topic", ext.message.topic().len(), limit),
        ("properties", props.len(), limit),
        (
            "body",
            ext.message.body().len(),
            i32::MAX as usize - 512 - limit * 2,
        ),
    ];
    for (field, len, max) in checks {
        if len > max {
            return Err(StoredMessageError::TooLong { field, len });
        }
    }
    Ok(write_record(ext, &props))
}

fn write_record(ext: &MessageExt, props: &str) -> Bytes {
    let msg = &ext.message;
    let topic = msg.topic().as_bytes();
    let body = msg.body();
    let v2 = topic.len() > 127;
    let host_len = |a: &SocketAddr| if a.is_ipv6() { 16 + 4 } else { 4 + 4 };
    let total = 4
        + 4
        + 4
        + 4
        + 4
        + 8
        + 8
        + 4
        + 8
        + host_len(&ext.born_host)
        + 8
        + host_len(&ext.store_host)
        + 4
        + 8
        + 4
        + body.len()
        + if v2 { 2 } else { 1 }
        + topic.len()
        + 2
        + props.len();
    let mut sys_flag =
        ext.sys_flag & !(sysflag::BORNHOST_V6_FLAG | sysflag::STOREHOSTADDRESS_V6_FLAG);
    if ext.born_host.is_ipv6() {
        sys_flag |= sysflag::BORNHOST_V6_FLAG;
    }
    if ext.store_host.is_ipv6() {
        sys_flag |= sysflag::STOREHOSTADDRESS_V6_FLAG;
    }
    let mut out = BytesMut::with_capacity(total);
    // Java casts the lengths with (int) / (short) / (byte); so do these `as` conversions.
    out.put_i32(total as i32);
    out.put_i32(if v2 { MAGIC_V2 } else { MAGIC_V1 });
    out.put_i32(ext.body_crc);
    out.put_i32(ext.queue_id);
    out.put_i32(msg.flag());
    out.put_i64(ext.queue_offset);
    out.put_i64(ext.commit_log_offset);
    out.put_i32(sys_flag);
    out.put_i64(ext.born_timestamp);
    put_host(&mut out, &ext.born_host);
    out.put_i64(ext.store_timestamp);
    put_host(&mut out, &ext.store_host);
    out.put_i32(ext.reconsume_times);
    out.put_i64(ext.prepared_transaction_offset);
    out.put_i32(body.len() as i32);
    out.put_slice(body);
    if v2 {
        out.put_i16(topic.len() as i16);
    } else {
        out.put_u8(topic.len() as u8);
    }
    out.put_slice(topic);
    out.put_i16(props.len() as i16);
    out.put_slice(props.as_bytes());
    out.freeze()
}

fn put_host(out: &mut BytesMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(v4) => out.put_slice(&v4.octets()),
        IpAddr::V6(v6) => out.put_slice(&v6.octets()),
    }
    out.put_i32(i32::from(addr.port()));
}
