//! The JSON header (serialize type 0): fastjson's serialization of Java's `RemotingCommand`.
//!
//! Encoding writes the keys in Java's order (fastjson `SortField`: alphabetical): `code`,
//! `extFields` (omitted when empty), `flag`, `language`, `opaque`, `remark` (omitted when
//! `None`), `serializeTypeCurrentRPC` (always), `version`. Ext fields are written in their
//! insertion order. Decoding accepts what Java accepts: missing keys (defaults), `null` remark
//! and ext fields, unknown keys, unknown language names (→ `OTHER`), and ext values that are
//! strings, numbers or booleans. Unescaped ext strings are slices of the received frame.

use std::borrow::Cow;
use std::fmt;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use rmq_common::{ExtFields, LanguageCode};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;

use crate::command::{self, RemotingCommand};
use crate::error::DecodeError;
/// Where the reply decoder finds its strings' escapes.
pub(crate) use crate::json_write::clean_prefix;
use crate::json_write::Stage;
#[cfg(test)]
use crate::json_write::{put_i64, put_str_bytes};

/// Appends the JSON header of `cmd` to `dst`, gathered on the stack and copied a few hundred
/// bytes at a time ([`Stage`]).
pub(crate) fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let mut s = Stage::<256>::new();
    s.fixed(dst, b"{\"code\":");
    s.int(dst, cmd.code.into());
    // Entries already encoded come first, copied in one write.
    let pre = cmd.encoded_ext.as_ref().map_or(&[][..], |e| e.as_json());
    if !pre.is_empty() || !cmd.ext_fields.is_empty() {
        s.fixed(dst, b",\"extFields\":{");
        s.raw(dst, pre);
        put_entries(&mut s, dst, &cmd.ext_fields, !pre.is_empty());
        s.fixed(dst, b"}");
    }
    s.fixed(dst, b",\"flag\":");
    s.int(dst, cmd.flag.into());
    s.fixed(dst, b",\"language\":\"");
    s.str_content(dst, cmd.language.name().unwrap_or("OTHER").as_bytes());
    s.fixed(dst, b"\",\"opaque\":");
    s.int(dst, cmd.opaque.into());
    if let Some(remark) = &cmd.remark {
        s.fixed(dst, b",\"remark\":\"");
        s.str_content(dst, remark.as_bytes());
        s.fixed(dst, b"\"");
    }
    s.fixed(dst, b",\"serializeTypeCurrentRPC\":\"");
    s.str_content(dst, cmd.serialize_type.java_name().as_bytes());
    s.fixed(dst, b"\",\"version\":");
    s.int(dst, cmd.version.into());
    s.fixed(dst, b"}");
    s.flush(dst);
}

/// Writes the members of `ext` (`"k":"v"` joined by `,`; a leading `,` when `comma`), walked
/// with `for_each` (the map's form looked at once, not per entry).
fn put_entries<const N: usize>(s: &mut Stage<N>, dst: &mut BytesMut, ext: &ExtFields, comma: bool) {
    let mut comma = comma;
    ext.iter().for_each(|(k, v)| {
        put_entry(s, dst, k.as_bytes(), v.as_bytes(), comma);
        comma = true;
    });
}

/// Writes one member (after a `,` when `comma`); a one-byte key that needs no escape (every key
/// of a producer's send) is one fixed-size store.
#[inline(always)]
fn put_entry<const N: usize>(
    s: &mut Stage<N>,
    dst: &mut BytesMut,
    k: &[u8],
    v: &[u8],
    comma: bool,
) {
    match *k {
        [key] if key >= 0x20 && key != b'"' && key != b'\\' => {
            if comma {
                s.fixed(dst, &[b',', b'"', key, b'"', b':', b'"']);
            } else {
                s.fixed(dst, &[b'"', key, b'"', b':', b'"']);
            }
        }
        _ => {
            if comma {
                s.fixed(dst, b",");
            }
            s.fixed(dst, b"\"");
            s.str_content(dst, k);
            s.fixed(dst, b"\":\"");
        }
    }
    s.str_content(dst, v);
    s.fixed(dst, b"\"");
}

/// Writes `v` in decimal.
#[cfg(test)]
fn put_i32(dst: &mut BytesMut, v: i32) {
    put_i64(dst, v.into());
}

/// Writes `s` as a JSON string: `"` and `\` escaped, `\b \f \n \r \t` in short form, other
/// control characters as `\u00XX` (uppercase hex, as fastjson); everything else raw UTF-8.
#[cfg(test)]
fn put_str(dst: &mut BytesMut, s: &str) {
    put_str_bytes(dst, s.as_bytes());
}

/// Decodes a JSON header. `header` must be a slice of the received frame: unescaped ext
/// strings are returned as slices of it.
///
/// The common shape (what Java and brokers write) takes a scan without serde
/// ([`header_json_fast`](crate::header_json_fast)); anything else the full decoder.
pub(crate) fn decode(header: &Bytes) -> Result<RemotingCommand, DecodeError> {
    match crate::header_json_fast::decode(header) {
        Some(cmd) => Ok(cmd),
        None => decode_full(header),
    }
}

/// The full (serde) decoder: everything Java accepts.
pub(crate) fn decode_full(header: &Bytes) -> Result<RemotingCommand, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(header);
    let cmd = HeaderSeed { src: header }
        .deserialize(&mut de)
        .and_then(|cmd| de.end().map(|()| cmd))
        .map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(cmd)
}

struct HeaderSeed<'a> {
    src: &'a Bytes,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = RemotingCommand;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for HeaderSeed<'_> {
    type Value = RemotingCommand;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a remoting command header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cmd = command::blank();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match &*key.0 {
                "code" => cmd.code = map.next_value::<Option<i32>>()?.unwrap_or(0),
                "version" => cmd.version = map.next_value::<Option<i32>>()?.unwrap_or(0),
                "opaque" => cmd.opaque = map.next_value::<Option<i32>>()?.unwrap_or(0),
                "flag" => cmd.flag = map.next_value::<Option<i32>>()?.unwrap_or(0),
                "remark" => cmd.remark = map.next_value::<Option<String>>()?,
                "language" => cmd.language = map.next_value::<LanguageValue>()?.0,
                "extFields" => {
                    cmd.ext_fields = map.next_value_seed(ExtSeed { src: self.src })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(cmd)
    }
}

/// A `language` value: an enum name (unknown → `OTHER`), an ordinal, or `null` (→ `JAVA`).
struct LanguageValue(LanguageCode);

impl<'de> de::Deserialize<'de> for LanguageValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LanguageValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a language name or code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LanguageValue(
                    LanguageCode::from_name(v).unwrap_or(LanguageCode::OTHER),
                ))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LanguageValue(known(u8::try_from(v).ok())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LanguageValue(known(u8::try_from(v).ok())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LanguageValue(LanguageCode::JAVA))
            }
        }
        d.deserialize_any(V)
    }
}

/// A language ordinal this crate can name, else `OTHER` (what the encoder could write back).
fn known(code: Option<u8>) -> LanguageCode {
    code.map(LanguageCode)
        .filter(|c| c.name().is_some())
        .unwrap_or(LanguageCode::OTHER)
}

/// The `extFields` object (or `null`).
struct ExtSeed<'a> {
    src: &'a Bytes,
}

impl<'de> DeserializeSeed<'de> for ExtSeed<'_> {
    type Value = ExtFields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ExtSeed<'_> {
    type Value = ExtFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string values or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(ExtFields::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut ext = ExtFields::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let key = self.string(key.0);
            match map.next_value::<ExtValue<'de>>()? {
                ExtValue::Str(v) => ext.push(key, self.string(v)),
                ExtValue::Text(v) => ext.push(key, ByteString::from(v)),
                ExtValue::Null => {
                    ext.remove(&key);
                }
            }
        }
        Ok(ext)
    }
}

impl ExtSeed<'_> {
    /// A borrowed string becomes a slice of the frame; an unescaped copy is moved in.
    fn string(&self, s: Cow<'_, str>) -> ByteString {
        match s {
            Cow::Borrowed(b) => slice_of(self.src, b),
            Cow::Owned(o) => ByteString::from(o),
        }
    }
}

/// `s` as a zero-copy [`ByteString`] when it lies inside `src`, else a copy.
fn slice_of(src: &Bytes, s: &str) -> ByteString {
    let base = src.as_ptr() as usize;
    let p = s.as_ptr() as usize;
    if p >= base && p + s.len() <= base + src.len() {
        if let Ok(b) = ByteString::try_from(src.slice_ref(s.as_bytes())) {
            return b;
        }
    }
    ByteString::from(s)
}

/// An object key, borrowed from the frame when it has no escapes (serde's own `Cow<str>` always
/// copies: that was one allocation per key of every decoded header).
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An ext-field value: a string (borrowed when unescaped), a number or boolean as its text, or null.
enum ExtValue<'de> {
    Str(Cow<'de, str>),
    Text(String),
    Null,
}

impl<'de> de::Deserialize<'de> for ExtValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExtValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number, boolean or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ExtValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ExtValue::Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ExtValue::Null)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
#[path = "header_json_encode_tests.rs"]
mod encode_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<RemotingCommand, DecodeError> {
        decode(&Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn escapes_like_fastjson() {
        let mut b = BytesMut::new();
        put_str(&mut b, "a\"b\\c\u{1}\u{2}\n\u{1f}é");
        assert_eq!(
            &b[..],
            "\"a\\\"b\\\\c\\u0001\\u0002\\n\\u001Fé\"".as_bytes()
        );
    }

    #[test]
    fn escapes_are_found_at_every_position_of_a_word() {
        for special in ['"', '\\', '\u{0}', '\u{1}', '\n', '\u{1f}'] {
            for len in 0..20 {
                for at in 0..len {
                    let s: String = (0..len)
                        .map(|i| if i == at { special } else { 'a' })
                        .collect();
                    let mut b = BytesMut::new();
                    put_str(&mut b, &s);
                    let want = serde_json::to_string(&s)
                        .unwrap()
                        .replace("\\u001f", "\\u001F");
                    assert_eq!(std::str::from_utf8(&b).unwrap(), want, "{s:?}");
                }
            }
        }
        // bytes just above the controls and multi-byte UTF-8 need no escape
        let s = " !#[]~\u{7f}é€😀 ";
        let mut b = BytesMut::new();
        put_str(&mut b, s);
        assert_eq!(&b[1..b.len() - 1], s.as_bytes());
        assert_eq!(clean_prefix(s.as_bytes()), s.len());
    }

    #[test]
    fn clean_prefix_finds_the_first_byte_to_escape_at_every_position() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| c < 0x20 || c == b'"' || c == b'\\')
                .unwrap_or(b.len())
        };
        for len in 0..=40 {
            let clean: Vec<u8> = (0..len).map(|i| b"a~ \x7f\xc3\xa9!#"[i % 7]).collect();
            assert_eq!(clean_prefix(&clean), naive(&clean), "clean, len {len}");
            for at in 0..len {
                for bad in [0u8, 0x1F, b'"', b'\\', b'\n'] {
                    let mut v = clean.clone();
                    v[at] = bad;
                    assert_eq!(clean_prefix(&v), at, "{bad:#x} at {at} of {len}");
                    // a second one later changes nothing
                    if at + 1 < len {
                        v[len - 1] = b'"';
                        assert_eq!(clean_prefix(&v), at, "{bad:#x} at {at} of {len}, twice");
                    }
                }
            }
        }
    }

    #[test]
    fn ext_entries_clean_and_escaped() {
        let mut ext = ExtFields::new();
        ext.insert("a", "1");
        ext.insert("k\"", "v\u{1}");
        ext.insert("b", "x\ny");
        ext.insert("c", "");
        let cmd = RemotingCommand::request(rmq_common::RequestCode(10), ext);
        let mut b = BytesMut::new();
        encode(&cmd, &mut b);
        let text = std::str::from_utf8(&b).unwrap();
        assert!(
            text.starts_with(
                r#"{"code":10,"extFields":{"a":"1","k\"":"v\u0001","b":"x\ny","c":""},"flag":0,"#
            ),
            "{text}"
        );
        assert_eq!(dec(text).unwrap(), cmd);
    }

    #[test]
    fn integers() {
        for v in [0, 1, -1, 9, 10, 437, i32::MAX, i32::MIN] {
            let mut b = BytesMut::new();
            put_i32(&mut b, v);
            assert_eq!(std::str::from_utf8(&b).unwrap(), v.to_string());
        }
    }

    #[test]
    fn tolerant_decode() {
        let c =
            dec(r#"{"code":17,"language":"COBOL","remark":null,"extFields":null,"x":[1,{"y":2}]}"#)
                .unwrap();
        assert_eq!(c.code, 17);
        assert_eq!(c.language, LanguageCode::OTHER);
        assert_eq!(c.remark, None);
        assert!(c.ext_fields.is_empty());
        assert_eq!(c.version, 0);

        let c = dec(r#"{"extFields":{"a":"1","b":2,"c":true,"d":null,"e":"x\u0001y"}}"#).unwrap();
        assert_eq!(c.ext_fields.get("a"), Some("1"));
        assert_eq!(c.ext_fields.get("b"), Some("2"));
        assert_eq!(c.ext_fields.get("c"), Some("true"));
        assert_eq!(c.ext_fields.get("d"), None);
        assert_eq!(c.ext_fields.get("e"), Some("x\u{1}y"));
        assert_eq!(c.language, LanguageCode::JAVA);
    }

    #[test]
    fn keys_and_values_are_slices_of_the_frame_unless_escaped() {
        let frame = Bytes::from_static(
            br#"{"c\u006fde":12,"extFields":{"msgId":"AB","k\u0065y":"v\"w"},"opaque":3}"#,
        );
        let c = decode(&frame).unwrap();
        // Escaped keys are unescaped (into a copy) and still recognised.
        assert_eq!(c.code, 12);
        assert_eq!(c.opaque, 3);
        assert_eq!(c.ext_fields.get("key"), Some("v\"w"));
        let (key, value) = c
            .ext_fields
            .iter()
            .find(|(k, _)| &**k == "msgId")
            .expect("msgId");
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(range.contains(&(key.as_ptr() as usize)), "key copied");
        assert!(range.contains(&(value.as_ptr() as usize)), "value copied");
    }

    #[test]
    fn rejects_garbage() {
        assert!(dec("{").is_err());
        assert!(dec("[]").is_err());
        assert!(dec(r#"{"code":"x"}"#).is_err());
        assert!(dec(r#"{"code":1} trailing"#).is_err());
        assert!(dec(r#"{"extFields":{"a":[1]}}"#).is_err());
    }
}
