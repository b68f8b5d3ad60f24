//! Topic route data (`TopicRouteData`, `QueueData`, `BrokerData`, PROTOCOL §7.2) and
//! permission bits (`PermName`, §7.3).
//!
//! Plain, strict serde with Java's JSON names. Optional and 5.x-only fields may be absent or
//! `null`; `QueueData.topicSysFlag` also reads the pre-4.9 spelling `topicSynFlag`; the route's
//! static-topic mapping reads both Java's `topicQueueMappingByBroker` and the Rust server's
//! `topicQueueMappingInfo`. The fastjson unquoted-key fallback lives in
//! `rmq-nameserver-client`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// Broker id of a master in [`BrokerData::broker_addrs`] (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;

/// Permission bits of a topic or broker (`PermName.java`).
pub mod perm {
    /// Priority.
    pub const PRIORITY: i32 = 1 << 3;
    /// Readable.
    pub const READ: i32 = 1 << 2;
    /// Writeable.
    pub const WRITE: i32 = 1 << 1;
    /// Inherited (the auto-create topic `TBW102` has it).
    pub const INHERIT: i32 = 1;

    /// Whether `perm` allows writing.
    ///
    /// ```
    /// use rmq_common::route::perm;
    /// assert!(perm::is_writeable(6));
    /// assert!(!perm::is_writeable(4));
    /// ```
    #[must_use]
    pub const fn is_writeable(perm: i32) -> bool {
        perm & WRITE == WRITE
    }

    /// Whether `perm` allows reading.
    ///
    /// ```
    /// assert!(rmq_common::route::perm::is_readable(4));
    /// ```
    #[must_use]
    pub const fn is_readable(perm: i32) -> bool {
        perm & READ == READ
    }

    /// Whether `perm` has the inherit bit.
    ///
    /// ```
    /// assert!(rmq_common::route::perm::is_inherited(7));
    /// ```
    #[must_use]
    pub const fn is_inherited(perm: i32) -> bool {
        perm & INHERIT == INHERIT
    }

    /// Whether `perm` is a valid configuration value (`0 <= perm < 8`, `PermName.isValid`).
    #[must_use]
    pub const fn is_valid(perm: i32) -> bool {
        perm >= 0 && perm < PRIORITY
    }
}

/// Deserializes `null` as the type's default (fastjson writes `null` or omits empty values).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The route of a topic as a name server answers `GET_ROUTEINFO_BY_TOPIC`.
///
/// ```
/// use rmq_common::route::TopicRouteData;
/// let json = r#"{"queueDatas":[{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,
///   "perm":6,"topicSynFlag":0}],"brokerDatas":[{"cluster":"c","brokerName":"broker-a",
///   "brokerAddrs":{"0":"127.0.0.1:10911","1":"127.0.0.1:10912"}}]}"#;
/// let route: TopicRouteData = serde_json::from_str(json)?;
/// assert_eq!(route.queue_datas[0].write_queue_nums, 4);
/// assert_eq!(route.broker_datas[0].master_addr(), Some("127.0.0.1:10911"));
/// assert!(route.filter_server_table.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    /// `orderTopicConf`: `"brokerA:4;brokerB:4"` for ordered topics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// `queueDatas`: one entry per broker name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub queue_datas: Vec<QueueData>,
    /// `brokerDatas`: one entry per broker name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub broker_datas: Vec<BrokerData>,
    /// `filterServerTable` (legacy; broker address → filter servers).
    #[serde(default, deserialize_with = "null_as_default")]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
    /// `topicQueueMappingByBroker` (5.x static topics; the Rust server calls it
    /// `topicQueueMappingInfo`).
    #[serde(
        default,
        alias = "topicQueueMappingInfo",
        skip_serializing_if = "Option::is_none"
    )]
    pub topic_queue_mapping_by_broker: Option<BTreeMap<String, TopicQueueMappingInfo>>,
}

impl TopicRouteData {
    /// The broker data of `broker_name`.
    #[must_use]
    pub fn broker(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }
}

/// The queues of a topic on one broker name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    /// `brokerName`.
    pub broker_name: String,
    /// `readQueueNums`.
    #[serde(default)]
    pub read_queue_nums: i32,
    /// `writeQueueNums`.
    #[serde(default)]
    pub write_queue_nums: i32,
    /// `perm`: see [`perm`].
    #[serde(default)]
    pub perm: i32,
    /// `topicSysFlag` (alias `topicSynFlag` up to 4.8).
    #[serde(default, alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
}

impl QueueData {
    /// Whether the queues may be written ([`perm::is_writeable`]).
    #[must_use]
    pub const fn is_writeable(&self) -> bool {
        perm::is_writeable(self.perm)
    }

    /// Whether the queues may be read ([`perm::is_readable`]).
    #[must_use]
    pub const fn is_readable(&self) -> bool {
        perm::is_readable(self.perm)
    }
}

/// The addresses of one broker name (a master and its slaves).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// `cluster`.
    #[serde(default)]
    pub cluster: String,
    /// `brokerName`.
    pub broker_name: String,
    /// `brokerAddrs`: broker id → `"ip:port"`; id [`MASTER_ID`] is the master.
    #[serde(default, deserialize_with = "null_as_default")]
    pub broker_addrs: BTreeMap<i64, String>,
    /// `zoneName` (5.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    /// `enableActingMaster` (5.x).
    #[serde(default, deserialize_with = "null_as_default")]
    pub enable_acting_master: bool,
}

impl BrokerData {
    /// The master's address (broker id 0).
    ///
    /// ```
    /// use rmq_common::route::BrokerData;
    /// let mut b = BrokerData { broker_name: "broker-a".into(), ..Default::default() };
    /// assert_eq!(b.master_addr(), None);
    /// b.broker_addrs.insert(0, "10.0.0.1:10911".into());
    /// assert_eq!(b.master_addr(), Some("10.0.0.1:10911"));
    /// ```
    #[must_use]
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

/// Static-topic queue mapping of one broker (5.x `TopicQueueMappingInfo`); kept for
/// completeness, a producer does not need it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicQueueMappingInfo {
    /// `topic`.
    #[serde(default)]
    pub topic: Option<String>,
    /// `scope` (`"__global__"`).
    #[serde(default)]
    pub scope: Option<String>,
    /// `totalQueues`.
    #[serde(default)]
    pub total_queues: i32,
    /// `bname`.
    #[serde(default)]
    pub bname: Option<String>,
    /// `epoch`.
    #[serde(default)]
    pub epoch: i64,
    /// `dirty`.
    #[serde(default)]
    pub dirty: bool,
    /// `currIdMap`: logical → physical queue id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub curr_id_map: BTreeMap<i32, i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_bits() {
        let cases = [
            (0, false, false, false),
            (2, true, false, false),
            (4, false, true, false),
            (6, true, true, false),
            (7, true, true, true),
        ];
        for (p, w, r, i) in cases {
            assert_eq!(
                (
                    perm::is_writeable(p),
                    perm::is_readable(p),
                    perm::is_inherited(p)
                ),
                (w, r, i),
                "{p}"
            );
        }
        assert!(perm::is_valid(7));
        assert!(!perm::is_valid(8));
        assert!(!perm::is_valid(-1));
    }

    #[test]
    fn nulls_and_missing_are_defaults() {
        let json = r#"{"orderTopicConf":null,"queueDatas":null,"brokerDatas":[{"brokerName":"b","brokerAddrs":null,"zoneName":null,"enableActingMaster":null}],"filterServerTable":null,"topicQueueMappingInfo":null}"#;
        let r: TopicRouteData = serde_json::from_str(json).expect("parse");
        assert!(r.queue_datas.is_empty());
        assert!(r.broker_datas[0].broker_addrs.is_empty());
        assert!(!r.broker_datas[0].enable_acting_master);
        assert_eq!(r.topic_queue_mapping_by_broker, None);
        assert_eq!(
            serde_json::from_str::<TopicRouteData>("{}").expect("empty"),
            TopicRouteData::default()
        );
    }

    #[test]
    fn serializes_java_names_and_round_trips() {
        let mut b = BrokerData {
            cluster: "c".into(),
            broker_name: "broker-a".into(),
            ..Default::default()
        };
        b.broker_addrs.insert(0, "127.0.0.1:10911".into());
        let r = TopicRouteData {
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![b],
            ..Default::default()
        };
        let json = serde_json::to_string(&r).expect("serialize");
        assert_eq!(
            json,
            r#"{"queueDatas":[{"brokerName":"broker-a","readQueueNums":4,"writeQueueNums":4,"perm":6,"topicSysFlag":0}],"brokerDatas":[{"cluster":"c","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:10911"},"enableActingMaster":false}],"filterServerTable":{}}"#
        );
        assert_eq!(
            serde_json::from_str::<TopicRouteData>(&json).expect("parse"),
            r
        );
    }

    #[test]
    fn mapping_info_under_both_names() {
        for key in ["topicQueueMappingByBroker", "topicQueueMappingInfo"] {
            let json = format!(
                r#"{{"{key}":{{"broker-a":{{"topic":"T","totalQueues":2,"bname":"broker-a","epoch":5,"dirty":false,"currIdMap":{{"0":1}}}}}}}}"#
            );
            let r: TopicRouteData = serde_json::from_str(&json).expect("parse");
            let m = r.topic_queue_mapping_by_broker.expect("mapping");
            assert_eq!(m["broker-a"].curr_id_map.get(&0), Some(&1));
            assert_eq!(m["broker-a"].epoch, 5);
        }
    }
}
