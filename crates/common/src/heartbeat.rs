//! The `HEART_BEAT` (34) JSON body (`HeartbeatData`, PROTOCOL §10.2).

use serde::{Deserialize, Serialize};

/// The heartbeat body: the client id and the groups it hosts.
///
/// Serializes with Java's names (`clientID`, `producerDataSet`, `consumerDataSet`); a 5.x
/// body's extra fields (`heartbeatFingerprint`, `withoutSub`) are ignored on decode.
///
/// ```
/// use rmq_common::heartbeat::{HeartbeatData, ProducerData};
/// let hb = HeartbeatData {
///     client_id: "127.0.0.1@fixture".into(),
///     producer_data_set: vec![ProducerData::new("FixtureGroup")],
///     consumer_data_set: vec![],
/// };
/// assert_eq!(
///     serde_json::to_string(&hb)?,
///     r#"{"clientID":"127.0.0.1@fixture","producerDataSet":[{"groupName":"FixtureGroup"}],"consumerDataSet":[]}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatData {
    /// `clientID`: `ip@instance` (see PROTOCOL §10.1).
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// `producerDataSet`: one entry per producer group.
    #[serde(rename = "producerDataSet", default)]
    pub producer_data_set: Vec<ProducerData>,
    /// `consumerDataSet`: consumer groups, kept as raw JSON (a producer sends none).
    #[serde(rename = "consumerDataSet", default)]
    pub consumer_data_set: Vec<serde_json::Value>,
}

/// One producer group in a heartbeat (`ProducerData`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct ProducerData {
    /// `groupName`.
    #[serde(rename = "groupName")]
    pub group_name: String,
}

impl ProducerData {
    /// A producer group entry.
    #[must_use]
    pub fn new(group_name: impl Into<String>) -> Self {
        Self {
            group_name: group_name.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_java5_body_with_extra_fields() {
        let json = r#"{"clientID":"192.168.1.10@12345#81234567890123","consumerDataSet":[],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"pg"}],"withoutSub":false}"#;
        let hb: HeartbeatData = serde_json::from_str(json).expect("parse");
        assert_eq!(hb.client_id, "192.168.1.10@12345#81234567890123");
        let groups: Vec<&str> = hb
            .producer_data_set
            .iter()
            .map(|p| p.group_name.as_str())
            .collect();
        assert_eq!(groups, ["CLIENT_INNER_PRODUCER", "pg"]);
    }

    #[test]
    fn missing_sets_are_empty() {
        let hb: HeartbeatData = serde_json::from_str(r#"{"clientID":"x"}"#).expect("parse");
        assert!(hb.producer_data_set.is_empty() && hb.consumer_data_set.is_empty());
    }
}
