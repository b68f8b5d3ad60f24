//! Timer messages and recalls in the mock broker's store, kept as a Java 5.x broker keeps them
//! (`HookUtils.transformTimerMessage`, `TimerMessageStore`, `RecallMessageProcessor`). Pure
//! logic, no I/O.
//!
//! - A single send (not a batch, not a half message, no delay level) with `TIMER_DELAY_SEC`,
//!   `TIMER_DELAY_MS` or `TIMER_DELIVER_MS` (that precedence) due in the future is a **timer
//!   message**: appended to the commit log in queue 0 of
//!   [`TIMER_TOPIC`](rmq_common::timer::TIMER_TOPIC) with `TIMER_OUT_MS` (the due time floored
//!   to the 1 s precision, one step earlier when exact), `REAL_TOPIC` and `REAL_QID` added, and
//!   answered with a `recallHandle` (`v1 realTopic broker TIMER_OUT_MS+1 UNIQ_KEY`). It is not
//!   among the stored messages until `TIMER_OUT_MS` has passed; it is then delivered as a new
//!   record in its real topic and queue (properties as stored). Delivery is lazy: it happens
//!   when the broker next handles a request or is asked for its messages.
//! - A value that is not a number, or a delay past 3 days (`timerMaxDelaySec`), is answered
//!   `MESSAGE_ILLEGAL`; a time not in the future makes a normal message (Java's rules).
//! - `RECALL_MESSAGE` checks what Java checks, with Java's codes and remarks (see
//!   [`Store::recall`]), then drops the pending timer message the handle names, if any, and
//!   answers its id (Java answers success whether or not it held the message).

use rmq_common::header::recall::RecallMessageRequestHeader;
use rmq_common::recall::{RecallHandle, RecallHandleError};
use rmq_common::stored::MessageExt;
use rmq_common::timer::{DEFAULT_MAX_DELAY_MS, TIMER_TOPIC};
use rmq_common::{property, Message, Properties, ResponseCode};

use crate::store::{Rejection, Store, StoredMessage};

/// A broker's default `timerPrecisionMs`.
const PRECISION_MS: i64 = 1_000;

/// Java's remark for `WHEEL_TIMER_MSG_ILLEGAL`.
fn illegal_remark() -> String {
    format!(
        "timer message illegal, the delay time should not be bigger than the max delay {DEFAULT_MAX_DELAY_MS}ms; \
         or if set del msg, the delay time should be bigger than the current time"
    )
}

/// A `RECALL_MESSAGE` as the mock broker received and answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallRecord {
    /// The request header.
    pub header: RecallMessageRequestHeader,
    /// The code answered.
    pub code: ResponseCode,
    /// Whether a pending timer message was dropped.
    pub removed: bool,
}

/// The `TIMER_OUT_MS` of a single send's properties at `now_ms`: `Ok(None)` for a message that
/// is stored as it is (no timer, a delay level, due already), an error for one a broker refuses.
pub(crate) fn timer_out_ms(props: &Properties, now_ms: i64) -> Result<Option<i64>, Rejection> {
    let msg = Message::from_parts("", 0, bytes::Bytes::new(), props.clone());
    if msg.delay_level().is_some_and(|l| l > 0) {
        return Ok(None);
    }
    let present = rmq_common::timer::TIMER_PROPERTIES
        .iter()
        .find_map(|&p| props.get(p).map(|v| (p, v)));
    let Some((name, value)) = present else {
        return Ok(None);
    };
    // Java's precedence with its parsing (Long.parseLong: negative numbers parse).
    let illegal = || (ResponseCode::MESSAGE_ILLEGAL, illegal_remark());
    let n: i64 = value.parse().map_err(|_| illegal())?;
    let deliver_ms = match name {
        property::TIMER_DELAY_SEC => now_ms.saturating_add(n.saturating_mul(1000)),
        property::TIMER_DELAY_MS => now_ms.saturating_add(n),
        _ => n,
    };
    if deliver_ms <= now_ms {
        return Ok(None);
    }
    if deliver_ms - now_ms > i64::try_from(DEFAULT_MAX_DELAY_MS).unwrap_or(i64::MAX) {
        return Err(illegal());
    }
    Ok(Some(if deliver_ms % PRECISION_MS == 0 {
        deliver_ms - PRECISION_MS
    } else {
        deliver_ms / PRECISION_MS * PRECISION_MS
    }))
}

/// A message made a timer message (offsets are assigned when it is appended).
pub(crate) fn to_timer(mut ext: MessageExt, timer_out_ms: i64) -> MessageExt {
    let topic = ext.message.topic().to_owned();
    let queue_id = ext.queue_id;
    let props = ext.message.properties_mut();
    props.insert(property::TIMER_OUT_MS, timer_out_ms.to_string());
    props.insert(property::REAL_TOPIC, topic);
    props.insert(property::REAL_QID, queue_id.to_string());
    ext.message.set_topic(TIMER_TOPIC);
    ext.queue_id = 0;
    ext
}

/// The recall handle a broker answers for a stored timer message (Java's `attachRecallHandle`).
pub(crate) fn recall_handle(broker: &str, timer: &MessageExt) -> Option<String> {
    let real_topic = timer.message.property(property::REAL_TOPIC)?;
    let out: u64 = timer
        .message
        .property(property::TIMER_OUT_MS)?
        .parse()
        .ok()?;
    if real_topic.starts_with("%RETRY%") {
        return None;
    }
    let handle = RecallHandle {
        topic: real_topic.to_owned(),
        broker_name: broker.to_owned(),
        deliver_time_ms: out + 1,
        msg_id: timer.uniq_key()?.to_owned(),
    };
    Some(handle.encode())
}

/// The copy a timer message is delivered as (Java's `convertMessage`): its real topic and queue,
/// the properties as stored.
fn delivered(timer: &MessageExt) -> MessageExt {
    let mut ext = timer.clone();
    if let Some(topic) = timer.message.property(property::REAL_TOPIC) {
        ext.message.set_topic(topic.to_owned());
    }
    if let Some(q) = timer
        .message
        .property(property::REAL_QID)
        .and_then(|q| q.parse().ok())
    {
        ext.queue_id = q;
    }
    ext
}

/// What a recall does, besides its record: the code, the remark and the message id.
pub(crate) struct RecallAnswer {
    pub(crate) code: ResponseCode,
    pub(crate) remark: Option<String>,
    pub(crate) msg_id: Option<String>,
}

impl RecallAnswer {
    fn refused(code: ResponseCode, remark: impl Into<String>) -> Self {
        Self {
            code,
            remark: Some(remark.into()),
            msg_id: None,
        }
    }
}

/// The broker-wide settings a recall is judged by.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecallPolicy {
    /// `recallMessageEnable`.
    pub(crate) enabled: bool,
    /// Whether an unknown topic counts as existing (a standalone broker that accepts any topic).
    pub(crate) any_topic: bool,
}

impl Store {
    /// Delivers the timer messages due at `now_ms` (`None`: all of them); returns how many.
    pub(crate) fn deliver_timers(&self, now_ms: Option<i64>) -> usize {
        let mut state = self.lock();
        let due: Vec<i64> = state
            .timers
            .iter()
            .filter(|(_, t)| now_ms.is_none_or(|now| timer_out(&t.ext) <= now))
            .map(|(&offset, _)| offset)
            .collect();
        for offset in &due {
            let Some(timer) = state.timers.remove(offset) else {
                continue;
            };
            let (ext, msg_id) = self.append(&mut state, delivered(&timer.ext));
            tracing::debug!(
                broker = %self.name,
                topic = %ext.message.topic(),
                uniq_key = ?ext.uniq_key(),
                "timer message delivered"
            );
            let stored = StoredMessage {
                seq: self.next_seq(),
                msg_id,
                ext,
                ..timer
            };
            state.messages.push(stored);
        }
        due.len()
    }

    /// The pending timer messages, in commit-log order.
    pub(crate) fn timer_messages(&self) -> Vec<StoredMessage> {
        self.lock().timers.values().cloned().collect()
    }

    /// `RECALL_MESSAGE` as Java's `RecallMessageProcessor` answers it at `now_ms`; recorded.
    pub(crate) fn recall(
        &self,
        h: &RecallMessageRequestHeader,
        policy: RecallPolicy,
        now_ms: i64,
    ) -> RecallAnswer {
        let (answer, removed) = self.judge_recall(h, policy, now_ms);
        self.lock().recalls.push(RecallRecord {
            header: h.clone(),
            code: answer.code,
            removed,
        });
        answer
    }

    /// The recalls received.
    pub(crate) fn recalls(&self) -> Vec<RecallRecord> {
        self.lock().recalls.clone()
    }

    /// The answer to a recall, and whether it dropped a pending timer message.
    fn judge_recall(
        &self,
        h: &RecallMessageRequestHeader,
        policy: RecallPolicy,
        now_ms: i64,
    ) -> (RecallAnswer, bool) {
        use ResponseCode as C;
        let refused = |remark: &str| RecallAnswer::refused(C::ILLEGAL_OPERATION, remark);
        if !policy.enabled {
            return (
                RecallAnswer::refused(C::NO_PERMISSION, "recall failed, operation is forbidden"),
                false,
            );
        }
        if !policy.any_topic && self.topic(&h.topic).is_none() {
            let remark = format!("recall failed, the topic[{}] not exist", h.topic);
            return (RecallAnswer::refused(C::TOPIC_NOT_EXIST, remark), false);
        }
        let handle = match RecallHandle::decode(&h.recall_handle) {
            Ok(handle) => handle,
            // Java reads a bad timestamp as -1: "timestamp invalid" below.
            Err(RecallHandleError::BadTimestamp(_)) => {
                return (refused("recall failed, timestamp invalid"), false)
            }
            Err(_) => return (refused("recall handle is invalid"), false),
        };
        if handle.topic != h.topic {
            return (refused("recall failed, topic not match"), false);
        }
        if handle.broker_name != self.name {
            return (
                refused("recall failed, broker service not available"),
                false,
            );
        }
        let time_left = i64::try_from(handle.deliver_time_ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(now_ms);
        let max = i64::try_from(DEFAULT_MAX_DELAY_MS).unwrap_or(i64::MAX);
        if time_left <= 0 || time_left >= max {
            return (refused("recall failed, timestamp invalid"), false);
        }
        let mut state = self.lock();
        let found = state.timers.iter().find_map(|(&offset, t)| {
            let same_topic = t.ext.message.property(property::REAL_TOPIC) == Some(&handle.topic);
            (same_topic && t.ext.uniq_key() == Some(&handle.msg_id)).then_some(offset)
        });
        if let Some(offset) = found {
            state.timers.remove(&offset);
        }
        tracing::debug!(
            broker = %self.name,
            topic = %handle.topic,
            msg_id = %handle.msg_id,
            removed = found.is_some(),
            "timer message recalled"
        );
        let answer = RecallAnswer {
            code: C::SUCCESS,
            remark: None,
            msg_id: Some(handle.msg_id),
        };
        (answer, found.is_some())
    }
}

fn timer_out(ext: &MessageExt) -> i64 {
    ext.message
        .property(property::TIMER_OUT_MS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "timer_tests.rs"]
mod tests;
