//! Topic administration on a real cluster's brokers (`UPDATE_AND_CREATE_TOPIC`).

use rmq_common::{ExtFields, RequestCode, ResponseCode};
use rmq_remoting::RemotingCommand;
use rmq_remoting::{RemotingClient, RemotingConfig};
use tokio::time::timeout;

use super::{RealCluster, INTEROP_TIMEOUT as T};

/// Creates (or updates) `topic` with 4 queues on the first `brokers` brokers, each asked
/// directly, with the topic `attributes` (e.g. `+message.type=FIFO`) when given. A broker
/// registers the topic with its name server on its own schedule: a route may miss it for a
/// while.
pub async fn create_topic_on_brokers(
    cluster: &RealCluster,
    topic: &str,
    attributes: Option<&str>,
    brokers: usize,
) {
    let client = RemotingClient::new(RemotingConfig::default());
    for (name, addr) in cluster.brokers.iter().take(brokers) {
        let mut ext: ExtFields = [
            ("topic", topic),
            ("defaultTopic", "TBW102"),
            ("readQueueNums", "4"),
            ("writeQueueNums", "4"),
            ("perm", "6"),
            ("topicFilterType", "SINGLE_TAG"),
            ("topicSysFlag", "0"),
            ("order", "false"),
        ]
        .into_iter()
        .collect();
        if let Some(attributes) = attributes {
            ext.insert("attributes", attributes);
        }
        let req = RemotingCommand::request(RequestCode::UPDATE_AND_CREATE_TOPIC, ext);
        let resp = timeout(T, client.invoke_sync(addr, req, T))
            .await
            .expect("in time")
            .expect("create topic");
        assert_eq!(
            resp.response_code(),
            ResponseCode::SUCCESS,
            "create {topic} on {name}"
        );
    }
}
