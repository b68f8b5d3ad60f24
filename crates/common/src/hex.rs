//! Uppercase hex as Java's `UtilAll.bytes2string` / case-insensitive `string2bytes`.

const DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the uppercase hex of `bytes` to `out`.
pub(crate) fn encode_upper_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    // Written 32 bytes at a time on the stack, then appended whole (a `push` per digit checks
    // the capacity and encodes a char each time: this runs for every message id).
    for chunk in bytes.chunks(32) {
        let mut buf = [0u8; 64];
        for (pair, &b) in buf.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xF)];
        }
        // Hex digits are ASCII: always valid UTF-8.
        if let Ok(text) = std::str::from_utf8(&buf[..chunk.len() * 2]) {
            out.push_str(text);
        }
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
        // every byte value, across the 32-byte chunks
        let all: Vec<u8> = (0..=255).collect();
        let mut s = String::from("x");
        encode_upper_into(&all, &mut s);
        let want: String = all.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(s, format!("x{want}"));
        assert_eq!(decode("007fabFF"), Ok(vec![0x00, 0x7f, 0xab, 0xff]));
        assert_eq!(decode("0"), Err(1));
        assert_eq!(decode("0G"), Err(1));
        assert_eq!(decode(""), Ok(vec![]));
    }
}
