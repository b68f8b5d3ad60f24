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

use std::cell::RefCell;
use std::fmt;

use bytes::{BufMut, BytesMut};
use rmq_common::ExtFields;

use crate::json_write::Stage;

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
    ///
    /// The JSON of small entries is carved out of a per-thread chunk of 4 KiB (the
    /// entries of many requests share one allocation, freed when the last of them is dropped)
    /// rather than allocated for each. A value kept for long should be
    /// [`detach`](EncodedExtFields::detach)ed.
    #[must_use]
    pub fn builder(capacity: usize) -> EncodedExtBuilder {
        let spare = SPARE
            .try_with(|spare| std::mem::take(&mut *spare.borrow_mut()))
            .unwrap_or_default();
        let json = if spare.capacity() >= capacity {
            spare
        } else if capacity <= CHUNK / 4 {
            BytesMut::with_capacity(CHUNK)
        } else {
            BytesMut::with_capacity(capacity)
        };
        EncodedExtBuilder {
            json,
            stage: Stage::new(),
        }
    }

    /// The same entries in an allocation of their own.
    ///
    /// A built value shares its builder's per-thread chunk with the entries of other requests,
    /// and keeps the whole chunk (4 KiB) allocated while it lives: a value kept for long (a
    /// producer's constant entries) should be detached first.
    ///
    /// ```
    /// use rmq_remoting::EncodedExtFields;
    ///
    /// let mut b = EncodedExtFields::builder(16);
    /// b.str("a", "group");
    /// let kept = b.build().detach();
    /// assert_eq!(kept.as_json(), br#""a":"group""#);
    /// ```
    #[must_use]
    pub fn detach(self) -> Self {
        Self {
            json: BytesMut::from(&self.json[..]),
        }
    }

    /// The JSON text of the entries (`"k":"v"` members joined by `,`, no braces).
    #[must_use]
    pub fn as_json(&self) -> &[u8] {
        &self.json
    }

    /// Whether there is no entry.
    #[must_use]
    #[inline]
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
pub struct EncodedExtBuilder {
    json: BytesMut,
    /// Entries on their way into `json` (written by [`build`](Self::build) at the latest).
    stage: Stage<STAGE>,
}

/// Bytes of entries gathered on the stack between two copies into the JSON.
const STAGE: usize = 128;

/// The size of the chunks the builders of small entries share.
const CHUNK: usize = 4096;

/// Room left in a chunk below which it is not kept for the next builder.
const MIN_SPARE: usize = 256;

thread_local! {
    /// The unused end of this thread's last chunk (see [`EncodedExtFields::builder`]).
    static SPARE: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

impl EncodedExtBuilder {
    /// Adds `key` with a string value.
    #[inline]
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key, true);
        self.stage.str_content(&mut self.json, value.as_bytes());
        self.stage.fixed(&mut self.json, b"\"");
        self
    }

    /// Adds `key` with the decimal text of `value`.
    #[inline]
    pub fn int(&mut self, key: &str, value: i64) -> &mut Self {
        self.key(key, true);
        self.stage.int(&mut self.json, value);
        self.stage.fixed(&mut self.json, b"\"");
        self
    }

    /// Adds `key` with `"true"` or `"false"`.
    #[inline]
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key, false);
        if value {
            self.stage.fixed(&mut self.json, b"\"true\"");
        } else {
            self.stage.fixed(&mut self.json, b"\"false\"");
        }
        self
    }

    /// Adds every entry of `other`, copied as it is.
    #[inline]
    pub fn extend(&mut self, other: &EncodedExtFields) -> &mut Self {
        if !other.is_empty() {
            if !self.is_empty() {
                self.stage.fixed(&mut self.json, b",");
            }
            self.stage.raw(&mut self.json, &other.json);
        }
        self
    }

    /// The bytes written so far.
    #[must_use]
    #[inline]
    pub fn len(&self) -> usize {
        self.json.len() + self.stage.len()
    }

    /// Whether nothing is written yet.
    #[must_use]
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries written.
    #[must_use]
    #[inline]
    pub fn build(mut self) -> EncodedExtFields {
        self.stage.flush(&mut self.json);
        // The entries keep their bytes; the room after them serves the next builder.
        let json = self.json.split();
        if self.json.capacity() >= MIN_SPARE {
            // A nested builder may have put its own spare back meanwhile: the larger one stays.
            let _ = SPARE.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.capacity() < self.json.capacity() {
                    *spare = std::mem::take(&mut self.json);
                }
            });
        }
        EncodedExtFields { json }
    }

    /// `,"key":` (no comma before the first entry), and the value's opening quote when
    /// `quote`; a one-byte key that needs no escape (every key of a producer's send) in one
    /// fixed-size store.
    #[inline(always)]
    fn key(&mut self, key: &str, quote: bool) {
        let first = self.is_empty();
        let (json, stage) = (&mut self.json, &mut self.stage);
        match *key.as_bytes() {
            [k] if k >= 0x20 && k != b'"' && k != b'\\' => match (first, quote) {
                (false, true) => stage.fixed(json, &[b',', b'"', k, b'"', b':', b'"']),
                (true, true) => stage.fixed(json, &[b'"', k, b'"', b':', b'"']),
                (false, false) => stage.fixed(json, &[b',', b'"', k, b'"', b':']),
                (true, false) => stage.fixed(json, &[b'"', k, b'"', b':']),
            },
            _ => {
                if !first {
                    stage.fixed(json, b",");
                }
                stage.fixed(json, b"\"");
                stage.str_content(json, key.as_bytes());
                stage.fixed(json, b"\":");
                if quote {
                    stage.fixed(json, b"\"");
                }
            }
        }
    }
}

impl fmt::Debug for EncodedExtBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedExtBuilder")
            .field("len", &self.len())
            .finish_non_exhaustive()
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
