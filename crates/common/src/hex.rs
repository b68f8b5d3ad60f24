//! Uppercase hex as Java's `UtilAll.bytes2string` / case-insensitive `string2bytes`.

const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the uppercase hex of `bytes` to `out`.
pub(crate) fn encode_upper_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
}

/// Decodes hex (either case); `Err(index)` of the first bad character, or `Err(len)` for an
/// odd length.
pub(crate) fn decode(s: &str) -> Result<Vec<u8>, usize> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return Err(b.len());
    }
    let nibble = |i: usize| -> Result<u8, usize> {
        match b[i] {
            c @ b'0'..=b'9' => Ok(c - b'0'),
            c @ b'a'..=b'f' => Ok(c - b'a' + 10),
            c @ b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(i),
        }
    };
    (0..b.len() / 2)
        .map(|i| Ok((nibble(2 * i)? << 4) | nibble(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut s = String::new();
        encode_upper_into(&[0x00, 0x7f, 0xab, 0xff], &mut s);
        assert_eq!(s, "007FABFF");
        assert_eq!(decode("007fabFF"), Ok(vec![0x00, 0x7f, 0xab, 0xff]));
        assert_eq!(decode("0"), Err(1));
        assert_eq!(decode("0G"), Err(1));
        assert_eq!(decode(""), Ok(vec![]));
    }
}
