//! [`EncodedExtFields`]: a request's ext fields already written as JSON, which the JSON header
//! encoder copies in one write instead of encoding an [`ExtFields`] map entry by entry.
//!
//! A sender whose header is mostly the same from request to request (a producer's
//! `SEND_MESSAGE_V2`: group, default topic, unit mode...) encodes its constant entries once and
//! per request only the variable ones, through [`EncodedExtBuilder`]: every key and string value
//! goes through the same escaping as the header encoder, so the frame is byte-identical to the
//! one an [`ExtFields`] with the same entries gives.
//!
//! What the encoded form does not serve reads the entries back ([`EncodedExtFields::to_ext_fields`],
//! [`RemotingCommand::materialize_ext`](crate::RemotingCommand::materialize_ext)): the ROCKETMQ
//! binary header, and every request that goes through an [`RpcHook`](crate::RpcHook) (ACL
//! signing signs the fields it sends).

use std::fmt;

use bytes::{BufMut, BytesMut};
use rmq_common::ExtFields;

use crate::header_json::{clean_prefix, put_escaped, put_i64, put_str_bytes};

/// Ext-field entries encoded as the members of the JSON header's `extFields` object:
/// `"k1":"v1","k2":"v2"` (no braces; empty for no entry). Made only by [`EncodedExtBuilder`],
/// so the text is always well-formed, escaped JSON with string values.
///
/// Set it as [`RemotingCommand::encoded_ext`](crate::RemotingCommand::encoded_ext); its
/// entries come first in the frame's `extFields`, before those of
/// [`ext_fields`](crate::RemotingCommand::ext_fields).
///
/// ```
/// use rmq_remoting::EncodedExtFields;
///
/// let mut b = EncodedExtFields::builder(64);
/// b.str("topic", "T\"1").int("queueId", 3).bool("batch", false);
/// let ext = b.build();
/// assert_eq!(ext.as_json(), br#""topic":"T\"1","queueId":"3","batch":"false""#);
/// let fields = ext.to_ext_fields();
/// assert_eq!(fields.get("topic"), Some("T\"1"));
/// assert_eq!(fields.get("queueId"), Some("3"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EncodedExtFields {
    json: BytesMut,
}

impl EncodedExtFields {
    /// A builder with room for `capacity` bytes of JSON.
    #[must_use]
    pub fn builder(capacity: usize) -> EncodedExtBuilder {
        EncodedExtBuilder {
            json: BytesMut::with_capacity(capacity),
        }
    }

    /// The JSON text of the entries (`"k":"v"` members joined by `,`, no braces).
    #[must_use]
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// Whether there is no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// The entries read back, in their order (duplicates kept, as a decoder keeps them).
    #[must_use]
    pub fn to_ext_fields(&self) -> ExtFields {
        if self.json.is_empty() {
            return ExtFields::new();
        }
        let mut header = BytesMut::with_capacity(self.json.len() + 16);
        header.put_slice(b"{\"extFields\":{");
        header.put_slice(&self.json);
        header.put_slice(b"}}");
        match crate::header_json::decode(&header.freeze()) {
            Ok(cmd) => cmd.ext_fields,
            // The builder writes only well-formed members: this is not reached.
            Err(e) => {
                tracing::error!(error = %e, "encoded ext fields do not read back");
                ExtFields::new()
            }
        }
    }
}

impl fmt::Debug for EncodedExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedExtFields")
            .field(&String::from_utf8_lossy(&self.json))
            .finish()
    }
}

/// Writes [`EncodedExtFields`] entry by entry; keys and string values are escaped as the JSON
/// header encoder escapes them (numbers and booleans are written as the strings Java sends).
///
/// ```
/// use rmq_remoting::EncodedExtFields;
///
/// // Encoded once...
/// let mut c = EncodedExtFields::builder(32);
/// c.str("producerGroup", "pg");
/// let constant = c.build();
/// // ...and copied into every request.
/// let mut b = EncodedExtFields::builder(64);
/// b.extend(&constant).int("bornTimestamp", 1_700_000_000_000);
/// assert_eq!(
///     b.build().as_json(),
///     br#""producerGroup":"pg","bornTimestamp":"1700000000000""#
/// );
/// ```
#[derive(Debug)]
pub struct EncodedExtBuilder {
    json: BytesMut,
}

impl EncodedExtBuilder {
    /// Adds `key` with a string value.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let value = value.as_bytes();
        let clean = clean_prefix(value);
        self.json.reserve(key.len() + value.len() + 8);
        if let Some(head) = short_key(key) {
            // `,"k":"` in one fixed-size write (the comma skipped for the first entry).
            let at = usize::from(self.json.is_empty());
            self.json.put_slice(&head[at..]);
        } else {
            let mut entry = Entry::new();
            if entry.key(!self.json.is_empty(), key) {
                entry.push(b'"');
                self.json.put_slice(entry.bytes());
            } else {
                self.slow_key(key);
                self.json.put_u8(b'"');
            }
        }
        self.json.put_slice(&value[..clean]);
        if clean < value.len() {
            put_escaped(&mut self.json, &value[clean..]);
        }
        self.json.put_u8(b'"');
        self
    }

    /// Adds `key` with the decimal text of `value`.
    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        if let Some(head) = short_key(key) {
            // The whole entry assembled backwards on the stack (the closing quote, the digits,
            // then `,"k":"`) and written in one copy.
            let mut buf = [0u8; 32];
            buf[31] = b'"';
            let start = put_decimal(value, &mut buf);
            let at = start - 6 + usize::from(self.json.is_empty());
            buf[start - 6..start].copy_from_slice(&head);
            self.json.put_slice(&buf[at..]);
            return self;
        }
        let mut entry = Entry::new();
        if entry.key(!self.json.is_empty(), key) {
            // The whole entry in one write.
            entry.push(b'"');
            entry.int(value);
            entry.push(b'"');
            self.json.put_slice(entry.bytes());
        } else {
            self.slow_key(key);
            self.json.reserve(22);
            self.json.put_u8(b'"');
            put_i64(&mut self.json, value);
            self.json.put_u8(b'"');
        }
        self
    }

    /// Adds `key` with `"true"` or `"false"`.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        let text: &[u8] = if value { b"\"true\"" } else { b"\"false\"" };
        let mut entry = Entry::new();
        if entry.key(!self.json.is_empty(), key) {
            entry.extend(text);
            self.json.put_slice(entry.bytes());
        } else {
            self.slow_key(key);
            self.json.put_slice(text);
        }
        self
    }

    /// Adds every entry of `other`, copied as it is.
    pub fn extend(&mut self, other: &EncodedExtFields) -> &mut Self {
        if !other.is_empty() {
            self.json.reserve(other.json.len() + 1);
            if !self.json.is_empty() {
                self.json.put_u8(b',');
            }
            self.json.put_slice(&other.json);
        }
        self
    }

    /// The bytes written so far.
    #[must_use]
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether nothing is written yet.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// The entries written.
    #[must_use]
    pub fn build(self) -> EncodedExtFields {
        EncodedExtFields { json: self.json }
    }

    /// `,"key":` (no comma before the first entry), for a key that needs escapes or is long.
    fn slow_key(&mut self, key: &str) {
        if !self.json.is_empty() {
            self.json.put_u8(b',');
        }
        put_str_bytes(&mut self.json, key.as_bytes());
        self.json.put_u8(b':');
    }
}

/// `,"k":"` for a one-byte key that needs no escape (every key of a producer's send); `None`
/// for any other key.
fn short_key(key: &str) -> Option<[u8; 6]> {
    match *key.as_bytes() {
        [k] if k >= 0x20 && k != b'"' && k != b'\\' => Some([b',', b'"', k, b'"', b':', b'"']),
        _ => None,
    }
}

/// `"00".."99"`: two decimal digits per lookup.
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Writes the decimal text of `v` so that it ends just before `buf[31]`, two digits at a time
/// (as `itoa`); returns where it starts. At most 20 bytes (`i64::MIN`: a sign and 19 digits),
/// so at least 11 bytes stay free before it.
fn put_decimal(v: i64, buf: &mut [u8; 32]) -> usize {
    let mut n = v.unsigned_abs();
    let mut pos = 31;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        // A single digit: n < 10.
        buf[pos] = b'0' + n as u8;
    }
    if v < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    pos
}

/// One entry with a short key, assembled on the stack and written in one copy (ext keys are
/// short identifiers: the protocol's longest is under 30 bytes).
struct Entry {
    buf: [u8; Entry::CAP],
    len: usize,
}

impl Entry {
    /// Room for a comma, a quoted key of [`MAX_KEY`](Self::MAX_KEY) bytes, the colon and a
    /// quoted 20-digit number.
    const CAP: usize = 64;
    const MAX_KEY: usize = 32;

    const fn new() -> Self {
        Self {
            buf: [0; Self::CAP],
            len: 0,
        }
    }

    /// Writes `,"key":` (no comma when `comma` is false) if the key is short and needs no
    /// escape; false (nothing written) otherwise.
    fn key(&mut self, comma: bool, key: &str) -> bool {
        let key = key.as_bytes();
        if key.len() > Self::MAX_KEY || clean_prefix(key) != key.len() {
            return false;
        }
        if comma {
            self.push(b',');
        }
        self.push(b'"');
        self.extend(key);
        self.extend(b"\":");
        true
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    /// The decimal text of `v`.
    fn int(&mut self, v: i64) {
        self.extend(itoa::Buffer::new().format(v).as_bytes());
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The JSON text of `ext`'s entries as [`EncodedExtFields`] (what the header encoder would
/// write for them).
impl From<&ExtFields> for EncodedExtFields {
    fn from(ext: &ExtFields) -> Self {
        let mut b = Self::builder(ext.iter().map(|(k, v)| k.len() + v.len() + 6).sum());
        for (k, v) in ext.iter() {
            b.str(k, v);
        }
        b.build()
    }
}

#[cfg(test)]
#[path = "encoded_ext_tests.rs"]
mod tests;
