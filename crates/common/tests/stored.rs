//! The stored-message format: layout, round trips (compressed body included) and errors.

mod support;

use bytes::Bytes;
use rmq_common::compression::{compress, CompressionType};
use rmq_common::stored::{
    decode_stored_message, decode_stored_message_with_limit, decode_stored_messages,
    encode_stored_message, try_encode_stored_message, MessageExt, StoredMessageError, MAGIC_V2,
};
use rmq_common::{sysflag, CompressionError, Message, Properties};
use support::hex_decode;

fn sample() -> MessageExt {
    let message = Message::new("TopicTest", "hello")
        .with_tags("TagA")
        .with_keys(["k1", "k2"]);
    MessageExt {
        message,
        queue_id: 3,
        queue_offset: 17,
        commit_log_offset: 0x4988BA,
        sys_flag: sysflag::TRANSACTION_PREPARED_TYPE,
        born_timestamp: 1_763_942_400_000,
        born_host: "10.0.0.5:51234".parse().expect("addr"),
        store_timestamp: 1_763_942_400_012,
        store_host: "127.0.0.1:10911".parse().expect("addr"),
        reconsume_times: 1,
        prepared_transaction_offset: 0,
        body_crc: 0x1234_5678,
    }
}

#[test]
fn layout_is_java_messagedecoder_encode() {
    let mut props = Properties::new();
    props.insert("WAIT", "true");
    let ext = MessageExt {
        message: Message::from_parts("T", 1, Bytes::from_static(b"hi"), props),
        queue_id: 2,
        queue_offset: 3,
        commit_log_offset: 4,
        sys_flag: 0,
        born_timestamp: 5,
        born_host: "1.2.3.4:5".parse().expect("addr"),
        store_timestamp: 6,
        store_host: "5.6.7.8:9".parse().expect("addr"),
        reconsume_times: 7,
        prepared_transaction_offset: 8,
        body_crc: 9,
    };
    let want = hex_decode(concat!(
        "00000068",                  // totalSize 104
        "DAA320A7",                  // magic V1
        "00000009",                  // bodyCRC
        "00000002",                  // queueId
        "00000001",                  // flag
        "0000000000000003",          // queueOffset
        "0000000000000004",          // physicalOffset
        "00000000",                  // sysFlag
        "0000000000000005",          // bornTimestamp
        "01020304 00000005",         // bornHost
        "0000000000000006",          // storeTimestamp
        "05060708 00000009",         // storeHost
        "00000007",                  // reconsumeTimes
        "0000000000000008",          // preparedTransactionOffset
        "00000002 6869",             // body
        "01 54",                     // topic
        "000A 57414954017472756502", // properties
    ));
    let wire = encode_stored_message(&ext);
    assert_eq!(wire.as_ref(), want.as_slice());
    let mut buf = Bytes::from(want);
    assert_eq!(decode_stored_message(&mut buf).expect("decode"), ext);
    assert_eq!(
        ext.offset_msg_id().encode(),
        "0506070800000009".to_owned() + "0000000000000004"
    );
}

#[test]
fn round_trip_plain_and_many() {
    let a = sample();
    let mut b = sample();
    b.message.set_topic("Other");
    b.commit_log_offset += 1000;
    let mut wire = encode_stored_message(&a).to_vec();
    wire.extend_from_slice(&encode_stored_message(&b));
    let all = decode_stored_messages(Bytes::from(wire)).expect("decode many");
    assert_eq!(all, [a.clone(), b]);
    assert_eq!(all[0].uniq_key(), None);
    assert_eq!(all[0].message.keys(), ["k1", "k2"]);
}

#[test]
fn compressed_body_is_inflated_and_flag_cleared() {
    let plain: Vec<u8> = (0..8192u32).map(|i| (i % 13) as u8).collect();
    let mut ext = sample();
    ext.message.set_body(compress(&plain, 5));
    ext.sys_flag |= sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_ZLIB;
    let mut wire = encode_stored_message(&ext);
    let back = decode_stored_message(&mut wire).expect("decode");
    assert_eq!(back.message.body().as_ref(), plain.as_slice());
    assert!(!sysflag::has(back.sys_flag, sysflag::COMPRESSED_FLAG));
    assert_eq!(
        sysflag::transaction_value(back.sys_flag),
        sysflag::TRANSACTION_PREPARED_TYPE
    );
    // Pre-4.9.4 form: compressed flag only, type bits 0 mean zlib.
    ext.sys_flag = sysflag::COMPRESSED_FLAG;
    let back = decode_stored_message(&mut encode_stored_message(&ext)).expect("decode");
    assert_eq!(back.message.body().len(), plain.len());
    // The inflate limit holds, and the buffer is left where it was.
    let mut wire = encode_stored_message(&ext);
    let len = wire.len();
    let err = decode_stored_message_with_limit(&mut wire, 100).expect_err("limit");
    assert_eq!(wire.len(), len, "nothing consumed on error");
    assert!(matches!(
        err,
        StoredMessageError::Decompress(CompressionError::TooLarge { limit: 100 })
    ));
    // A zlib body flagged LZ4 is a corrupt frame, and unknown type bits a typed error.
    ext.sys_flag = sysflag::COMPRESSED_FLAG | sysflag::COMPRESSION_LZ4;
    let err = decode_stored_message(&mut encode_stored_message(&ext)).expect_err("lz4");
    assert!(matches!(
        err,
        StoredMessageError::Decompress(CompressionError::CorruptFrame { .. })
    ));
    ext.sys_flag = sysflag::COMPRESSED_FLAG | 0x400;
    let err = decode_stored_message(&mut encode_stored_message(&ext)).expect_err("type 4");
    assert!(matches!(
        err,
        StoredMessageError::Decompress(CompressionError::Unsupported(0x400))
    ));
    // LZ4 and zstd bodies are decompressed, the type bits kept.
    for ty in [CompressionType::Lz4, CompressionType::Zstd] {
        ext.message
            .set_body(ty.compress(&plain, 5).expect("compress"));
        ext.sys_flag = sysflag::COMPRESSED_FLAG | ty.sys_flag();
        let back = decode_stored_message(&mut encode_stored_message(&ext)).expect("decode");
        assert_eq!(back.message.body().as_ref(), plain.as_slice(), "{ty}");
        assert_eq!(back.sys_flag, ty.sys_flag(), "{ty}");
    }
}

#[test]
fn ipv6_hosts_and_long_topic() {
    let mut ext = sample();
    ext.born_host = "[2001:db8::5]:4000".parse().expect("addr");
    ext.store_host = "[::1]:10911".parse().expect("addr");
    ext.message.set_topic("t".repeat(200));
    let wire = encode_stored_message(&ext);
    assert_eq!(
        i32::from_be_bytes([wire[4], wire[5], wire[6], wire[7]]),
        MAGIC_V2
    );
    let back = decode_stored_message(&mut wire.clone()).expect("decode");
    assert!(sysflag::has(
        back.sys_flag,
        sysflag::BORNHOST_V6_FLAG | sysflag::STOREHOSTADDRESS_V6_FLAG
    ));
    ext.sys_flag = back.sys_flag;
    assert_eq!(back, ext);
    assert_eq!(back.offset_msg_id().encode().len(), 56);
}

#[test]
fn truncated_and_corrupt_records_fail_and_leave_the_buffer() {
    let wire = encode_stored_message(&sample());
    for cut in 0..wire.len() {
        let mut buf = wire.slice(..cut);
        assert!(decode_stored_message(&mut buf).is_err(), "cut {cut}");
        assert_eq!(buf.len(), cut, "buffer untouched on error");
    }
    let mut bad = wire.to_vec();
    bad[4] = 0; // magic
    assert!(matches!(
        decode_stored_message(&mut Bytes::from(bad)),
        Err(StoredMessageError::BadMagic(_))
    ));
    let mut bad = wire.to_vec();
    bad[0] = 0x80; // negative totalSize
    assert!(matches!(
        decode_stored_message(&mut Bytes::from(bad)),
        Err(StoredMessageError::BadTotalSize { .. })
    ));
    // totalSize smaller than the fields: the fields overrun the record.
    let mut bad = wire.to_vec();
    let small = (wire.len() as u32 - 10).to_be_bytes();
    bad[..4].copy_from_slice(&small);
    assert!(matches!(
        decode_stored_message(&mut Bytes::from(bad)),
        Err(StoredMessageError::Truncated { .. })
    ));
}

#[test]
fn try_encode_refuses_oversize_properties() {
    let mut ext = sample();
    ext.message
        .properties_mut()
        .insert("big", "x".repeat(40_000));
    assert!(matches!(
        try_encode_stored_message(&ext),
        Err(StoredMessageError::TooLong {
            field: "properties",
            ..
        })
    ));
    assert_eq!(
        try_encode_stored_message(&sample()).expect("fits"),
        encode_stored_message(&sample())
    );
}
