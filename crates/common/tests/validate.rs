//! Validation tables (Java's `Validators` / `TopicValidator`).

use rmq_common::validate::{
    is_not_allowed_send_topic, is_system_topic, validate_group, validate_message,
    validate_producer_group, validate_topic, DEFAULT_MAX_MESSAGE_SIZE,
};
use rmq_common::{Message, ValidationError as E};

#[test]
fn topics() {
    let long = "t".repeat(128);
    let max = "t".repeat(127);
    let cases: Vec<(&str, Result<(), E>)> = vec![
        ("TopicTest", Ok(())),
        ("%RETRY%group_1", Ok(())),
        ("a|b-c_d%0", Ok(())),
        (&max, Ok(())),
        ("", Err(E::EmptyTopic)),
        ("   ", Err(E::EmptyTopic)),
        (&long, Err(E::TopicTooLong { len: 128 })),
        ("a b", Err(E::IllegalTopicChar { ch: ' ' })),
        ("a.b", Err(E::IllegalTopicChar { ch: '.' })),
        ("a/b", Err(E::IllegalTopicChar { ch: '/' })),
        ("caf\u{e9}", Err(E::IllegalTopicChar { ch: '\u{e9}' })),
        ("tab\t", Err(E::IllegalTopicChar { ch: '\t' })),
    ];
    for (topic, want) in cases {
        assert_eq!(validate_topic(topic), want, "{topic:?}");
    }
}

#[test]
fn groups() {
    let long = "g".repeat(121);
    let cases: Vec<(&str, Result<(), E>)> = vec![
        ("pg", Ok(())),
        ("CID_app-1", Ok(())),
        ("", Err(E::EmptyGroup)),
        (&long, Err(E::GroupTooLong { len: 121 })),
        ("bad group", Err(E::IllegalGroupChar { ch: ' ' })),
    ];
    for (group, want) in cases {
        assert_eq!(validate_group(group), want, "{group:?}");
    }
    assert_eq!(
        validate_producer_group("DEFAULT_PRODUCER"),
        Err(E::ReservedGroup("DEFAULT_PRODUCER".into()))
    );
    assert_eq!(validate_producer_group(""), Err(E::EmptyGroup));
}

#[test]
fn messages() {
    let cases: Vec<(Message, usize, Result<(), E>)> = vec![
        (Message::new("T", "x"), DEFAULT_MAX_MESSAGE_SIZE, Ok(())),
        (
            Message::new("T", vec![0u8; DEFAULT_MAX_MESSAGE_SIZE]),
            DEFAULT_MAX_MESSAGE_SIZE,
            Ok(()),
        ),
        (
            Message::new("T", vec![0u8; DEFAULT_MAX_MESSAGE_SIZE + 1]),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::BodyTooLarge {
                size: DEFAULT_MAX_MESSAGE_SIZE + 1,
                max: DEFAULT_MAX_MESSAGE_SIZE,
            }),
        ),
        (
            Message::new("T", ""),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::EmptyBody),
        ),
        (
            Message::new("", "x"),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::EmptyTopic),
        ),
        (
            Message::new("bad topic", "x"),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::IllegalTopicChar { ch: ' ' }),
        ),
        (
            Message::new("SCHEDULE_TOPIC_XXXX", "x"),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::NotAllowedTopic("SCHEDULE_TOPIC_XXXX".into())),
        ),
        (
            Message::new("RMQ_SYS_TRANS_HALF_TOPIC", "x"),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::NotAllowedTopic("RMQ_SYS_TRANS_HALF_TOPIC".into())),
        ),
        // The topic is checked before the body, as Java does.
        (
            Message::new("a b", ""),
            DEFAULT_MAX_MESSAGE_SIZE,
            Err(E::IllegalTopicChar { ch: ' ' }),
        ),
        // TBW102 is a system topic but not a forbidden send topic.
        (
            Message::new("TBW102", "x"),
            DEFAULT_MAX_MESSAGE_SIZE,
            Ok(()),
        ),
    ];
    for (msg, max, want) in cases {
        assert_eq!(validate_message(&msg, max), want, "{}", msg.topic());
    }
}

#[test]
fn topic_classes() {
    for t in [
        "SCHEDULE_TOPIC_XXXX",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
    ] {
        assert!(is_not_allowed_send_topic(t), "{t}");
        assert!(is_system_topic(t), "{t}");
    }
    for t in [
        "TBW102",
        "BenchmarkTest",
        "RMQ_SYS_TRACE_TOPIC",
        "CHECKPOINT_TOPIC",
        "rmq_sys_anything",
    ] {
        assert!(is_system_topic(t), "{t}");
        assert!(!is_not_allowed_send_topic(t), "{t}");
    }
    for t in ["TopicTest", "tbw102", "RMQ_SYS_OTHER"] {
        assert!(!is_system_topic(t) && !is_not_allowed_send_topic(t), "{t}");
    }
}
