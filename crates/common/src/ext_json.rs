//! [`JsonEntries`]: ext-field entries kept as the JSON object text they arrived in, read on
//! demand, so that a decoded reply costs no allocation and no reference count per entry.

use bytes::Bytes;
use bytestring::ByteString;

/// The inside of a JSON object of plain strings, `"k":"v","k2":"v2"` (possibly empty), as
/// received: no whitespace, no escapes, no control characters (checked by [`parse`](Self::parse),
/// so every string ends at the next quote).
#[derive(Clone)]
pub(crate) struct JsonEntries {
    text: ByteString,
    len: u32,
    /// The value lengths of the first [`SHORT`] entries as found by the parse, for
    /// [`pick`](Self::pick) to skip their search ([`LONG`]: not kept, search). In what would
    /// be the struct's padding: it stays 40 bytes.
    value_lens: Shape,
}

/// How many entries' value lengths a [`JsonEntries`] keeps.
const SHORT: usize = 4;

/// A value length not kept (255 bytes or more).
const LONG: u8 = u8::MAX;

/// The value lengths of the first [`SHORT`] entries ([`LONG`] where not kept).
type Shape = [u8; SHORT];

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

/// The index of the next quote at or after `at` (`bytes.len()` when none).
#[inline]
fn next_quote(bytes: &[u8], at: usize) -> usize {
    find(bytes, at, |w| equal(w, b'"')).unwrap_or(bytes.len())
}

/// The high bit of the first byte of `w` (little-endian) that ends a plain string or cannot be
/// in one: a quote, a backslash or a control character. Exact for the lowest flagged byte (the
/// borrows of the subtractions only run upwards from a byte that is one of these), which is all
/// [`find`] reads.
///
/// Quotes and control characters in one test: with bit 1 flipped, the bytes below `0x21` are
/// exactly the control characters (which stay below `0x20`) and the quote (`0x22` becomes
/// `0x20`; the space becomes `0x22`, `!` `0x23` and `#` `0x21`).
#[inline(always)]
const fn stop_flags(w: u64) -> u64 {
    let x = w ^ (ONES * 0x02);
    let quote_or_control = x.wrapping_sub(ONES * 0x21) & !x;
    let b = w ^ (ONES * b'\\' as u64);
    let backslash = b.wrapping_sub(ONES) & !b;
    (quote_or_control | backslash) & HIGH
}

/// The index of the quote that ends the plain string whose text starts at `at`: `None` when a
/// backslash or a control character comes first, or the text ends.
#[inline(always)]
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let end = find(bytes, at, stop_flags)?;
    (bytes.get(end) == Some(&b'"')).then_some(end)
}

/// The span of `0..len` to check as UTF-8 for the bytes `inner`: `inner` widened to a whole
/// number of 64-byte blocks, to the right as far as `len` allows and then to the left (all of
/// `0..len` when it is shorter than those blocks).
fn block_span(len: usize, inner: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let blocks = inner.len().div_ceil(64) * 64;
    let end = len.min(inner.start.saturating_add(blocks));
    end.saturating_sub(blocks)..end
}

impl JsonEntries {
    /// Parses the object that starts at byte `at` of `src` (its `{`): `Some` with the entries and
    /// the index just past the closing `}` when the object has the plain shape, `None`
    /// otherwise (whatever else it may be).
    pub(crate) fn parse(src: &ByteString, at: usize) -> Option<(Self, usize)> {
        let (len, value_lens, end) = Self::shape(src.as_bytes(), at)?;
        // Between ASCII bytes: on character boundaries.
        let inner = src.get(at + 1..end)?;
        let text = src.slice_ref(inner);
        Some((
            Self {
                text,
                len,
                value_lens,
            },
            end + 1,
        ))
    }

    /// [`parse`](Self::parse) for bytes not known to be UTF-8: only the object's inside is
    /// checked (once, whole), so that a caller that reads the rest of `src` itself (and checks
    /// its strings) does not check the object's bytes twice.
    ///
    /// The check runs over a span of whole 64-byte blocks around the object when `src` has
    /// room for one (the standard check goes 64 bytes at a time, then byte by byte: about 5
    /// instructions a byte for the last 1-63); when that span is not UTF-8 (a character of the
    /// rest of `src` cut at its edge, or bytes that are not UTF-8 around the object) the object
    /// alone is checked, so what is accepted does not depend on the bytes around the object.
    pub(crate) fn parse_bytes(src: &Bytes, at: usize) -> Option<(Self, usize)> {
        let (len, value_lens, end) = Self::shape(src, at)?;
        let inner = at + 1..end;
        let span = block_span(src.len(), inner.clone());
        let off = inner.start - span.start;
        let text = match ByteString::try_from(src.slice(span)) {
            // Between ASCII bytes (the braces): on character boundaries.
            Ok(wide) => wide.slice_ref(wide.get(off..off + inner.len())?),
            Err(_) => ByteString::try_from(src.slice(inner)).ok()?,
        };
        Some((
            Self {
                text,
                len,
                value_lens,
            },
            end + 1,
        ))
    }

    /// The number of entries of the plain object that starts at byte `at` of `bytes` (its `{`)
    /// and the index of its `}`; `None` when the object does not have the plain shape.
    ///
    /// One search per string: every byte of the object is either inside a string or one of the
    /// separators compared here, and each string is searched for its first quote, backslash or
    /// control character ([`string_end`]), which must be its closing quote; the opening quotes
    /// are the separators' (`":"` and `,"`).
    fn shape(bytes: &[u8], at: usize) -> Option<(u32, Shape, usize)> {
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        let start = at + 1;
        let mut len: u32 = 0;
        let mut value_lens = [LONG; SHORT];
        let end = match bytes.get(start)? {
            b'}' => start,
            b'"' => {
                // The text of the next key.
                let mut key = start + 1;
                loop {
                    let key_end = string_end(bytes, key)?;
                    if bytes.get(key_end + 1..key_end + 3) != Some(b":\"") {
                        return None;
                    }
                    let value_end = string_end(bytes, key_end + 3)?;
                    if let Some(kept) = value_lens.get_mut(len as usize) {
                        *kept = u8::try_from(value_end - (key_end + 3)).unwrap_or(LONG);
                    }
                    len = len.checked_add(1)?;
                    match bytes.get(value_end + 1)? {
                        b',' if bytes.get(value_end + 2) == Some(&b'"') => key = value_end + 3,
                        b'}' => break value_end + 1,
                        _ => return None,
                    }
                }
            }
            _ => return None,
        };
        Some((len, value_lens, end))
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

    /// The values of the keys that `known` recognises, in one walk over the entries: `known`
    /// is given the bytes from an entry's key on (after its opening quote) and answers the slot
    /// of the key and the length of its name with its closing quote when these start the bytes
    /// (a plain key holds no quote, so that is the whole key); the key of any other entry is
    /// passed by a search for its end. A key given twice fills its slot with its last value, as [`get`](Self::get).
    pub(crate) fn pick<const N: usize>(
        &self,
        known: impl Fn(&[u8]) -> Option<(usize, usize)>,
    ) -> [Option<&str>; N] {
        let mut slots = [None; N];
        let text: &str = &self.text;
        let bytes = text.as_bytes();
        // The opening quote of the next key.
        let mut at = 0;
        for i in 0..self.len as usize {
            let ks = at + 1;
            let (slot, vs) = match bytes.get(ks..).and_then(&known) {
                // `key":"`: the key and its closing quote, the colon and the value's quote.
                Some((slot, matched)) => (Some(slot), ks + matched + 2),
                None => (None, next_quote(bytes, ks) + 3),
            };
            // The value's length as the parse found it, or its closing quote searched for.
            let ve = match self.value_lens.get(i) {
                Some(&n) if n != LONG => vs + usize::from(n),
                _ => next_quote(bytes, vs),
            };
            // Cut at ASCII quotes: on character boundaries (and `None` past the end).
            let value = text.get(vs..ve);
            if let Some(slot) = slot.and_then(|i| slots.get_mut(i)) {
                *slot = value;
            }
            at = ve + 2;
        }
        slots
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
    use proptest::strategy::Strategy;

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
    fn stop_flags_find_the_first_stop_of_every_word() {
        // Every byte value at every place of a word of every other byte value, and two stops
        // in one word: the lowest flagged byte is the first stop (no borrow runs downwards).
        let stop = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        let first = |w: [u8; 8]| w.iter().position(|&x| stop(x));
        for b in 0..=255u8 {
            for fill in 0..=255u8 {
                for at in 0..8 {
                    let mut w = [fill; 8];
                    w[at] = b;
                    let f = stop_flags(u64::from_le_bytes(w));
                    let got = (f != 0).then(|| (f.trailing_zeros() / 8) as usize);
                    assert_eq!(got, first(w), "{b:#x} in {fill:#x} at {at}");
                    for later in at + 1..8 {
                        let mut w2 = w;
                        w2[later] = [b'"', b'\\', 0, 0x1F][later % 4];
                        let f = stop_flags(u64::from_le_bytes(w2));
                        let got = (f != 0).then(|| (f.trailing_zeros() / 8) as usize);
                        assert_eq!(got, first(w2), "{b:#x} in {fill:#x} at {at}, {later}");
                    }
                }
            }
        }
    }

    /// The plain-object reading byte by byte: the entries and the index past the `}`.
    fn reference(s: &str, at: usize) -> Option<(Vec<(String, String)>, usize)> {
        let b = s.as_bytes();
        let string = |mut i: usize| -> Option<(String, usize)> {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            i += 1;
            let start = i;
            loop {
                match *b.get(i)? {
                    b'"' => return Some((s.get(start..i)?.to_owned(), i + 1)),
                    c if c < 0x20 || c == b'\\' => return None,
                    _ => i += 1,
                }
            }
        };
        if b.get(at) != Some(&b'{') {
            return None;
        }
        let mut i = at + 1;
        let mut out = Vec::new();
        if b.get(i) == Some(&b'}') {
            return Some((out, i + 1));
        }
        loop {
            let (k, next) = string(i)?;
            if b.get(next) != Some(&b':') {
                return None;
            }
            let (v, next) = string(next + 1)?;
            out.push((k, v));
            match *b.get(next)? {
                b',' => i = next + 1,
                b'}' => return Some((out, next + 1)),
                _ => return None,
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_agrees_with_a_byte_by_byte_reading(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    8 => "[a-z0-9é]{0,19}".prop_map(|s| format!("\"{s}\"")),
                    1 => "[a-z]{60,130}".prop_map(|s| format!("\"{s}\"")),
                    2 => proptest::sample::select(vec![":", ",", "{", "}", "\"", "\\", "\u{1}", "\n", " ", "\u{7f}", "é", "\"a\\\"b\""]).prop_map(str::to_owned),
                ],
                0..40,
            ),
            lead in proptest::sample::select(vec!["", "x", "{"]),
            seps in proptest::collection::vec(proptest::prop_oneof![6 => proptest::strategy::Just(","), 1 => proptest::strategy::Just(":")], 16),
        ) {
            // Mostly well-formed objects (strings joined by alternating `:` and `,`), with damage.
            let mut obj = format!("{lead}{{");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    obj.push_str(if i % 2 == 1 { ":" } else { seps[i % 16] });
                }
                obj.push_str(p);
            }
            obj.push_str("},\"flag\":1}");
            let at = lead.len();
            let src = ByteString::from(obj.clone());
            let got = JsonEntries::parse(&src, at).map(|(e, end)| {
                let v: Vec<(String, String)> =
                    e.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                proptest::prop_assert_eq!(v.len(), e.len());
                Ok((v, end))
            });
            let got = got.transpose()?;
            let from_bytes = JsonEntries::parse_bytes(&Bytes::from(obj.clone()), at).map(|(e, end)| {
                let v: Vec<(String, String)> =
                    e.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                (v, end)
            });
            proptest::prop_assert_eq!(&from_bytes, &got, "parse_bytes: {}", obj);
            proptest::prop_assert_eq!(got, reference(&obj, at), "{}", obj);
        }
    }

    #[test]
    fn block_span_covers_the_object_in_whole_blocks() {
        for len in 0..300 {
            for start in 0..len.min(140) {
                for end in start..=len.min(start + 140) {
                    let span = block_span(len, start..end);
                    assert!(span.start <= start && end <= span.end && span.end <= len);
                    let blocks = (end - start).div_ceil(64) * 64;
                    if len >= blocks {
                        assert_eq!(span.len(), blocks, "{len} {start} {end}");
                    } else {
                        assert_eq!(span, 0..len);
                    }
                }
            }
        }
    }

    #[test]
    fn parse_bytes_ignores_what_surrounds_the_object() {
        // Multi-byte characters cut by the checked span at every place around the object,
        // and bytes that are not UTF-8 before or after it: the object reads the same; bytes
        // that are not UTF-8 inside it refuse it.
        let obj = r#"{"msgId":"7F00000100002A9F0000000000000001","queueId":"3","é":"ü"}"#;
        let want = parse(&format!("x{obj}")).expect("plain").0;
        for before in 0..140 {
            for after in [0, 1, 7, 63, 64, 65, 130] {
                for (lead, trail) in [("é", "ü"), ("€", "𝄞")] {
                    let text = format!(
                        "{}{obj}{}",
                        lead.repeat(before / lead.len()) + &"a".repeat(before % lead.len()),
                        trail.repeat(after)
                    );
                    let at = text.find('{').expect("object");
                    let src = Bytes::from(text.clone());
                    let (e, end) = JsonEntries::parse_bytes(&src, at).expect("plain");
                    assert_eq!(end, at + obj.len(), "{text}");
                    let got: Vec<(String, String)> = e
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect();
                    assert_eq!(got, want, "{text}");
                    // A character cut in two just before and after the object.
                    let mut cut = src.to_vec();
                    if at > 0 {
                        cut[at - 1] = 0xC3;
                    }
                    cut.push(0xFF);
                    let cut = Bytes::from(cut);
                    assert!(JsonEntries::parse_bytes(&cut, at).is_some(), "{text}");
                    let mut bad = src.to_vec();
                    bad[at + 11] = 0xFF;
                    assert!(JsonEntries::parse_bytes(&Bytes::from(bad), at).is_none());
                }
            }
        }
    }

    #[test]
    fn pick_reads_as_get_with_kept_and_searched_value_lengths() {
        assert_eq!(size_of::<crate::ExtFields>(), 40);
        let known = |rest: &[u8]| match rest {
            [b'a', b'"', ..] => Some((0, 2)),
            [b'b', b'"', ..] => Some((1, 2)),
            [b'c', b'"', ..] => Some((2, 2)),
            _ => None,
        };
        for lens in [
            [0, 254, 255, 300, 1, 7],
            [300, 0, 0, 0, 255, 254],
            [1, 1, 1, 1, 1, 1],
        ] {
            for keys in [
                ["a", "b", "c", "a", "x", "b"],
                ["x", "yy", "a", "b", "c", "c"],
            ] {
                let body: Vec<String> = keys
                    .iter()
                    .zip(lens)
                    .enumerate()
                    .map(|(i, (k, n))| {
                        format!(
                            r#""{k}":"{}""#,
                            "vé".repeat(n / 3) + &i.to_string().repeat(n % 3)
                        )
                    })
                    .collect();
                for n in 0..=body.len() {
                    let obj = format!("{{{}}}", body[..n].join(","));
                    let src = ByteString::from(obj.clone());
                    let (e, _) = JsonEntries::parse(&src, 0).expect("plain");
                    let (b, _) =
                        JsonEntries::parse_bytes(&Bytes::from(obj.clone()), 0).expect("plain");
                    for e in [&e, &b] {
                        let picked: [Option<&str>; 3] = e.pick(known);
                        assert_eq!(picked, [e.get("a"), e.get("b"), e.get("c")], "{obj}");
                    }
                }
            }
        }
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
