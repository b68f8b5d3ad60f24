//! Every header round-trips through ExtFields; missing or malformed fields name the field.

use proptest::prelude::*;
use rmq_common::header::recall::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use rmq_common::header::send::SendMessageRequestHeaderV2;
use rmq_common::{
    CheckTransactionStateRequestHeader, CommandHeader, EndTransactionRequestHeader, ExtFields,
    GetRouteInfoRequestHeader, HeaderError, ReplyMessageRequestHeader, RequestCode,
    SendMessageRequestHeader, SendMessageResponseHeader, UnregisterClientRequestHeader,
    ViewMessageRequestHeader,
};

fn s() -> impl Strategy<Value = String> {
    any::<String>()
}

fn os() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

prop_compose! {
    fn send_header()(
        producer_group in s(), topic in s(), default_topic in s(),
        default_topic_queue_nums in any::<i32>(), queue_id in any::<i32>(), sys_flag in any::<i32>(),
        born_timestamp in any::<i64>(), flag in any::<i32>(), properties in os(),
        reconsume_times in any::<Option<i32>>(), unit_mode in any::<Option<bool>>(),
        batch in any::<Option<bool>>(), max_reconsume_times in any::<Option<i32>>(), broker_name in os(),
    ) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group, topic, default_topic, default_topic_queue_nums, queue_id, sys_flag,
            born_timestamp, flag, properties, reconsume_times, unit_mode, batch,
            max_reconsume_times, broker_name,
        }
    }
}

prop_compose! {
    fn send_response()(
        msg_id in s(), queue_id in any::<i32>(), queue_offset in any::<i64>(), transaction_id in os(),
        batch_uniq_id in os(), region_id in os(), trace_on in any::<Option<bool>>(), recall_handle in os(),
    ) -> SendMessageResponseHeader {
        SendMessageResponseHeader { msg_id, queue_id, queue_offset, transaction_id, batch_uniq_id, region_id: region_id.map(Into::into), trace_on, recall_handle }
    }
}

prop_compose! {
    fn end_tx()(
        topic in os(), producer_group in s(), tran_state_table_offset in any::<i64>(),
        commit_log_offset in any::<i64>(), commit_or_rollback in any::<i32>(),
        from_transaction_check in any::<bool>(), msg_id in s(), transaction_id in os(), broker_name in os(),
    ) -> EndTransactionRequestHeader {
        EndTransactionRequestHeader {
            topic, producer_group, tran_state_table_offset, commit_log_offset, commit_or_rollback,
            from_transaction_check, msg_id, transaction_id, broker_name,
        }
    }
}

prop_compose! {
    fn check_tx()(
        topic in os(), tran_state_table_offset in any::<i64>(), commit_log_offset in any::<i64>(),
        msg_id in os(), transaction_id in os(), offset_msg_id in os(), broker_name in os(),
    ) -> CheckTransactionStateRequestHeader {
        CheckTransactionStateRequestHeader {
            topic, tran_state_table_offset, commit_log_offset, msg_id, transaction_id, offset_msg_id, broker_name,
        }
    }
}

prop_compose! {
    fn reply_push()(
        send in send_header(), born_host in s(), store_host in s(), store_timestamp in any::<i64>(),
        unit_mode in any::<bool>(),
    ) -> ReplyMessageRequestHeader {
        ReplyMessageRequestHeader {
            producer_group: send.producer_group, topic: send.topic, default_topic: send.default_topic,
            default_topic_queue_nums: send.default_topic_queue_nums, queue_id: send.queue_id,
            sys_flag: send.sys_flag, born_timestamp: send.born_timestamp, flag: send.flag,
            properties: send.properties, reconsume_times: send.reconsume_times, unit_mode,
            born_host, store_host, store_timestamp,
        }
    }
}

fn round_trip<H: CommandHeader + PartialEq + std::fmt::Debug>(h: &H) -> Result<(), TestCaseError> {
    let ext = h.to_ext_fields();
    prop_assert_eq!(
        &H::read_from(&ext).map_err(|e| TestCaseError::fail(e.to_string()))?,
        h
    );
    Ok(())
}

proptest! {
    #[test]
    fn send_v1_round_trips(h in send_header()) {
        round_trip(&h)?;
        let ext = h.to_ext_fields();
        prop_assert_eq!(SendMessageRequestHeader::read_for_code(RequestCode::SEND_MESSAGE, &ext), Ok(h));
    }

    #[test]
    fn send_v2_round_trips(h in send_header()) {
        let v2 = SendMessageRequestHeaderV2(h.clone());
        round_trip(&v2)?;
        let ext = v2.to_ext_fields();
        prop_assert_eq!(SendMessageRequestHeader::read_for_code(RequestCode::SEND_BATCH_MESSAGE, &ext), Ok(h));
    }

    #[test]
    fn send_response_round_trips(h in send_response()) { round_trip(&h)?; }

    #[test]
    fn route_round_trips(topic in s(), accept in any::<Option<bool>>()) {
        round_trip(&GetRouteInfoRequestHeader { topic, accept_standard_json_only: accept })?;
    }

    #[test]
    fn unregister_round_trips(client_id in s(), producer_group in os(), consumer_group in os()) {
        round_trip(&UnregisterClientRequestHeader { client_id, producer_group, consumer_group })?;
    }

    #[test]
    fn end_tx_round_trips(h in end_tx()) { round_trip(&h)?; }

    #[test]
    fn check_tx_round_trips(h in check_tx()) { round_trip(&h)?; }

    #[test]
    fn reply_push_round_trips(h in reply_push()) { round_trip(&h)?; }

    #[test]
    fn view_round_trips(topic in os(), offset in any::<i64>()) {
        round_trip(&ViewMessageRequestHeader { topic, offset })?;
    }

    #[test]
    fn recall_round_trips(producer_group in os(), topic in s(), recall_handle in s(), broker_name in os(), msg_id in s()) {
        round_trip(&RecallMessageRequestHeader { producer_group, topic, recall_handle, broker_name })?;
        round_trip(&RecallMessageResponseHeader { msg_id })?;
    }
}

#[test]
fn recall_required_fields_and_java_names() {
    let h = RecallMessageRequestHeader {
        producer_group: Some("pg".into()),
        topic: "T".into(),
        recall_handle: "djE".into(),
        broker_name: Some("broker-a".into()),
    };
    let ext = h.to_ext_fields();
    for (k, v) in [
        ("producerGroup", "pg"),
        ("topic", "T"),
        ("recallHandle", "djE"),
        ("bname", "broker-a"),
    ] {
        assert_eq!(ext.get(k), Some(v), "{k}");
    }
    check_required::<RecallMessageRequestHeader>(&ext, &["topic", "recallHandle"], &[]);
    check_required::<RecallMessageResponseHeader>(
        &RecallMessageResponseHeader::default().to_ext_fields(),
        &["msgId"],
        &[],
    );
}

/// For each required field of a header: removing it gives `Missing`, and (for numbers) a
/// non-numeric value gives `Invalid`, both naming the field.
fn check_required<H: CommandHeader + std::fmt::Debug>(
    full: &ExtFields,
    required: &[&'static str],
    numeric: &[&'static str],
) {
    assert!(H::read_from(full).is_ok(), "the full header decodes");
    for &field in required {
        let mut ext = full.clone();
        ext.remove(field);
        assert_eq!(
            H::read_from(&ext).err(),
            Some(HeaderError::Missing { field }),
            "missing {field}"
        );
    }
    for &field in numeric {
        for bad in ["x", "", "1.5", "99999999999999999999", " 1"] {
            let mut ext = full.clone();
            ext.insert(field, bad);
            match H::read_from(&ext) {
                Err(HeaderError::Invalid {
                    field: f, value, ..
                }) => {
                    assert_eq!((f, value.as_str()), (field, bad));
                }
                other => panic!("{field}={bad:?}: expected Invalid, got {other:?}"),
            }
        }
    }
}

#[test]
fn send_v1_required_fields() {
    let full = SendMessageRequestHeader::default().to_ext_fields();
    let required = [
        "producerGroup",
        "topic",
        "defaultTopic",
        "defaultTopicQueueNums",
        "queueId",
        "sysFlag",
        "bornTimestamp",
        "flag",
    ];
    check_required::<SendMessageRequestHeader>(&full, &required, &required[3..]);
    let mut with_opt = full.clone();
    with_opt.insert("reconsumeTimes", "0");
    with_opt.insert("maxReconsumeTimes", "16");
    check_required::<SendMessageRequestHeader>(
        &with_opt,
        &[],
        &["reconsumeTimes", "maxReconsumeTimes"],
    );
}

#[test]
fn send_v2_required_fields() {
    let full = SendMessageRequestHeaderV2::default().to_ext_fields();
    let required = ["a", "b", "c", "d", "e", "f", "g", "h"];
    check_required::<SendMessageRequestHeaderV2>(&full, &required, &required[3..]);
    let mut with_opt = full.clone();
    with_opt.insert("j", "0");
    with_opt.insert("l", "16");
    check_required::<SendMessageRequestHeaderV2>(&with_opt, &[], &["j", "l"]);
}

#[test]
fn send_response_required_fields() {
    let full = SendMessageResponseHeader::default().to_ext_fields();
    check_required::<SendMessageResponseHeader>(
        &full,
        &["msgId", "queueId", "queueOffset"],
        &["queueId", "queueOffset"],
    );
}

#[test]
fn other_required_fields() {
    check_required::<GetRouteInfoRequestHeader>(
        &GetRouteInfoRequestHeader::default().to_ext_fields(),
        &["topic"],
        &[],
    );
    check_required::<UnregisterClientRequestHeader>(
        &UnregisterClientRequestHeader::default().to_ext_fields(),
        &["clientID"],
        &[],
    );
    check_required::<ViewMessageRequestHeader>(
        &ViewMessageRequestHeader::default().to_ext_fields(),
        &["offset"],
        &["offset"],
    );
    let end = EndTransactionRequestHeader::default().to_ext_fields();
    check_required::<EndTransactionRequestHeader>(
        &end,
        &[
            "producerGroup",
            "tranStateTableOffset",
            "commitLogOffset",
            "commitOrRollback",
            "msgId",
        ],
        &[
            "tranStateTableOffset",
            "commitLogOffset",
            "commitOrRollback",
        ],
    );
    check_required::<CheckTransactionStateRequestHeader>(
        &CheckTransactionStateRequestHeader::default().to_ext_fields(),
        &["tranStateTableOffset", "commitLogOffset"],
        &["tranStateTableOffset", "commitLogOffset"],
    );
}

#[test]
fn optional_fields_are_absent_when_none() {
    let ext = SendMessageRequestHeaderV2::default().to_ext_fields();
    for key in ["i", "j", "k", "l", "m", "n"] {
        assert!(!ext.contains_key(key), "{key}");
    }
    let ext = EndTransactionRequestHeader::default().to_ext_fields();
    assert!(
        !ext.contains_key("topic")
            && !ext.contains_key("transactionId")
            && !ext.contains_key("bname")
    );
    assert_eq!(ext.get("fromTransactionCheck"), Some("false"));
}

#[test]
fn booleans_follow_java_parse_boolean() {
    let mut ext = SendMessageRequestHeaderV2::default().to_ext_fields();
    for (v, want) in [
        ("true", true),
        ("TRUE", true),
        ("True", true),
        ("false", false),
        ("yes", false),
        ("1", false),
    ] {
        ext.insert("m", v);
        let h = SendMessageRequestHeaderV2::read_from(&ext).expect("decode");
        assert_eq!(h.0.batch, Some(want), "{v}");
    }
}

#[test]
fn numbers_accept_java_parse_int_forms() {
    let mut ext = SendMessageRequestHeaderV2::default().to_ext_fields();
    for (v, want) in [("-1", -1), ("+7", 7), ("007", 7), ("2147483647", i32::MAX)] {
        ext.insert("e", v);
        assert_eq!(
            SendMessageRequestHeaderV2::read_from(&ext).map(|h| h.0.queue_id),
            Ok(want),
            "{v}"
        );
    }
    ext.insert("e", "2147483648");
    assert!(SendMessageRequestHeaderV2::read_from(&ext).is_err());
}
