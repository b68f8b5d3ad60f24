//! [`RemotingCommand`]: one request or response of the remoting protocol, and its frame.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rmq_common::code::CLIENT_VERSION;
use rmq_common::{CommandHeader, ExtFields, HeaderError, LanguageCode, RequestCode, ResponseCode};

use crate::encoded_ext::EncodedExtFields;
use crate::error::{DecodeError, EncodeError};
use crate::{header_binary, header_json};

/// Flag bit 0: the command is a response.
pub const RESPONSE_FLAG: i32 = 0x1;
/// Flag bit 1: the request expects no response.
pub const ONEWAY_FLAG: i32 = 0x2;

/// Largest header length the 24-bit field can carry.
pub(crate) const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// How the header of a frame is serialized (the high byte of the header-length word).
///
/// ```
/// use rmq_remoting::SerializeType;
/// assert_eq!(SerializeType::default(), SerializeType::Json);
/// assert_eq!(SerializeType::from_code(1), Some(SerializeType::RocketMq));
/// assert_eq!(SerializeType::from_code(2), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SerializeType {
    /// fastjson text header (Java's default).
    #[default]
    Json = 0,
    /// `RocketMQSerializable` binary header.
    RocketMq = 1,
}

impl SerializeType {
    /// The wire byte.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Parses the wire byte; other values are not a serialize type.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    /// Java's enum name (`"JSON"` / `"ROCKETMQ"`), written as `serializeTypeCurrentRPC`.
    #[must_use]
    pub const fn java_name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// A remoting command: the header fields, the ext fields (custom header) and the body.
///
/// The frame is `[u32 length][u8 serialize type | u24 header length][header][body]`, where
/// `length` counts everything after itself.
///
/// ```
/// use rmq_common::{ExtFields, RequestCode};
/// use rmq_remoting::RemotingCommand;
///
/// let mut ext = ExtFields::new();
/// ext.insert("topic", "TopicTest");
/// let mut req = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, ext);
/// req.opaque = 7;
/// let mut buf = bytes::BytesMut::new();
/// req.encode(&mut buf).unwrap();
/// let frame = buf.freeze().slice(4..); // strip the length prefix
/// let back = RemotingCommand::decode(frame).unwrap();
/// assert_eq!(back, req);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    /// Request code (requests) or response code (responses).
    pub code: i32,
    /// The sender's language.
    pub language: LanguageCode,
    /// The sender's version (`MQVersion` ordinal).
    pub version: i32,
    /// Correlation id.
    pub opaque: i32,
    /// Flag bits ([`RESPONSE_FLAG`], [`ONEWAY_FLAG`]).
    pub flag: i32,
    /// Free text (error text on responses).
    pub remark: Option<String>,
    /// The custom header.
    pub ext_fields: ExtFields,
    /// More of the custom header, already encoded for the JSON header: written before the
    /// entries of [`ext_fields`](Self::ext_fields), in one copy. `None` on every decoded
    /// command. Read back into `ext_fields` by [`materialize_ext`](Self::materialize_ext),
    /// which the client does before an [`RpcHook`](crate::RpcHook) sees the request; the
    /// ROCKETMQ binary header reads it back when encoding.
    pub encoded_ext: Option<EncodedExtFields>,
    /// The body (empty when absent).
    pub body: Bytes,
    /// How the header is (to be) serialized.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with language JAVA, version [`CLIENT_VERSION`] and opaque 0 (the client assigns it).
    #[must_use]
    pub fn request(code: RequestCode, ext_fields: ExtFields) -> Self {
        Self {
            code: code.value(),
            language: LanguageCode::JAVA,
            version: CLIENT_VERSION,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields,
            encoded_ext: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A request whose ext fields are written from `header`.
    #[must_use]
    pub fn request_with_header(code: RequestCode, header: &impl CommandHeader) -> Self {
        Self::request(code, header.to_ext_fields())
    }

    /// A response (opaque 0: see [`response_to`](Self::response_to) to answer a request).
    #[must_use]
    pub fn response(code: ResponseCode, remark: Option<String>) -> Self {
        Self {
            code: code.value(),
            language: LanguageCode::JAVA,
            version: CLIENT_VERSION,
            opaque: 0,
            flag: RESPONSE_FLAG,
            remark,
            ext_fields: ExtFields::new(),
            encoded_ext: None,
            body: Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    /// A response to this request: same opaque and serialize type, response bit set.
    #[must_use]
    pub fn response_to(&self, code: ResponseCode, remark: Option<String>) -> Self {
        let mut r = Self::response(code, remark);
        r.opaque = self.opaque;
        r.serialize_type = self.serialize_type;
        r
    }

    /// Replaces the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Replaces the serialize type.
    #[must_use]
    pub const fn with_serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.serialize_type = serialize_type;
        self
    }

    /// Whether the response bit is set.
    #[must_use]
    pub const fn is_response(&self) -> bool {
        self.flag & RESPONSE_FLAG != 0
    }

    /// Whether the oneway bit is set.
    #[must_use]
    pub const fn is_oneway(&self) -> bool {
        self.flag & ONEWAY_FLAG != 0
    }

    /// Sets the oneway bit.
    pub fn mark_oneway(&mut self) {
        self.flag |= ONEWAY_FLAG;
    }

    /// Sets the response bit.
    pub fn mark_response(&mut self) {
        self.flag |= RESPONSE_FLAG;
    }

    /// The code read as a request code.
    #[must_use]
    pub const fn request_code(&self) -> RequestCode {
        RequestCode(self.code)
    }

    /// The code read as a response code.
    #[must_use]
    pub const fn response_code(&self) -> ResponseCode {
        ResponseCode(self.code)
    }

    /// Decodes the custom header `H` from the ext fields.
    ///
    /// # Errors
    /// The header's [`HeaderError`] naming the missing or malformed field.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, HeaderError> {
        match &self.encoded_ext {
            None => H::read_from(&self.ext_fields),
            Some(_) => H::read_from(&self.clone().materialize_ext().ext_fields),
        }
    }

    /// A request whose ext fields are all in `encoded` (see [`EncodedExtFields`]).
    ///
    /// ```
    /// use rmq_common::{ExtFields, RequestCode};
    /// use rmq_remoting::{EncodedExtFields, RemotingCommand};
    ///
    /// let mut b = EncodedExtFields::builder(32);
    /// b.str("topic", "TopicTest");
    /// let fast = RemotingCommand::request_encoded(RequestCode::GET_ROUTEINFO_BY_TOPIC, b.build());
    ///
    /// let mut ext = ExtFields::new();
    /// ext.insert("topic", "TopicTest");
    /// let plain = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC, ext);
    ///
    /// let (mut x, mut y) = (bytes::BytesMut::new(), bytes::BytesMut::new());
    /// fast.encode(&mut x).unwrap();
    /// plain.encode(&mut y).unwrap();
    /// assert_eq!(x, y); // the same frame
    /// assert_eq!(fast.materialize_ext(), plain);
    /// ```
    #[must_use]
    pub fn request_encoded(code: RequestCode, encoded: EncodedExtFields) -> Self {
        let mut req = Self::request(code, ExtFields::new());
        req.encoded_ext = Some(encoded);
        req
    }

    /// Moves the entries of [`encoded_ext`](Self::encoded_ext) into
    /// [`ext_fields`](Self::ext_fields), ahead of the entries already there: the frame stays
    /// byte-identical, and whoever reads or adds ext fields (an [`RpcHook`](crate::RpcHook),
    /// ACL signing) sees every field sent. Without encoded entries, nothing changes.
    #[must_use]
    pub fn materialize_ext(mut self) -> Self {
        self.materialize_ext_in_place();
        self
    }

    /// [`materialize_ext`](Self::materialize_ext) in place.
    pub fn materialize_ext_in_place(&mut self) {
        if let Some(encoded) = self.encoded_ext.take() {
            let mut ext = encoded.to_ext_fields();
            for (k, v) in self.ext_fields.entries() {
                ext.push(k, v);
            }
            self.ext_fields = ext;
        }
    }

    /// Appends the whole frame (length prefix included) to `dst`.
    ///
    /// # Errors
    /// [`EncodeError`] when a field does not fit its wire form; `dst` is then left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_head(dst)?;
        dst.extend_from_slice(&self.body);
        Ok(())
    }

    /// Appends the length prefix, header-length word and header, leaving the body to the
    /// caller (who may write it without copying).
    pub(crate) fn encode_head(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        dst.reserve(self.head_size_hint());
        dst.put_u64(0);
        let written = match self.serialize_type {
            SerializeType::Json => {
                header_json::encode(self, dst);
                Ok(())
            }
            SerializeType::RocketMq if self.encoded_ext.is_some() => {
                header_binary::encode(&self.clone().materialize_ext(), dst)
            }
            SerializeType::RocketMq => header_binary::encode(self, dst),
        };
        if let Err(e) = written {
            dst.truncate(start);
            return Err(e);
        }
        let header_len = dst.len() - start - 8;
        if header_len > MAX_HEADER_LEN {
            dst.truncate(start);
            return Err(EncodeError::HeaderTooLarge { len: header_len });
        }
        let total = 4 + header_len + self.body.len();
        let Ok(total32) = i32::try_from(total) else {
            dst.truncate(start);
            return Err(EncodeError::FrameTooLarge {
                len: total + 4,
                max: i32::MAX as usize,
            });
        };
        let word = (u32::from(self.serialize_type.code()) << 24) | header_len as u32;
        dst[start..start + 4].copy_from_slice(&total32.to_be_bytes());
        dst[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
        Ok(())
    }

    /// About the size of the length fields and header as [`encode_head`](Self::encode_head)
    /// writes them (exact for JSON without escapes, an upper bound for ROCKETMQ): one
    /// allocation holds the head, rather than a buffer growing (and copying) as it is written.
    pub(crate) fn head_size_hint(&self) -> usize {
        // The length fields, the fixed keys and values of the JSON header (about 120 bytes),
        // and room for a few `\u00XX` escapes (the properties string has some).
        const FIXED: usize = 8 + 200;
        let ext: usize = self
            .ext_fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum();
        let encoded = self
            .encoded_ext
            .as_ref()
            .map_or(0, |e| e.as_json().len() + 1);
        FIXED + ext + encoded + self.remark.as_ref().map_or(0, |r| r.len() + 12)
    }

    /// Decodes one frame **without** its 4-byte length prefix: header-length word, header, body.
    ///
    /// The body and the ROCKETMQ ext fields are slices of `frame` (no copy).
    ///
    /// # Errors
    /// [`DecodeError`] for a short frame, an unknown serialize type, a header longer than the
    /// frame, or a malformed header.
    pub fn decode(mut frame: Bytes) -> Result<Self, DecodeError> {
        if frame.len() < 4 {
            return Err(DecodeError::FrameTooShort {
                len: frame.len() as u32,
            });
        }
        let word = frame.get_u32();
        let kind = (word >> 24) as u8;
        let header_len = (word & 0x00FF_FFFF) as usize;
        let serialize_type =
            SerializeType::from_code(kind).ok_or(DecodeError::UnknownSerializeType(kind))?;
        if header_len > frame.len() {
            return Err(DecodeError::HeaderTooLong {
                header_len,
                available: frame.len(),
            });
        }
        let header = frame.split_to(header_len);
        let mut cmd = blank();
        // The JSON fast path decodes in place (no command moved from decoder to decoder).
        let fast = serialize_type == SerializeType::Json
            && crate::header_json_fast::decode_into(&header, &mut cmd).is_some();
        if !fast {
            cmd = match serialize_type {
                SerializeType::Json => header_json::decode_full(&header)?,
                SerializeType::RocketMq => header_binary::decode(&header)?,
            };
        }
        cmd.serialize_type = serialize_type;
        cmd.body = frame;
        Ok(cmd)
    }
}

/// Header fields shared by both decoders before the serialize type and body are set.
pub(crate) fn blank() -> RemotingCommand {
    RemotingCommand {
        code: 0,
        language: LanguageCode::JAVA,
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: ExtFields::new(),
        encoded_ext: None,
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    }
}
