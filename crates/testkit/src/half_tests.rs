//! Store-level tests of half messages: prepare, commit, rollback, refusals and check passes.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rmq_common::batch::encode_batch;
use rmq_common::message_id::OffsetMessageId;
use rmq_common::stored::decode_stored_message;
use rmq_common::{Message, RequestCode};

use super::*;
use crate::store::{now_ms, SendContext, UnknownTopic};

const BROKER: &str = "127.0.0.1:10911";

fn store() -> Store {
    let s = Store::new(
        "broker-a".into(),
        BROKER.parse().unwrap(),
        Arc::new(AtomicU64::new(0)),
    );
    s.set_topic(
        "T",
        crate::store::TopicConf {
            write_queues: 4,
            perm: 6,
        },
    );
    s
}

fn props(uniq: &str, half: bool) -> Properties {
    let mut p = Properties::new();
    p.insert(property::UNIQ_KEY, uniq);
    p.insert(property::TAGS, "TagA");
    if half {
        p.insert(property::TRAN_MSG, "true");
        p.insert(property::PGROUP, "pg");
    }
    p
}

fn send_with(props: &Properties, sys_flag: i32, queue_id: i32, born: i64) -> SendContext {
    SendContext {
        code: RequestCode::SEND_MESSAGE_V2,
        header: SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id,
            sys_flag,
            born_timestamp: born,
            properties: Some(props.encode()),
            ..SendMessageRequestHeader::default()
        },
        body: Bytes::from_static(b"body"),
        born_host: "127.0.0.1:5000".parse().unwrap(),
        reply_code: ResponseCode::SUCCESS,
    }
}

/// Sends a half message to queue 2; returns the answered (msg id, queue offset).
fn send_half(s: &Store, uniq: &str, born: i64) -> (OffsetMessageId, i64) {
    let cx = send_with(
        &props(uniq, true),
        sysflag::TRANSACTION_PREPARED_TYPE,
        2,
        born,
    );
    let r = s.store_send(cx, UnknownTopic::Reject).unwrap().response;
    assert_eq!(r.queue_id, 2);
    assert_eq!(r.transaction_id.as_deref(), Some(uniq));
    (OffsetMessageId::decode(&r.msg_id).unwrap(), r.queue_offset)
}

fn send_plain(s: &Store, uniq: &str) {
    let cx = send_with(&props(uniq, false), 0, 2, now_ms());
    s.store_send(cx, UnknownTopic::Reject).unwrap();
}

fn end(id: &OffsetMessageId, queue_offset: i64, value: i32) -> EndTransactionRequestHeader {
    EndTransactionRequestHeader {
        producer_group: "pg".into(),
        tran_state_table_offset: queue_offset,
        commit_log_offset: id.commit_log_offset,
        commit_or_rollback: value,
        msg_id: "U".into(),
        ..EndTransactionRequestHeader::default()
    }
}

fn ended(s: &Store, h: &EndTransactionRequestHeader) -> EndOutcome {
    s.end_transaction(h, now_ms(), DEFAULT_TRANSACTION_TIMEOUT_MS)
}

#[test]
fn a_half_message_is_answered_but_invisible() {
    let s = store();
    send_plain(&s, "P0");
    let (id, qo) = send_half(&s, "H1", now_ms());
    let (id2, qo2) = send_half(&s, "H2", now_ms());
    // Its own queue offsets (the half topic's queue 0), its own commit-log record.
    assert_eq!((qo, qo2), (0, 1));
    assert!(id.commit_log_offset > 0 && id2.commit_log_offset > id.commit_log_offset);
    assert_eq!(id.addr, BROKER.parse::<SocketAddr>().unwrap());
    assert_eq!(s.messages().len(), 1);
    let halves = s.half_messages();
    assert_eq!(halves.len(), 2);
    let h = &halves[0];
    assert_eq!(
        (h.topic(), h.queue_id(), h.queue_offset()),
        (TRANS_HALF_TOPIC, 0, 0)
    );
    assert_eq!(h.commit_log_offset(), id.commit_log_offset);
    assert_eq!(h.ext.sys_flag, 0);
    assert_eq!(h.header.sys_flag, sysflag::TRANSACTION_PREPARED_TYPE);
    assert_eq!(h.property(property::REAL_TOPIC), Some("T"));
    assert_eq!(h.property(property::REAL_QID), Some("2"));
    assert_eq!(h.property(property::TRANSACTION_ID), Some("H1"));
    assert_eq!(h.property(property::TRAN_MSG), Some("true"));
    // Viewable by its offset id, as in a broker's commit log.
    let viewed = s.find_by_offset(id.commit_log_offset).unwrap();
    assert_eq!(viewed.message.topic(), TRANS_HALF_TOPIC);
}

#[test]
fn commit_writes_a_new_visible_record() {
    let s = store();
    send_plain(&s, "P0");
    let (id, qo) = send_half(&s, "H1", now_ms());
    let half = s.half_messages().remove(0);
    assert!(matches!(
        ended(&s, &end(&id, qo, sysflag::TRANSACTION_COMMIT_TYPE)),
        EndOutcome::Committed
    ));
    assert!(s.half_messages().is_empty());
    let msgs = s.messages();
    assert_eq!(msgs.len(), 2);
    let m = &msgs[1];
    assert_eq!((m.topic(), m.queue_id(), m.queue_offset()), ("T", 2, 1));
    assert!(m.commit_log_offset() > id.commit_log_offset);
    assert_eq!(
        OffsetMessageId::decode(&m.msg_id)
            .unwrap()
            .commit_log_offset,
        m.commit_log_offset()
    );
    assert_eq!(m.ext.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    assert_eq!(m.ext.prepared_transaction_offset, id.commit_log_offset);
    assert_eq!(m.ext.store_timestamp, half.ext.store_timestamp);
    assert_eq!(m.body().as_ref(), b"body");
    assert!(m.seq > half.seq);
    // The properties as Java writes them: those of the half message.
    assert_eq!(m.properties(), half.properties());
    assert_eq!(m.property(property::TRAN_MSG), Some("true"));
    assert_eq!(m.property(property::PGROUP), Some("pg"));
    // Ended already: refused, nothing changes.
    let again = ended(&s, &end(&id, qo, sysflag::TRANSACTION_COMMIT_TYPE));
    let EndOutcome::Refused(code, Some(remark)) = again else {
        panic!("not refused: {again:?}");
    };
    assert_eq!(code, ResponseCode::SYSTEM_ERROR);
    assert_eq!(remark, "Find prepared transaction message failed");
    assert_eq!(s.messages().len(), 2);
}

#[test]
fn rollback_drops_and_unknown_leaves_pending() {
    let s = store();
    let (id, qo) = send_half(&s, "H1", now_ms());
    assert!(matches!(
        ended(&s, &end(&id, qo, sysflag::TRANSACTION_NOT_TYPE)),
        EndOutcome::NoAnswer
    ));
    assert!(matches!(ended(&s, &end(&id, qo, 5)), EndOutcome::NoAnswer));
    assert_eq!(s.half_messages().len(), 1);
    assert!(matches!(
        ended(&s, &end(&id, qo, sysflag::TRANSACTION_ROLLBACK_TYPE)),
        EndOutcome::RolledBack
    ));
    assert!(s.half_messages().is_empty());
    assert!(s.messages().is_empty());
    assert!(matches!(
        ended(&s, &end(&id, qo, sysflag::TRANSACTION_ROLLBACK_TYPE)),
        EndOutcome::Refused(ResponseCode::SYSTEM_ERROR, _)
    ));
}

#[test]
fn mismatched_ends_are_refused_as_java_does() {
    let s = store();
    let (id, qo) = send_half(&s, "H1", now_ms());
    let commit = sysflag::TRANSACTION_COMMIT_TYPE;
    let remark = |h: EndTransactionRequestHeader| match ended(&s, &h) {
        EndOutcome::Refused(code, remark) => {
            assert_eq!(code, ResponseCode::SYSTEM_ERROR);
            remark.unwrap()
        }
        other => panic!("not refused: {other:?}"),
    };
    let mut h = end(&id, qo, commit);
    h.producer_group = "other".into();
    assert_eq!(remark(h), "The producer group wrong");
    assert_eq!(
        remark(end(&id, qo + 1, commit)),
        "The transaction state table offset wrong"
    );
    let mut h = end(&id, qo, commit);
    h.commit_log_offset += 1;
    assert_eq!(remark(h), "Find prepared transaction message failed");
    assert_eq!(s.half_messages().len(), 1);
    assert!(s.messages().is_empty());
}

#[test]
fn past_a_custom_immunity_only_a_check_answer_ends_it() {
    let s = store();
    let mut p = props("H1", true);
    p.insert(property::CHECK_IMMUNITY_TIME_IN_SECONDS, "10");
    let born = now_ms() - 60_000;
    let cx = send_with(&p, sysflag::TRANSACTION_PREPARED_TYPE, 0, born);
    let r = s.store_send(cx, UnknownTopic::Reject).unwrap().response;
    let id = OffsetMessageId::decode(&r.msg_id).unwrap();
    let mut h = end(&id, r.queue_offset, sysflag::TRANSACTION_COMMIT_TYPE);
    assert!(matches!(ended(&s, &h), EndOutcome::Refused(c, None) if c.value() == 604));
    h.from_transaction_check = true;
    assert!(matches!(ended(&s, &h), EndOutcome::Committed));
}

#[test]
fn transactional_batches_are_refused_and_tran_msg_alone_makes_a_half() {
    let s = store();
    let body = encode_batch(&[Message::new("T", "a"), Message::new("T", "b")]).unwrap();
    let mut cx = send_with(&props("B", true), sysflag::TRANSACTION_PREPARED_TYPE, 0, 0);
    cx.code = RequestCode::SEND_BATCH_MESSAGE;
    cx.body = body;
    let err = s.store_send(cx, UnknownTopic::Reject).err().unwrap();
    assert_eq!(err.0, ResponseCode::MESSAGE_ILLEGAL);
    // As a real broker: the TRAN_MSG property decides.
    let cx = send_with(&props("H", true), 0, 0, 0);
    s.store_send(cx, UnknownTopic::Reject).unwrap();
    assert_eq!((s.half_messages().len(), s.messages().len()), (1, 0));
}

#[test]
fn on_demand_checks_carry_the_half_message() {
    let s = store();
    let (id, qo) = send_half(&s, "H1", now_ms());
    let checks = s.take_checks(None, now_ms());
    assert_eq!(checks.len(), 1);
    let c = &checks[0];
    assert_eq!(c.group.as_deref(), Some("pg"));
    let h = &c.header;
    assert_eq!(h.topic.as_deref(), Some("T"));
    assert_eq!(
        (h.tran_state_table_offset, h.commit_log_offset),
        (qo, id.commit_log_offset)
    );
    assert_eq!(h.msg_id.as_deref(), Some("H1"));
    assert_eq!(h.transaction_id.as_deref(), Some("H1"));
    assert_eq!(h.offset_msg_id.as_deref(), Some(id.encode().as_str()));
    assert_eq!(h.broker_name.as_deref(), Some("broker-a"));
    let mut body = c.body.clone();
    let m = decode_stored_message(&mut body).unwrap();
    assert_eq!(
        (m.message.topic(), m.queue_id, m.queue_offset),
        ("T", 2, qo)
    );
    assert_eq!(m.commit_log_offset, id.commit_log_offset);
    assert_eq!(m.store_host, BROKER.parse::<SocketAddr>().unwrap());
    assert_eq!(m.born_host, "127.0.0.1:5000".parse::<SocketAddr>().unwrap());
    assert_eq!(
        m.message.property(property::TRANSACTION_CHECK_TIMES),
        Some("1")
    );
    assert_eq!(m.message.property(property::PGROUP), Some("pg"));
    assert_eq!(s.half_check_count(id.commit_log_offset), Some(1));
    s.take_checks(None, now_ms());
    assert_eq!(s.half_check_count(id.commit_log_offset), Some(2));
}

#[test]
fn check_passes_wait_for_age_and_discard_after_max_checks() {
    let s = store();
    let now = now_ms();
    let (young, _) = send_half(&s, "YOUNG", now);
    let (old, _) = send_half(&s, "OLD", now - 10_000);
    let (future, _) = send_half(&s, "FUTURE", now + 10_000);
    let rules = CheckRules {
        timeout_ms: 6_000,
        max_checks: 2,
    };
    let uniqs = |checks: Vec<PendingCheck>| -> Vec<String> {
        checks.into_iter().filter_map(|c| c.header.msg_id).collect()
    };
    assert_eq!(uniqs(s.take_checks(Some(rules), now)), ["OLD", "FUTURE"]);
    assert_eq!(uniqs(s.take_checks(Some(rules), now)), ["OLD", "FUTURE"]);
    // Checked twice: discarded at the next pass, the young one checked once it is old enough.
    assert_eq!(uniqs(s.take_checks(Some(rules), now + 7_000)), ["YOUNG"]);
    let left: Vec<i64> = s
        .half_messages()
        .iter()
        .map(StoredMessage::commit_log_offset)
        .collect();
    assert_eq!(left, [young.commit_log_offset]);
    assert_eq!(s.half_check_count(old.commit_log_offset), None);
    assert_eq!(s.half_check_count(future.commit_log_offset), None);
    assert!(s.messages().is_empty());
}
