//! Unit tests of [`SendError`]: what it hands back, and how its causes print.

use std::error::Error as _;

use rmq_common::batch::BatchError;
use rmq_nameserver_client::RouteDecodeError;

use super::*;

fn msg() -> Message {
    Message::new("T", "body")
}

fn written_timeout() -> RemotingError {
    RemotingError::Timeout {
        addr: "127.0.0.1:10911".into(),
        opaque: 1,
        after: Duration::from_secs(1),
        written: true,
    }
}

fn refused() -> ErrorKind {
    ErrorKind::Broker {
        code: ResponseCode::MESSAGE_ILLEGAL,
        remark: Some("bad".into()),
        broker: "b".into(),
        addr: "a".into(),
    }
}

#[test]
fn refused_or_unwritten_hands_the_message_back() {
    let err = SendError::new(refused(), Unsent::one(msg()));
    assert!(!err.maybe_stored());
    assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
    assert!(!err.is_retryable(), "an illegal message stays illegal");
    assert_eq!(
        err.into_message().map(|m| m.body().clone()),
        Some("body".into())
    );
    let unwritten = SendError::new(
        ErrorKind::Transport {
            broker: "b".into(),
            source: RemotingError::Overloaded { addr: "a".into() },
        },
        Unsent::one(msg()),
    );
    assert!(!unwritten.maybe_stored());
    assert!(unwritten.is_retryable());
    assert!(unwritten.into_message().is_some());
}

#[test]
fn written_without_answer_keeps_only_the_id() {
    let mut m = msg();
    m.properties_mut().insert(property::UNIQ_KEY, "ID1");
    let err = SendError::new(
        ErrorKind::Transport {
            broker: "b".into(),
            source: written_timeout(),
        },
        Unsent::one(m),
    );
    assert!(err.maybe_stored() && err.is_timeout() && err.is_retryable());
    assert_eq!(err.msg_id(), Some("ID1"));
    assert!(!err.has_message());
    assert!(err.into_message().is_none());

    let exhausted = SendError::new(
        ErrorKind::RetriesExhausted {
            attempts: 3,
            brokers: vec!["a".into(), "b".into(), "a".into()],
            last: Box::new(ErrorKind::NotRunning),
            maybe_stored: true,
        },
        Unsent::one(msg()),
    );
    assert!(exhausted.maybe_stored());
    assert!(exhausted.into_message().is_none());
}

#[test]
fn batches_come_back_as_batches() {
    let mut second = msg();
    second.properties_mut().insert(property::UNIQ_KEY, "ID2");
    let mut first = msg();
    first.properties_mut().insert(property::UNIQ_KEY, "ID1");
    let err = SendError::new(ErrorKind::NotRunning, Unsent::batch(vec![first, second]));
    assert_eq!(err.msg_id(), Some("ID1,ID2"));
    assert_eq!(err.into_batch().map(|v| v.len()), Some(2));
    let err = SendError::new(ErrorKind::NotRunning, Unsent::batch(vec![msg()]));
    assert!(err.into_message().is_none(), "a batch is not one message");
    let no_id = SendError::new(ErrorKind::NotRunning, Unsent::one(msg()));
    assert_eq!(no_id.msg_id(), None, "not prepared yet: no id");
}

/// The text of every level of `err`'s chain.
fn chain(err: &SendError) -> Vec<String> {
    let mut levels = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        levels.push(e.to_string());
        next = e.source();
    }
    levels
}

#[test]
fn no_text_appears_twice_in_a_chain() {
    let kinds = vec![
        ErrorKind::InvalidMessage(ValidationError::EmptyBody),
        ErrorKind::InvalidBatch(BatchError::Empty),
        ErrorKind::NotRunning,
        ErrorKind::NoRoute {
            topic: "T".into(),
            source: Some(NameServerError::TopicNotExist {
                topic: "T".into(),
                remark: Some("No topic route info".into()),
            }),
        },
        ErrorKind::NameServer(NameServerError::Unreachable {
            tried: vec!["127.0.0.1:9876".into()],
            last: RemotingError::ConnectionClosed {
                addr: "127.0.0.1:9876".into(),
                written: true,
            },
        }),
        ErrorKind::NameServer(NameServerError::BadRouteBody(RouteDecodeError::Empty)),
        ErrorKind::QueueUnavailable {
            topic: "T".into(),
            queue: "q".into(),
        },
        ErrorKind::BrokerNotFound { broker: "b".into() },
        refused(),
        ErrorKind::Transport {
            broker: "broker-a".into(),
            source: written_timeout(),
        },
        ErrorKind::InvalidResponse {
            broker: "b".into(),
            code: ResponseCode::SUCCESS,
            source: HeaderError::Missing { field: "queueId" },
        },
        ErrorKind::Timeout {
            after: Duration::from_secs(3),
            attempts: 2,
            maybe_stored: true,
            last: Some(Box::new(ErrorKind::Transport {
                broker: "broker-b".into(),
                source: written_timeout(),
            })),
        },
        ErrorKind::RetriesExhausted {
            attempts: 3,
            brokers: vec!["broker-a".into(), "broker-b".into()],
            last: Box::new(refused()),
            maybe_stored: false,
        },
        ErrorKind::Overloaded {
            max_in_flight: 1,
            max_bytes: 2,
        },
        ErrorKind::Cancelled { maybe_stored: true },
    ];
    for kind in kinds {
        let err = SendError::new(kind, Unsent::one(msg()));
        let levels = chain(&err);
        for (i, a) in levels.iter().enumerate() {
            assert!(!a.is_empty(), "{levels:?}");
            for b in &levels[i + 1..] {
                assert!(
                    !a.contains(b.as_str()) && !b.contains(a.as_str()),
                    "repeated text in the chain {levels:?}"
                );
            }
        }
    }
}

#[test]
fn timeouts_and_exhausted_retries_link_their_last_error() {
    let err = SendError::bare(ErrorKind::RetriesExhausted {
        attempts: 2,
        brokers: vec!["a".into(), "b".into()],
        last: Box::new(refused()),
        maybe_stored: false,
    });
    let last = err.source().map(ToString::to_string);
    assert_eq!(
        last.as_deref(),
        Some("broker b (a) answered MESSAGE_ILLEGAL(13): bad")
    );
    assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
}

#[test]
fn request_errors_say_the_request_is_stored_and_keep_its_id() {
    let mut m = msg();
    m.properties_mut().insert(property::UNIQ_KEY, "REQ1");
    let timeout = SendError::new(
        ErrorKind::ReplyTimeout {
            after: Duration::from_secs(3),
            correlation_id: "c-1".into(),
        },
        Unsent::one(m.clone()),
    );
    assert!(timeout.maybe_stored() && timeout.is_timeout() && timeout.is_retryable());
    assert_eq!(timeout.msg_id(), Some("REQ1"));
    assert!(!timeout.has_message(), "stored: not handed back");
    assert!(timeout.to_string().contains("c-1"));

    let unreadable = SendError::new(
        ErrorKind::InvalidReply {
            correlation_id: "c-2".into(),
            source: rmq_common::CompressionError::Unsupported(0x100),
        },
        Unsent::one(m),
    );
    assert!(unreadable.maybe_stored() && !unreadable.is_timeout() && !unreadable.is_retryable());
    assert!(unreadable.source().is_some());

    let cannot = SendError::bare(ErrorKind::CannotReply(
        rmq_common::reply::ReplyError::MissingProperty(property::CLUSTER),
    ));
    assert!(!cannot.maybe_stored() && !cannot.is_retryable());
    let chain = cannot.source().map(ToString::to_string);
    assert_eq!(
        chain.as_deref(),
        Some("the request has no CLUSTER property")
    );
}
