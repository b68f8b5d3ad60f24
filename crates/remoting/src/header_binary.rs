//! The ROCKETMQ binary header (serialize type 1), Java's `RocketMQSerializable`:
//!
//! ```text
//! i16 code | u8 language | i16 version | i32 opaque | i32 flag
//! | i32 remark_len | remark | i32 ext_len | { u16 key_len | key | i32 val_len | val }*
//! ```
//!
//! Decoding applies Java's limit checks (remark and ext block no longer than the header, each
//! key/value no longer than the ext block), stays inside the header, returns ext keys and values
//! as slices of the frame (invalid UTF-8 is replaced as Java's `new String` does), and maps
//! Java's "length 0 = null" rule: an empty remark is `None`, an empty value removes the key.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use rmq_common::{ExtFields, LanguageCode};

use crate::command::{self, RemotingCommand};
use crate::error::{DecodeError, EncodeError};

/// Fixed part of the header: code, language, version, opaque, flag, remark length, ext length.
const FIXED_LEN: usize = 2 + 1 + 2 + 4 + 4 + 4 + 4;

/// Appends the binary header of `cmd` to `dst`.
pub(crate) fn encode(cmd: &RemotingCommand, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let code =
        i16::try_from(cmd.code).map_err(|_| EncodeError::CodeOutOfRange { code: cmd.code })?;
    let version = i16::try_from(cmd.version).map_err(|_| EncodeError::VersionOutOfRange {
        version: cmd.version,
    })?;
    let remark = cmd.remark.as_deref().unwrap_or("");
    let mut ext_len = 0usize;
    for (k, v) in cmd.ext_fields.iter() {
        if k.len() > i16::MAX as usize {
            return Err(EncodeError::KeyTooLong { len: k.len() });
        }
        ext_len += 2 + k.len() + 4 + v.len();
    }
    let total = FIXED_LEN + remark.len() + ext_len;
    if total > command::MAX_HEADER_LEN {
        return Err(EncodeError::HeaderTooLarge { len: total });
    }
    dst.reserve(total);
    dst.put_i16(code);
    dst.put_u8(cmd.language.value());
    dst.put_i16(version);
    dst.put_i32(cmd.opaque);
    dst.put_i32(cmd.flag);
    // Both lengths are below 2^24 (checked above).
    dst.put_u32(remark.len() as u32);
    dst.put_slice(remark.as_bytes());
    dst.put_u32(ext_len as u32);
    for (k, v) in cmd.ext_fields.iter() {
        dst.put_u16(k.len() as u16);
        dst.put_slice(k.as_bytes());
        dst.put_u32(v.len() as u32);
        dst.put_slice(v.as_bytes());
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> DecodeError {
    DecodeError::Binary(msg.into())
}

/// Takes `n` bytes or fails with `what`.
fn take(buf: &mut Bytes, n: usize, what: &str) -> Result<Bytes, DecodeError> {
    if buf.remaining() < n {
        return Err(bad(format!(
            "{what}: {n} bytes needed, {} left",
            buf.remaining()
        )));
    }
    Ok(buf.split_to(n))
}

/// A UTF-8 string from frame bytes, zero-copy when valid; replaced like Java's decoder when not.
fn string(b: Bytes) -> ByteString {
    match ByteString::try_from(b.clone()) {
        Ok(s) => s,
        Err(_) => ByteString::from(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Decodes a binary header; `header` is a slice of the received frame.
pub(crate) fn decode(header: &Bytes) -> Result<RemotingCommand, DecodeError> {
    let header_len = header.len();
    let mut buf = header.clone();
    if buf.remaining() < FIXED_LEN - 8 {
        return Err(bad(format!(
            "header of {header_len} bytes is shorter than the fixed part"
        )));
    }
    let mut cmd = command::blank();
    cmd.code = i32::from(buf.get_i16());
    cmd.language = LanguageCode(buf.get_u8());
    cmd.version = i32::from(buf.get_i16());
    cmd.opaque = buf.get_i32();
    cmd.flag = buf.get_i32();

    let remark_len = i64::from(take(&mut buf, 4, "remark length")?.get_i32());
    if remark_len > 0 {
        if remark_len > header_len as i64 {
            return Err(bad(format!(
                "remark length {remark_len} exceeds header length {header_len}"
            )));
        }
        let remark = take(&mut buf, remark_len as usize, "remark")?;
        cmd.remark = Some(String::from_utf8_lossy(&remark).into_owned());
    }

    let ext_len = i64::from(take(&mut buf, 4, "ext fields length")?.get_i32());
    if ext_len > 0 {
        if ext_len > header_len as i64 {
            return Err(bad(format!(
                "ext fields length {ext_len} exceeds header length {header_len}"
            )));
        }
        let block = take(&mut buf, ext_len as usize, "ext fields")?;
        cmd.ext_fields = decode_map(block)?;
    }
    Ok(cmd)
}

/// Decodes the ext-field block (Java `mapDeserialize` with its `len > limit` checks).
fn decode_map(mut block: Bytes) -> Result<ExtFields, DecodeError> {
    let limit = block.len() as i64;
    let mut ext = ExtFields::with_capacity(16);
    while block.has_remaining() {
        let key_len = i64::from(take(&mut block, 2, "key length")?.get_i16());
        if key_len < 0 || key_len > limit {
            return Err(bad(format!("key length {key_len} outside 0..={limit}")));
        }
        let key = take(&mut block, key_len as usize, "key")?;
        let val_len = i64::from(take(&mut block, 4, "value length")?.get_i32());
        if val_len < 0 || val_len > limit {
            return Err(bad(format!("value length {val_len} outside 0..={limit}")));
        }
        let val = take(&mut block, val_len as usize, "value")?;
        if key.is_empty() {
            // Java: a null key; nothing a header can read.
            continue;
        }
        let key = string(key);
        if val.is_empty() {
            // Java: `put(key, null)`, i.e. the key reads as absent.
            ext.remove(&key);
        } else {
            ext.push(key, string(val));
        }
    }
    Ok(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn limit_checks() {
        // remark length larger than the header
        let h = hex("0069 00 01DF 00000001 00000000 000000FF 00000000");
        assert!(matches!(decode(&h), Err(DecodeError::Binary(_))));
        // ext length larger than the header
        let h = hex("0069 00 01DF 00000001 00000000 00000000 00000100");
        assert!(decode(&h).is_err());
        // entry running past the ext block
        let h = hex("0069 00 01DF 00000001 00000000 00000000 00000004 0001 61 00");
        assert!(decode(&h).is_err());
        // negative key length
        let h = hex("0069 00 01DF 00000001 00000000 00000000 00000007 FFFF 00000000 61");
        assert!(decode(&h).is_err());
        // truncated fixed part
        assert!(decode(&hex("0069 00")).is_err());
    }

    #[test]
    fn java_nulls() {
        // negative remark length = no remark; empty value = absent key; empty key skipped
        let h = hex("0069 00 01DF 00000001 00000000 FFFFFFFF 00000016 0001 61 00000001 31 0001 61 00000000 0000 00000001 32");
        let c = decode(&h).unwrap();
        assert_eq!(c.remark, None);
        assert_eq!(c.ext_fields.get("a"), None);
        assert!(c.ext_fields.is_empty());
    }
}
