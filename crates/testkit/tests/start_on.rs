//! `MockNameServer::start_on` / `MockCluster::start_on`: the name server listens on the address
//! given (a development cluster at a well-known address). Tests still bind `127.0.0.1:0`; that
//! the exact address is used shows in a second bind of it failing.

use std::future::Future;
use std::io::ErrorKind;
use std::time::Duration;

use rmq_common::{GetRouteInfoRequestHeader, RequestCode, ResponseCode};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::{MockCluster, MockNameServer};

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

fn route_request(topic: &str) -> RemotingCommand {
    let header = GetRouteInfoRequestHeader {
        topic: topic.into(),
        accept_standard_json_only: Some(true),
    };
    RemotingCommand::request_with_header(RequestCode::GET_ROUTEINFO_BY_TOPIC, &header)
}

#[tokio::test]
async fn a_name_server_binds_the_address_it_is_given() {
    let ns = within(MockNameServer::start_on("127.0.0.1:0"))
        .await
        .unwrap();
    let addr = ns.socket_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let taken = within(MockNameServer::start_on(addr)).await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AddrInUse, "{taken}");
    within(ns.shutdown()).await;
}

#[tokio::test]
async fn a_cluster_serves_its_routes_from_the_given_name_server_address() {
    let cluster = within(MockCluster::start_on("127.0.0.1:0", 2))
        .await
        .unwrap();
    cluster.create_topic("T", 2);
    let c = RemotingClient::new(RemotingConfig::default());
    let resp = within(c.invoke_sync(
        &cluster.namesrv_addr(),
        route_request("T"),
        Duration::from_secs(10),
    ))
    .await
    .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
    assert_eq!(cluster.route("T").unwrap().broker_datas.len(), 2);

    let taken = within(MockCluster::start_on(cluster.namesrv().socket_addr(), 1))
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AddrInUse, "{taken}");
    within(cluster.shutdown()).await;
}
