//! `NameServerClient` against mock name servers: failover, typed errors, request contents.

use std::future::Future;
use std::time::Duration;

use rmq_common::ResponseCode;
use rmq_nameserver_client::{NameServerClient, NameServerError, RouteDecodeError};
use rmq_remoting::{RemotingClient, RemotingConfig, RemotingError};
use rmq_testkit::{MockNameServer, RouteBuilder};

/// The deadline of one route request: each of two addresses gets half (3 s), ample for a
/// loopback connect and answer on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(6);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

fn remoting() -> RemotingClient {
    RemotingClient::new(RemotingConfig::default())
}

async fn serving(topic: &str) -> MockNameServer {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route(
        topic,
        RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .queues("broker-a", 4)
            .build(),
    );
    ns
}

#[tokio::test]
async fn first_refusing_second_serving_gives_a_route_within_the_deadline() {
    let down = serving("T").await;
    down.down().await;
    let up = serving("T").await;
    // Whatever the random start, both orders must work: try each as the first address.
    for addrs in [vec![down.addr(), up.addr()], vec![up.addr(), down.addr()]] {
        let client = NameServerClient::new(remoting(), addrs);
        for _ in 0..4 {
            let route = within(client.topic_route("T", DEADLINE)).await.unwrap();
            assert_eq!(route.queue_datas[0].write_queue_nums, 4);
        }
    }
    assert_eq!(down.total_requests(), 0);
    assert_eq!(up.request_count("T"), 8);
}

#[tokio::test]
async fn black_holed_first_is_skipped_within_the_deadline_and_the_good_one_stays_chosen() {
    let hole = serving("T").await;
    hole.faults().set_black_hole(true);
    let good = serving("T").await;
    let client = NameServerClient::new(remoting(), vec![hole.addr(), good.addr()]);
    // The black hole, when tried first, costs its half of the deadline once.
    for _ in 0..3 {
        within(client.topic_route("T", DEADLINE)).await.unwrap();
    }
    // At most one attempt went to the black hole: the client stuck to the one that answered.
    assert!(hole.request_count("T") <= 1, "{}", hole.request_count("T"));
    assert_eq!(good.request_count("T"), 3);
}

#[tokio::test]
async fn all_down_is_a_typed_error_naming_every_address() {
    let a = serving("T").await;
    let b = serving("T").await;
    a.down().await;
    b.down().await;
    let client = NameServerClient::new(remoting(), vec![a.addr(), b.addr()]);
    let err = within(client.topic_route("T", DEADLINE)).await.unwrap_err();
    let NameServerError::Unreachable { tried, last } = &err else {
        panic!("unexpected {err:?}");
    };
    let mut sorted = tried.clone();
    sorted.sort();
    let mut expected = vec![a.addr(), b.addr()];
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(matches!(last, RemotingError::Connect { .. }), "{last}");
    let text = err.to_string();
    assert!(
        text.contains(&a.addr()) && text.contains(&b.addr()),
        "{text}"
    );

    let none = NameServerClient::new(remoting(), vec![]);
    assert!(matches!(
        within(none.topic_route("T", DEADLINE)).await,
        Err(NameServerError::NoNameServer)
    ));
}

#[tokio::test]
async fn topic_not_exist_carries_the_remark_and_other_codes_are_server_errors() {
    let ns = serving("T").await;
    let client = NameServerClient::new(remoting(), vec![ns.addr()]);
    let err = within(client.topic_route("Nope", DEADLINE))
        .await
        .unwrap_err();
    match &err {
        NameServerError::TopicNotExist { topic, remark } => {
            assert_eq!(topic, "Nope");
            assert!(remark.as_deref().unwrap().contains("Nope"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_topic_not_exist());

    ns.faults().script_codes([ResponseCode::SYSTEM_ERROR]);
    let err = within(client.topic_route("T", DEADLINE)).await.unwrap_err();
    assert!(
        matches!(
            err,
            NameServerError::Server {
                code: ResponseCode::SYSTEM_ERROR,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn asks_for_standard_json_and_still_reads_fastjson_and_reports_bad_bodies() {
    let ns = serving("T").await;
    let client = NameServerClient::new(remoting(), vec![ns.addr()]);
    within(client.topic_route("T", DEADLINE)).await.unwrap();
    let req = &ns.requests()[0];
    assert_eq!(req.accept_standard_json_only, Some(true));
    assert_eq!(req.topic, "T");

    ns.set_route_body(
        "Old",
        &br#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"b","cluster":"c"}],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":2,"writeQueueNums":2,"topicSynFlag":0}]}"#[..],
    );
    let route = within(client.topic_route("Old", DEADLINE)).await.unwrap();
    assert_eq!(route.broker_datas[0].broker_addrs[&0], "10.0.0.1:10911");

    ns.set_route_body("Bad", &b"{\"queueDatas\":[{"[..]);
    let err = within(client.topic_route("Bad", DEADLINE))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NameServerError::BadRouteBody(RouteDecodeError::Invalid { .. })
        ),
        "{err:?}"
    );
    ns.set_route_body("Empty", &b""[..]);
    let err = within(client.topic_route("Empty", DEADLINE))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NameServerError::BadRouteBody(RouteDecodeError::Empty)),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_huge_timeout_means_no_practical_limit_not_a_panic() {
    let ns = serving("T").await;
    let client = NameServerClient::new(remoting(), vec![ns.addr()]);
    let route = within(client.topic_route("T", Duration::MAX))
        .await
        .unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    // The same through the transport directly.
    let resp = within(client.remoting().invoke_sync(
        &ns.addr(),
        rmq_remoting::RemotingCommand::request_with_header(
            rmq_common::RequestCode::GET_ROUTEINFO_BY_TOPIC,
            &rmq_common::header::route::GetRouteInfoRequestHeader::new("T"),
        ),
        Duration::MAX,
    ))
    .await
    .unwrap();
    assert_eq!(resp.response_code(), ResponseCode::SUCCESS);
}
