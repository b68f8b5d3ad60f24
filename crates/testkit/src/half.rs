//! Half (prepared) transactional messages in the mock broker's store, kept as a broker keeps
//! them (Java's `TransactionalMessageBridge.parseHalfMessageInner`, `EndTransactionProcessor`
//! and the check pass of `TransactionalMessageServiceImpl`). Pure logic, no I/O: the producer
//! connections and the sending of checks are in [`crate::transaction`].
//!
//! - A half message is appended to the commit log in queue 0 of [`TRANS_HALF_TOPIC`] (its own
//!   queue offsets), with the properties `REAL_TOPIC`, `REAL_QID` and `__transactionId__` added
//!   and the transaction type of its sysFlag reset to "not". The send is answered with that
//!   commit-log offset (`msgId`), that half-queue offset (`queueOffset`) and the real queue id.
//! - A commit appends a new record (Java's `endMessageTransaction`): the real topic and queue,
//!   the next offset of that queue, sysFlag type COMMIT, `preparedTransactionOffset` = the half
//!   message's commit-log offset, the half message's store timestamp, and the half message's
//!   properties **as stored**: Java clears `TRAN_MSG`, `REAL_TOPIC` and `REAL_QID` from the
//!   property map only after it has serialized the properties string the record is written
//!   with, so a consumer sees them (and `PGROUP`, `__transactionId__`) on committed messages.

use bytes::Bytes;
use rmq_common::header::send::SendMessageRequestHeader;
use rmq_common::stored::{encode_stored_message, MessageExt};
use rmq_common::{
    property, sysflag, CheckTransactionStateRequestHeader, EndTransactionRequestHeader, Properties,
    ResponseCode,
};

use crate::store::{Store, StoredMessage};

/// The topic a broker writes half messages to, all in queue 0 (`RMQ_SYS_TRANS_HALF_TOPIC`).
pub const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";

/// A broker's default `transactionTimeOut`, in milliseconds.
pub(crate) const DEFAULT_TRANSACTION_TIMEOUT_MS: i64 = 6_000;

/// Java's `ResponseCode.ILLEGAL_OPERATION`.
const ILLEGAL_OPERATION: i32 = 604;

/// A pending half message.
#[derive(Debug, Clone)]
pub(crate) struct Half {
    /// As stored (half topic, queue 0).
    pub(crate) stored: StoredMessage,
    /// Checks sent (or due with no producer to send them to) so far.
    pub(crate) checks: u32,
}

impl Half {
    pub(crate) fn new(stored: StoredMessage) -> Self {
        Self { stored, checks: 0 }
    }
}

/// Whether a single send is a half message.
///
/// A real broker goes by the property `TRAN_MSG=true` alone; the mock also takes a prepared
/// sysFlag, and warns when the two disagree (a producer bug a real broker would not forgive).
/// As in Java, a send back for retry of a pre-4.6.1 client (reconsume times and a delay level)
/// is no half message.
pub(crate) fn is_half(h: &SendMessageRequestHeader, props: &Properties, broker: &str) -> bool {
    let tran_msg = props
        .get(property::TRAN_MSG)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let prepared = sysflag::transaction_value(h.sys_flag) == sysflag::TRANSACTION_PREPARED_TYPE;
    let retry = h.reconsume_times.unwrap_or(0) > 0
        && props
            .get(property::DELAY)
            .and_then(|d| d.parse::<i32>().ok())
            .is_some_and(|d| d > 0);
    if tran_msg != prepared && !retry {
        tracing::warn!(
            broker,
            topic = %h.topic,
            sys_flag = h.sys_flag,
            tran_msg,
            "TRAN_MSG and the prepared sysFlag disagree; taken as a half message \
             (a real broker goes by TRAN_MSG alone)"
        );
    }
    (tran_msg || prepared) && !retry
}

/// A message made a half message (Java's `parseHalfMessageInner`); offsets are assigned when
/// it is appended.
pub(crate) fn to_half(mut ext: MessageExt) -> MessageExt {
    let topic = ext.message.topic().to_owned();
    let queue_id = ext.queue_id;
    let props = ext.message.properties_mut();
    let uniq = props
        .get(property::UNIQ_KEY)
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(uniq) = uniq {
        props.insert(property::TRANSACTION_ID, uniq);
    }
    props.insert(property::REAL_TOPIC, topic);
    props.insert(property::REAL_QID, queue_id.to_string());
    ext.sys_flag = sysflag::reset_transaction_value(ext.sys_flag, sysflag::TRANSACTION_NOT_TYPE);
    ext.message.set_topic(TRANS_HALF_TOPIC);
    ext.queue_id = 0;
    ext
}

/// The half message with its real topic and queue id, as a check carries it.
fn real_view(half: &MessageExt) -> MessageExt {
    let mut view = half.clone();
    if let Some(topic) = half.message.property(property::REAL_TOPIC) {
        view.message.set_topic(topic.to_owned());
    }
    if let Some(q) = half
        .message
        .property(property::REAL_QID)
        .and_then(|q| q.parse().ok())
    {
        view.queue_id = q;
    }
    view
}

/// The record a commit writes (offsets assigned when it is appended); see the module doc.
fn committed(half: &MessageExt) -> MessageExt {
    let mut ext = real_view(half);
    ext.sys_flag =
        sysflag::reset_transaction_value(half.sys_flag, sysflag::TRANSACTION_COMMIT_TYPE);
    ext.prepared_transaction_offset = half.commit_log_offset;
    ext
}

/// `EndTransactionProcessor.checkPrepareMessage`: the remark of the mismatch, if any.
fn check_prepare(half: &MessageExt, h: &EndTransactionRequestHeader) -> Result<(), &'static str> {
    if half.message.property(property::PGROUP) != Some(h.producer_group.as_str()) {
        return Err("The producer group wrong");
    }
    if half.queue_offset != h.tran_state_table_offset {
        return Err("The transaction state table offset wrong");
    }
    if half.commit_log_offset != h.commit_log_offset {
        return Err("The commit log offset wrong");
    }
    Ok(())
}

/// Java's `getImmunityTime`: `CHECK_IMMUNITY_TIME_IN_SECONDS` in ms (unparsable: 0), at least
/// the transaction timeout; `None` without the property.
fn immunity_ms(half: &MessageExt, timeout_ms: i64) -> Option<i64> {
    let secs = half
        .message
        .property(property::CHECK_IMMUNITY_TIME_IN_SECONDS)?;
    let ms = secs.parse::<i64>().map_or(0, |s| s.saturating_mul(1000));
    Some(ms.max(timeout_ms))
}

/// Whether the check pass asks about `half` now (Java: born longer ago than the immunity
/// time, or born "in the future").
fn due(half: &MessageExt, timeout_ms: i64, now_ms: i64) -> bool {
    let age = now_ms.saturating_sub(half.born_timestamp);
    match immunity_ms(half, timeout_ms) {
        Some(immunity) => age > immunity,
        None => age < 0 || age > timeout_ms,
    }
}

/// What an `END_TRANSACTION` did.
#[derive(Debug)]
pub(crate) enum EndOutcome {
    /// Committed: the message is now stored (visible).
    Committed,
    /// Rolled back: the half message is dropped.
    RolledBack,
    /// State unknown (0) or an unknown value: nothing changes and a broker answers nothing.
    NoAnswer,
    /// Refused (no such half message, a mismatch): nothing changes.
    Refused(ResponseCode, Option<String>),
}

/// The rules of an automatic check pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckRules {
    /// Java's `transactionTimeOut`, in ms.
    pub(crate) timeout_ms: i64,
    /// Java's `transactionCheckMax`.
    pub(crate) max_checks: u32,
}

/// One `CHECK_TRANSACTION_STATE` to send.
#[derive(Debug, Clone)]
pub(crate) struct PendingCheck {
    /// The producer group (`PGROUP`) to ask.
    pub(crate) group: Option<String>,
    /// The request header.
    pub(crate) header: CheckTransactionStateRequestHeader,
    /// The stored message, with its real topic and queue.
    pub(crate) body: Bytes,
}

impl Store {
    /// Ends a half message as `EndTransactionProcessor` does. `timeout_ms` is the transaction
    /// timeout (the floor of `CHECK_IMMUNITY_TIME_IN_SECONDS`).
    pub(crate) fn end_transaction(
        &self,
        h: &EndTransactionRequestHeader,
        now_ms: i64,
        timeout_ms: i64,
    ) -> EndOutcome {
        let offset = h.commit_log_offset;
        let commit = match h.commit_or_rollback {
            sysflag::TRANSACTION_COMMIT_TYPE => true,
            sysflag::TRANSACTION_ROLLBACK_TYPE => false,
            value => {
                tracing::debug!(broker = %self.name, offset, value, "transaction not ended");
                return EndOutcome::NoAnswer;
            }
        };
        let mut state = self.lock();
        let Some(half) = state.halves.get(&offset) else {
            tracing::debug!(broker = %self.name, offset, "end of an unknown half message");
            return EndOutcome::Refused(
                ResponseCode::SYSTEM_ERROR,
                Some("Find prepared transaction message failed".to_owned()),
            );
        };
        let ext = &half.stored.ext;
        // Java 5.x: past a custom immunity time only a check's answer may end it.
        let late = immunity_ms(ext, timeout_ms)
            .is_some_and(|imm| now_ms.saturating_sub(ext.born_timestamp) > imm);
        if late && !h.from_transaction_check {
            tracing::debug!(broker = %self.name, offset, "end refused: past the immunity time");
            return EndOutcome::Refused(ResponseCode::from(ILLEGAL_OPERATION), None);
        }
        if let Err(remark) = check_prepare(ext, h) {
            tracing::debug!(broker = %self.name, offset, remark, "end refused");
            return EndOutcome::Refused(ResponseCode::SYSTEM_ERROR, Some(remark.to_owned()));
        }
        let Some(half) = state.halves.remove(&offset) else {
            return EndOutcome::NoAnswer; // just found under the same lock
        };
        if !commit {
            tracing::debug!(
                broker = %self.name,
                offset,
                uniq_key = ?half.stored.ext.uniq_key(),
                "half message rolled back"
            );
            return EndOutcome::RolledBack;
        }
        let (ext, msg_id) = self.append(&mut state, committed(&half.stored.ext));
        tracing::debug!(
            broker = %self.name,
            offset,
            topic = %ext.message.topic(),
            commit_log_offset = ext.commit_log_offset,
            "half message committed"
        );
        let stored = StoredMessage {
            seq: self.next_seq(),
            msg_id,
            batch_index: None,
            reply_code: ResponseCode::SUCCESS,
            ext,
            ..half.stored
        };
        state.messages.push(stored);
        EndOutcome::Committed
    }

    /// The pending half messages, by commit-log offset.
    pub(crate) fn half_messages(&self) -> Vec<StoredMessage> {
        let state = self.lock();
        state.halves.values().map(|h| h.stored.clone()).collect()
    }

    /// How many times the half message at `offset` was checked.
    pub(crate) fn half_check_count(&self, offset: i64) -> Option<u32> {
        self.lock().halves.get(&offset).map(|h| h.checks)
    }

    /// The checks of one pass: every half message (`rules` `None`), or those due under `rules`,
    /// after discarding the ones checked `max_checks` times already. Each one's check count
    /// (and `TRANSACTION_CHECK_TIMES` property) goes up by one.
    pub(crate) fn take_checks(&self, rules: Option<CheckRules>, now_ms: i64) -> Vec<PendingCheck> {
        let mut state = self.lock();
        let mut checks = Vec::new();
        let mut discarded = Vec::new();
        for (&offset, half) in &mut state.halves {
            if let Some(r) = rules {
                // As Java: at least one check, whatever the maximum.
                if half.checks >= r.max_checks.max(1) {
                    discarded.push(offset);
                    continue;
                }
                if !due(&half.stored.ext, r.timeout_ms, now_ms) {
                    continue;
                }
            }
            half.checks += 1;
            half.stored
                .ext
                .message
                .properties_mut()
                .insert(property::TRANSACTION_CHECK_TIMES, half.checks.to_string());
            checks.push(self.check_of(half));
        }
        for offset in discarded {
            if let Some(half) = state.halves.remove(&offset) {
                tracing::warn!(
                    broker = %self.name,
                    offset,
                    checks = half.checks,
                    uniq_key = ?half.stored.ext.uniq_key(),
                    "half message checked too many times: discarded (rolled back)"
                );
            }
        }
        checks
    }

    /// The check of one half message (Java's `sendCheckMessage`).
    fn check_of(&self, half: &Half) -> PendingCheck {
        let ext = &half.stored.ext;
        let uniq = ext.uniq_key().map(str::to_owned);
        let view = real_view(ext);
        let header = CheckTransactionStateRequestHeader {
            topic: Some(view.message.topic().to_owned()),
            tran_state_table_offset: ext.queue_offset,
            commit_log_offset: ext.commit_log_offset,
            msg_id: uniq.clone(),
            transaction_id: uniq,
            offset_msg_id: Some(half.stored.msg_id.clone()),
            broker_name: Some(self.name.clone()),
        };
        PendingCheck {
            group: ext.message.property(property::PGROUP).map(str::to_owned),
            header,
            body: encode_stored_message(&view),
        }
    }
}

#[cfg(test)]
#[path = "half_tests.rs"]
mod tests;
