//! Writing JSON text fast: strings escaped as fastjson escapes them, integers in decimal.
//!
//! Everything is written through a [`Stage`]: a buffer on the stack that takes fixed-size
//! stores (a word of 8 bytes at a time, of which only the wanted ones are kept) and is copied
//! into the destination a few hundred bytes at a time. A string is read a word at a time: a word
//! with nothing to escape (the common case) is one load, one store and a few bit operations; a
//! word with something to escape keeps the bytes before it, writes the escape (one 8-byte store
//! from a table) and goes on just after it. This is what makes a producer's properties (whose
//! separators `\x01` and `\x02` are control characters, escaped as `\u0001` and `\u0002`) cheap
//! to write.

use bytes::{BufMut, BytesMut};

/// The most one step ([`Stage::fixed`], [`Stage::int`], one word of a string) writes: every
/// step starts with at least this much room.
const MARGIN: usize = 40;

/// Bytes on their way into a `BytesMut`, gathered on the stack (see the module docs).
pub(crate) struct Stage<const N: usize> {
    buf: [u8; N],
    n: usize,
}

impl<const N: usize> Stage<N> {
    /// An empty stage.
    pub(crate) const fn new() -> Self {
        Self { buf: [0; N], n: 0 }
    }

    /// Bytes staged, not yet in the destination.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Copies what is staged into `dst`.
    pub(crate) fn flush(&mut self, dst: &mut BytesMut) {
        dst.put_slice(&self.buf[..self.n]);
        self.n = 0;
    }

    /// Makes room for one step.
    #[inline(always)]
    fn room(&mut self, dst: &mut BytesMut) {
        if self.n + MARGIN > N {
            self.flush(dst);
        }
    }

    /// Writes `bytes` (a constant of at most [`MARGIN`] bytes).
    #[inline(always)]
    pub(crate) fn fixed<const K: usize>(&mut self, dst: &mut BytesMut, bytes: &[u8; K]) {
        const { assert!(K <= MARGIN) };
        self.room(dst);
        let at = self.n;
        self.buf[at..at + K].copy_from_slice(bytes);
        self.n = at + K;
    }

    /// Writes `bytes` as they are (already JSON).
    pub(crate) fn raw(&mut self, dst: &mut BytesMut, bytes: &[u8]) {
        if bytes.len() > N - self.n {
            self.flush(dst);
            if bytes.len() > N / 2 {
                dst.put_slice(bytes);
                return;
            }
        }
        let at = self.n;
        self.buf[at..at + bytes.len()].copy_from_slice(bytes);
        self.n = at + bytes.len();
    }

    /// Writes the decimal text of `v`: a single digit (most header numbers) inline.
    #[inline(always)]
    pub(crate) fn int(&mut self, dst: &mut BytesMut, v: i64) {
        if let Ok(d @ 0..=9) = u8::try_from(v) {
            self.room(dst);
            let at = self.n;
            self.buf[at] = b'0' + d;
            self.n = at + 1;
        } else {
            self.int_slow(dst, v);
        }
    }

    /// [`int`](Self::int) of any value, formatted by `itoa` (at most 20 bytes: a sign and 19
    /// digits, within the room [`room`](Self::room) keeps).
    fn int_slow(&mut self, dst: &mut BytesMut, v: i64) {
        self.room(dst);
        let mut text = itoa::Buffer::new();
        let digits = text.format(v).as_bytes();
        let at = self.n;
        self.buf[at..at + digits.len()].copy_from_slice(digits);
        self.n = at + digits.len();
    }

    /// Writes `bytes` (the inside of a JSON string), escaping what needs it: `"` and `\`,
    /// `\b \f \n \r \t` in short form, other control characters as `\u00XX` (uppercase hex, as
    /// fastjson); everything else raw. A string of 1 to 8 bytes with nothing to escape (most
    /// header values) is written inline.
    #[inline(always)]
    pub(crate) fn str_content(&mut self, dst: &mut BytesMut, bytes: &[u8]) {
        let len = bytes.len();
        if len.wrapping_sub(1) < 8 {
            let word = match bytes.first_chunk::<8>() {
                Some(w) => u64::from_le_bytes(*w),
                None => load_short(bytes),
            };
            if escape_flags(word) == 0 {
                self.room(dst);
                let at = self.n;
                self.buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
                self.n = at + len;
                return;
            }
        }
        self.str_content_slow(dst, bytes);
    }

    /// [`str_content`](Self::str_content) of any string.
    fn str_content_slow(&mut self, dst: &mut BytesMut, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            self.room(dst);
            let (word, take) = match rest.first_chunk::<8>() {
                Some(w) => (u64::from_le_bytes(*w), 8),
                None => (load_short(rest), rest.len()),
            };
            let at = self.n;
            self.buf[at..at + 8].copy_from_slice(&word.to_le_bytes());
            let flags = escape_flags(word);
            if flags == 0 {
                self.n = at + take;
                rest = &rest[take..];
                continue;
            }
            // The lowest flagged byte is exact, and is one of `rest` (the padding is clean).
            let k = (flags.trailing_zeros() / 8) as usize;
            let escape = &ESCAPES[usize::from(rest[k] & 0x7F)];
            self.buf[at + k..at + k + 8].copy_from_slice(escape);
            self.n = at + k + usize::from(escape[7]);
            rest = &rest[k + 1..];
        }
    }
}

/// 1 to 7 bytes as the low bytes of a word, the rest spaces (which need no escape): two
/// overlapping loads, not a loop.
#[inline(always)]
fn load_short(b: &[u8]) -> u64 {
    const SPACES: u64 = 0x2020_2020_2020_2020;
    let len = b.len();
    let word = if let (Some(lo), Some(hi)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << (8 * (len - 4))
    } else if let (Some(lo), Some(hi)) = (b.first_chunk::<2>(), b.last_chunk::<2>()) {
        u64::from(u16::from_le_bytes(*lo)) | u64::from(u16::from_le_bytes(*hi)) << (8 * (len - 2))
    } else {
        b.first().map_or(0, |&x| u64::from(x))
    };
    // len < 8: the shift stays under 64.
    word | SPACES << (8 * (len & 7))
}

/// The high bit of each byte of `w` (little-endian) that is below 0x20, a quote or a backslash.
/// Exact for the lowest flagged byte (the bit tricks' borrows only run upwards from a flagged
/// byte), which is all [`clean_prefix`] and [`Stage::str_content`] read: nonzero exactly when
/// some byte needs an escape.
#[inline(always)]
pub(crate) const fn escape_flags(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * b'"' as u64);
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * b'\\' as u64);
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGH
}

/// How many leading bytes of `bytes` need no escape: 8 bytes at a time, the first one found
/// exactly from the word's flags; the last 1-7 bytes as one padded word.
pub(crate) fn clean_prefix(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(word) = bytes[i..].first_chunk::<8>() {
        let flags = escape_flags(u64::from_le_bytes(*word));
        if flags != 0 {
            return i + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i == bytes.len() {
        return i;
    }
    let flags = escape_flags(load_short(&bytes[i..]));
    if flags == 0 {
        bytes.len()
    } else {
        i + (flags.trailing_zeros() / 8) as usize
    }
}

/// The escape of each byte below 0x80 that has one (in its first bytes; the last byte is its
/// length), as one 8-byte store.
static ESCAPES: [[u8; 8]; 128] = escapes();

const fn escapes() -> [[u8; 8]; 128] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut t = [[0u8; 8]; 128];
    let mut b = 0;
    while b < 0x20 {
        t[b] = [b'\\', b'u', b'0', b'0', HEX[b >> 4], HEX[b & 0xF], 0, 6];
        b += 1;
    }
    t[0x08] = [b'\\', b'b', 0, 0, 0, 0, 0, 2];
    t[0x0C] = [b'\\', b'f', 0, 0, 0, 0, 0, 2];
    t[b'\n' as usize] = [b'\\', b'n', 0, 0, 0, 0, 0, 2];
    t[b'\r' as usize] = [b'\\', b'r', 0, 0, 0, 0, 0, 2];
    t[b'\t' as usize] = [b'\\', b't', 0, 0, 0, 0, 0, 2];
    t[b'"' as usize] = [b'\\', b'"', 0, 0, 0, 0, 0, 2];
    t[b'\\' as usize] = [b'\\', b'\\', 0, 0, 0, 0, 0, 2];
    t
}

#[cfg(test)]
/// Writes `bytes` as a JSON string (quoted, escaped as [`Stage::str_content`]).
pub(crate) fn put_str_bytes(dst: &mut BytesMut, bytes: &[u8]) {
    // Most strings need no escape: found a word at a time, they are copied whole.
    let clean = clean_prefix(bytes);
    dst.reserve(clean + 2);
    dst.put_u8(b'"');
    dst.put_slice(&bytes[..clean]);
    if clean < bytes.len() {
        put_escaped(dst, &bytes[clean..]);
    }
    dst.put_u8(b'"');
}

#[cfg(test)]
/// Writes `bytes` (the inside of a JSON string), escaping what needs it.
pub(crate) fn put_escaped(dst: &mut BytesMut, bytes: &[u8]) {
    let mut stage = Stage::<256>::new();
    stage.str_content(dst, bytes);
    stage.flush(dst);
}

#[cfg(test)]
/// Writes `v` in decimal.
pub(crate) fn put_i64(dst: &mut BytesMut, v: i64) {
    let mut stage = Stage::<64>::new();
    stage.int(dst, v);
    stage.flush(dst);
}

#[cfg(test)]
#[path = "json_write_tests.rs"]
mod tests;
