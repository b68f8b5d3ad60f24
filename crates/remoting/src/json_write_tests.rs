//! The staged writer against byte-at-a-time references: every escape class at every offset of a
//! word and of the stage, short strings of every length, integers at every digit count.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

/// fastjson's escaping of the inside of a string, one byte at a time.
fn reference(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04X}").as_bytes()),
            b => out.push(b),
        }
    }
    out
}

/// `bytes` written through a stage of `N` bytes, after `prefix` bytes already staged.
fn staged<const N: usize>(prefix: usize, bytes: &[u8]) -> Vec<u8> {
    let mut dst = BytesMut::new();
    let mut s = Stage::<N>::new();
    for _ in 0..prefix {
        s.fixed(&mut dst, b"p");
    }
    s.str_content(&mut dst, bytes);
    s.flush(&mut dst);
    dst[prefix..].to_vec()
}

#[test]
fn every_escape_class_at_every_position_of_short_and_long_strings() {
    let specials: Vec<u8> = (0u8..0x20).chain([b'"', b'\\']).collect();
    for &c in &specials {
        for len in 1..=24 {
            for at in 0..len {
                let mut v = vec![b'x'; len];
                v[at] = c;
                for prefix in [0, 1, 7, 85, 88, 95] {
                    assert_eq!(
                        staged::<128>(prefix, &v),
                        reference(&v),
                        "{c:#x} at {at} of {len}, after {prefix}"
                    );
                }
            }
        }
    }
}

#[test]
fn two_bytes_of_every_kind_at_every_pair_of_positions() {
    // Several escapes in one word, and the bytes a borrow can flag wrongly next to an escape
    // (space after a control character, `#` after a quote, `]` after a backslash), at the end
    // of a short word's bytes too.
    let kinds: Vec<u8> = (0u8..0x20)
        .chain([b'"', b'\\', b' ', b'#', b']', b'x', 0x7F, 0x80, 0xC3, 0xFF])
        .collect();
    for len in [2, 3, 7, 8, 9, 12, 16, 17] {
        for i in 0..len {
            for j in i + 1..len {
                for &a in &kinds {
                    for &b in &kinds {
                        let mut v = vec![b'y'; len];
                        v[i] = a;
                        v[j] = b;
                        assert_eq!(
                            staged::<128>(0, &v),
                            reference(&v),
                            "{a:#x} at {i}, {b:#x} at {j} of {len}"
                        );
                    }
                }
            }
        }
    }
    // Every byte of a word to escape, then a run of them across words and a flush.
    for prefix in [0, 3, 60, 64, 70] {
        for len in [8, 16, 21] {
            let v = vec![0x01; len];
            assert_eq!(staged::<128>(prefix, &v), reference(&v), "{prefix} {len}");
            assert_eq!(
                staged::<64>(prefix.min(63), &v),
                reference(&v),
                "{prefix} {len}"
            );
        }
    }
}

#[test]
fn clean_short_strings_of_every_length_and_neighbours_of_the_escapes() {
    // bytes just above the controls, DEL and multi-byte UTF-8 need no escape
    let clean = " !#[]~\u{7f}é€😀 ".as_bytes();
    for len in 0..=clean.len() {
        assert_eq!(staged::<64>(0, &clean[..len]), &clean[..len], "{len}");
        assert_eq!(clean_prefix(&clean[..len]), len);
    }
}

#[test]
fn properties_separators_are_escaped_in_uppercase_hex() {
    let p = b"TAGS\x01TagA\x02UNIQ_KEY\x017F0000010F2C18B4AAC2000000000000\x02WAIT\x01true\x02";
    let want = br"TAGS\u0001TagA\u0002UNIQ_KEY\u00017F0000010F2C18B4AAC2000000000000\u0002WAIT\u0001true\u0002";
    assert_eq!(staged::<128>(0, p), want);
    assert_eq!(staged::<64>(30, p), want);
    assert_eq!(staged::<64>(0, b"\x1f\x1e"), br"\u001F\u001E");
    assert_eq!(staged::<64>(0, b""), b"");
}

#[test]
fn integers_at_every_digit_count_and_the_extremes() {
    let mut values = vec![0i64, i64::MAX, i64::MIN, i64::MIN + 1, 1_763_942_400_000];
    let mut p = 1i64;
    for _ in 0..19 {
        values.extend([p - 1, p, p + 1, -p, -(p - 1), -(p + 1)]);
        p = p.saturating_mul(10);
    }
    values.extend([i64::from(i32::MAX), i64::from(i32::MIN)]);
    for v in values {
        let mut dst = BytesMut::new();
        put_i64(&mut dst, v);
        assert_eq!(std::str::from_utf8(&dst).unwrap(), v.to_string());
        // after enough staged bytes to need a flush first
        let mut dst = BytesMut::new();
        let mut s = Stage::<64>::new();
        for _ in 0..50 {
            s.fixed(&mut dst, b"p");
        }
        s.int(&mut dst, v);
        s.flush(&mut dst);
        assert_eq!(std::str::from_utf8(&dst[50..]).unwrap(), v.to_string());
    }
}

#[test]
fn raw_bytes_short_long_and_across_a_flush() {
    for len in [0, 1, 20, 31, 32, 33, 100, 300] {
        for prefix in [0, 10, 40] {
            let mut dst = BytesMut::new();
            let mut s = Stage::<64>::new();
            for _ in 0..prefix {
                s.fixed(&mut dst, b"p");
            }
            let raw: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            s.raw(&mut dst, &raw);
            s.fixed(&mut dst, b"!");
            assert!(s.len() <= 64);
            s.flush(&mut dst);
            assert_eq!(&dst[prefix..prefix + len], &raw[..], "{len} after {prefix}");
            assert_eq!(dst.len(), prefix + len + 1);
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_are_escaped_as_the_reference(
        v in proptest::collection::vec(any::<u8>(), 0..300),
        prefix in 0usize..100,
    ) {
        prop_assert_eq!(staged::<128>(prefix, &v), reference(&v));
        let clean = reference(&v) == v;
        prop_assert_eq!(clean_prefix(&v) == v.len(), clean);
    }

    #[test]
    fn any_integer_is_its_decimal_text(v in any::<i64>()) {
        let mut dst = BytesMut::new();
        put_i64(&mut dst, v);
        prop_assert_eq!(std::str::from_utf8(&dst).unwrap(), v.to_string());
    }
}
