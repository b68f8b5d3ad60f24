//! The checks the Java client makes before sending (`Validators`, `TopicValidator`;
//! PROTOCOL §4.5–4.6).

use crate::Message;

/// Longest topic name (`Validators.TOPIC_MAX_LENGTH`).
pub const TOPIC_MAX_LENGTH: usize = 127;
/// Longest group name (5.x clients; 4.x allowed 255).
pub const GROUP_MAX_LENGTH: usize = 120;
/// Default maximum body size: 4 MiB (`DefaultMQProducer.maxMessageSize`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// The auto-create template topic (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// The producer group a user may not take (`MixAll.DEFAULT_PRODUCER_GROUP`).
pub const DEFAULT_PRODUCER_GROUP: &str = "DEFAULT_PRODUCER";
/// The client's internal producer group (`MixAll.CLIENT_INNER_PRODUCER_GROUP`).
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";
/// Prefix of system topics (`TopicValidator.SYSTEM_TOPIC_PREFIX`).
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// Topics a client may not send to (`TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
pub const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// System topics (`TopicValidator.SYSTEM_TOPIC_SET`); names starting with
/// [`SYSTEM_TOPIC_PREFIX`] are system topics too.
pub const SYSTEM_TOPICS: &[&str] = &[
    AUTO_CREATE_TOPIC,
    "SCHEDULE_TOPIC_XXXX",
    "BenchmarkTest",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRACE_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
    "CHECKPOINT_TOPIC",
];

/// What is wrong with a topic, group or message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The topic is empty or blank.
    #[error("the specified topic is blank")]
    EmptyTopic,
    /// The topic is longer than [`TOPIC_MAX_LENGTH`].
    #[error("the specified topic is {len} characters long, more than the maximum 127")]
    TopicTooLong {
        /// Its length (UTF-16 units, as Java counts).
        len: usize,
    },
    /// The topic has a character outside `[%|a-zA-Z0-9_-]`.
    #[error("the specified topic contains the illegal character {ch:?}, allowing only ^[%|a-zA-Z0-9_-]+$")]
    IllegalTopicChar {
        /// The first illegal character.
        ch: char,
    },
    /// Sending to this topic is forbidden ([`NOT_ALLOWED_SEND_TOPICS`]).
    #[error("sending message to topic [{0}] is forbidden")]
    NotAllowedTopic(String),
    /// The group is empty or blank.
    #[error("the specified group is blank")]
    EmptyGroup,
    /// The group is longer than [`GROUP_MAX_LENGTH`].
    #[error("the specified group is {len} characters long, more than the maximum 120")]
    GroupTooLong {
        /// Its length.
        len: usize,
    },
    /// The group has a character outside `[%|a-zA-Z0-9_-]`.
    #[error("the specified group contains the illegal character {ch:?}, allowing only ^[%|a-zA-Z0-9_-]+$")]
    IllegalGroupChar {
        /// The first illegal character.
        ch: char,
    },
    /// The producer group is a reserved one ([`DEFAULT_PRODUCER_GROUP`]).
    #[error("the producer group can not be {0}, please specify another one")]
    ReservedGroup(String),
    /// The body is empty.
    #[error("the message body length is zero")]
    EmptyBody,
    /// The body is larger than the maximum message size.
    #[error("the message body size {size} is over the max value {max}")]
    BodyTooLarge {
        /// The body size.
        size: usize,
        /// The maximum.
        max: usize,
    },
    /// A timer property together with a delay level (a broker would drop the timer and use
    /// the level); see [`crate::timer`].
    #[error("the message has both a delay level and {property}: a broker would ignore {property}")]
    TimerWithDelayLevel {
        /// The timer property.
        property: &'static str,
    },
    /// More than one timer property (a broker would use only one).
    #[error("the message has both {first} and {second}: set one timer property")]
    TimerConflict {
        /// The property a broker would use.
        first: &'static str,
        /// The one it would ignore.
        second: &'static str,
    },
    /// A timer property that is not a non-negative integer.
    #[error("{property} is {value:?}, not a non-negative integer")]
    InvalidTimerValue {
        /// The property.
        property: &'static str,
        /// Its value.
        value: String,
    },
    /// The delivery time is not in the future.
    #[error("the delivery time {deliver_ms} is not after now ({now_ms})")]
    TimerNotInFuture {
        /// The delivery time asked for, epoch ms.
        deliver_ms: u64,
        /// The time of the check, epoch ms.
        now_ms: u64,
    },
    /// The delivery time is further ahead than a broker keeps timers (`timerMaxDelaySec`).
    #[error("the delivery time is {delay_ms} ms ahead, more than the maximum {max_ms} ms")]
    TimerTooFar {
        /// How far ahead it is (`u64::MAX` when it overflows).
        delay_ms: u64,
        /// The maximum.
        max_ms: u64,
    },
}

/// Whether `c` may appear in a topic or group (`TopicValidator.VALID_CHAR_BIT_MAP`).
///
/// ```
/// use rmq_common::validate::is_valid_name_char;
/// assert!(is_valid_name_char('%') && is_valid_name_char('|') && !is_valid_name_char('.'));
/// ```
#[must_use]
pub const fn is_valid_name_char(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '%' | '|' | '_' | '-')
}

fn first_illegal(name: &str) -> Option<char> {
    name.chars().find(|&c| !is_valid_name_char(c))
}

/// Checks a topic name like `Validators.checkTopic`: not blank, at most 127 characters, only
/// `[%|a-zA-Z0-9_-]`.
///
/// # Errors
/// [`ValidationError::EmptyTopic`], [`ValidationError::TopicTooLong`] or
/// [`ValidationError::IllegalTopicChar`].
///
/// ```
/// use rmq_common::validate::{validate_topic, ValidationError};
/// assert_eq!(validate_topic("Orders_v2"), Ok(()));
/// assert_eq!(validate_topic("a b"), Err(ValidationError::IllegalTopicChar { ch: ' ' }));
/// assert_eq!(validate_topic(&"t".repeat(128)), Err(ValidationError::TopicTooLong { len: 128 }));
/// ```
pub fn validate_topic(topic: &str) -> Result<(), ValidationError> {
    if topic.trim().is_empty() {
        return Err(ValidationError::EmptyTopic);
    }
    let len = topic.encode_utf16().count();
    if len > TOPIC_MAX_LENGTH {
        return Err(ValidationError::TopicTooLong { len });
    }
    match first_illegal(topic) {
        Some(ch) => Err(ValidationError::IllegalTopicChar { ch }),
        None => Ok(()),
    }
}

/// Whether a client may not send to `topic` (`TopicValidator.isNotAllowedSendTopic`).
///
/// ```
/// use rmq_common::validate::is_not_allowed_send_topic;
/// assert!(is_not_allowed_send_topic("RMQ_SYS_TRANS_HALF_TOPIC"));
/// assert!(!is_not_allowed_send_topic("TBW102"));
/// ```
#[must_use]
pub fn is_not_allowed_send_topic(topic: &str) -> bool {
    NOT_ALLOWED_SEND_TOPICS.contains(&topic)
}

/// Whether `topic` is a system topic (`TopicValidator.isSystemTopic`).
///
/// ```
/// use rmq_common::validate::is_system_topic;
/// assert!(is_system_topic("TBW102"));
/// assert!(is_system_topic("rmq_sys_wheel_timer"));
/// assert!(!is_system_topic("Orders"));
/// ```
#[must_use]
pub fn is_system_topic(topic: &str) -> bool {
    SYSTEM_TOPICS.contains(&topic) || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// Checks a group name like `Validators.checkGroup`: not blank, at most
/// [`GROUP_MAX_LENGTH`] characters, only `[%|a-zA-Z0-9_-]`.
///
/// # Errors
/// [`ValidationError::EmptyGroup`], [`ValidationError::GroupTooLong`] or
/// [`ValidationError::IllegalGroupChar`].
///
/// ```
/// use rmq_common::validate::{validate_group, ValidationError};
/// assert_eq!(validate_group("CID_orders"), Ok(()));
/// assert_eq!(validate_group(" "), Err(ValidationError::EmptyGroup));
/// ```
pub fn validate_group(group: &str) -> Result<(), ValidationError> {
    if group.trim().is_empty() {
        return Err(ValidationError::EmptyGroup);
    }
    let len = group.encode_utf16().count();
    if len > GROUP_MAX_LENGTH {
        return Err(ValidationError::GroupTooLong { len });
    }
    match first_illegal(group) {
        Some(ch) => Err(ValidationError::IllegalGroupChar { ch }),
        None => Ok(()),
    }
}

/// Checks a producer group: [`validate_group`] and not [`DEFAULT_PRODUCER_GROUP`] (checked by
/// Java at producer start).
///
/// # Errors
/// As [`validate_group`], or [`ValidationError::ReservedGroup`].
///
/// ```
/// use rmq_common::validate::validate_producer_group;
/// assert!(validate_producer_group("pg").is_ok());
/// assert!(validate_producer_group("DEFAULT_PRODUCER").is_err());
/// ```
pub fn validate_producer_group(group: &str) -> Result<(), ValidationError> {
    validate_group(group)?;
    if group == DEFAULT_PRODUCER_GROUP {
        return Err(ValidationError::ReservedGroup(group.to_owned()));
    }
    Ok(())
}

/// Checks a message like `Validators.checkMessage`: the topic ([`validate_topic`]), not a
/// forbidden topic, a non-empty body of at most `max_size` bytes (uncompressed).
///
/// # Errors
/// The first [`ValidationError`] met, in Java's order.
///
/// ```
/// use rmq_common::validate::{validate_message, ValidationError, DEFAULT_MAX_MESSAGE_SIZE};
/// use rmq_common::Message;
/// assert_eq!(validate_message(&Message::new("T", "x"), DEFAULT_MAX_MESSAGE_SIZE), Ok(()));
/// assert_eq!(validate_message(&Message::new("T", ""), 10), Err(ValidationError::EmptyBody));
/// assert_eq!(
///     validate_message(&Message::new("T", "12345"), 4),
///     Err(ValidationError::BodyTooLarge { size: 5, max: 4 })
/// );
/// ```
pub fn validate_message(msg: &Message, max_size: usize) -> Result<(), ValidationError> {
    validate_topic(msg.topic())?;
    if is_not_allowed_send_topic(msg.topic()) {
        return Err(ValidationError::NotAllowedTopic(msg.topic().to_owned()));
    }
    validate_body(msg, max_size)
}

/// The body rules of [`validate_message`]: not empty, at most `max_size` bytes.
///
/// ```
/// use rmq_common::validate::{validate_body, ValidationError};
/// use rmq_common::Message;
/// assert_eq!(validate_body(&Message::new("any topic", "x"), 4), Ok(()));
/// assert_eq!(validate_body(&Message::new("T", ""), 4), Err(ValidationError::EmptyBody));
/// assert_eq!(
///     validate_body(&Message::new("T", "12345"), 4),
///     Err(ValidationError::BodyTooLarge { size: 5, max: 4 })
/// );
/// ```
pub fn validate_body(msg: &Message, max_size: usize) -> Result<(), ValidationError> {
    let size = msg.body().len();
    if size == 0 {
        return Err(ValidationError::EmptyBody);
    }
    if size > max_size {
        return Err(ValidationError::BodyTooLarge {
            size,
            max: max_size,
        });
    }
    Ok(())
}
