//! Compressed bodies against bytes written by Java's own compressors (see
//! `tests/fixtures/compression/README.md`): every Java body decodes, and what this crate writes
//! is byte-for-byte Java's where the compressor's choices are fixed (the LZ4 frame around a raw
//! block, zstd at the same level).

mod support;

use rmq_common::compression::CompressionType;
use rmq_common::stored::{decode_stored_message, encode_stored_message, MessageExt};
use rmq_common::{sysflag, Message};
use support::hex_decode;

const SMALL: &[u8] = b"hello rocketmq";

fn big() -> Vec<u8> {
    b"order-42 created; ".repeat(300)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/compression/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    hex_decode(text.trim())
}

#[test]
fn java_bodies_decode() {
    let cases: [(&str, CompressionType, Vec<u8>); 5] = [
        ("java_lz4_small", CompressionType::Lz4, SMALL.to_vec()),
        ("java_lz4_5400", CompressionType::Lz4, big()),
        ("java_zstd5_small", CompressionType::Zstd, SMALL.to_vec()),
        ("java_zstd5_5400", CompressionType::Zstd, big()),
        ("java_zlib5_5400", CompressionType::Zlib, big()),
    ];
    for (name, ty, plain) in cases {
        let z = fixture(name);
        assert_eq!(ty.decompress(&z, plain.len()).expect(name), plain, "{name}");
        // One byte short of the limit is refused, not truncated.
        assert!(ty.decompress(&z, plain.len() - 1).is_err(), "{name}");
    }
}

#[test]
fn lz4_frame_is_java_s() {
    // A 14-byte body does not compress: the frame around the raw block is fully determined.
    let ours = CompressionType::Lz4.compress(SMALL, 5).expect("lz4");
    assert_eq!(ours, fixture("java_lz4_small"));
    // A compressible one: the same frame (header, one compressed block, end mark, no
    // checksum); the block itself is any valid LZ4 sequence, so compare the framing.
    let ours = CompressionType::Lz4.compress(&big(), 5).expect("lz4");
    let java = fixture("java_lz4_5400");
    assert_eq!(ours[..7], java[..7], "magic, FLG, BD, HC");
    assert_eq!(
        ours[ours.len() - 4..],
        [0, 0, 0, 0],
        "end mark, no content checksum"
    );
    let size = u32::from_le_bytes([ours[7], ours[8], ours[9], ours[10]]) as usize;
    assert_eq!(
        11 + size + 4,
        ours.len(),
        "one compressed block, no block checksum"
    );
    assert_eq!(
        CompressionType::Lz4.decompress(&ours, 5400).expect("own"),
        big()
    );
}

#[test]
fn zstd_frame_is_java_s() {
    for (name, plain) in [
        ("java_zstd5_small", SMALL.to_vec()),
        ("java_zstd5_5400", big()),
    ] {
        let ours = CompressionType::Zstd.compress(&plain, 5).expect("zstd");
        assert_eq!(ours, fixture(name), "{name}");
    }
}

#[test]
fn stored_messages_of_every_type_decode_with_their_flags() {
    for (name, ty) in [
        ("java_lz4_5400", CompressionType::Lz4),
        ("java_zstd5_5400", CompressionType::Zstd),
        ("java_zlib5_5400", CompressionType::Zlib),
    ] {
        let ext = MessageExt {
            message: Message::new("TopicTest", fixture(name)),
            sys_flag: sysflag::COMPRESSED_FLAG | ty.sys_flag(),
            ..MessageExt::default()
        };
        let back = decode_stored_message(&mut encode_stored_message(&ext)).expect(name);
        assert_eq!(back.message.body().as_ref(), big().as_slice(), "{name}");
        assert_eq!(back.sys_flag, ty.sys_flag(), "{name}: type bits kept");
    }
}
