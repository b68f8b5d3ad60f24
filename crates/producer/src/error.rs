//! [`ProducerError`]: why a send failed, and whether the message may have been stored.
//!
//! Every error answers one question first: [`ProducerError::maybe_stored`]. It is true only when a
//! request was written to a broker and no answer came (a timeout, a connection lost after the
//! write, a cancelled wait): the broker may have stored the message. Otherwise the message was
//! certainly not stored (never written, or refused by the broker) and
//! [`ProducerError::into_message`] hands it back, so it can be sent again without duplicates.
//!
//! Every error raised once the message was prepared also tells its id:
//! [`ProducerError::msg_id`] is the `UNIQ_KEY` the message carried (the ids of a batch's messages
//! joined by `,`), also when the message is not handed back. After a "maybe stored" error, look
//! the message up by that id, or send it again with the same id so that consumers can drop the
//! duplicate: give the message its id before the first send with
//! [`Producer::assign_msg_id`](crate::Producer::assign_msg_id) and resend a clone (an id already
//! set is never replaced).

use std::fmt;
use std::time::Duration;

use rmq_common::batch::BatchError;
use rmq_common::validate::ValidationError;
use rmq_common::{property, HeaderError, Message, ResponseCode};
use rmq_nameserver_client::NameServerError;
use rmq_remoting::RemotingError;

use crate::config::ConfigError;

/// The message(s) an error hands back because they were certainly not stored, and their id.
///
/// Holds no message when it may have been stored, or when the error did not concern a message;
/// the id ([`ProducerError::msg_id`]) stays in both cases.
#[derive(Default)]
pub struct Unsent {
    payload: Option<Box<Payload>>,
    msg_id: Option<Box<str>>,
}

/// What [`Unsent`] holds.
enum Payload {
    One(Message),
    Batch(Vec<Message>),
}

impl Unsent {
    /// Nothing handed back.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            payload: None,
            msg_id: None,
        }
    }

    /// `msg` and its `UNIQ_KEY`, when set.
    pub(crate) fn one(msg: Message) -> Self {
        let msg_id = uniq_key(&msg).map(Box::from);
        Self {
            payload: Some(Box::new(Payload::One(msg))),
            msg_id,
        }
    }

    /// `msgs` and their `UNIQ_KEY`s joined by `,`, when every message has one.
    pub(crate) fn batch(msgs: Vec<Message>) -> Self {
        let ids: Option<Vec<&str>> = msgs.iter().map(uniq_key).collect();
        let msg_id = ids.filter(|v| !v.is_empty()).map(|v| v.join(",").into());
        Self {
            payload: Some(Box::new(Payload::Batch(msgs))),
            msg_id,
        }
    }

    /// Whether a message (or batch) is held.
    #[must_use]
    pub fn is_some(&self) -> bool {
        self.payload.is_some()
    }
}

fn uniq_key(msg: &Message) -> Option<&str> {
    msg.property(property::UNIQ_KEY).filter(|id| !id.is_empty())
}

impl fmt::Debug for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.payload.as_deref() {
            None => f.write_str("Unsent(none)"),
            Some(Payload::One(m)) => write!(f, "Unsent(message to {})", m.topic()),
            Some(Payload::Batch(v)) => write!(f, "Unsent(batch of {})", v.len()),
        }
    }
}

/// Why a send (or the producer's start) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerError {
    /// The configuration is unusable (only from `start`).
    #[error("invalid producer configuration: {0}")]
    Config(#[from] ConfigError),
    /// The message breaks a rule checked before sending (topic, body, size, properties).
    #[error("invalid message: {source}")]
    InvalidMessage {
        /// The rule broken.
        source: ValidationError,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The messages cannot form a batch.
    #[error("invalid batch: {source}")]
    InvalidBatch {
        /// The rule broken.
        source: BatchError,
        /// The messages, handed back.
        unsent: Unsent,
    },
    /// The producer is shutting down or shut down.
    #[error("the producer is not running")]
    NotRunning {
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The topic has no writable queue (unknown topic, no master, no write permission).
    #[error("no route to topic {topic}")]
    NoRoute {
        /// The topic.
        topic: String,
        /// What the name servers answered, when they did.
        #[source]
        source: Option<NameServerError>,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The name servers could not be asked for the route.
    #[error("route lookup failed: {source}")]
    NameServer {
        /// The cause.
        source: NameServerError,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// No queue to send to: the queue given to `send_to_queue` belongs to another topic than
    /// the message's, or the selector of `send_with_selector` picked none (`None`, or an index
    /// out of the topic's writable queues). A queue given to `send_to_queue` is not checked
    /// against the route: an unknown broker ends in [`ProducerError::BrokerNotFound`], a queue
    /// the broker does not have in the broker's refusal.
    #[error("no queue {queue} to send to for topic {topic}")]
    QueueUnavailable {
        /// The topic.
        topic: String,
        /// The queue asked for (`broker/queueId`), or the selector's index.
        queue: String,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// No master address is known for the chosen broker (certainly not sent).
    #[error("no master address known for broker {broker}")]
    BrokerNotFound {
        /// The broker name.
        broker: String,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The broker refused the message with a response code (certainly not stored).
    #[error("broker {broker} ({addr}) answered {code}: {}", remark.as_deref().unwrap_or(""))]
    Broker {
        /// The response code.
        code: ResponseCode,
        /// The broker's remark.
        remark: Option<String>,
        /// The broker name.
        broker: String,
        /// The broker address.
        addr: String,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The transport failed (connect, write, timeout, connection lost).
    #[error("send to broker {broker} failed: {source}")]
    Remoting {
        /// The broker name.
        broker: String,
        /// The cause; [`RemotingError::maybe_delivered`] tells whether the request was written.
        source: RemotingError,
        /// The message, handed back when the request was certainly not written.
        unsent: Unsent,
    },
    /// The broker answered success with a header that cannot be decoded: the message is stored,
    /// but its ids are unknown.
    #[error("broker {broker} answered {code} with an unreadable header: {source}")]
    InvalidResponse {
        /// The broker name.
        broker: String,
        /// The response code.
        code: ResponseCode,
        /// The cause.
        source: HeaderError,
        /// Never holds the message (it was stored); carries its id ([`ProducerError::msg_id`]).
        unsent: Unsent,
    },
    /// The send deadline passed.
    #[error("send timed out after {after:?} ({attempts} attempts)")]
    Timeout {
        /// The deadline that passed.
        after: Duration,
        /// Attempts made before it passed.
        attempts: u32,
        /// Whether an attempt may have stored the message.
        maybe_stored: bool,
        /// The error of the last attempt, if one was made.
        last: Option<Box<ProducerError>>,
        /// The message, handed back when certainly not stored.
        unsent: Unsent,
    },
    /// Every attempt failed with a retryable error.
    #[error("send failed after {attempts} attempts on {brokers:?}: {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The broker of each attempt, in order.
        brokers: Vec<String>,
        /// The error of the last attempt.
        last: Box<ProducerError>,
        /// Whether any attempt may have stored the message.
        maybe_stored: bool,
        /// The message, handed back when no attempt may have stored it.
        unsent: Unsent,
    },
    /// Too many asynchronous sends in flight (`try_send_async` only).
    #[error(
        "too many asynchronous sends in flight (max {max_in_flight} sends / {max_bytes} bytes)"
    )]
    Overloaded {
        /// The bound on sends.
        max_in_flight: usize,
        /// The bound on body bytes.
        max_bytes: usize,
        /// The message, handed back.
        unsent: Unsent,
    },
    /// The send was still in flight when `shutdown` gave up waiting for it.
    #[error("send cancelled by shutdown")]
    Cancelled {
        /// Whether a request had been written when it was cancelled.
        maybe_stored: bool,
        /// The message, handed back when certainly not stored.
        unsent: Unsent,
    },
}

// Every public error must cross threads and live in `Box<dyn Error + Send + Sync>`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<ProducerError>();
};

impl ProducerError {
    /// True when the message may have been stored: a request was written to a broker and no
    /// answer came (or the answer could not be read). False when it was certainly not stored.
    #[must_use]
    pub fn maybe_stored(&self) -> bool {
        match self {
            Self::Remoting { source, .. } => source.maybe_delivered(),
            Self::InvalidResponse { .. } => true,
            Self::Timeout { maybe_stored, .. }
            | Self::RetriesExhausted { maybe_stored, .. }
            | Self::Cancelled { maybe_stored, .. } => *maybe_stored,
            _ => false,
        }
    }

    /// The message back, when it was certainly not stored and the send concerned one message.
    #[must_use]
    pub fn into_message(mut self) -> Option<Message> {
        match self.unsent_mut().and_then(|u| u.payload.take()).map(|b| *b) {
            Some(Payload::One(m)) => Some(m),
            _ => None,
        }
    }

    /// The messages back, when a batch was certainly not stored.
    #[must_use]
    pub fn into_batch(mut self) -> Option<Vec<Message>> {
        match self.unsent_mut().and_then(|u| u.payload.take()).map(|b| *b) {
            Some(Payload::Batch(v)) => Some(v),
            _ => None,
        }
    }

    /// The broker response code behind this error (of the last attempt for
    /// [`ProducerError::RetriesExhausted`]).
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Self::Broker { code, .. } | Self::InvalidResponse { code, .. } => Some(*code),
            Self::RetriesExhausted { last, .. } => last.response_code(),
            Self::Timeout {
                last: Some(last), ..
            } => last.response_code(),
            _ => None,
        }
    }

    /// The `UNIQ_KEY` of the message the error concerns (of each message of a batch, joined by
    /// `,`): set on every error raised once the message was prepared for sending, also when the
    /// message may have been stored and is not handed back. The id a stored copy carries, and
    /// the one to keep when sending the message again.
    #[must_use]
    pub fn msg_id(&self) -> Option<&str> {
        self.unsent().and_then(|u| u.msg_id.as_deref())
    }

    /// Whether the producer refused the send because it is overloaded.
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        matches!(self, Self::Overloaded { .. })
    }

    fn unsent(&self) -> Option<&Unsent> {
        match self {
            Self::InvalidMessage { unsent, .. }
            | Self::InvalidBatch { unsent, .. }
            | Self::NotRunning { unsent }
            | Self::NoRoute { unsent, .. }
            | Self::NameServer { unsent, .. }
            | Self::QueueUnavailable { unsent, .. }
            | Self::BrokerNotFound { unsent, .. }
            | Self::Broker { unsent, .. }
            | Self::Remoting { unsent, .. }
            | Self::Timeout { unsent, .. }
            | Self::RetriesExhausted { unsent, .. }
            | Self::Overloaded { unsent, .. }
            | Self::InvalidResponse { unsent, .. }
            | Self::Cancelled { unsent, .. } => Some(unsent),
            Self::Config(_) => None,
        }
    }

    fn unsent_mut(&mut self) -> Option<&mut Unsent> {
        match self {
            Self::InvalidMessage { unsent, .. }
            | Self::InvalidBatch { unsent, .. }
            | Self::NotRunning { unsent }
            | Self::NoRoute { unsent, .. }
            | Self::NameServer { unsent, .. }
            | Self::QueueUnavailable { unsent, .. }
            | Self::BrokerNotFound { unsent, .. }
            | Self::Broker { unsent, .. }
            | Self::Remoting { unsent, .. }
            | Self::Timeout { unsent, .. }
            | Self::RetriesExhausted { unsent, .. }
            | Self::Overloaded { unsent, .. }
            | Self::InvalidResponse { unsent, .. }
            | Self::Cancelled { unsent, .. } => Some(unsent),
            Self::Config(_) => None,
        }
    }

    /// Hands `unsent` to the error when the message was certainly not stored; keeps only its id
    /// otherwise.
    pub(crate) fn with_unsent(mut self, unsent: Unsent) -> Self {
        let maybe_stored = self.maybe_stored();
        if let Some(slot) = self.unsent_mut() {
            if maybe_stored {
                slot.msg_id = unsent.msg_id;
            } else {
                *slot = unsent;
            }
        }
        self
    }

    /// [`ProducerError::NotRunning`] with the message.
    pub(crate) fn not_running(unsent: Unsent) -> Self {
        Self::NotRunning { unsent }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        Message::new("T", "body")
    }

    fn written_timeout() -> RemotingError {
        RemotingError::Timeout {
            addr: "a".into(),
            opaque: 1,
            after: Duration::from_secs(1),
            written: true,
        }
    }

    #[test]
    fn refused_or_unwritten_hands_the_message_back() {
        let refused = ProducerError::Broker {
            code: ResponseCode::MESSAGE_ILLEGAL,
            remark: None,
            broker: "b".into(),
            addr: "a".into(),
            unsent: Unsent::none(),
        }
        .with_unsent(Unsent::one(msg()));
        assert!(!refused.maybe_stored());
        assert_eq!(refused.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
        assert_eq!(
            refused.into_message().map(|m| m.body().clone()),
            Some("body".into())
        );

        let unwritten = ProducerError::Remoting {
            broker: "b".into(),
            source: RemotingError::Overloaded { addr: "a".into() },
            unsent: Unsent::none(),
        }
        .with_unsent(Unsent::one(msg()));
        assert!(!unwritten.maybe_stored());
        assert!(unwritten.into_message().is_some());
    }

    #[test]
    fn written_without_answer_keeps_nothing() {
        let err = ProducerError::Remoting {
            broker: "b".into(),
            source: written_timeout(),
            unsent: Unsent::none(),
        }
        .with_unsent(Unsent::one(msg()));
        assert!(err.maybe_stored());
        assert!(err.into_message().is_none());

        let exhausted = ProducerError::RetriesExhausted {
            attempts: 3,
            brokers: vec!["a".into(), "b".into(), "a".into()],
            last: Box::new(ProducerError::NotRunning {
                unsent: Unsent::none(),
            }),
            maybe_stored: true,
            unsent: Unsent::none(),
        }
        .with_unsent(Unsent::one(msg()));
        assert!(exhausted.maybe_stored());
        assert!(exhausted.into_message().is_none());
    }

    #[test]
    fn the_id_stays_whether_or_not_the_message_comes_back() {
        let with_id = || {
            let mut m = msg();
            m.properties_mut().insert(property::UNIQ_KEY, "ID1");
            m
        };
        let kept = ProducerError::Remoting {
            broker: "b".into(),
            source: written_timeout(),
            unsent: Unsent::none(),
        }
        .with_unsent(Unsent::one(with_id()));
        assert_eq!(kept.msg_id(), Some("ID1"));
        assert!(kept.into_message().is_none());
        let back = ProducerError::not_running(Unsent::none()).with_unsent(Unsent::one(with_id()));
        assert_eq!(back.msg_id(), Some("ID1"));
        assert!(back.into_message().is_some());
        let mut second = with_id();
        second.properties_mut().insert(property::UNIQ_KEY, "ID2");
        let batch = ProducerError::not_running(Unsent::batch(vec![with_id(), second]));
        assert_eq!(batch.msg_id(), Some("ID1,ID2"));
        let no_id = ProducerError::not_running(Unsent::one(msg()));
        assert_eq!(no_id.msg_id(), None, "not prepared yet: no id");
    }

    #[test]
    fn batches_come_back_as_batches() {
        let err = ProducerError::not_running(Unsent::batch(vec![msg(), msg()]));
        assert!(err.to_string().contains("not running"));
        assert_eq!(err.into_batch().map(|v| v.len()), Some(2));
        let err = ProducerError::not_running(Unsent::batch(vec![msg()]));
        assert!(err.into_message().is_none(), "a batch is not one message");
    }
}
