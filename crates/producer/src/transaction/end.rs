//! The `END_TRANSACTION` headers (PROTOCOL §12.2, §12.3): after a local transaction (Java's
//! `DefaultMQProducerImpl.endTransaction`) and in answer to a check (Java's
//! `processTransactionState`). Pure functions; the transport sends them.

use rmq_common::header::transaction::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader,
};
use rmq_common::stored::MessageExt;
use rmq_common::{LanguageCode, MessageIdError, OffsetMessageId, RequestCode};
use rmq_remoting::{RemotingCommand, SerializeType};

use super::TransactionState;
use crate::send_result::SendResult;

/// Java's remark prefix when the local transaction failed.
pub(crate) const EXECUTE_REMARK: &str = "executeLocalTransactionBranch exception: ";

/// Java's remark prefix when a check failed.
pub(crate) const CHECK_REMARK: &str = "checkLocalTransactionState Exception: ";

/// The header ending the transaction of a half message `sent` to `topic` by `group`.
///
/// # Errors
/// The send result's offset message id (and its message id) do not decode: the commit-log
/// offset is unknown.
pub(crate) fn after_send(
    topic: &str,
    group: &str,
    sent: &SendResult,
    state: TransactionState,
) -> Result<EndTransactionRequestHeader, MessageIdError> {
    // Java decodes `offsetMsgId`, falling back to `msgId` when it is absent.
    let id = if sent.offset_msg_id.is_empty() {
        OffsetMessageId::decode(&sent.msg_id)?
    } else {
        OffsetMessageId::decode(&sent.offset_msg_id)?
    };
    Ok(EndTransactionRequestHeader {
        topic: Some(topic.to_owned()),
        producer_group: group.to_owned(),
        tran_state_table_offset: sent.queue_offset,
        commit_log_offset: id.commit_log_offset,
        commit_or_rollback: state.wire_value(),
        from_transaction_check: false,
        msg_id: sent.msg_id.clone(),
        transaction_id: sent.transaction_id.clone(),
        broker_name: Some(sent.queue.broker_name.clone()),
    })
}

/// The topic of half messages on the broker. rocketmq-rust's broker names it in the check's
/// `topic` where Java's names the real topic.
const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";

/// The header answering the check `check` about the half message `msg` of `group`.
pub(crate) fn after_check(
    check: &CheckTransactionStateRequestHeader,
    msg: &MessageExt,
    group: &str,
    state: TransactionState,
) -> EndTransactionRequestHeader {
    // Java: the UNIQ_KEY property, else the message's (offset) id.
    let msg_id = msg
        .uniq_key()
        .filter(|k| !k.is_empty())
        .map_or_else(|| msg.offset_msg_id().encode(), str::to_owned);
    // The real topic, as Java's broker names it (the message's, when the broker named the half
    // topic instead).
    let topic = match check.topic.as_deref() {
        Some(HALF_TOPIC) => Some(msg.message.topic().to_owned()),
        other => other.map(str::to_owned),
    };
    EndTransactionRequestHeader {
        topic,
        producer_group: group.to_owned(),
        tran_state_table_offset: check.tran_state_table_offset,
        commit_log_offset: check.commit_log_offset,
        commit_or_rollback: state.wire_value(),
        from_transaction_check: true,
        msg_id,
        transaction_id: check.transaction_id.clone(),
        broker_name: check.broker_name.clone(),
    }
}

/// The oneway `END_TRANSACTION` request carrying `header`.
pub(crate) fn request(
    header: &EndTransactionRequestHeader,
    remark: Option<String>,
    serialize_type: SerializeType,
    language: LanguageCode,
) -> RemotingCommand {
    let mut req = RemotingCommand::request_with_header(RequestCode::END_TRANSACTION, header)
        .with_serialize_type(serialize_type);
    req.language = language;
    req.remark = remark;
    req.mark_oneway();
    req
}

/// The remark of an end request: Java's prefix and the note when the listener failed.
pub(crate) fn remark(prefix: &str, note: Option<&str>) -> Option<String> {
    note.map(|n| format!("{prefix}{n}"))
}

#[cfg(test)]
#[path = "end_tests.rs"]
mod tests;
