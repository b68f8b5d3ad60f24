//! Interop: the remoting layer against the real name server of `scripts/rocketmq-dev.sh`.
//!
//! `GET_ROUTEINFO_BY_TOPIC` for `TBW102` succeeds with a JSON header and with a ROCKETMQ binary
//! header (the server answers both in its own serialization, which the client must decode), and
//! an unknown topic comes back as `TOPIC_NOT_EXIST`, which the name-server client turns into a
//! typed error carrying the server's remark.

mod support;

use std::time::Duration;

use rmq_common::header::route::GetRouteInfoRequestHeader;
use rmq_common::{RequestCode, ResponseCode};
use rmq_nameserver_client::{decode_route, NameServerClient, NameServerError};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig, SerializeType};

const CALL: Duration = Duration::from_secs(10);

fn route_request(topic: &str, serialize_type: SerializeType) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader::new(topic);
    RemotingCommand::request_with_header(RequestCode::GET_ROUTEINFO_BY_TOPIC, &header)
        .with_serialize_type(serialize_type)
}

#[tokio::test]
async fn tbw102_route_in_both_serializations() {
    let Some(cluster) = support::real_cluster("tbw102_route_in_both_serializations") else {
        return;
    };
    let client = RemotingClient::new(RemotingConfig::default());
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        let resp = tokio::time::timeout(
            support::INTEROP_TIMEOUT,
            client.invoke_sync(&cluster.namesrv, route_request("TBW102", st), CALL),
        )
        .await
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{st:?}: invoke_sync failed: {e}"));
        assert!(resp.is_response(), "{st:?}: not a response: {resp:?}");
        assert_eq!(
            resp.response_code(),
            ResponseCode::SUCCESS,
            "{st:?}: {resp:?}"
        );
        let route = decode_route(&resp.body).unwrap_or_else(|e| panic!("{st:?}: {e}"));
        let mut names: Vec<&str> = route
            .queue_datas
            .iter()
            .map(|q| q.broker_name.as_str())
            .collect();
        names.sort_unstable();
        let mut expected: Vec<&str> = cluster.brokers.iter().map(|(n, _)| n.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(names, expected, "{st:?}: TBW102 must be on every broker");
        for (name, addr) in &cluster.brokers {
            let bd = route
                .broker(name)
                .unwrap_or_else(|| panic!("{st:?}: no broker data for {name}"));
            assert_eq!(
                bd.master_addr(),
                Some(addr.as_str()),
                "{st:?}: master of {name}"
            );
        }
    }
    assert_eq!(client.pending_len(), 0);
    client.shutdown().await;
}

#[tokio::test]
async fn unknown_topic_is_a_typed_error() {
    let Some(cluster) = support::real_cluster("unknown_topic_is_a_typed_error") else {
        return;
    };
    let topic = support::unique_topic("rmq_no_such_topic");
    let client = RemotingClient::new(RemotingConfig::default());

    // The raw answer: TOPIC_NOT_EXIST with a remark, in both serializations.
    for st in [SerializeType::Json, SerializeType::RocketMq] {
        let resp = tokio::time::timeout(
            support::INTEROP_TIMEOUT,
            client.invoke_sync(&cluster.namesrv, route_request(&topic, st), CALL),
        )
        .await
        .expect("bounded")
        .unwrap_or_else(|e| panic!("{st:?}: invoke_sync failed: {e}"));
        assert_eq!(
            resp.response_code(),
            ResponseCode::TOPIC_NOT_EXIST,
            "{st:?}: {resp:?}"
        );
        assert!(resp.body.is_empty(), "{st:?}: no route body expected");
    }

    // Through the name-server client it is a typed error naming the topic.
    let ns = NameServerClient::new(client.clone(), vec![cluster.namesrv.clone()]);
    let err = tokio::time::timeout(support::INTEROP_TIMEOUT, ns.topic_route(&topic, CALL))
        .await
        .expect("bounded")
        .expect_err("an unknown topic has no route");
    match &err {
        NameServerError::TopicNotExist { topic: t, remark } => {
            assert_eq!(t, &topic);
            assert!(
                remark.as_deref().is_some_and(|r| !r.is_empty()),
                "remark: {remark:?}"
            );
        }
        other => panic!("expected TopicNotExist, got {other:?}"),
    }
    assert!(err.is_topic_not_exist());
    client.shutdown().await;
}
