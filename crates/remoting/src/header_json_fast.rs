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
use rmq_common::{ExtFields, LanguageCode};

use crate::command::{self, RemotingCommand};
use crate::header_json::clean_prefix;

/// Decodes `header` if it has the common shape; `None` means "use the full decoder" (the
/// header may still be valid, or not).
pub(crate) fn decode(header: &Bytes) -> Option<RemotingCommand> {
    let mut cmd = command::blank();
    decode_into(header, &mut cmd)?;
    Some(cmd)
}

/// [`decode`] into `cmd`, which must be [`command::blank`] (the caller keeps its serialize type
/// and body): `None` means "use the full decoder", and `cmd` may then hold part of the header.
///
/// Headers written in the order Java (fastjson) and brokers write them take [`canonical`]: each
/// key with its separators compared whole, in that order, no key looked up. Any other order
/// takes [`general`] from the start again.
pub(crate) fn decode_into(header: &Bytes, cmd: &mut RemotingCommand) -> Option<()> {
    if canonical(header, cmd).is_some() {
        return Some(());
    }
    *cmd = command::blank();
    general(header, cmd)
}

/// The header in fastjson's order: `{"code":C` [`,"extFields":{…}`] `,"flag":F,"language":"JAVA"`
/// (or `"RUST"`) `,"opaque":O` [`,"remark":…`] `,"serializeTypeCurrentRPC":"JSON","version":V}`,
/// and nothing after it. `None` for anything else (from wherever it differs).
fn canonical(header: &Bytes, cmd: &mut RemotingCommand) -> Option<()> {
    let mut s = Scan {
        bytes: header,
        at: 0,
    };
    s.lit(b"{\"code\":")?;
    cmd.code = s.int()?;
    if s.lit(b",\"extFields\":").is_some() {
        let (ext, end) = ExtFields::from_plain_json_bytes(header, s.at)?;
        s.at = end;
        cmd.ext_fields = ext;
    }
    s.lit(b",\"flag\":")?;
    cmd.flag = s.int()?;
    cmd.language = if s.lit(b",\"language\":\"JAVA\",\"opaque\":").is_some() {
        LanguageCode::JAVA
    } else {
        s.lit(b",\"language\":\"RUST\",\"opaque\":")?;
        LanguageCode::RUST
    };
    cmd.opaque = s.int()?;
    if s.lit(b",\"remark\":").is_some() && !s.null() {
        cmd.remark = Some(s.text()?.to_owned());
    }
    s.lit(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":")?;
    cmd.version = s.int()?;
    s.lit(b"}")?;
    (s.at == header.len()).then_some(())
}

/// Any order of keys, each looked up.
///
/// UTF-8 is checked piece by piece, each byte once: outside strings only ASCII separators,
/// digits, `null` and the known keys are accepted; the `extFields` object is checked whole
/// ([`ExtFields::from_plain_json_bytes`]); every other string on its own.
fn general(header: &Bytes, cmd: &mut RemotingCommand) -> Option<()> {
    let mut s = Scan {
        bytes: header,
        at: 0,
    };
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
                Key::Remark => cmd.remark = Some(s.text()?.to_owned()),
                Key::Language => {
                    cmd.language = match s.plain_bytes()? {
                        b"JAVA" => LanguageCode::JAVA,
                        b"RUST" => LanguageCode::RUST,
                        // Not UTF-8: not here (the full decoder refuses it).
                        name => LanguageCode::from_name(std::str::from_utf8(name).ok()?)
                            .unwrap_or(LanguageCode::OTHER),
                    };
                }
                Key::ExtFields if s.null() => cmd.ext_fields = ExtFields::new(),
                Key::ExtFields => {
                    let (ext, end) = ExtFields::from_plain_json_bytes(header, s.at)?;
                    s.at = end;
                    cmd.ext_fields = ext;
                }
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
    (s.at == header.len()).then_some(())
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
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    /// Consumes the `N` bytes of `text` if they are next (compared as a fixed-size array).
    #[inline(always)]
    fn lit<const N: usize>(&mut self, text: &[u8; N]) -> Option<()> {
        let next = self.bytes.get(self.at..)?.first_chunk::<N>() == Some(text);
        next.then(|| self.at += N)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
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
            .bytes
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
        let rest = self.bytes.get(self.at..)?;
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
        self.checked_str()?;
        self.byte(b':')?;
        Some(Key::Other)
    }

    /// The bytes of a string without escapes or control characters (not checked as UTF-8).
    #[inline]
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.byte(b'"')?;
        let start = self.at;
        let rest = self.bytes.get(start..)?;
        let len = clean_prefix(rest);
        if rest.get(len) != Some(&b'"') {
            return None;
        }
        self.at += len + 1;
        rest.get(..len)
    }

    /// A string without escapes or control characters, checked as UTF-8.
    #[inline]
    fn text(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// A string without escapes or control characters, checked as UTF-8 but not needed as text
    /// (ASCII, the common case, checked without the UTF-8 decoder).
    #[inline]
    fn checked_str(&mut self) -> Option<()> {
        let b = self.plain_bytes()?;
        (b.is_ascii() || std::str::from_utf8(b).is_ok()).then_some(())
    }

    /// An `i32` written as JSON writes it: `0`, or an optional `-` and digits not starting
    /// with `0`. Read in one walk over the digits (at most 11 looked at: more is too many).
    #[inline(always)]
    fn int(&mut self) -> Option<i32> {
        let neg = self.eat(b'-');
        let rest = self.bytes.get(self.at..)?;
        let mut v: i64 = 0;
        let mut len = 0;
        for &b in rest.iter().take(11) {
            let d = b.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            v = v * 10 + i64::from(d);
            len += 1;
        }
        // An empty number, a leading zero (`01`, `-0`), too many digits or a fraction /
        // exponent: not here.
        if len == 0 || len > 10 || (rest[0] == b'0' && (len > 1 || neg)) {
            return None;
        }
        if matches!(rest.get(len), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.at += len;
        i32::try_from(if neg { -v } else { v }).ok()
    }

    /// The value of an unknown key: a plain string or an integer (anything else: full decoder).
    fn skip_scalar(&mut self) -> Option<()> {
        if self.peek()? == b'"' {
            self.checked_str()
        } else {
            self.int().map(|_| ())
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

    /// `canonical` alone on `s`: `Some` with the command when it takes the header.
    fn canonical_only(s: &str) -> Option<RemotingCommand> {
        let b = Bytes::copy_from_slice(s.as_bytes());
        let mut cmd = command::blank();
        canonical(&b, &mut cmd).map(|()| cmd)
    }

    #[test]
    fn headers_in_fastjson_order_take_the_canonical_walk_and_agree_with_serde() {
        for s in [
            r#"{"code":0,"extFields":{"msgId":"7F00000100002A9F0000000000000001","queueId":"3","queueOffset":"42","MSG_REGION":"DefaultRegion","TRACE_ON":"true"},"flag":1,"language":"JAVA","opaque":77,"serializeTypeCurrentRPC":"JSON","version":437}"#,
            r#"{"code":-2147483648,"flag":-1,"language":"RUST","opaque":2147483647,"serializeTypeCurrentRPC":"JSON","version":0}"#,
            r#"{"code":17,"flag":1,"language":"JAVA","opaque":5,"remark":"no route é","serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":17,"flag":1,"language":"JAVA","opaque":5,"remark":null,"serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":17,"flag":1,"language":"JAVA","opaque":5,"remark":"","serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":1,"extFields":{},"flag":0,"language":"RUST","opaque":0,"serializeTypeCurrentRPC":"JSON","version":1}"#,
            r#"{"code":1,"extFields":{"a":"1","a":"2"},"flag":0,"language":"JAVA","opaque":0,"serializeTypeCurrentRPC":"JSON","version":1}"#,
        ] {
            let canonical = canonical_only(s);
            assert!(canonical.is_some(), "not on the canonical walk: {s}");
            let (fast, full) = both(s);
            assert_eq!(canonical, full, "{s}");
            assert_eq!(fast, full, "{s}");
        }
    }

    #[test]
    fn other_orders_and_values_leave_the_canonical_walk_for_the_general_one() {
        for s in [
            // Other orders, languages, serialize types, missing keys: still the fast path.
            r#"{"flag":1,"code":0,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":0,"flag":1,"language":"CPP","opaque":5,"serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"ROCKETMQ","version":9}"#,
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":5,"version":9}"#,
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":9,"x":1}"#,
            r#"{"code":0,"extFields":null,"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":5,"remark":"a","remark":"b","serializeTypeCurrentRPC":"JSON","version":9}"#,
            r#"{"code":0,"flag":1,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":9,"code":3}"#,
        ] {
            assert!(canonical_only(s).is_none(), "on the canonical walk: {s}");
            let (fast, full) = both(s);
            assert!(fast.is_some(), "not on the fast path: {s}");
            assert_eq!(fast, full, "{s}");
        }
        // Not JSON the fast path takes, at any point of the canonical order.
        let good = r#"{"code":0,"extFields":{"k":"v"},"flag":1,"language":"JAVA","opaque":5,"remark":"r","serializeTypeCurrentRPC":"JSON","version":9}"#;
        for cut in 0..good.len() {
            let s = &good[..cut];
            assert!(canonical_only(s).is_none(), "{s}");
            assert_eq!(both(s).0, None, "{s}");
        }
        for s in [
            format!("{good} "),
            good.replace("\"opaque\":5", "\"opaque\":05"),
            good.replace("\"version\":9", "\"version\":9.0"),
            good.replace("\"code\":0", "\"code\":-0"),
            good.replace("\"r\"", "\"r\\n\""),
            good.replace("\"v\"", "\"v\\n\""),
            good.replace("\"flag\":1", "\"flag\":2147483648"),
        ] {
            assert!(canonical_only(&s).is_none(), "{s}");
            assert_eq!(both(&s).0, None, "{s}");
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
    fn languages_and_unknown_strings_agree_and_bytes_not_utf8_fall_back() {
        for s in [
            r#"{"language":"JAVA","code":1}"#,
            r#"{"language":"RUST","code":1}"#,
            r#"{"language":"CPP","code":1}"#,
            r#"{"language":"JAVAX","code":1}"#,
            r#"{"language":"","code":1}"#,
            r#"{"language":"é","code":1}"#,
            r#"{"clé":"vàleur","x":"ü","code":1}"#,
        ] {
            let (fast, full) = both(s);
            assert!(fast.is_some(), "not on the fast path: {s}");
            assert_eq!(fast, full, "{s}");
        }
        for (head, tail) in [
            (&br#"{"language":""#[..], &br#"","code":1}"#[..]),
            (br#"{"remark":""#, br#"","code":1}"#),
            (br#"{""#, br#"":"v","code":1}"#),
            (br#"{"k":""#, br#"","code":1}"#),
            (br#"{"extFields":{"k":""#, br#""},"code":1}"#),
        ] {
            for bad in [&[0xFF][..], &[0xC3], &[b'a', 0xC3], &[0xE2, 0x82]] {
                let mut b = head.to_vec();
                b.extend_from_slice(bad);
                b.extend_from_slice(tail);
                let b = Bytes::from(b);
                // (The full decoder skips an unknown key's value unread: it may take it.)
                assert_eq!(decode(&b), None, "{b:?}");
            }
        }
    }

    #[test]
    fn non_ascii_text_around_the_ext_object_at_every_offset() {
        // The ext object is checked as UTF-8 over whole 64-byte blocks around it: characters of
        // the remark cut at that span's edges still take the fast path.
        for n in 0..80 {
            for c in ["é", "€", "𝄞"] {
                let pad = c.repeat(n / 3) + &"x".repeat(n % 3);
                for s in [
                    format!(
                        r#"{{"remark":"{pad}","extFields":{{"msgId":"AB","queueId":"1"}},"code":0}}"#
                    ),
                    format!(
                        r#"{{"extFields":{{"msgId":"AB","queueId":"1"}},"remark":"{pad}","code":0}}"#
                    ),
                ] {
                    let (fast, full) = both(&s);
                    assert!(fast.is_some(), "not on the fast path: {s}");
                    assert_eq!(fast, full, "{s}");
                }
            }
        }
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
