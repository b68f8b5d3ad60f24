//! `rmq route`: a topic's route as the name server answers it, and the publish info a producer
//! derives from it (writable queues, master address per broker), as one JSON document.

use std::time::Duration;

use std::collections::BTreeMap;

use rmq_common::TopicRouteData;
use rmq_nameserver_client::{parse_addr_list, NameServerClient, TopicPublishInfo};
use rmq_remoting::{RemotingClient, RemotingConfig};
use serde::Serialize;

use crate::cli::RouteArgs;
use crate::fatal::Fatal;
use crate::output::{one_line, print_stdout};

/// Runs `rmq route` against `namesrv`; prints the document on stdout.
pub(crate) async fn run(args: &RouteArgs, namesrv: &str) -> Result<u8, Fatal> {
    let mut config = RemotingConfig::default();
    config.tls = args.namesrv.tls.config()?;
    let remoting = RemotingClient::new(config);
    let client = NameServerClient::new(remoting.clone(), parse_addr_list(namesrv));
    let result = client
        .topic_route(&args.topic, Duration::from_millis(args.timeout_ms))
        .await;
    remoting.shutdown().await;
    let route = result
        .map_err(|e| Fatal::failed(format!("route of topic {}: {}", args.topic, one_line(&e))))?;
    let info = TopicPublishInfo::from_route(&args.topic, &route);
    let text = serde_json::to_string_pretty(&document(&args.topic, &route, &info))
        .map_err(|e| Fatal::failed(format!("cannot print the route: {e}")))?;
    print_stdout(&text);
    Ok(crate::output::exit::OK)
}

/// What `rmq route` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RouteDoc<'a> {
    topic: &'a str,
    /// The route as the name server served it (Java's field names).
    route: &'a TopicRouteData,
    publish_info: PublishDoc<'a>,
}

/// The producer's view of the route.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PublishDoc<'a> {
    order_topic: bool,
    /// Whether any queue can be written.
    writable: bool,
    queues: Vec<QueueDoc<'a>>,
    /// Master address per broker name.
    master_addrs: &'a BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueDoc<'a> {
    broker_name: &'a str,
    queue_id: i32,
}

/// `{"topic", "route": <as served>, "publishInfo": {"orderTopic", "writable", "queues":
/// [{"brokerName","queueId"}], "masterAddrs": {broker: addr}}}`.
pub(crate) fn document<'a>(
    topic: &'a str,
    route: &'a TopicRouteData,
    info: &'a TopicPublishInfo,
) -> RouteDoc<'a> {
    let queues = info
        .queues
        .iter()
        .map(|q| QueueDoc {
            broker_name: &q.broker_name,
            queue_id: q.queue_id,
        })
        .collect();
    RouteDoc {
        topic,
        route,
        publish_info: PublishDoc {
            order_topic: info.order_topic,
            writable: info.is_ok(),
            queues,
            master_addrs: &info.broker_addrs,
        },
    }
}

#[cfg(test)]
mod tests {
    use rmq_common::route::perm;
    use rmq_testkit::RouteBuilder;

    use super::*;

    #[test]
    fn the_document_lists_writable_queues_and_masters() {
        let route = RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .queues("broker-a", 2)
            .broker("broker-b", "127.0.0.1:10921")
            .queue_data("broker-b", 4, 4, perm::READ) // not writable
            .build();
        let info = TopicPublishInfo::from_route("T", &route);
        let text = serde_json::to_string(&document("T", &route, &info)).unwrap();
        assert!(text.starts_with(r#"{"topic":"T","route":"#), "{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["topic"], "T");
        assert_eq!(doc["publishInfo"]["writable"], true);
        assert_eq!(doc["publishInfo"]["orderTopic"], false);
        assert_eq!(
            doc["publishInfo"]["queues"],
            serde_json::json!([{"brokerName":"broker-a","queueId":0},{"brokerName":"broker-a","queueId":1}])
        );
        assert_eq!(
            doc["publishInfo"]["masterAddrs"]["broker-a"],
            "127.0.0.1:10911"
        );
        // The route itself is printed with Java's names.
        let brokers = doc["route"]["brokerDatas"].as_array().unwrap();
        assert_eq!(brokers.len(), 2);
        assert!(doc["route"]["queueDatas"].is_array());
    }
}
