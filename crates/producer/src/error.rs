//! [`SendError`]: why a send failed, whether the message may have been stored, and the message
//! back when it certainly was not.
//!
//! One shape for every send: an [`ErrorKind`] (what went wrong, with its causes chained through
//! [`std::error::Error::source`]) and, in one place, what the error hands back. Every error
//! answers one question first: [`SendError::maybe_stored`]. It is true only when a request was
//! written to a broker and no answer came (a timeout, a connection lost after the write, a
//! cancelled wait): the broker may have stored the message. Otherwise the message was certainly
//! not stored (never written, or refused by the broker) and [`SendError::into_message`] hands it
//! back, so it can be sent again without duplicates.
//!
//! Every error raised once the message was prepared also tells its id: [`SendError::msg_id`] is
//! the `UNIQ_KEY` the message carried (the ids of a batch's messages joined by `,`), also when
//! the message is not handed back. After a "maybe stored" error, look the message up by that id,
//! or send it again with the same id so that consumers can drop the duplicate: give the message
//! its id before the first send with [`Producer::assign_msg_id`](crate::Producer::assign_msg_id)
//! and resend a clone (an id already set is never replaced).
//!
//! `Display` prints one level only; the causes follow through `source()`, so error reporters
//! (`anyhow`'s `{:#}`, `eyre`) print each text once.

use std::fmt;
use std::time::Duration;

use rmq_common::batch::BatchError;
use rmq_common::validate::ValidationError;
use rmq_common::{property, HeaderError, Message, ResponseCode};
use rmq_nameserver_client::NameServerError;
use rmq_remoting::RemotingError;

/// What went wrong in a send. Read it through [`SendError::kind`]; the predicates of
/// [`SendError`] answer the questions a caller usually has.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message breaks a rule checked before sending (topic, body, size, properties).
    #[error("invalid message")]
    InvalidMessage(#[source] ValidationError),
    /// The messages cannot form a batch.
    #[error("invalid batch")]
    InvalidBatch(#[source] BatchError),
    /// The producer is shutting down or shut down.
    #[error("the producer is not running")]
    NotRunning,
    /// The topic has no writable queue (unknown topic, no master, no write permission).
    #[error("no route to topic {topic}")]
    #[non_exhaustive]
    NoRoute {
        /// The topic.
        topic: String,
        /// What the name servers answered, when they did.
        #[source]
        source: Option<NameServerError>,
    },
    /// The name servers could not be asked for the route.
    #[error("route lookup failed")]
    NameServer(#[source] NameServerError),
    /// No queue to send to: the queue given as the target belongs to another topic than the
    /// message's, or the selector picked none (`None`, or an index out of the topic's writable
    /// queues). A queue target is not checked against the route: an unknown broker ends in
    /// [`ErrorKind::BrokerNotFound`], a queue the broker does not have in the broker's refusal.
    #[error("no queue {queue} to send to for topic {topic}")]
    #[non_exhaustive]
    QueueUnavailable {
        /// The topic.
        topic: String,
        /// The queue asked for (`broker/queueId`), or the selector's index.
        queue: String,
    },
    /// No address is known for the chosen broker (certainly not sent).
    #[error("no master address known for broker {broker}")]
    #[non_exhaustive]
    BrokerNotFound {
        /// The broker name.
        broker: String,
    },
    /// The broker refused the message with a response code (certainly not stored).
    #[error("broker {broker} ({addr}) answered {code}{}", remark_text(remark.as_deref()))]
    #[non_exhaustive]
    Broker {
        /// The response code.
        code: ResponseCode,
        /// The broker's remark.
        remark: Option<String>,
        /// The broker name.
        broker: String,
        /// The broker address.
        addr: String,
    },
    /// The transport failed (connect, TLS, write, timeout, connection lost); the source tells
    /// whether the request was written ([`RemotingError::maybe_delivered`]).
    #[error("send to broker {broker} failed")]
    #[non_exhaustive]
    Transport {
        /// The broker name.
        broker: String,
        /// The cause.
        #[source]
        source: RemotingError,
    },
    /// The broker answered success with a header that cannot be decoded: the message is stored,
    /// but its ids are unknown.
    #[error("broker {broker} answered {code} with an unreadable header")]
    #[non_exhaustive]
    InvalidResponse {
        /// The broker name.
        broker: String,
        /// The response code.
        code: ResponseCode,
        /// The cause.
        #[source]
        source: HeaderError,
    },
    /// The send deadline passed.
    #[error("send timed out after {after:?} ({attempts} attempts)")]
    #[non_exhaustive]
    Timeout {
        /// The deadline that passed.
        after: Duration,
        /// Attempts made before it passed.
        attempts: u32,
        /// Whether an attempt may have stored the message.
        maybe_stored: bool,
        /// The error of the last failed attempt, if one failed.
        #[source]
        last: Option<Box<ErrorKind>>,
    },
    /// Every attempt failed with a retryable error.
    #[error("send failed after {attempts} attempts on {brokers:?}")]
    #[non_exhaustive]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The broker of each attempt, in order.
        brokers: Vec<String>,
        /// The error of the last attempt.
        #[source]
        last: Box<ErrorKind>,
        /// Whether any attempt may have stored the message.
        maybe_stored: bool,
    },
    /// Too many asynchronous sends in flight (`try_send_async` only).
    #[error(
        "too many asynchronous sends in flight (max {max_in_flight} sends / {max_bytes} bytes)"
    )]
    #[non_exhaustive]
    Overloaded {
        /// The bound on sends.
        max_in_flight: usize,
        /// The bound on body bytes.
        max_bytes: usize,
    },
    /// A request ([`Producer::request`](crate::Producer::request)) was stored, but no reply
    /// came within its deadline (Java's `RequestTimeoutException`). The request stays stored:
    /// a replier may still answer it, too late (that reply is then dropped).
    #[error("request {correlation_id} stored, but no reply within {after:?}")]
    #[non_exhaustive]
    ReplyTimeout {
        /// The request's deadline (sending and waiting).
        after: Duration,
        /// The request's `CORRELATION_ID`.
        correlation_id: String,
    },
    /// The reply to a request arrived but its body cannot be read (a compressed body that does
    /// not inflate, or an algorithm this crate lacks).
    #[error("the reply to request {correlation_id} cannot be read")]
    #[non_exhaustive]
    InvalidReply {
        /// The request's `CORRELATION_ID`.
        correlation_id: String,
        /// The cause.
        #[source]
        source: rmq_common::CompressionError,
    },
    /// A reply cannot be built from the message given as the request
    /// ([`Producer::send_reply`](crate::Producer::send_reply)).
    #[error("cannot build a reply")]
    CannotReply(#[source] rmq_common::reply::ReplyError),
    /// The send was still in flight when `shutdown` gave up waiting for it (or its task was
    /// dropped by a runtime shutting down).
    #[error("send cancelled by shutdown")]
    #[non_exhaustive]
    Cancelled {
        /// Whether a request had been written when it was cancelled.
        maybe_stored: bool,
    },
}

/// `": remark"`, or nothing when the broker gave none.
fn remark_text(remark: Option<&str>) -> String {
    match remark.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}

impl ErrorKind {
    /// True when the message may have been stored (see [`SendError::maybe_stored`]).
    #[must_use]
    pub fn maybe_stored(&self) -> bool {
        match self {
            Self::Transport { source, .. } => source.maybe_delivered(),
            Self::InvalidResponse { .. }
            | Self::ReplyTimeout { .. }
            | Self::InvalidReply { .. } => true,
            Self::Timeout { maybe_stored, .. }
            | Self::RetriesExhausted { maybe_stored, .. }
            | Self::Cancelled { maybe_stored } => *maybe_stored,
            _ => false,
        }
    }

    /// The broker response code behind this error (of the last attempt for
    /// [`ErrorKind::RetriesExhausted`] and [`ErrorKind::Timeout`]).
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

    /// See [`SendError::is_timeout`].
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::ReplyTimeout { .. } => true,
            Self::Transport { source, .. } => source.is_timeout(),
            Self::RetriesExhausted { last, .. } => last.is_timeout(),
            _ => false,
        }
    }

    /// See [`SendError::is_retryable`].
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NameServer(_)
            | Self::BrokerNotFound { .. }
            | Self::Transport { .. }
            | Self::Timeout { .. }
            | Self::ReplyTimeout { .. }
            | Self::Overloaded { .. } => true,
            Self::Broker { code, .. } => TRANSIENT_CODES.contains(code),
            Self::RetriesExhausted { last, .. } => last.is_retryable(),
            _ => false,
        }
    }
}

/// Broker codes that say "try again later" whatever the message: a later send may succeed.
const TRANSIENT_CODES: [ResponseCode; 6] = [
    ResponseCode::SYSTEM_BUSY,
    ResponseCode::SYSTEM_ERROR,
    ResponseCode::SERVICE_NOT_AVAILABLE,
    ResponseCode::FLOW_CONTROL,
    ResponseCode::GO_AWAY,
    ResponseCode::FLUSH_DISK_TIMEOUT,
];

/// Why a send failed; hands the message back when it was certainly not stored.
///
/// ```
/// use rmq_producer::{ErrorKind, SendError};
/// # fn handle(err: SendError) {
/// if err.maybe_stored() {
///     // Look it up by err.msg_id(), or resend a copy with the same id.
/// } else if let Some(msg) = err.into_message() {
///     // Certainly not stored: safe to send again.
///     # drop(msg);
/// }
/// # }
/// ```
pub struct SendError {
    /// Boxed: a `Result<_, SendError>` stays one pointer wide on the success path.
    inner: Box<Parts>,
}

/// What a [`SendError`] holds.
struct Parts {
    kind: ErrorKind,
    unsent: Unsent,
}

/// The message(s) an error hands back because they were certainly not stored, and their id.
#[derive(Default)]
pub(crate) struct Unsent {
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
    pub(crate) const fn none() -> Self {
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
}

fn uniq_key(msg: &Message) -> Option<&str> {
    msg.property(property::UNIQ_KEY).filter(|id| !id.is_empty())
}

impl fmt::Debug for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.payload.as_deref() {
            None => f.write_str("none"),
            Some(Payload::One(m)) => write!(f, "message to {}", m.topic()),
            Some(Payload::Batch(v)) => write!(f, "batch of {}", v.len()),
        }
    }
}

// Every public error must cross threads and live in `Box<dyn Error + Send + Sync>`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SendError>();
};

impl SendError {
    /// An error of `kind` handing back `unsent` when `kind` says the message was certainly not
    /// stored; only its id is kept otherwise.
    pub(crate) fn new(kind: ErrorKind, mut unsent: Unsent) -> Self {
        if kind.maybe_stored() {
            unsent.payload = None;
        }
        Self {
            inner: Box::new(Parts { kind, unsent }),
        }
    }

    /// An error of `kind` without a message (none was prepared yet, or none is handed back).
    pub(crate) fn bare(kind: ErrorKind) -> Self {
        Self::new(kind, Unsent::none())
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// True when the message may have been stored: a request was written to a broker and no
    /// answer came (or the answer could not be read). False when it was certainly not stored.
    #[must_use]
    pub fn maybe_stored(&self) -> bool {
        self.inner.kind.maybe_stored()
    }

    /// True when the send ran out of time: its deadline passed, or its last attempt timed out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.inner.kind.is_timeout()
    }

    /// True when sending the same message again later may succeed: the failure came from the
    /// network, a name server, a deadline, local overload, or a broker answering "busy" or
    /// "unavailable". False for what a retry cannot change: an invalid message or batch, no
    /// route, a queue that does not exist, a refusal that concerns the message (permission,
    /// illegal message), a stopped producer. Check [`SendError::maybe_stored`] before resending.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.inner.kind.is_retryable()
    }

    /// Whether the producer refused the send because it is overloaded.
    #[must_use]
    pub fn is_overloaded(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Overloaded { .. })
    }

    /// The broker response code behind this error, if a broker answered.
    #[must_use]
    pub fn response_code(&self) -> Option<ResponseCode> {
        self.inner.kind.response_code()
    }

    /// The `UNIQ_KEY` of the message the error concerns (of each message of a batch, joined by
    /// `,`): set on every error raised once the message was prepared for sending, also when the
    /// message may have been stored and is not handed back.
    #[must_use]
    pub fn msg_id(&self) -> Option<&str> {
        self.inner.unsent.msg_id.as_deref()
    }

    /// Whether a message (or batch) is handed back.
    #[must_use]
    pub fn has_message(&self) -> bool {
        self.inner.unsent.payload.is_some()
    }

    /// The message back, when it was certainly not stored and the send concerned one message.
    #[must_use]
    pub fn into_message(self) -> Option<Message> {
        match self.inner.unsent.payload.map(|b| *b) {
            Some(Payload::One(m)) => Some(m),
            _ => None,
        }
    }

    /// The messages back, when a batch was certainly not stored.
    #[must_use]
    pub fn into_batch(self) -> Option<Vec<Message>> {
        match self.inner.unsent.payload.map(|b| *b) {
            Some(Payload::Batch(v)) => Some(v),
            _ => None,
        }
    }

    /// The kind, and the message when one is handed back (a handed-back batch is dropped here:
    /// use [`SendError::into_batch`] for batch sends).
    #[must_use]
    pub fn into_parts(self) -> (ErrorKind, Option<Message>) {
        let Parts { kind, unsent } = *self.inner;
        match unsent.payload.map(|b| *b) {
            Some(Payload::One(m)) => (kind, Some(m)),
            _ => (kind, None),
        }
    }
}

impl fmt::Debug for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.inner.kind)
            .field("unsent", &self.inner.unsent)
            .field("msg_id", &self.inner.unsent.msg_id)
            .finish()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner.kind, f)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.inner.kind)
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
