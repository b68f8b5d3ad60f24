//! `--proxy HOST:PORT`: a RocketMQ 5 gRPC proxy instead of the name servers (`rmq send`,
//! `rmq bench`, `rmq route`, and the other commands that take `--namesrv`).

use std::time::Duration;

use clap::Args;
use rmq_grpc::{pb, ClientMeta, Endpoint, Session, SessionConfig};
use rmq_producer::ProducerBuilder;
use serde::Serialize;

use crate::cli::RouteArgs;
use crate::fatal::Fatal;
use crate::output::{one_line, print_stdout};

/// Proxy option.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ProxyArgs {
    /// Send through this RocketMQ 5 gRPC proxy (`host:port`) instead of the name servers.
    #[arg(long, env = "RMQ_PROXY", value_name = "HOST:PORT")]
    pub(crate) proxy: Option<String>,
}

impl ProxyArgs {
    /// `builder` sending through the proxy, when one is given.
    pub(crate) fn apply(&self, builder: ProducerBuilder) -> ProducerBuilder {
        match &self.proxy {
            Some(p) => builder.proxy(p.as_str()),
            None => builder,
        }
    }
}

/// What `rmq route --proxy` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxyRouteDoc<'a> {
    topic: &'a str,
    proxy: String,
    /// Every queue the proxy answered.
    message_queues: Vec<QueueDoc>,
    /// The writable queues of master brokers: what a producer sends to.
    writable: Vec<QueueDoc>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueueDoc {
    broker_name: String,
    broker_id: i32,
    queue_id: i32,
    permission: &'static str,
    accept_message_types: Vec<&'static str>,
}

fn queue_doc(q: &pb::MessageQueue) -> QueueDoc {
    let broker = q.broker.clone().unwrap_or_default();
    QueueDoc {
        broker_name: broker.name,
        broker_id: broker.id,
        queue_id: q.id,
        permission: pb::Permission::try_from(q.permission).map_or("UNKNOWN", |p| p.as_str_name()),
        accept_message_types: q
            .accept_message_types
            .iter()
            .map(|t| pb::MessageType::try_from(*t).map_or("UNKNOWN", |t| t.as_str_name()))
            .collect(),
    }
}

/// `rmq route --proxy`: the proxy's `QueryRoute` answer as one JSON document.
pub(crate) async fn route(args: &RouteArgs, proxy: &str) -> Result<u8, Fatal> {
    let endpoint: Endpoint = proxy
        .parse()
        .map_err(|e: rmq_grpc::EndpointError| Fatal::usage(e.to_string()))?;
    let client_id = format!("rmq-cli@{}", std::process::id());
    let meta = ClientMeta::new(&client_id, env!("CARGO_PKG_VERSION"), "", None)
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let session = Session::new(SessionConfig {
        endpoint: endpoint.clone(),
        meta,
        connect_timeout: Duration::from_millis(args.timeout_ms),
        keep_alive: None,
        tls: args.namesrv.tls.config()?,
    })
    .map_err(|e| Fatal::usage(format!("proxy {proxy}: {}", one_line(&e))))?;
    let req = pb::QueryRouteRequest {
        topic: Some(pb::Resource {
            resource_namespace: String::new(),
            name: args.topic.clone(),
        }),
        endpoints: Some(endpoint.to_pb()),
    };
    let resp = session
        .query_route(req, Duration::from_millis(args.timeout_ms))
        .await
        .map_err(|e| {
            Fatal::failed(format!(
                "route of topic {} from {proxy}: {}",
                args.topic,
                one_line(&e)
            ))
        })?;
    if let Some(st) = resp
        .status
        .as_ref()
        .filter(|s| !rmq_grpc::code::is_ok(s.code))
    {
        return Err(Fatal::failed(format!(
            "route of topic {} from {proxy}: {}({}): {}",
            args.topic,
            rmq_grpc::code::name(st.code),
            st.code,
            st.message
        )));
    }
    let doc = document(&args.topic, &endpoint, &resp.message_queues);
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Fatal::failed(format!("cannot print the route: {e}")))?;
    print_stdout(&text);
    Ok(crate::output::exit::OK)
}

fn document<'a>(
    topic: &'a str,
    endpoint: &Endpoint,
    queues: &[pb::MessageQueue],
) -> ProxyRouteDoc<'a> {
    let writable = queues
        .iter()
        .filter(|q| {
            q.broker.as_ref().is_some_and(|b| b.id == 0)
                && matches!(
                    pb::Permission::try_from(q.permission),
                    Ok(pb::Permission::Write | pb::Permission::ReadWrite)
                )
        })
        .map(queue_doc)
        .collect();
    ProxyRouteDoc {
        topic,
        proxy: endpoint.to_string(),
        message_queues: queues.iter().map(queue_doc).collect(),
        writable,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    #[test]
    fn the_proxy_reaches_the_producer_config() {
        let t = T::try_parse_from(["t", "--proxy", "127.0.0.1:8081"]).expect("parses");
        let b = t.proxy.apply(ProducerBuilder::new("g"));
        assert_eq!(b.config().proxy.as_deref(), Some("127.0.0.1:8081"));
        let none = T::try_parse_from(["t"]).expect("parses");
        assert_eq!(
            none.proxy.apply(ProducerBuilder::new("g")).config().proxy,
            None
        );
    }

    #[test]
    fn the_route_document_keeps_writable_masters() {
        let q = |broker: &str, id: i32, qid: i32, perm: pb::Permission| pb::MessageQueue {
            topic: None,
            id: qid,
            permission: perm as i32,
            broker: Some(pb::Broker {
                name: broker.into(),
                id,
                endpoints: None,
            }),
            accept_message_types: vec![pb::MessageType::Normal as i32],
        };
        let queues = [
            q("broker-a", 0, 0, pb::Permission::ReadWrite),
            q("broker-a", 1, 0, pb::Permission::ReadWrite),
            q("broker-b", 0, 0, pb::Permission::Read),
        ];
        let ep: Endpoint = "127.0.0.1:8081".parse().unwrap();
        let doc = serde_json::to_value(document("T", &ep, &queues)).unwrap();
        assert_eq!(doc["proxy"], "127.0.0.1:8081");
        assert_eq!(doc["messageQueues"].as_array().unwrap().len(), 3);
        assert_eq!(
            doc["writable"],
            serde_json::json!([{"brokerName":"broker-a","brokerId":0,"queueId":0,"permission":"READ_WRITE","acceptMessageTypes":["NORMAL"]}])
        );
    }
}
