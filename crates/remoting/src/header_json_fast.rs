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
            let key = s.plain_str()?;
            s.byte(b':')?;
            match key {
                "code" => cmd.code = s.int()?,
                "opaque" => cmd.opaque = s.int()?,
                "flag" => cmd.flag = s.int()?,
                "version" => cmd.version = s.int()?,
                "remark" => cmd.remark = Some(s.plain_str()?.to_owned()),
                "language" => {
                    let name = s.plain_str()?;
                    cmd.language = LanguageCode::from_name(name).unwrap_or(LanguageCode::OTHER);
                }
                "extFields" => cmd.ext_fields = s.ext()?,
                _ => s.skip_scalar()?,
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

    /// A string without escapes or control characters.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.byte(b'"')?;
        let rest = self.bytes().get(self.at..)?;
        let len = clean_prefix(rest);
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        let start = self.at;
        self.at += len + 1;
        let text: &'a str = self.text;
        // Between two ASCII quotes: on character boundaries.
        text.get(start..start + len)
    }

    /// A plain string as a zero-copy slice of the frame.
    fn plain_string(&mut self) -> Option<ByteString> {
        let s = self.plain_str()?;
        Some(self.text.slice_ref(s))
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

    /// The `extFields` object with plain string keys and values.
    fn ext(&mut self) -> Option<ExtFields> {
        self.byte(b'{')?;
        let mut ext = ExtFields::with_capacity(8);
        if self.eat(b'}') {
            return Some(ext);
        }
        loop {
            let key = self.plain_string()?;
            self.byte(b':')?;
            if self.peek()? != b'"' {
                return None;
            }
            let value = self.plain_string()?;
            ext.push(key, value);
            if self.eat(b'}') {
                return Some(ext);
            }
            self.byte(b',')?;
        }
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
            r#"{"remark":null}"#,
            r#"{"remark":"a\"b"}"#,
            r#"{"extFields":null}"#,
            r#"{"extFields":{"a":1}}"#,
            r#"{"extFields":{"a":null}}"#,
            r#"{"extFields":{"k\u0065y":"v"}}"#,
            r#"{"x":[1]}"#,
            r#"{"x":true}"#,
            r#"{"language":1}"#,
            "{\"remark\":\"a\u{1}b\"}",
            r#"{"code":1,}"#,
            r#"{"code":1"#,
            r#"{"code""#,
            r#"["#,
            "",
        ] {
            assert_eq!(both(s).0, None, "took the fast path: {s:?}");
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
