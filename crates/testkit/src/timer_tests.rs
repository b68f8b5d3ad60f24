//! Store-level tests of timer messages and recalls.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::RequestCode;

use super::*;
use crate::store::{now_ms, SendContext, TopicConf, UnknownTopic};

/// Properties of a send.
type Pairs = Vec<(&'static str, String)>;

fn store() -> Store {
    let s = Store::new(
        "broker-a".into(),
        "127.0.0.1:10911".parse().unwrap(),
        Arc::new(AtomicU64::new(0)),
    );
    s.set_topic(
        "T",
        TopicConf {
            write_queues: 4,
            perm: 6,
        },
    );
    s
}

fn send(
    store: &Store,
    pairs: &[(&'static str, String)],
) -> Result<crate::store::Stored, Rejection> {
    let mut props = Properties::new();
    props.insert(property::UNIQ_KEY, "UNIQ1");
    for (k, v) in pairs {
        props.insert(*k, v.clone());
    }
    store.store_send(
        SendContext {
            code: RequestCode::SEND_MESSAGE_V2,
            header: SendMessageRequestHeader {
                producer_group: "pg".into(),
                topic: "T".into(),
                default_topic: "TBW102".into(),
                default_topic_queue_nums: 4,
                queue_id: 2,
                properties: Some(props.encode()),
                ..SendMessageRequestHeader::default()
            },
            body: Bytes::from_static(b"body"),
            born_host: "127.0.0.1:5000".parse().unwrap(),
            reply_code: ResponseCode::SUCCESS,
        },
        UnknownTopic::Reject,
    )
}

#[test]
fn a_timer_message_is_held_in_the_timer_topic_until_its_time() {
    let s = store();
    let deliver = now_ms() + 60_000;
    let ok = send(&s, &[(property::TIMER_DELIVER_MS, deliver.to_string())]).expect("stored");
    assert!(s.messages().is_empty(), "not visible before its time");
    let timers = s.timer_messages();
    assert_eq!(timers.len(), 1);
    let t = &timers[0];
    assert_eq!((t.topic(), t.queue_id()), (TIMER_TOPIC, 0));
    assert_eq!(t.property(property::REAL_TOPIC), Some("T"));
    assert_eq!(t.property(property::REAL_QID), Some("2"));
    let out: i64 = t.property(property::TIMER_OUT_MS).unwrap().parse().unwrap();
    assert!(
        out < deliver && deliver - out <= 1_000,
        "floored to the second"
    );
    // Answered like a broker: the original queue id, the handle of the real topic.
    assert_eq!(ok.response.queue_id, 2);
    let handle = RecallHandle::decode(ok.response.recall_handle.as_deref().unwrap()).unwrap();
    assert_eq!(
        (
            handle.topic.as_str(),
            handle.broker_name.as_str(),
            handle.msg_id.as_str()
        ),
        ("T", "broker-a", "UNIQ1")
    );
    assert_eq!(handle.deliver_time_ms, u64::try_from(out + 1).unwrap());
    // Viewable by its offset, as on a broker.
    assert_eq!(
        s.find_by_offset(t.commit_log_offset())
            .unwrap()
            .message
            .topic(),
        TIMER_TOPIC
    );
    // Not due yet: nothing delivered; due: one copy in the real topic and queue.
    assert_eq!(s.deliver_timers(Some(out - 1)), 0);
    assert_eq!(s.deliver_timers(Some(out)), 1);
    let msgs = s.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].topic(), msgs[0].queue_id()), ("T", 2));
    assert_eq!(msgs[0].ext.uniq_key(), Some("UNIQ1"));
    assert!(
        msgs[0].commit_log_offset() > t.commit_log_offset(),
        "a new record"
    );
    assert!(s.timer_messages().is_empty());
}

#[test]
fn what_a_broker_does_with_each_timer_request() {
    let now = now_ms();
    let illegal = ResponseCode::MESSAGE_ILLEGAL;
    // (properties, Ok(held as timer) or Err(code))
    let cases: Vec<(Pairs, Result<bool, ResponseCode>)> = vec![
        (vec![], Ok(false)),
        (vec![(property::TIMER_DELAY_SEC, "30".into())], Ok(true)),
        (vec![(property::TIMER_DELAY_MS, "30000".into())], Ok(true)),
        (
            vec![(property::TIMER_DELIVER_MS, (now - 5).to_string())],
            Ok(false),
        ),
        (vec![(property::TIMER_DELAY_MS, "0".into())], Ok(false)),
        (
            vec![(property::TIMER_DELAY_MS, "soon".into())],
            Err(illegal),
        ),
        (
            vec![(property::TIMER_DELAY_SEC, (4 * 24 * 3600).to_string())],
            Err(illegal),
        ),
        // A delay level wins over the timer (the mock does not model delay levels).
        (
            vec![
                (property::DELAY, "3".into()),
                (property::TIMER_DELAY_SEC, "30".into()),
            ],
            Ok(false),
        ),
    ];
    for (pairs, want) in cases {
        let s = store();
        let got = send(&s, &pairs)
            .map(|ok| ok.response.recall_handle.is_some())
            .map_err(|e| e.0);
        assert_eq!(got, want, "{pairs:?}");
        if want == Ok(true) {
            assert_eq!(
                (s.timer_messages().len(), s.messages().len()),
                (1, 0),
                "{pairs:?}"
            );
        }
    }
}

#[test]
fn recall_answers_as_java_and_drops_the_pending_message() {
    use ResponseCode as C;
    let s = store();
    let ok = send(&s, &[(property::TIMER_DELAY_SEC, "60".into())]).unwrap();
    let good = ok.response.recall_handle.unwrap();
    let handle = RecallHandle::decode(&good).unwrap();
    let other = |f: &dyn Fn(&mut RecallHandle)| {
        let mut h = handle.clone();
        f(&mut h);
        h.encode()
    };
    let on = RecallPolicy {
        enabled: true,
        any_topic: false,
    };
    let now = now_ms();
    let h = |topic: &str, recall_handle: String| RecallMessageRequestHeader {
        producer_group: Some("pg".into()),
        topic: topic.into(),
        recall_handle,
        broker_name: Some("broker-a".into()),
    };
    let refusals: Vec<(RecallMessageRequestHeader, RecallPolicy, ResponseCode, &str)> = vec![
        (
            h("T", good.clone()),
            RecallPolicy {
                enabled: false,
                ..on
            },
            C::NO_PERMISSION,
            "recall failed, operation is forbidden",
        ),
        (
            h("U", other(&|h| h.topic = "U".into())),
            on,
            C::TOPIC_NOT_EXIST,
            "recall failed, the topic[U] not exist",
        ),
        (
            h("T", "%%%".into()),
            on,
            C::ILLEGAL_OPERATION,
            "recall handle is invalid",
        ),
        (
            h("T", other(&|h| h.topic = "V".into())),
            on,
            C::ILLEGAL_OPERATION,
            "recall failed, topic not match",
        ),
        (
            h("T", other(&|h| h.broker_name = "broker-b".into())),
            on,
            C::ILLEGAL_OPERATION,
            "recall failed, broker service not available",
        ),
        (
            h("T", other(&|h| h.deliver_time_ms = 1)),
            on,
            C::ILLEGAL_OPERATION,
            "recall failed, timestamp invalid",
        ),
        (
            h("T", other(&|h| h.deliver_time_ms += 4 * 24 * 3_600_000)),
            on,
            C::ILLEGAL_OPERATION,
            "recall failed, timestamp invalid",
        ),
    ];
    for (header, policy, code, remark) in refusals {
        let a = s.recall(&header, policy, now);
        assert_eq!(
            (a.code, a.remark.as_deref()),
            (code, Some(remark)),
            "{remark}"
        );
    }
    assert_eq!(s.timer_messages().len(), 1, "refusals leave it pending");
    let a = s.recall(&h("T", good.clone()), on, now);
    assert_eq!((a.code, a.msg_id.as_deref()), (C::SUCCESS, Some("UNIQ1")));
    assert!(s.timer_messages().is_empty());
    assert_eq!(s.deliver_timers(None), 0, "never delivered");
    assert!(s.messages().is_empty());
    // Again: Java answers success whether or not it holds the message.
    let a = s.recall(&h("T", good), on, now);
    assert_eq!(a.code, C::SUCCESS);
    let records = s.recalls();
    assert_eq!(records.len(), 9);
    assert_eq!(
        records.iter().map(|r| r.removed).collect::<Vec<_>>(),
        [false, false, false, false, false, false, false, true, false]
    );
}

#[test]
fn recall_after_delivery_is_too_late() {
    let s = store();
    let ok = send(&s, &[(property::TIMER_DELAY_SEC, "5".into())]).unwrap();
    let handle = ok.response.recall_handle.unwrap();
    let due = i64::try_from(RecallHandle::decode(&handle).unwrap().deliver_time_ms).unwrap();
    assert_eq!(s.deliver_timers(Some(due)), 1);
    let header = RecallMessageRequestHeader {
        producer_group: None,
        topic: "T".into(),
        recall_handle: handle,
        broker_name: None,
    };
    let policy = RecallPolicy {
        enabled: true,
        any_topic: false,
    };
    let a = s.recall(&header, policy, due);
    assert_eq!(
        (a.code, a.remark.as_deref()),
        (
            ResponseCode::ILLEGAL_OPERATION,
            Some("recall failed, timestamp invalid")
        )
    );
    assert_eq!(s.messages().len(), 1, "delivered stays delivered");
}
