//! A fast path for decoding the JSON header: a single scan over the exact shape Java (fastjson)
//! and brokers write, without serde.
//!
//! It accepts only a strict subset of what [`header_json::decode`](crate::header_json) accepts:
//! no whitespace, strings without escapes or control characters, integers without leading
//! zeros or exponents, ext values that are strings, and unknown top-level keys whose value is
//! such a string or integer. On anything else it answers `None` and the caller falls back to
//! the full (serde) decoder, so what it accepts decodes exactly as the full decoder decodes it
//! (the fuzz target `decode_header` checks this: [`crate::fuzzing::check_header`]).

use bytes::Bytes;
use bytestring::ByteString;
use rmq_common::{ExtFields, LanguageCode};

use crate::command::{self, RemotingCommand};
use crate::header_json::clean_prefix;

/// Decodes `header` if it has the common shape; `None` means "use the full decoder" (the
/// header may still be valid, or not).
pub(crate) fn decode(header: &Bytes) -> Option<RemotingCommand> {
    // Checked as UTF-8 once, whole: every string inside is then a slice of it (cut at ASCII
    // quotes, so on character boundaries), with no check of its own.
    let text = ByteString::try_from(header.clone()).ok()?;
    let mut s = Scan { text: &text, at: 0 };
    let mut cmd = command::blank();
    s.byte(b'{')?;
    if !s.eat(b'}') {
        loop {
            match s.key()? {
                Key::Code => cmd.code = s.int()?,
                Key::Opaque => cmd.opaque = s.int()?,
                Key::Flag => cmd.flag = s.int()?,
                Key::Version => cmd.version = s.int()?,
                // `null` as the full decoder reads it: no remark, no ext fields.
                Key::Remark if s.null() => cmd.remark = None,
                Key::Remark => cmd.remark = Some(s.plain_str()?.to_owned()),
                Key::Language => {
                    let name = s.plain_str()?;
                    cmd.language = LanguageCode::from_name(name).unwrap_or(LanguageCode::OTHER);
                }
                Key::ExtFields if s.null() => cmd.ext_fields = ExtFields::new(),
                Key::ExtFields => cmd.ext_fields = s.ext()?,
                Key::Other => s.skip_scalar()?,
            }
            if s.eat(b'}') {
                break;
            }
            s.byte(b',')?;
        }
    }
    // Nothing may follow the object (the full decoder rejects trailing bytes, or skips
    // whitespace: either way, not the fast path's business).
    (s.at == text.len()).then_some(cmd)
}

/// `Some((N, key))` when `rest` starts with the `N` bytes of `name`.
#[inline(always)]
fn lit<const N: usize>(rest: &[u8], name: &[u8; N], key: Key) -> Option<(usize, Key)> {
    (rest.first_chunk::<N>() == Some(name)).then_some((N, key))
}

/// A top-level key of the header.
#[derive(Clone, Copy)]
enum Key {
    Code,
    ExtFields,
    Flag,
    Language,
    Opaque,
    Remark,
    Version,
    /// Any other key (`serializeTypeCurrentRPC` too: the frame's type byte tells it).
    Other,
}

struct Scan<'a> {
    /// The whole header.
    text: &'a ByteString,
    at: usize,
}

impl<'a> Scan<'a> {
    fn bytes(&self) -> &'a [u8] {
        let text: &'a str = self.text;
        text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    /// Consumes `b` or fails.
    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.peek() == Some(b);
        if next {
            self.at += 1;
        }
        next
    }

    /// Consumes `null` if it is next.
    fn null(&mut self) -> bool {
        let next = self
            .bytes()
            .get(self.at..)
            .is_some_and(|r| r.starts_with(b"null"));
        if next {
            self.at += 4;
        }
        next
    }

    /// A key and its colon: the known keys told by their first letter and compared whole
    /// (closing quote and colon included, as fixed-size arrays: no `memcmp` call), without a
    /// string scan.
    fn key(&mut self) -> Option<Key> {
        self.byte(b'"')?;
        let rest = self.bytes().get(self.at..)?;
        let known = match *rest.first()? {
            b'c' => lit(rest, b"code\":", Key::Code),
            b'e' => lit(rest, b"extFields\":", Key::ExtFields),
            b'f' => lit(rest, b"flag\":", Key::Flag),
            b'l' => lit(rest, b"language\":", Key::Language),
            b'o' => lit(rest, b"opaque\":", Key::Opaque),
            b'r' => lit(rest, b"remark\":", Key::Remark),
            b's' => lit(rest, b"serializeTypeCurrentRPC\":", Key::Other),
            b'v' => lit(rest, b"version\":", Key::Version),
            _ => None,
        };
        if let Some((len, key)) = known {
            self.at += len;
            return Some(key);
        }
        self.at -= 1;
        self.plain_str()?;
        self.byte(b':')?;
        Some(Key::Other)
    }

    /// A string without escapes or control characters.
    #[inline]
    fn plain_str(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let start = self.at;
        let rest = self.bytes().get(start..)?;
        let len = clean_prefix(rest);
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at += len + 1;
        let text: &'a str = self.text;
        // Between two ASCII quotes: on character boundaries.
        text.get(start..start + len)
    }

    /// An `i32` written as JSON writes it: `0`, or an optional `-` and digits not starting
    /// with `0`.
    fn int(&mut self) -> Option<i32> {
        let neg = self.eat(b'-');
        let rest = self.bytes().get(self.at..)?;
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let digits = &rest[..len];
        // An empty number, a leading zero (`01`, `-0`) or a fraction / exponent: not here.
        if digits.is_empty() || (digits[0] == b'0' && (len > 1 || neg)) || len > 10 {
            return None;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut v: i64 = 0;
        for &d in digits {
            v = v * 10 + i64::from(d - b'0');
        }
        self.at += len;
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// The value of an unknown key: a plain string or an integer (anything else: full decoder).
    fn skip_scalar(&mut self) -> Option<()> {
        if self.peek()? == b'"' {
            self.plain_str().map(|_| ())
        } else {
            self.int().map(|_| ())
        }
    }

    /// The `extFields` object with plain string keys and values, kept as the header's text
    /// ([`ExtFields::from_plain_json`]: no allocation or reference count per entry).
    fn ext(&mut self) -> Option<ExtFields> {
        let (ext, end) = ExtFields::from_plain_json(self.text, self.at)?;
        self.at = end;
        Some(ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_json;

    fn both(s: &str) -> (Option<RemotingCommand>, Option<RemotingCommand>) {
        let b = Bytes::copy_from_slice(s.as_bytes());
        (decode(&b), header_json::decode_full(&b).ok())
    }

    #[test]
    fn the_common_shapes_take_the_fast_path_and_agree_with_serde() {
        for s in [
            r#"{"code":0,"extFields":{"msgId":"7F00000100002A9F0000000000000001","queueId":"3","queueOffset":"42","MSG_REGION":"DefaultRegion","TRACE_ON":"true"},"flag":1,"language":"JAVA","opaque":77,"serializeTypeCurrentRPC":"JSON","version":437}"#,
            r#"{"code":17,"flag":1,"language":"RUST","opaque":-5,"remark":"no route é","version":0}"#,
            r#"{}"#,
            r#"{"extFields":{},"x":12,"y":"z","code":-2147483648}"#,
            r#"{"code":1,"code":2,"extFields":{"a":"1","a":"2"}}"#,
            r#"{"language":"COBOL"}"#,
            r#"{"remark":null,"extFields":null,"code":3}"#,
            r#"{"extFields":{"a":"1"},"extFields":null}"#,
            r#"{"codes":1,"c":"x","":2,"coda":"y","code":4,"serializeTypeCurrentRPC":"JSON"}"#,
            r#"{"extFields":{"k0":"0","k1":"1","k2":"2","k3":"3","k4":"4","k5":"5","k6":"6","k7":"7","k8":"8","k1":"9"}}"#,
            r#"{"extFields":{"":"","é":"ü","code":"x"}}"#,
        ] {
            let (fast, full) = both(s);
            assert!(fast.is_some(), "not on the fast path: {s}");
            assert_eq!(fast, full, "{s}");
        }
    }

    #[test]
    fn anything_unusual_falls_back() {
        for s in [
            r#"{"code": 1}"#,
            r#" {"code":1}"#,
            r#"{"code":1} "#,
            r#"{"code":01}"#,
            r#"{"code":-0}"#,
            r#"{"code":1.0}"#,
            r#"{"code":1e2}"#,
            r#"{"code":2147483648}"#,
            r#"{"code":null}"#,
            r#"{"remark":"a\"b"}"#,
            r#"{"extFields":{"a":1}}"#,
            r#"{"extFields":{"a":null}}"#,
            r#"{"extFields":{"k\u0065y":"v"}}"#,
            r#"{"x":[1]}"#,
            r#"{"x":true}"#,
            r#"{"language":1}"#,
            "{\"remark\":\"a\u{1}b\"}",
            r#"{"code":1,}"#,
            r#"{"remark":nul}"#,
            r#"{"remark":nullx}"#,
            r#"{"extFields":NULL}"#,
            r#"{"code"}"#,
            r#"{"code":}"#,
            r#"{"code" :1}"#,
            r#"{"c"#,
            r#"{""#,
            r#"{"code":1"#,
            r#"{"code""#,
            r#"["#,
            "",
        ] {
            assert_eq!(both(s).0, None, "took the fast path: {s:?}");
        }
    }

    #[test]
    fn strings_of_every_length_with_damage_at_every_position() {
        // Around the 16- and 32-byte vectors of the string search: a remark, an unknown key and
        // an ext value of every length agree with the full decoder, and an escape, a
        // backslash or a control character anywhere sends the header to the full decoder.
        for len in 0..70 {
            let text: String = (0..len)
                .map(|i| if i % 3 == 0 { 'é' } else { 'x' })
                .collect();
            let shapes = [
                format!(r#"{{"code":1,"remark":"{text}","opaque":2}}"#),
                format!(r#"{{"{text}":"{text}","code":1}}"#),
                format!(r#"{{"extFields":{{"{text}":"{text}","k":"v"}},"flag":1}}"#),
            ];
            for s in &shapes {
                let (fast, full) = both(s);
                assert!(fast.is_some(), "not on the fast path: {s}");
                assert_eq!(fast, full, "{s}");
            }
            for at in (0..=len).step_by(3) {
                for bad in ["\\\"", "\\\\", "\\u0041", "\u{1}", "\n", "\\"] {
                    let mut t = text.clone();
                    t.insert_str(t.char_indices().nth(at).map_or(t.len(), |(i, _)| i), bad);
                    for s in [
                        format!(r#"{{"code":1,"remark":"{t}","opaque":2}}"#),
                        format!(r#"{{"{t}":"x","code":1}}"#),
                        format!(r#"{{"extFields":{{"k":"{t}"}},"flag":1}}"#),
                    ] {
                        assert_eq!(both(&s).0, None, "took the fast path: {s:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_falls_back() {
        let mut b = br#"{"remark":""#.to_vec();
        b.extend_from_slice(&[0xFF, b'"', b'}']);
        assert_eq!(decode(&Bytes::from(b)), None);
        let mut b = br#"{"extFields":{"a":""#.to_vec();
        b.extend_from_slice(&[0xC3, b'"', b'}', b'}']);
        assert_eq!(decode(&Bytes::from(b)), None);
    }

    #[test]
    fn ext_strings_are_slices_of_the_frame() {
        let frame = Bytes::from_static(br#"{"extFields":{"msgId":"AB"}}"#);
        let c = decode(&frame).expect("fast path");
        let (k, v) = c.ext_fields.iter().next().expect("one entry");
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        assert!(range.contains(&(k.as_ptr() as usize)));
        assert!(range.contains(&(v.as_ptr() as usize)));
    }
}
