//! [`JsonEntries`]: ext-field entries kept as the JSON object text they arrived in, read on
//! demand, so that a decoded reply costs no allocation and no reference count per entry.

use bytestring::ByteString;

/// The inside of a JSON object of plain strings, `"k":"v","k2":"v2"` (possibly empty), as
/// received: no whitespace, no escapes, no control characters (checked by [`parse`](Self::parse),
/// so every string ends at the next quote).
#[derive(Clone)]
pub(crate) struct JsonEntries {
    text: ByteString,
    len: u32,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` (little-endian) equal to `b`; exact for the lowest flagged
/// byte (the borrows of the subtraction only run upwards from a flagged byte), which is all
/// [`find`] reads.
#[inline(always)]
const fn equal(w: u64, b: u8) -> u64 {
    let x = w ^ (ONES * b as u64);
    x.wrapping_sub(ONES) & !x & HIGH
}

/// The high bit of each byte of `w` that ends a plain string or cannot be in one: a quote, a
/// backslash or a control character (exact for the lowest, as [`equal`]).
#[inline(always)]
const fn stop_flags(w: u64) -> u64 {
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    control | equal(w, b'"') | equal(w, b'\\')
}

/// The index of the first byte at or after `at` that `flags` flags, 8 bytes at a time; `None`
/// when there is none.
#[inline(always)]
fn find(bytes: &[u8], at: usize, flags: impl Fn(u64) -> u64) -> Option<usize> {
    let mut i = at;
    while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let f = flags(u64::from_le_bytes(*word));
        if f != 0 {
            return Some(i + (f.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    // Fewer than 8 bytes left: a word whose first byte is byte `i` and whose bytes past the end
    // are zeros (the text's last word shifted, or the rest copied when the text is shorter).
    let rest = bytes.len().checked_sub(i).filter(|&r| r > 0)?;
    let word = match bytes.last_chunk::<8>() {
        Some(last) => u64::from_le_bytes(*last) >> (8 * (8 - rest)),
        None => {
            let mut pad = [0u8; 8];
            pad[..rest].copy_from_slice(bytes.get(i..)?);
            u64::from_le_bytes(pad)
        }
    };
    let f = flags(word);
    let found = i + (f.trailing_zeros() / 8) as usize;
    (f != 0 && found < bytes.len()).then_some(found)
}

/// The length of the plain string starting at `at` (after its opening quote), when it ends
/// with a quote.
#[inline]
fn plain_len(bytes: &[u8], at: usize) -> Option<usize> {
    let end = find(bytes, at, stop_flags)?;
    (bytes[end] == b'"').then_some(end - at)
}

/// The index of the next quote at or after `at` (`bytes.len()` when none).
#[inline]
fn next_quote(bytes: &[u8], at: usize) -> usize {
    find(bytes, at, |w| equal(w, b'"')).unwrap_or(bytes.len())
}

impl JsonEntries {
    /// Parses the object that starts at byte `at` of `src` (its `{`): `Some` with the entries and
    /// the index just past the closing `}` when the object has the plain shape, `None`
    /// otherwise (whatever else it may be).
    pub(crate) fn parse(src: &ByteString, at: usize) -> Option<(Self, usize)> {
        let bytes = src.as_bytes();
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        let start = at + 1;
        let mut i = start;
        let mut len: u32 = 0;
        if bytes.get(i) != Some(&b'}') {
            loop {
                // "key":"value"
                if bytes.get(i) != Some(&b'"') {
                    return None;
                }
                i += 1 + plain_len(bytes, i + 1)? + 1;
                if bytes.get(i..i + 2) != Some(b":\"") {
                    return None;
                }
                i += 2 + plain_len(bytes, i + 2)? + 1;
                len = len.checked_add(1)?;
                match bytes.get(i)? {
                    b',' => i += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        // Between ASCII bytes: on character boundaries.
        let inner = src.get(start..i)?;
        let text = src.slice_ref(inner);
        Some((Self { text, len }, i + 1))
    }

    /// Number of entries.
    pub(crate) const fn len(&self) -> usize {
        self.len as usize
    }

    /// The entries in order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        Iter {
            text: &self.text,
            at: 0,
        }
    }

    /// The value of the last entry whose key is `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    /// `s` (a string of these entries) as a shared slice (no copy).
    pub(crate) fn share(&self, s: &str) -> ByteString {
        self.text.slice_ref(s)
    }
}

/// The entries of a [`JsonEntries`], in order.
pub(crate) struct Iter<'a> {
    text: &'a str,
    /// The opening quote of the next key.
    at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let bytes = self.text.as_bytes();
        let ks = self.at + 1;
        let ke = next_quote(bytes, ks);
        let vs = ke + 3;
        let ve = next_quote(bytes, vs);
        // Cut at ASCII quotes: on character boundaries (and `None` past the end).
        let key = self.text.get(ks..ke)?;
        let value = self.text.get(vs..ve)?;
        self.at = ve + 2;
        Some((key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<(Vec<(String, String)>, usize)> {
        let src = ByteString::from(s);
        JsonEntries::parse(&src, 1).map(|(e, end)| {
            assert_eq!(e.iter().count(), e.len());
            let v = e
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            (v, end)
        })
    }

    #[test]
    fn plain_objects_read_back() {
        let (v, end) = parse(r#"x{"a":"1","bé":"","":"z"}y"#).unwrap();
        assert_eq!(
            v,
            [("a", "1"), ("bé", ""), ("", "z")].map(|(k, v)| (k.into(), v.into()))
        );
        assert_eq!(end, r#"x{"a":"1","bé":"","":"z"}"#.len());
        let (v, end) = parse("x{}").unwrap();
        assert!(v.is_empty());
        assert_eq!(end, 3);
        let src = ByteString::from(r#"{"a":"1","a":"2"}"#);
        let (e, _) = JsonEntries::parse(&src, 0).unwrap();
        assert_eq!(e.get("a"), Some("2"));
        assert_eq!(e.get("b"), None);
        let shared = e.share(e.get("a").unwrap());
        assert_eq!(shared.as_ptr(), src[14..].as_ptr());
    }

    #[test]
    fn long_strings_and_stops_at_every_position_of_a_word() {
        for len in 0..40 {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let obj = format!(r#"x{{"{text}":"{text}","k":"{text}"}}"#);
            let (v, _) = parse(&obj).unwrap_or_else(|| panic!("{obj}"));
            assert_eq!(v[0], (text.clone(), text.clone()));
            assert_eq!(v[1], ("k".to_owned(), text.clone()));
            for bad in ['\\', '\u{1f}', '\n'] {
                for at in 0..=len {
                    let mut t: Vec<char> = "y".repeat(len).chars().collect();
                    t.insert(at, bad);
                    let t: String = t.into_iter().collect();
                    assert!(parse(&format!(r#"x{{"a":"{t}"}}"#)).is_none(), "{t:?}");
                    assert!(parse(&format!(r#"x{{"{t}":"a"}}"#)).is_none(), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn find_sees_every_position_of_short_and_long_texts() {
        for len in 0..20 {
            for at in 0..len {
                let mut text = vec![b'a'; len];
                text[at] = b'"';
                for from in 0..=len + 1 {
                    let want = (from <= at).then_some(at);
                    assert_eq!(
                        find(&text, from, |w| equal(w, b'"')),
                        want,
                        "{len} {at} {from}"
                    );
                }
                text[at] = 0x1F;
                assert_eq!(find(&text, 0, stop_flags), Some(at));
            }
            assert_eq!(find(&vec![b'a'; len], 0, stop_flags), None);
        }
    }

    #[test]
    fn escapes_and_quotes_around_word_boundaries() {
        // Strings of every length across a 8-byte word, with the damage (an escaped
        // quote, a backslash, a control character) at every position.
        for len in 0..70 {
            let text = "x".repeat(len);
            let obj = format!(r#"x{{"k":"{text}","{text}":"v"}}"#);
            let (v, _) = parse(&obj).unwrap_or_else(|| panic!("{obj}"));
            assert_eq!(v[0].1, text);
            assert_eq!(v[1].0, text);
            for at in 0..=len {
                for bad in ["\\\"", "\\", "\u{1}", "\\u0041"] {
                    let mut t = text.clone();
                    t.insert_str(at, bad);
                    assert!(parse(&format!(r#"x{{"a":"{t}"}}"#)).is_none(), "{t:?}");
                    assert!(parse(&format!(r#"x{{"{t}":"a"}}"#)).is_none(), "{t:?}");
                    assert!(
                        parse(&format!(r#"x{{"a":"{t}","b":"c"}}"#)).is_none(),
                        "{t:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for s in [
            r#"x{"a":1}"#,
            r#"x{"a":"1",}"#,
            r#"x{"a" :"1"}"#,
            r#"x{"a":"1" }"#,
            r#"x{"a\"":"1"}"#,
            r#"x{"a":"\u0031"}"#,
            "x{\"a\":\"\u{1}\"}",
            r#"x{"a":"1""#,
            r#"x{"a":"1"#,
            r#"x{"a":"#,
            r#"x{"a""#,
            r#"x{"#,
            "x",
            r#"x["a"]"#,
            r#"x{"a":null}"#,
        ] {
            assert!(parse(s).is_none(), "{s}");
        }
    }
}
