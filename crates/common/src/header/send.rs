//! Send headers: `SendMessageRequestHeader` (V1 long names), its V2 short-name form, and
//! `SendMessageResponseHeader` (PROTOCOL §3.1–3.3).

use std::borrow::Cow;

use super::{bool_str, key, optional_bool, optional_num, optional_str, required_num, required_str};
use crate::{CommandHeader, ExtFields, HeaderError, RequestCode};

/// The send request header (Java's `SendMessageRequestHeader`, V1 long names, codes 10 / 324).
///
/// Wrap it in [`SendMessageRequestHeaderV2`] for the short names `a`..`n` of codes 310 / 320 /
/// 325. The Java client always sends `unitMode` and `batch` (`Some(false)` unless batching).
///
/// ```
/// use rmq_common::header::send::SendMessageRequestHeader;
/// use rmq_common::CommandHeader;
/// let h = SendMessageRequestHeader {
///     producer_group: "pg".into(),
///     topic: "TopicTest".into(),
///     default_topic: "TBW102".into(),
///     default_topic_queue_nums: 4,
///     unit_mode: Some(false),
///     batch: Some(false),
///     ..Default::default()
/// };
/// let ext = h.to_ext_fields();
/// assert_eq!(ext.get("producerGroup"), Some("pg"));
/// assert_eq!(ext.get("unitMode"), Some("false"));
/// assert_eq!(ext.get("properties"), None);
/// assert_eq!(SendMessageRequestHeader::read_from(&ext)?, h);
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    /// `producerGroup` / `a`.
    pub producer_group: String,
    /// `topic` / `b`.
    pub topic: String,
    /// `defaultTopic` / `c` (`"TBW102"`).
    pub default_topic: String,
    /// `defaultTopicQueueNums` / `d` (4).
    pub default_topic_queue_nums: i32,
    /// `queueId` / `e` (negative: the broker picks one).
    pub queue_id: i32,
    /// `sysFlag` / `f` (see [`crate::sysflag`]).
    pub sys_flag: i32,
    /// `bornTimestamp` / `g` (epoch ms).
    pub born_timestamp: i64,
    /// `flag` / `h` (the message's user flag).
    pub flag: i32,
    /// `properties` / `i` (the encoded [`crate::Properties`]).
    pub properties: Option<String>,
    /// `reconsumeTimes` / `j`.
    pub reconsume_times: Option<i32>,
    /// `unitMode` / `k`.
    pub unit_mode: Option<bool>,
    /// `batch` / `m`.
    pub batch: Option<bool>,
    /// `maxReconsumeTimes` / `l`.
    pub max_reconsume_times: Option<i32>,
    /// `bname` / `n`: the target broker's name.
    pub broker_name: Option<String>,
}

/// Wire names of the send request fields: (V1 long name, V2 short name).
struct Names {
    producer_group: &'static str,
    topic: &'static str,
    default_topic: &'static str,
    default_topic_queue_nums: &'static str,
    queue_id: &'static str,
    sys_flag: &'static str,
    born_timestamp: &'static str,
    flag: &'static str,
    properties: &'static str,
    reconsume_times: &'static str,
    unit_mode: &'static str,
    max_reconsume_times: &'static str,
    batch: &'static str,
    broker_name: &'static str,
}

const V1: Names = Names {
    producer_group: "producerGroup",
    topic: "topic",
    default_topic: "defaultTopic",
    default_topic_queue_nums: "defaultTopicQueueNums",
    queue_id: "queueId",
    sys_flag: "sysFlag",
    born_timestamp: "bornTimestamp",
    flag: "flag",
    properties: "properties",
    reconsume_times: "reconsumeTimes",
    unit_mode: "unitMode",
    max_reconsume_times: "maxReconsumeTimes",
    batch: "batch",
    broker_name: "bname",
};

const V2: Names = Names {
    producer_group: "a",
    topic: "b",
    default_topic: "c",
    default_topic_queue_nums: "d",
    queue_id: "e",
    sys_flag: "f",
    born_timestamp: "g",
    flag: "h",
    properties: "i",
    reconsume_times: "j",
    unit_mode: "k",
    max_reconsume_times: "l",
    batch: "m",
    broker_name: "n",
};

impl SendMessageRequestHeader {
    fn write_with(&self, n: &Names, ext: &mut ExtFields) {
        ext.insert(key(n.producer_group), self.producer_group.as_str());
        ext.insert(key(n.topic), self.topic.as_str());
        ext.insert(key(n.default_topic), self.default_topic.as_str());
        ext.insert(
            key(n.default_topic_queue_nums),
            self.default_topic_queue_nums.to_string(),
        );
        ext.insert(key(n.queue_id), self.queue_id.to_string());
        ext.insert(key(n.sys_flag), self.sys_flag.to_string());
        ext.insert(key(n.born_timestamp), self.born_timestamp.to_string());
        ext.insert(key(n.flag), self.flag.to_string());
        if let Some(v) = &self.properties {
            ext.insert(key(n.properties), v.as_str());
        }
        if let Some(v) = self.reconsume_times {
            ext.insert(key(n.reconsume_times), v.to_string());
        }
        if let Some(v) = self.unit_mode {
            ext.insert(key(n.unit_mode), bool_str(v));
        }
        if let Some(v) = self.max_reconsume_times {
            ext.insert(key(n.max_reconsume_times), v.to_string());
        }
        if let Some(v) = self.batch {
            ext.insert(key(n.batch), bool_str(v));
        }
        if let Some(v) = &self.broker_name {
            ext.insert(key(n.broker_name), v.as_str());
        }
    }

    fn read_with(n: &Names, ext: &ExtFields) -> Result<Self, HeaderError> {
        Ok(Self {
            producer_group: required_str(ext, n.producer_group)?,
            topic: required_str(ext, n.topic)?,
            default_topic: required_str(ext, n.default_topic)?,
            default_topic_queue_nums: required_num(ext, n.default_topic_queue_nums, "i32")?,
            queue_id: required_num(ext, n.queue_id, "i32")?,
            sys_flag: required_num(ext, n.sys_flag, "i32")?,
            born_timestamp: required_num(ext, n.born_timestamp, "i64")?,
            flag: required_num(ext, n.flag, "i32")?,
            properties: optional_str(ext, n.properties),
            reconsume_times: optional_num(ext, n.reconsume_times, "i32")?,
            unit_mode: optional_bool(ext, n.unit_mode),
            batch: optional_bool(ext, n.batch),
            max_reconsume_times: optional_num(ext, n.max_reconsume_times, "i32")?,
            broker_name: optional_str(ext, n.broker_name),
        })
    }

    /// Reads the header the way a broker does for `code`: the V2 short names for
    /// `SEND_MESSAGE_V2` (310), `SEND_BATCH_MESSAGE` (320) and `SEND_REPLY_MESSAGE_V2` (325),
    /// the V1 long names otherwise.
    ///
    /// # Errors
    /// [`HeaderError`] naming the missing or malformed field (by its wire name).
    ///
    /// ```
    /// use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
    /// use rmq_common::{CommandHeader, RequestCode};
    /// let h = SendMessageRequestHeader { topic: "T".into(), ..Default::default() };
    /// let ext = SendMessageRequestHeaderV2(h.clone()).to_ext_fields();
    /// assert_eq!(SendMessageRequestHeader::read_for_code(RequestCode::SEND_MESSAGE_V2, &ext)?, h);
    /// assert!(SendMessageRequestHeader::read_for_code(RequestCode::SEND_MESSAGE, &ext).is_err());
    /// # Ok::<(), rmq_common::HeaderError>(())
    /// ```
    pub fn read_for_code(code: RequestCode, ext: &ExtFields) -> Result<Self, HeaderError> {
        if Self::is_v2_code(code) {
            Self::read_with(&V2, ext)
        } else {
            Self::read_with(&V1, ext)
        }
    }

    /// Whether `code` carries the V2 (short names) header: 310, 320 and 325.
    #[must_use]
    pub fn is_v2_code(code: RequestCode) -> bool {
        matches!(
            code,
            RequestCode::SEND_MESSAGE_V2
                | RequestCode::SEND_BATCH_MESSAGE
                | RequestCode::SEND_REPLY_MESSAGE_V2
        )
    }
}

impl CommandHeader for SendMessageRequestHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        self.write_with(&V1, ext);
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        Self::read_with(&V1, ext)
    }
}

/// The send request header with the V2 short names `a`..`n` (Java's
/// `SendMessageRequestHeaderV2`), used by the Java client for codes 310, 320 and 325.
///
/// ```
/// use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
/// use rmq_common::CommandHeader;
/// let v2 = SendMessageRequestHeaderV2(SendMessageRequestHeader {
///     producer_group: "pg".into(),
///     batch: Some(true),
///     ..Default::default()
/// });
/// let ext = v2.to_ext_fields();
/// assert_eq!(ext.get("a"), Some("pg"));
/// assert_eq!(ext.get("m"), Some("true"));
/// assert_eq!(ext.get("producerGroup"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeaderV2(pub SendMessageRequestHeader);

impl CommandHeader for SendMessageRequestHeaderV2 {
    fn write_to(&self, ext: &mut ExtFields) {
        self.0.write_with(&V2, ext);
    }

    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        SendMessageRequestHeader::read_with(&V2, ext).map(Self)
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(h: SendMessageRequestHeader) -> Self {
        Self(h)
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(h: SendMessageRequestHeaderV2) -> Self {
        h.0
    }
}

/// The send response header (Java's `SendMessageResponseHeader`, plus the `MSG_REGION` and
/// `TRACE_ON` ext fields the broker adds).
///
/// `trace_on` is read as Java's `processSendResponse` does: anything but exactly `"false"`
/// is `true`.
///
/// ```
/// use rmq_common::header::send::SendMessageResponseHeader;
/// use rmq_common::{CommandHeader, ExtFields};
/// let ext: ExtFields = [
///     ("msgId", "7F00000100002A9F00000000004988BA"),
///     ("queueId", "0"),
///     ("queueOffset", "0"),
///     ("MSG_REGION", "DefaultRegion"),
///     ("TRACE_ON", "true"),
/// ]
/// .into_iter()
/// .collect();
/// let h = SendMessageResponseHeader::read_from(&ext)?;
/// assert_eq!(h.queue_offset, 0);
/// assert_eq!(h.region_id.as_deref(), Some("DefaultRegion"));
/// assert_eq!(h.trace_on, Some(true));
/// # Ok::<(), rmq_common::HeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageResponseHeader {
    /// `msgId`: the offset message id (comma-separated for a batch).
    pub msg_id: String,
    /// `queueId`: the queue actually written.
    pub queue_id: i32,
    /// `queueOffset`: the consume-queue offset.
    pub queue_offset: i64,
    /// `transactionId` (= the stored message's `UNIQ_KEY`).
    pub transaction_id: Option<String>,
    /// `batchUniqId` (inner batches only).
    pub batch_uniq_id: Option<String>,
    /// `MSG_REGION` ext field. Brokers name their region `DefaultRegion` unless configured
    /// otherwise: that name is read without an allocation ([`DEFAULT_REGION`], borrowed).
    pub region_id: Option<Cow<'static, str>>,
    /// `TRACE_ON` ext field.
    pub trace_on: Option<bool>,
    /// `recallHandle` (5.x brokers, timer messages only): what
    /// [`RecallHandle`](crate::recall::RecallHandle) decodes.
    pub recall_handle: Option<String>,
}

impl CommandHeader for SendMessageResponseHeader {
    fn write_to(&self, ext: &mut ExtFields) {
        ext.insert(key("msgId"), self.msg_id.as_str());
        ext.insert(key("queueId"), self.queue_id.to_string());
        ext.insert(key("queueOffset"), self.queue_offset.to_string());
        if let Some(v) = &self.transaction_id {
            ext.insert(key("transactionId"), v.as_str());
        }
        if let Some(v) = &self.batch_uniq_id {
            ext.insert(key("batchUniqId"), v.as_str());
        }
        if let Some(v) = &self.region_id {
            ext.insert(key(crate::property::MSG_REGION), &**v);
        }
        if let Some(v) = self.trace_on {
            ext.insert(key(crate::property::TRACE_ON), bool_str(v));
        }
        if let Some(v) = &self.recall_handle {
            ext.insert(key("recallHandle"), v.as_str());
        }
    }

    /// One pass over the fields (this runs for every send answer); a key given twice counts
    /// with its last value, as [`ExtFields::get`]. Fields still in the JSON text they arrived
    /// in are read by their known key names, without a search for the end of those keys.
    fn read_from(ext: &ExtFields) -> Result<Self, HeaderError> {
        let slots = match ext.as_json() {
            Some(json) => json.pick(response_key),
            None => {
                let mut slots = [None; RESPONSE_KEYS];
                for (k, v) in ext.iter() {
                    if let Some(i) = response_slot(k) {
                        slots[i] = Some(v);
                    }
                }
                slots
            }
        };
        let [msg_id, queue_id, queue_offset, transaction_id, batch_uniq_id, region_id, trace_on, recall_handle] =
            slots;
        let owned = |v: Option<&str>| v.map(str::to_owned);
        Ok(Self {
            msg_id: msg_id
                .map(str::to_owned)
                .ok_or(HeaderError::Missing { field: "msgId" })?,
            queue_id: number(queue_id, "queueId", "i32")?,
            queue_offset: number(queue_offset, "queueOffset", "i64")?,
            transaction_id: owned(transaction_id),
            batch_uniq_id: owned(batch_uniq_id),
            region_id: region_id.map(region),
            trace_on: trace_on.map(|v| v != "false"),
            recall_handle: owned(recall_handle),
        })
    }
}

/// The region brokers report unless configured otherwise (`MSG_REGION`: the broker's
/// `regionId`, by default Java's `MixAll.DEFAULT_TRACE_REGION_ID`).
pub const DEFAULT_REGION: &str = "DefaultRegion";

/// A region's name as read: [`DEFAULT_REGION`] borrowed (every send answer of a broker left at
/// its default carries it), any other name copied.
fn region(v: &str) -> Cow<'static, str> {
    if v == DEFAULT_REGION {
        Cow::Borrowed(DEFAULT_REGION)
    } else {
        Cow::Owned(v.to_owned())
    }
}

/// How many keys [`SendMessageResponseHeader`] reads.
const RESPONSE_KEYS: usize = 8;

/// The slot of a response key: msgId, queueId, queueOffset, transactionId, batchUniqId,
/// `MSG_REGION`, `TRACE_ON`, recallHandle.
fn response_slot(key: &str) -> Option<usize> {
    Some(match key {
        "msgId" => 0,
        "queueId" => 1,
        "queueOffset" => 2,
        "transactionId" => 3,
        "batchUniqId" => 4,
        crate::property::MSG_REGION => 5,
        crate::property::TRACE_ON => 6,
        "recallHandle" => 7,
        _ => return None,
    })
}

/// `Some((slot, N))` when `rest` starts with the `N` bytes of `name`.
#[inline(always)]
fn lit<const N: usize>(rest: &[u8], name: &[u8; N], slot: usize) -> Option<(usize, usize)> {
    (rest.first_chunk::<N>() == Some(name)).then_some((slot, N))
}

/// [`response_slot`] for the bytes of a plain JSON key and what follows it: the key names with
/// their closing quote, told by their first byte and compared as fixed-size arrays.
#[inline]
fn response_key(rest: &[u8]) -> Option<(usize, usize)> {
    match *rest.first()? {
        b'm' => lit(rest, b"msgId\"", 0),
        b'q' => lit(rest, b"queueId\"", 1).or_else(|| lit(rest, b"queueOffset\"", 2)),
        b't' => lit(rest, b"transactionId\"", 3),
        b'b' => lit(rest, b"batchUniqId\"", 4),
        b'M' => lit(rest, b"MSG_REGION\"", 5),
        b'T' => lit(rest, b"TRACE_ON\"", 6),
        b'r' => lit(rest, b"recallHandle\"", 7),
        _ => None,
    }
}

/// A required number read from its text (as [`required_num`]).
fn number<T: std::str::FromStr>(
    v: Option<&str>,
    field: &'static str,
    expected: &'static str,
) -> Result<T, HeaderError> {
    let v = v.ok_or(HeaderError::Missing { field })?;
    v.parse().map_err(|_| HeaderError::Invalid {
        field,
        value: v.to_owned(),
        expected,
    })
}

#[cfg(test)]
#[path = "send_response_tests.rs"]
mod response_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_region_is_read_without_a_copy() {
        let read = |region: &str| {
            let ext: ExtFields = [
                ("msgId", "M"),
                ("queueId", "0"),
                ("queueOffset", "0"),
                ("MSG_REGION", region),
            ]
            .into_iter()
            .collect();
            SendMessageResponseHeader::read_from(&ext).map(|h| h.region_id)
        };
        assert!(matches!(
            read("DefaultRegion"),
            Ok(Some(Cow::Borrowed("DefaultRegion")))
        ));
        assert!(matches!(read("eu-1"), Ok(Some(Cow::Owned(r))) if r == "eu-1"));
        assert!(matches!(read(""), Ok(Some(Cow::Owned(r))) if r.is_empty()));
    }

    fn sample() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 1,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("WAIT\u{1}true\u{2}".into()),
            reconsume_times: Some(0),
            unit_mode: Some(false),
            batch: Some(false),
            max_reconsume_times: None,
            broker_name: Some("broker-a".into()),
        }
    }

    #[test]
    fn v1_keys() {
        let ext = sample().to_ext_fields();
        let keys: Vec<&str> = ext.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "producerGroup",
                "topic",
                "defaultTopic",
                "defaultTopicQueueNums",
                "queueId",
                "sysFlag",
                "bornTimestamp",
                "flag",
                "properties",
                "reconsumeTimes",
                "unitMode",
                "batch",
                "bname"
            ]
        );
    }

    #[test]
    fn read_for_code_picks_names() {
        let h = sample();
        let v1 = h.to_ext_fields();
        let v2 = SendMessageRequestHeaderV2(h.clone()).to_ext_fields();
        for code in [RequestCode::SEND_MESSAGE, RequestCode::SEND_REPLY_MESSAGE] {
            assert_eq!(
                SendMessageRequestHeader::read_for_code(code, &v1),
                Ok(h.clone())
            );
        }
        for code in [
            RequestCode::SEND_MESSAGE_V2,
            RequestCode::SEND_BATCH_MESSAGE,
            RequestCode::SEND_REPLY_MESSAGE_V2,
        ] {
            assert_eq!(
                SendMessageRequestHeader::read_for_code(code, &v2),
                Ok(h.clone())
            );
            assert_eq!(
                SendMessageRequestHeader::read_for_code(code, &v1),
                Err(HeaderError::Missing { field: "a" })
            );
        }
    }

    #[test]
    fn trace_on_is_true_unless_exactly_false() {
        let base: ExtFields = [("msgId", "X"), ("queueId", "1"), ("queueOffset", "2")]
            .into_iter()
            .collect();
        for (v, want) in [
            ("true", true),
            ("false", false),
            ("FALSE", true),
            ("", true),
        ] {
            let mut ext = base.clone();
            ext.insert("TRACE_ON", v);
            assert_eq!(
                SendMessageResponseHeader::read_from(&ext).map(|h| h.trace_on),
                Ok(Some(want))
            );
        }
        assert_eq!(
            SendMessageResponseHeader::read_from(&base).map(|h| h.trace_on),
            Ok(None)
        );
    }

    #[test]
    fn response_errors_and_repeated_keys() {
        let read = |pairs: &[(&str, &str)]| {
            let mut ext = ExtFields::new();
            for (k, v) in pairs {
                ext.push(
                    bytestring::ByteString::from(*k),
                    bytestring::ByteString::from(*v),
                );
            }
            SendMessageResponseHeader::read_from(&ext)
        };
        let missing = |field| Err(HeaderError::Missing { field });
        assert_eq!(
            read(&[("queueId", "1"), ("queueOffset", "2")]),
            missing("msgId")
        );
        assert_eq!(
            read(&[("msgId", "X"), ("queueOffset", "2")]),
            missing("queueId")
        );
        assert_eq!(
            read(&[("msgId", "X"), ("queueId", "1")]),
            missing("queueOffset")
        );
        assert_eq!(
            read(&[("msgId", "X"), ("queueId", "x1"), ("queueOffset", "2")]),
            Err(HeaderError::Invalid {
                field: "queueId",
                value: "x1".into(),
                expected: "i32",
            })
        );
        // The last value of a repeated key counts, as `ExtFields::get` reads it.
        let h = read(&[
            ("msgId", "A"),
            ("queueId", "1"),
            ("queueOffset", "2"),
            ("msgId", "B"),
            ("MSG_REGION", "r1"),
            ("transactionId", "t"),
            ("batchUniqId", "u"),
            ("recallHandle", "h"),
            ("other", "ignored"),
        ]);
        assert_eq!(
            h,
            Ok(SendMessageResponseHeader {
                msg_id: "B".into(),
                queue_id: 1,
                queue_offset: 2,
                transaction_id: Some("t".into()),
                batch_uniq_id: Some("u".into()),
                region_id: Some("r1".into()),
                trace_on: None,
                recall_handle: Some("h".into()),
            })
        );
    }
}
