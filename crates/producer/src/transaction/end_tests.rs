//! `END_TRANSACTION` requests against the Java golden
//! (`crates/producer/tests/fixtures/end_transaction.golden`), through the wire encoding.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
use rmq_common::stored::MessageExt;
use rmq_common::{property, LanguageCode, Message, MessageQueue};
use rmq_remoting::{RemotingCommand, SerializeType};

use super::*;
use crate::send_result::{SendResult, SendStatus};

const GOLDEN: &str = include_str!("../../tests/fixtures/end_transaction.golden");

/// `key = value` lines of one `[section]` of the golden file.
fn section(name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in GOLDEN.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once(" = ") {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    assert!(!out.is_empty(), "golden section {name}");
    out
}

/// The request as a broker decodes it, in both serializations: code, oneway bit, ext fields.
fn on_the_wire(req: &RemotingCommand) -> BTreeMap<String, String> {
    let mut seen = Vec::new();
    for ty in [SerializeType::Json, SerializeType::RocketMq] {
        let req = req.clone().with_serialize_type(ty);
        let mut buf = BytesMut::new();
        req.encode(&mut buf).expect("encodes");
        let mut frame = buf.freeze();
        frame.advance(4);
        let back = RemotingCommand::decode(frame).expect("decodes");
        let mut fields: BTreeMap<String, String> = back
            .ext_fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        fields.insert("code".into(), back.code.to_string());
        fields.insert("oneway".into(), back.is_oneway().to_string());
        seen.push(fields);
    }
    assert_eq!(seen[0], seen[1], "JSON and ROCKETMQ headers agree");
    seen.remove(0)
}

#[test]
fn after_send_matches_the_java_golden() {
    let sent = SendResult {
        status: SendStatus::SendOk,
        msg_id: "7F0000010F2C18B4AAC2000000000000".into(),
        offset_msg_id: "7F00000100002A9F00000000004988BA".into(),
        queue: MessageQueue::new("TxTopic", "broker-a", 1),
        queue_offset: 17,
        transaction_id: Some("7F0000010F2C18B4AAC2000000000000".into()),
        region_id: "DefaultRegion".into(),
        trace_on: true,
        recall_handle: None,
    };
    let header =
        after_send("TxTopic", "TxGroup", &sent, TransactionState::Commit).expect("offset id");
    let req = request(&header, None, SerializeType::Json, LanguageCode::JAVA);
    assert_eq!(on_the_wire(&req), section("after_send"));
    assert_eq!(req.remark, None);

    // Java falls back to msgId when offsetMsgId is absent, and fails on an unreadable one.
    let mut no_offset = sent.clone();
    no_offset.offset_msg_id.clear();
    no_offset.msg_id = "7F00000100002A9F0000000000000010".into();
    let h = after_send("T", "G", &no_offset, TransactionState::Rollback).expect("msg id");
    assert_eq!((h.commit_log_offset, h.commit_or_rollback), (16, 12));
    let mut bad = sent;
    bad.offset_msg_id = "not-an-id".into();
    assert!(after_send("T", "G", &bad, TransactionState::Unknown).is_err());
}

#[test]
fn after_check_matches_the_java_golden() {
    let check = CheckTransactionStateRequestHeader {
        topic: Some("TxTopic".into()),
        tran_state_table_offset: 5,
        commit_log_offset: 4_819_130,
        msg_id: Some("7F0000010F2C18B4AAC2000000000001".into()),
        transaction_id: Some("7F0000010F2C18B4AAC2000000000001".into()),
        offset_msg_id: Some("7F00000100002A9F00000000004988BA".into()),
        broker_name: Some("broker-b".into()),
    };
    let mut msg = Message::new("TxTopic", "body");
    msg.properties_mut()
        .insert(property::UNIQ_KEY, "7F0000010F2C18B4AAC2000000000001");
    msg.properties_mut().insert(property::PGROUP, "TxGroup");
    let ext = MessageExt {
        message: msg,
        commit_log_offset: 4_819_130,
        ..MessageExt::default()
    };
    let header = after_check(&check, &ext, "TxGroup", TransactionState::Rollback);
    let remark = remark(CHECK_REMARK, Some("check failed: db down"));
    let req = request(&header, remark, SerializeType::Json, LanguageCode::JAVA);
    assert_eq!(on_the_wire(&req), section("after_check"));
    assert_eq!(
        req.remark.as_deref(),
        Some("checkLocalTransactionState Exception: check failed: db down")
    );

    // Without a UNIQ_KEY, Java answers with the message's offset id.
    let mut bare = ext;
    bare.message.properties_mut().remove(property::UNIQ_KEY);
    bare.store_host = "127.0.0.1:10911".parse::<SocketAddr>().expect("addr");
    let h = after_check(&check, &bare, "TxGroup", TransactionState::Unknown);
    assert_eq!(h.msg_id, "7F00000100002A9F00000000004988BA");
    assert_eq!(h.commit_or_rollback, 0);

    // rocketmq-rust's broker names the half topic in the check: the answer names the real one.
    let mut from_rust_broker = check;
    from_rust_broker.topic = Some("RMQ_SYS_TRANS_HALF_TOPIC".into());
    let h = after_check(
        &from_rust_broker,
        &bare,
        "TxGroup",
        TransactionState::Commit,
    );
    assert_eq!(h.topic.as_deref(), Some("TxTopic"));
}
