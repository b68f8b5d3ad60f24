//! Transaction headers: `END_TRANSACTION` (37) and `CHECK_TRANSACTION_STATE` (39), PROTOCOL §12.

use super::{bool_str, key, optional_bool, optional_str, required_num, required_str};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `END_TRANSACTION` (Java's `EndTransactionRequestHeader`), sent oneway after a
/// half message's local transaction or in answer to a check.
///
/// `commit_or_rollback` takes [`crate::sysflag::TRANSACTION_COMMIT_TYPE`] (8),
/// [`crate::sysflag::TRANSACTION_ROLLBACK_TYPE`] (12) or
/// [`crate::sysflag::TRANSACTION_NOT_TYPE`] (0, unknown). `fromTransactionCheck` is always
/// sent, as Java does.
///
/// ```
/// use rmq_common::header::transaction::EndTransactionRequestHeader;
/// use rmq_common::{sysflag, CommandHeader};
/// let h = EndTransactionRequestHeader {
///     producer_group: "pg".into(),
///     tran_state_table_offset: 3,
///     commit_log_offset: 4_819_130,
///     commit_or_rollback: sysflag::TRANSACTION_COMMIT_TYPE,
///     msg_id: "7F0000010F2C18B4AAC2000000000000".into(),
///     ..Default::default()
/// };
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("commitOrRollback"), Some("8"));
/// assert_eq!(ext.get("fromTransactionCheck"), Some("false"));
/// assert_eq!(EndTransactionRequestHeader::read_from(&ext)?, h);
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndTransactionRequestHeader {
    /// `topic` (5.x).
    pub topic: Option<String>,
    /// `producerGroup` (required).
    pub producer_group: String,
    /// `tranStateTableOffset`: the half message's queue offset (required).
    pub tran_state_table_offset: i64,
    /// `commitLogOffset`: the half message's commit-log offset (required).
    pub commit_log_offset: i64,
    /// `commitOrRollback`: 8 commit, 12 rollback, 0 unknown (required).
    pub commit_or_rollback: i32,
    /// `fromTransactionCheck`: true when answering a broker check (missing reads as false).
    pub from_transaction_check: bool,
    /// `msgId`: the message's `UNIQ_KEY` (required).
    pub msg_id: String,
    /// `transactionId`.
    pub transaction_id: Option<String>,
    /// `bname`: the broker name.
    pub broker_name: Option<String>,
}

impl CommandHeader for EndTransactionRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        if let Some(v) = &self.topic {
            ext.insert(key("topic"), v.as_str());
        }
        ext.insert(key("producerGroup"), self.producer_group.as_str());
        ext.insert(
            key("tranStateTableOffset"),
            self.tran_state_table_offset.to_string(),
        );
        ext.insert(key("commitLogOffset"), self.commit_log_offset.to_string());
        ext.insert(key("commitOrRollback"), self.commit_or_rollback.to_string());
        ext.insert(
            key("fromTransactionCheck"),
            bool_str(self.from_transaction_check),
        );
        ext.insert(key("msgId"), self.msg_id.as_str());
        if let Some(v) = &self.transaction_id {
            ext.insert(key("transactionId"), v.as_str());
        }
        if let Some(v) = &self.broker_name {
            ext.insert(key("bname"), v.as_str());
        }
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            topic: optional_str(ext, "topic"),
            producer_group: required_str(ext, "producerGroup")?,
            tran_state_table_offset: required_num(ext, "tranStateTableOffset", "i64")?,
            commit_log_offset: required_num(ext, "commitLogOffset", "i64")?,
            commit_or_rollback: required_num(ext, "commitOrRollback", "i32")?,
            from_transaction_check: optional_bool(ext, "fromTransactionCheck").unwrap_or(false),
            msg_id: required_str(ext, "msgId")?,
            transaction_id: optional_str(ext, "transactionId"),
            broker_name: optional_str(ext, "bname"),
        })
    }
}

/// Header of `CHECK_TRANSACTION_STATE` (Java's `CheckTransactionStateRequestHeader`), sent by
/// a broker to ask for a half message's state; the body is the stored message
/// ([`crate::stored`]).
///
/// ```
/// use rmq_common::header::transaction::CheckTransactionStateRequestHeader;
/// use rmq_common::{CommandHeader, ExtFields};
/// let ext: ExtFields = [("tranStateTableOffset", "3"), ("commitLogOffset", "99"), ("msgId", "AB")]
///     .into_iter()
///     .collect();
/// let h = CheckTransactionStateRequestHeader::read_from(&ext)?;
/// assert_eq!((h.tran_state_table_offset, h.commit_log_offset), (3, 99));
/// assert_eq!(h.msg_id.as_deref(), Some("AB"));
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckTransactionStateRequestHeader {
    /// `topic`: the real topic (5.x).
    pub topic: Option<String>,
    /// `tranStateTableOffset`: the half message's queue offset (required).
    pub tran_state_table_offset: i64,
    /// `commitLogOffset`: the half message's commit-log offset (required).
    pub commit_log_offset: i64,
    /// `msgId`: the `UNIQ_KEY`.
    pub msg_id: Option<String>,
    /// `transactionId`.
    pub transaction_id: Option<String>,
    /// `offsetMsgId`: the half message's offset id.
    pub offset_msg_id: Option<String>,
    /// `bname`: the broker name (5.x).
    pub broker_name: Option<String>,
}

impl CommandHeader for CheckTransactionStateRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        if let Some(v) = &self.topic {
            ext.insert(key("topic"), v.as_str());
        }
        ext.insert(
            key("tranStateTableOffset"),
            self.tran_state_table_offset.to_string(),
        );
        ext.insert(key("commitLogOffset"), self.commit_log_offset.to_string());
        if let Some(v) = &self.msg_id {
            ext.insert(key("msgId"), v.as_str());
        }
        if let Some(v) = &self.transaction_id {
            ext.insert(key("transactionId"), v.as_str());
        }
        if let Some(v) = &self.offset_msg_id {
            ext.insert(key("offsetMsgId"), v.as_str());
        }
        if let Some(v) = &self.broker_name {
            ext.insert(key("bname"), v.as_str());
        }
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            topic: optional_str(ext, "topic"),
            tran_state_table_offset: required_num(ext, "tranStateTableOffset", "i64")?,
            commit_log_offset: required_num(ext, "commitLogOffset", "i64")?,
            msg_id: optional_str(ext, "msgId"),
            transaction_id: optional_str(ext, "transactionId"),
            offset_msg_id: optional_str(ext, "offsetMsgId"),
            broker_name: optional_str(ext, "bname"),
        })
    }
}
