//! Well-known message property names (`MessageConst.java`) and the reserved-name check.
//!
//! The names here are the exact strings Java puts in a message's properties. The ones listed in
//! Java's `MessageConst.STRING_HASH_SET` are *reserved*: [`is_reserved`] says so, and
//! [`Message::with_user_property`](crate::Message::with_user_property) refuses them.

/// Message keys, several joined by [`KEY_SEPARATOR`].
pub const KEYS: &str = "KEYS";
/// Message tag.
pub const TAGS: &str = "TAGS";
/// Whether the broker answers only once the message is stored (`"true"`/`"false"`, default true).
pub const WAIT: &str = "WAIT";
/// Delay level `1..=18` (`1s 5s 10s 30s 1m 2m ... 2h`).
pub const DELAY: &str = "DELAY";
/// Original topic of a retried message (broker).
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Real topic of a half / scheduled message (broker).
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Real queue id of a half / scheduled message (broker).
pub const REAL_QID: &str = "REAL_QID";
/// `"true"` on a transactional half message.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// Producer group of a transactional message.
pub const PGROUP: &str = "PGROUP";
/// Minimum offset (pull result).
pub const MIN_OFFSET: &str = "MIN_OFFSET";
/// Maximum offset (pull result).
pub const MAX_OFFSET: &str = "MAX_OFFSET";
/// Buyer id.
pub const BUYER_ID: &str = "BUYER_ID";
/// Original message id of a retried message.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Transfer flag.
pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
/// Correction flag.
pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
/// MQ2 flag.
pub const MQ2_FLAG: &str = "MQ2_FLAG";
/// Reconsume times of a retried message (moved into the send header for `%RETRY%` topics).
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Broker region; also a send-response ext field.
pub const MSG_REGION: &str = "MSG_REGION";
/// Trace switch; also a send-response ext field.
pub const TRACE_ON: &str = "TRACE_ON";
/// The client-generated unique message id (see [`crate::message_id::UniqIdGenerator`]).
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// Extended unique info.
pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
/// Maximum reconsume times (moved into the send header for `%RETRY%` topics).
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// Consume start time.
pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
/// Number of messages in an inner batch.
pub const INNER_NUM: &str = "INNER_NUM";
/// Base offset of an inner batch.
pub const INNER_BASE: &str = "INNER_BASE";
/// Duplication info.
pub const DUP_INFO: &str = "DUP_INFO";
/// Seconds before the first transaction check.
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Half-queue offset of a prepared transaction message.
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Transaction id, set locally after a transactional send (not reserved).
pub const TRANSACTION_ID: &str = "__transactionId__";
/// Number of transaction checks done (broker).
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Namespace instance id.
pub const INSTANCE_ID: &str = "INSTANCE_ID";
/// Request/reply correlation id.
pub const CORRELATION_ID: &str = "CORRELATION_ID";
/// Request/reply: the client to reply to.
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// Request/reply time to live.
pub const TTL: &str = "TTL";
/// Request/reply arrive time.
pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
/// Request/reply push time.
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
/// Cluster name (added by the broker).
pub const CLUSTER: &str = "CLUSTER";
/// Message type (`"reply"` for reply messages).
pub const MSG_TYPE: &str = "MSG_TYPE";
/// Pop checkpoint.
pub const POP_CK: &str = "POP_CK";
/// Pop checkpoint offset.
pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
/// First pop time.
pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// Sharding key (not reserved).
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// Forward queue id (not reserved).
pub const FORWARD_QUEUE_ID: &str = "PROPERTY_FORWARD_QUEUE_ID";
/// Redirect (not reserved).
pub const REDIRECT: &str = "REDIRECT";
/// Light message queue dispatch list (not reserved; must not contain a path separator).
pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
/// Light message queue offsets.
pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
/// Trace context (not reserved).
pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
/// Timer message: delay in seconds (5.x).
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// Timer message: delay in milliseconds (5.x).
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// Timer message: absolute delivery time in epoch milliseconds (5.x).
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Timer: enqueue time.
pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
/// Timer: dequeue time.
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
/// Timer: roll times.
pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
/// Timer: out time.
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// Timer: deleted unique key.
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// Timer: delete time.
pub const TIMER_DEL_MS: &str = "TIMER_DEL_MS";
/// Timer: delay level.
pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
/// Born host.
pub const BORN_HOST: &str = "__BORNHOST";
/// Born timestamp.
pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
/// Dead-letter: original topic.
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// Dead-letter: original message id.
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// Commit-log CRC32 (5.2+ broker).
pub const CRC32: &str = "__CRC32#";
/// Prefix of transient properties, which the broker does not store.
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
/// Separator between several keys in [`KEYS`].
pub const KEY_SEPARATOR: &str = " ";

/// Java's `MessageConst.STRING_HASH_SET` (5.3 line): the names a user property may not take.
pub const RESERVED: &[&str] = &[
    TRACE_ON,
    MSG_REGION,
    KEYS,
    TAGS,
    WAIT,
    DELAY,
    RETRY_TOPIC,
    REAL_TOPIC,
    REAL_QID,
    TRAN_MSG,
    PGROUP,
    MIN_OFFSET,
    MAX_OFFSET,
    BUYER_ID,
    ORIGIN_MESSAGE_ID,
    TRANSFER_FLAG,
    CORRECTION_FLAG,
    MQ2_FLAG,
    RECONSUME_TIME,
    UNIQ_KEY,
    MAX_RECONSUME_TIMES,
    CONSUME_START_TIME,
    POP_CK,
    POP_CK_OFFSET,
    FIRST_POP_TIME,
    TRAN_PREPARED_QUEUE_OFFSET,
    DUP_INFO,
    EXTEND_UNIQ_INFO,
    INSTANCE_ID,
    CORRELATION_ID,
    REPLY_TO_CLIENT,
    TTL,
    ARRIVE_TIME,
    PUSH_REPLY_TIME,
    CLUSTER,
    MSG_TYPE,
    INNER_MULTI_QUEUE_OFFSET,
    TIMER_DELAY_MS,
    TIMER_DELAY_SEC,
    TIMER_DELIVER_MS,
    TIMER_ENQUEUE_MS,
    TIMER_DEQUEUE_MS,
    TIMER_ROLL_TIMES,
    TIMER_OUT_MS,
    TIMER_DEL_UNIQKEY,
    TIMER_DEL_MS,
    TIMER_DELAY_LEVEL,
    BORN_HOST,
    BORN_TIMESTAMP,
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_MESSAGE_ID,
    CRC32,
];

/// Whether `name` is a system property name (Java's `MessageConst.STRING_HASH_SET`), which
/// a user property may not use. Case-sensitive, like Java's `HashSet<String>`.
///
/// ```
/// use rmq_common::property;
/// assert!(property::is_reserved("TAGS"));
/// assert!(property::is_reserved(property::UNIQ_KEY));
/// assert!(!property::is_reserved("tags"));
/// assert!(!property::is_reserved("order-id"));
/// ```
#[must_use]
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_set_matches_java_size_and_has_no_duplicates() {
        let mut names: Vec<&str> = RESERVED.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RESERVED.len());
        assert_eq!(RESERVED.len(), 52);
    }

    #[test]
    fn non_reserved_constants() {
        for name in [
            TRANSACTION_ID,
            SHARDING_KEY,
            INNER_MULTI_DISPATCH,
            TRACE_CONTEXT,
            REDIRECT,
        ] {
            assert!(!is_reserved(name), "{name}");
        }
    }
}
