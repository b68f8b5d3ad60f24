//! Shared helpers: read a real-server frame fixture (JSON header) into its header and body.
#![allow(dead_code, unreachable_pub)]

use rmq_common::ExtFields;

/// Header JSON and body of a whole JSON-header frame stored as hex.
#[derive(Debug)]
pub struct Frame {
    pub header: serde_json::Value,
    pub body: Vec<u8>,
}

pub fn frame(name: &str) -> Frame {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let bytes = hex_decode(text.trim());
    let total = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(total + 4, bytes.len(), "{name}: length prefix");
    assert_eq!(bytes[4], 0, "{name}: JSON serialize type");
    let hlen = u32::from_be_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize & 0x00FF_FFFF;
    let header = serde_json::from_slice(&bytes[8..8 + hlen]).expect("header JSON");
    Frame {
        header,
        body: bytes[8 + hlen..].to_vec(),
    }
}

pub fn ext_fields(frame: &Frame) -> ExtFields {
    let map = frame.header["extFields"]
        .as_object()
        .expect("extFields object");
    map.iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
        .collect()
}

pub fn hex_decode(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}
