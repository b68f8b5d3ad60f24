//! `RECALL_MESSAGE` (370) request and response headers (5.x).

use super::{key, optional_str, required_str};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `RECALL_MESSAGE` (Java's `RecallMessageRequestHeader`, a `TopicRequestHeader`):
/// withdraw the timer message a recall handle names.
///
/// ```
/// use rmq_common::header::recall::RecallMessageRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = RecallMessageRequestHeader {
///     producer_group: Some("pg".into()),
///     topic: "Orders".into(),
///     recall_handle: "djEgT3JkZXJz".into(),
///     broker_name: Some("broker-a".into()),
/// };
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("recallHandle"), Some("djEgT3JkZXJz"));
/// assert_eq!(ext.get("bname"), Some("broker-a"));
/// assert_eq!(RecallMessageRequestHeader::read_from(&ext)?, h);
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecallMessageRequestHeader {
    /// `producerGroup` (Java puts the recalling producer's group).
    pub producer_group: Option<String>,
    /// `topic` (required): the topic the message was sent to.
    pub topic: String,
    /// `recallHandle` (required): the handle as the send result gave it.
    pub recall_handle: String,
    /// `bname`: the broker named in the handle.
    pub broker_name: Option<String>,
}

impl CommandHeader for RecallMessageRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        if let Some(v) = &self.producer_group {
            ext.insert(key("producerGroup"), v.as_str());
        }
        ext.insert(key("topic"), self.topic.as_str());
        ext.insert(key("recallHandle"), self.recall_handle.as_str());
        if let Some(v) = &self.broker_name {
            ext.insert(key("bname"), v.as_str());
        }
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            producer_group: optional_str(ext, "producerGroup"),
            topic: required_str(ext, "topic")?,
            recall_handle: required_str(ext, "recallHandle")?,
            broker_name: optional_str(ext, "bname"),
        })
    }
}

/// Header of a successful `RECALL_MESSAGE` answer (Java's `RecallMessageResponseHeader`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecallMessageResponseHeader {
    /// `msgId` (required): the recalled message's id (its `UNIQ_KEY`).
    pub msg_id: String,
}

impl CommandHeader for RecallMessageResponseHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        ext.insert(key("msgId"), self.msg_id.as_str());
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            msg_id: required_str(ext, "msgId")?,
        })
    }
}
