//! The pure rules of auto-batching: which messages are never held (Java's
//! `DefaultMQProducer.canBatch`, and what a batch cannot carry), and how a batch's result is
//! split into one result per message (Java's `MessageAccumulation.splitSendResults`).

use std::time::Duration;

use rmq_common::{property, Message};

use super::AutoBatchConfig;
use crate::config::ProducerConfig;
use crate::send_result::SendResult;

/// Why a message is sent alone instead of being held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alone {
    /// A delay level, delay or delivery time: the broker schedules it (Java: never batched).
    Delayed,
    /// A `%RETRY%` topic (Java: never batched; a batch to one is refused).
    RetryTopic,
    /// A transactional half message or one already assigned to a producer group (Java:
    /// `PGROUP` set, never batched).
    Transactional,
    /// The body would be compressed alone; a batch never is, so it keeps its compression.
    Compressible,
    /// The message alone reaches the batch size, exceeds the largest request, or has
    /// properties too long for a batch record.
    Large,
    /// Less time left than twice the hold time: holding it would eat its deadline.
    ShortDeadline,
    /// A request (`CORRELATION_ID`) or a reply (`MSG_TYPE=reply`): a reply must go as
    /// `SEND_REPLY_MESSAGE_V2` for the broker to push it, and a request waits for its reply
    /// anyway (Java's `request` does not use the accumulator).
    RequestReply,
}

impl Alone {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Delayed => "delayed",
            Self::RetryTopic => "retry topic",
            Self::Transactional => "transactional",
            Self::Compressible => "compressible",
            Self::Large => "large",
            Self::ShortDeadline => "short deadline",
            Self::RequestReply => "request or reply",
        }
    }
}

/// Longest properties string of a batch record (an `i16` length).
const MAX_RECORD_PROPERTIES: usize = 32_767;

/// Whether `msg` (its `UNIQ_KEY` already set), taking `record` bytes in a batch, must be sent
/// alone; the rules that concern the message itself.
pub(crate) fn alone(
    msg: &Message,
    record: usize,
    cfg: &ProducerConfig,
    batching: &AutoBatchConfig,
) -> Option<Alone> {
    let delayed = msg.delay_level().is_some_and(|l| l > 0)
        || [
            property::TIMER_DELIVER_MS,
            property::TIMER_DELAY_MS,
            property::TIMER_DELAY_SEC,
        ]
        .iter()
        .any(|p| msg.property(p).is_some());
    let transactional = msg.property(property::PGROUP).is_some()
        || msg
            .property(property::TRAN_MSG)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let request_reply =
        msg.property(property::CORRELATION_ID).is_some() || rmq_common::reply::is_reply(msg);
    if delayed {
        Some(Alone::Delayed)
    } else if request_reply {
        Some(Alone::RequestReply)
    } else if msg
        .topic()
        .starts_with(rmq_common::batch::RETRY_GROUP_TOPIC_PREFIX)
    {
        Some(Alone::RetryTopic)
    } else if transactional {
        Some(Alone::Transactional)
    } else if msg.body().len() >= cfg.compress_threshold {
        Some(Alone::Compressible)
    } else if record >= batching.max_batch_bytes
        || record > cfg.max_message_size
        || msg.properties().encoded_len() > MAX_RECORD_PROPERTIES
    {
        Some(Alone::Large)
    } else {
        None
    }
}

/// Whether a send with `left` of its deadline may still be held.
pub(crate) fn deadline_allows(left: Duration, batching: &AutoBatchConfig) -> bool {
    left > batching.hold_time.saturating_mul(2)
}

/// One result per message of a batch whose messages have the ids `ids`, in order. Each gets its
/// own `msg_id`; its own offset message id when the broker answered one per message, and queue
/// offset = the batch's first + its position (a broker stores a batch's messages at consecutive
/// offsets). An inner batch (a batch consume queue: the broker answers one id, `batchUniqId`,
/// for the whole batch) gives every message the batch's offset message id and queue offset.
pub(crate) fn split_result(batch: &SendResult, ids: &[String]) -> Vec<SendResult> {
    let offset_ids: Vec<&str> = batch.offset_msg_id.split(',').collect();
    let per_message = offset_ids.len() == ids.len();
    let inner_batch = ids.len() > 1 && !batch.msg_id.contains(',');
    if !per_message && !inner_batch {
        tracing::warn!(
            messages = ids.len(),
            offset_ids = offset_ids.len(),
            "a batch answer with an unexpected number of offset message ids: each message gets them all"
        );
    }
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let mut r = batch.clone();
            r.msg_id.clone_from(id);
            if per_message && !inner_batch {
                r.offset_msg_id = offset_ids[i].to_owned();
            }
            if !inner_batch {
                r.queue_offset = batch
                    .queue_offset
                    .saturating_add(i64::try_from(i).unwrap_or(i64::MAX));
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rmq_common::MessageQueue;

    use super::*;
    use crate::send_result::SendStatus;

    fn cfg() -> (ProducerConfig, AutoBatchConfig) {
        (ProducerConfig::new("pg"), AutoBatchConfig::default())
    }

    #[test]
    fn messages_sent_alone() {
        let (cfg, ab) = cfg();
        let small = Message::new("T", "x");
        let with = |k: &str, v: &str| {
            let mut m = Message::new("T", "x");
            m.properties_mut().insert(k, v);
            m
        };
        let cases: Vec<(Message, Option<Alone>)> = vec![
            (small.clone(), None),
            (small.clone().with_tags("A").with_keys(["k"]), None),
            (small.clone().with_wait_store_msg_ok(false), None),
            (small.clone().with_delay_level(3), Some(Alone::Delayed)),
            (small.clone().with_delay_level(0), None),
            (small.clone().with_deliver_time_ms(1), Some(Alone::Delayed)),
            (small.clone().with_delay_time_ms(5), Some(Alone::Delayed)),
            (small.clone().with_delay_time_sec(5), Some(Alone::Delayed)),
            (Message::new("%RETRY%g", "x"), Some(Alone::RetryTopic)),
            (with(property::PGROUP, "g"), Some(Alone::Transactional)),
            (with(property::TRAN_MSG, "true"), Some(Alone::Transactional)),
            (with(property::TRAN_MSG, "false"), None),
            (
                with(property::CORRELATION_ID, "c-1"),
                Some(Alone::RequestReply),
            ),
            (with(property::MSG_TYPE, "reply"), Some(Alone::RequestReply)),
            (Message::new("T", vec![b'a'; 4095]), None),
            (
                Message::new("T", vec![b'a'; 4096]),
                Some(Alone::Compressible),
            ),
            (
                with("big", &"v".repeat(MAX_RECORD_PROPERTIES)),
                Some(Alone::Large),
            ),
        ];
        for (msg, want) in cases {
            let record = rmq_common::batch::record_len(&msg);
            assert_eq!(alone(&msg, record, &cfg, &ab), want, "{msg:?}");
        }
    }

    #[test]
    fn size_bounds() {
        let (mut cfg, ab) = cfg();
        let msg = Message::new("T", "x");
        let limit = ab.max_batch_bytes;
        assert_eq!(alone(&msg, limit - 1, &cfg, &ab), None);
        assert_eq!(alone(&msg, limit, &cfg, &ab), Some(Alone::Large));
        cfg.max_message_size = 100;
        assert_eq!(alone(&msg, 100, &cfg, &ab), None);
        assert_eq!(alone(&msg, 101, &cfg, &ab), Some(Alone::Large));
        // Compression off (threshold above the body): a 5 KiB body is batched.
        cfg.max_message_size = 4 << 20;
        cfg.compress_threshold = 1 << 20;
        let body = Message::new("T", vec![b'a'; 5000]);
        let record = rmq_common::batch::record_len(&body);
        assert_eq!(alone(&body, record, &cfg, &ab), None);
    }

    #[test]
    fn deadlines_longer_than_two_holds() {
        let ab = AutoBatchConfig::default(); // 10 ms
        let ms = Duration::from_millis;
        for (left, ok) in [
            (ms(0), false),
            (ms(20), false),
            (ms(21), true),
            (ms(3000), true),
        ] {
            assert_eq!(deadline_allows(left, &ab), ok, "{left:?}");
        }
    }

    fn batch_result(msg_id: &str, offset_ids: &str, offset: i64) -> SendResult {
        SendResult {
            status: SendStatus::SendOk,
            msg_id: msg_id.to_owned(),
            offset_msg_id: offset_ids.to_owned(),
            queue: MessageQueue::new("T", "broker-a", 3),
            queue_offset: offset,
            transaction_id: None,
            region_id: "DefaultRegion".into(),
            trace_on: true,
            recall_handle: None,
        }
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn results_split_per_message() {
        // (ids, batch msg_id, offset ids answered, first offset) -> (msg_id, offset id, offset)
        type Case<'a> = (
            &'a [&'a str],
            &'a str,
            &'a str,
            i64,
            Vec<(&'a str, &'a str, i64)>,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                &["A", "B", "C"],
                "A,B,C",
                "O1,O2,O3",
                40,
                vec![("A", "O1", 40), ("B", "O2", 41), ("C", "O3", 42)],
            ),
            (&["A"], "A", "O1", 0, vec![("A", "O1", 0)]),
            // Inner batch: one id for the whole batch, one offset.
            (
                &["A", "B"],
                "BATCH",
                "O9",
                7,
                vec![("A", "O9", 7), ("B", "O9", 7)],
            ),
            // Unexpected count: every message keeps the whole answer, offsets still follow.
            (
                &["A", "B"],
                "A,B",
                "O1",
                5,
                vec![("A", "O1", 5), ("B", "O1", 6)],
            ),
        ];
        for (members, msg_id, offset_ids, first, want) in cases {
            let got = split_result(&batch_result(msg_id, offset_ids, first), &ids(members));
            let got: Vec<(&str, &str, i64)> = got
                .iter()
                .map(|r| (r.msg_id.as_str(), r.offset_msg_id.as_str(), r.queue_offset))
                .collect();
            assert_eq!(got, want, "{members:?} {offset_ids}");
        }
        let r = split_result(&batch_result("A,B", "O1,O2", 0), &ids(&["A", "B"]));
        assert!(r
            .iter()
            .all(|r| r.queue == MessageQueue::new("T", "broker-a", 3)));
        assert!(r.iter().all(|r| r.status == SendStatus::SendOk));
    }
}
