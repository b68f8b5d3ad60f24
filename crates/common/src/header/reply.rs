//! `PUSH_REPLY_MESSAGE_TO_CLIENT` (326) request header: how a broker hands a reply message to
//! the client that sent the request (request/reply, Java 4.6+).

use super::{bool_str, key, optional_bool, optional_num, optional_str, required_num, required_str};
use crate::{CommandHeader, ExtFields, HeaderError};

/// Header of `PUSH_REPLY_MESSAGE_TO_CLIENT` (Java's `ReplyMessageRequestHeader`): the reply's
/// send header as the replier sent it (V1 long names), plus the hosts and the store time the
/// broker adds. The body is the reply's body as sent (compressed when `sys_flag` says so).
///
/// Required, as Java's `@CFNotNull` fields: `producerGroup`, `topic`, `defaultTopic`,
/// `defaultTopicQueueNums`, `queueId`, `sysFlag`, `bornTimestamp`, `flag`, `bornHost`,
/// `storeHost`, `storeTimestamp`. `unitMode` (a primitive in Java) is always written.
///
/// ```
/// use rmq_common::header::reply::ReplyMessageRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = ReplyMessageRequestHeader {
///     producer_group: "replier".into(),
///     topic: "DefaultCluster_REPLY_TOPIC".into(),
///     default_topic: "TBW102".into(),
///     default_topic_queue_nums: 4,
///     born_host: "127.0.0.1:50312".into(),
///     store_host: "127.0.0.1:10911".into(),
///     store_timestamp: 1_700_000_000_123,
///     properties: Some("CORRELATION_ID\u{1}c-1\u{2}".into()),
///     ..Default::default()
/// };
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("storeTimestamp"), Some("1700000000123"));
/// assert_eq!(ext.get("unitMode"), Some("false"));
/// assert_eq!(ext.get("reconsumeTimes"), None);
/// assert_eq!(ReplyMessageRequestHeader::read_from(&ext)?, h);
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyMessageRequestHeader {
    /// `producerGroup`: the replier's group.
    pub producer_group: String,
    /// `topic`: the reply topic (`{cluster}_REPLY_TOPIC`).
    pub topic: String,
    /// `defaultTopic`.
    pub default_topic: String,
    /// `defaultTopicQueueNums`.
    pub default_topic_queue_nums: i32,
    /// `queueId`: the queue the replier asked for.
    pub queue_id: i32,
    /// `sysFlag` of the reply's send (compression bits included).
    pub sys_flag: i32,
    /// `bornTimestamp`: when the replier sent it (epoch ms).
    pub born_timestamp: i64,
    /// `flag`: the reply's user flag.
    pub flag: i32,
    /// `properties`: the reply's encoded properties (with `PUSH_REPLY_TIME` added by the broker).
    pub properties: Option<String>,
    /// `reconsumeTimes`.
    pub reconsume_times: Option<i32>,
    /// `unitMode` (missing reads as false).
    pub unit_mode: bool,
    /// `bornHost`: the replier's address (`ip:port`).
    pub born_host: String,
    /// `storeHost`: the broker's address (`ip:port`).
    pub store_host: String,
    /// `storeTimestamp`: when the broker pushed it (epoch ms).
    pub store_timestamp: i64,
}

impl CommandHeader for ReplyMessageRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        ext.insert(key("producerGroup"), self.producer_group.as_str());
        ext.insert(key("topic"), self.topic.as_str());
        ext.insert(key("defaultTopic"), self.default_topic.as_str());
        ext.insert(
            key("defaultTopicQueueNums"),
            self.default_topic_queue_nums.to_string(),
        );
        ext.insert(key("queueId"), self.queue_id.to_string());
        ext.insert(key("sysFlag"), self.sys_flag.to_string());
        ext.insert(key("bornTimestamp"), self.born_timestamp.to_string());
        ext.insert(key("flag"), self.flag.to_string());
        if let Some(v) = &self.properties {
            ext.insert(key("properties"), v.as_str());
        }
        if let Some(v) = self.reconsume_times {
            ext.insert(key("reconsumeTimes"), v.to_string());
        }
        ext.insert(key("unitMode"), bool_str(self.unit_mode));
        ext.insert(key("bornHost"), self.born_host.as_str());
        ext.insert(key("storeHost"), self.store_host.as_str());
        ext.insert(key("storeTimestamp"), self.store_timestamp.to_string());
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            producer_group: required_str(ext, "producerGroup")?,
            topic: required_str(ext, "topic")?,
            default_topic: required_str(ext, "defaultTopic")?,
            default_topic_queue_nums: required_num(ext, "defaultTopicQueueNums", "i32")?,
            queue_id: required_num(ext, "queueId", "i32")?,
            sys_flag: required_num(ext, "sysFlag", "i32")?,
            born_timestamp: required_num(ext, "bornTimestamp", "i64")?,
            flag: required_num(ext, "flag", "i32")?,
            properties: optional_str(ext, "properties"),
            reconsume_times: optional_num(ext, "reconsumeTimes", "i32")?,
            unit_mode: optional_bool(ext, "unitMode").unwrap_or(false),
            born_host: required_str(ext, "bornHost")?,
            store_host: required_str(ext, "storeHost")?,
            store_timestamp: required_num(ext, "storeTimestamp", "i64")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ext fields of a push as the rocketmq-rust 1.0 broker writes them
    /// (`build_reply_request_header`), read back field by field.
    #[test]
    fn reads_a_broker_push_and_names_missing_fields() {
        let ext: ExtFields = [
            ("producerGroup", "replier"),
            ("topic", "DefaultCluster_REPLY_TOPIC"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "769"),
            ("bornTimestamp", "1700000000000"),
            ("flag", "0"),
            ("properties", "MSG_TYPE\u{1}reply\u{2}"),
            ("reconsumeTimes", "0"),
            ("unitMode", "false"),
            ("bornHost", "127.0.0.1:50312"),
            ("storeHost", "127.0.0.1:10911"),
            ("storeTimestamp", "1700000000042"),
            ("bname", "broker-a"),
        ]
        .into_iter()
        .collect();
        let h = ReplyMessageRequestHeader::read_from(&ext).expect("reads");
        assert_eq!(h.sys_flag, 0x301);
        assert_eq!(h.reconsume_times, Some(0));
        assert_eq!(
            (h.born_host.as_str(), h.store_timestamp),
            ("127.0.0.1:50312", 1_700_000_000_042)
        );
        for field in [
            "producerGroup",
            "topic",
            "queueId",
            "bornHost",
            "storeHost",
            "storeTimestamp",
        ] {
            let mut missing = ext.clone();
            missing.remove(field);
            assert_eq!(
                ReplyMessageRequestHeader::read_from(&missing),
                Err(HeaderError::Missing { field }),
                "{field}"
            );
        }
        let mut optional = ext.clone();
        for field in ["properties", "reconsumeTimes", "unitMode"] {
            optional.remove(field);
        }
        let h = ReplyMessageRequestHeader::read_from(&optional).expect("optional fields");
        assert_eq!(
            (h.properties, h.reconsume_times, h.unit_mode),
            (None, None, false)
        );
    }
}
