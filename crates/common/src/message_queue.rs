//! `MessageQueue`: one queue of a topic on one broker.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A queue of a topic on a broker (Java's `MessageQueue`).
///
/// Ordered by topic, then broker name, then queue id, as Java's `compareTo`. Serializes with
/// Java's JSON names (`topic`, `brokerName`, `queueId`).
///
/// ```
/// use rmq_common::MessageQueue;
/// let mq = MessageQueue::new("TopicTest", "broker-a", 2);
/// assert_eq!(mq.to_string(), "MessageQueue [topic=TopicTest, brokerName=broker-a, queueId=2]");
/// assert!(mq < MessageQueue::new("TopicTest", "broker-b", 0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// The topic.
    pub topic: String,
    /// The broker name (not an address).
    pub broker_name: String,
    /// The queue id within the topic on that broker.
    pub queue_id: i32,
}

impl MessageQueue {
    /// A queue.
    #[must_use]
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MessageQueue [topic={}, brokerName={}, queueId={}]",
            self.topic, self.broker_name, self.queue_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_is_topic_broker_id() {
        let mut v = [
            MessageQueue::new("B", "a", 0),
            MessageQueue::new("A", "b", 0),
            MessageQueue::new("A", "a", 3),
            MessageQueue::new("A", "a", -1),
        ];
        v.sort();
        let got: Vec<String> = v
            .iter()
            .map(|q| format!("{}/{}/{}", q.topic, q.broker_name, q.queue_id))
            .collect();
        assert_eq!(got, ["A/a/-1", "A/a/3", "A/b/0", "B/a/0"]);
    }

    #[test]
    fn json_uses_java_names() {
        let mq = MessageQueue::new("T", "broker-a", 1);
        let json = serde_json::to_string(&mq).expect("serialize");
        assert_eq!(json, r#"{"topic":"T","brokerName":"broker-a","queueId":1}"#);
        assert_eq!(
            serde_json::from_str::<MessageQueue>(&json).expect("parse"),
            mq
        );
    }
}
