//! `RouteCache` under racing fetches of one topic: a late answer never replaces the route of a
//! fetch that started after it, and a refresh never brings back a topic the cache dropped.
//!
//! The races are made deterministic with the mock name server's delay, which is fixed (with the
//! route answered) when a request arrives: the tests wait for the request to be counted, then
//! change the route and the delay for the next requests.

use std::future::Future;
use std::time::Duration;

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::route::TopicRouteData;
use rmq_common::{RequestCode, ResponseCode};
use rmq_nameserver_client::{NameServerConfig, RouteCache, TopicPublishInfo};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::{MockCluster, MockNameServer, RouteBuilder, AUTO_CREATE_TOPIC};

const T: Duration = Duration::from_secs(10);
/// How long the first (slow) answer is held back; far longer than a fast answer needs. Should a
/// loaded machine ever take longer for the fast path, the answers arrive in order and the final
/// state is the same: the tests cannot fail spuriously, only lose their race.
const SLOW: Duration = Duration::from_secs(3);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

/// Waits (bounded) until the name server has counted `n` requests for `topic`.
async fn requests_reach(ns: &MockNameServer, topic: &str, n: usize) {
    within(async {
        while ns.request_count(topic) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Polls `cond` every 10 ms until it holds; panics after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(Duration::from_secs(10), async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "not within 10 s: {what}");
}

fn cache(addrs: Vec<String>) -> RouteCache {
    // No periodic refresh: every fetch in these tests is one the test starts.
    let config = NameServerConfig {
        // Well above SLOW: the slow answer must be received, not timed out.
        request_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(3600),
        topic_idle_expiry: Duration::from_secs(3600),
        ..NameServerConfig::new(addrs)
    };
    RouteCache::new(RemotingClient::new(RemotingConfig::default()), config)
}

fn queues(info: &TopicPublishInfo) -> String {
    info.queues
        .iter()
        .map(|q| format!("{}:{}", q.broker_name, q.queue_id))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cached_queues(cache: &RouteCache, topic: &str) -> String {
    cache.cached(topic).map(|i| queues(&i)).unwrap_or_default()
}

fn two_brokers() -> TopicRouteData {
    RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .broker("broker-b", "127.0.0.1:10921")
        .queues("broker-a", 2)
        .queues("broker-b", 2)
        .build()
}

fn broker_a_only() -> TopicRouteData {
    RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queues("broker-a", 2)
        .build()
}

#[tokio::test]
async fn a_late_periodic_answer_does_not_bring_back_a_dead_broker() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", two_brokers());
    let cache = cache(vec![ns.addr()]);
    within(cache.publish_info("T", false, T)).await.unwrap();

    // A periodic refresh whose answer (both brokers) is slow.
    ns.faults().set_delay(SLOW);
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.refresh("T").await })
    };
    requests_reach(&ns, "T", 2).await;

    // broker-b dies; a send failure refreshes at once and sees it gone.
    ns.faults().set_delay(Duration::ZERO);
    ns.set_route("T", broker_a_only());
    cache.refresh_now("T");
    eventually("immediate refresh stored", || {
        cached_queues(&cache, "T") == "broker-a:0 broker-a:1"
    })
    .await;

    // The late answer is older than the stored route: dropped.
    let late = within(slow).await.unwrap().unwrap();
    assert!(!late, "a stale answer was reported as a change");
    assert_eq!(cached_queues(&cache, "T"), "broker-a:0 broker-a:1");
    assert_eq!(cache.master_addr("broker-b"), None);
    assert_eq!(cache.all_master_addrs(), ["127.0.0.1:10911"]);
    within(cache.shutdown()).await;
}

fn send_v2(topic: &str) -> RemotingCommand {
    let header = SendMessageRequestHeaderV2(SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: 4,
        queue_id: 0,
        ..SendMessageRequestHeader::default()
    });
    RemotingCommand::request_with_header(RequestCode::SEND_MESSAGE_V2, &header).with_body(&b"x"[..])
}

#[tokio::test]
async fn a_late_default_topic_answer_does_not_replace_the_topics_own_route() {
    let cluster = within(MockCluster::start(2)).await.unwrap();
    cluster.set_auto_create(true);
    let ns = cluster.namesrv();
    let cache = cache(vec![cluster.namesrv_addr()]);
    let info = within(cache.publish_info("New", true, T)).await.unwrap();
    assert_eq!(info.queues.len(), 8, "{}", queues(&info));

    // A periodic refresh: the topic does not exist yet (slow answer), so it will follow TBW102.
    let before = ns.request_count("New");
    ns.faults().set_delay(SLOW);
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.refresh("New").await })
    };
    requests_reach(ns, "New", before + 1).await;
    ns.faults().set_delay(Duration::ZERO);

    // Meanwhile the first send creates the topic on broker-a, and a refresh stores its own route.
    let a = cluster.broker("broker-a").unwrap();
    let resp = within(
        cache
            .client()
            .remoting()
            .invoke_sync(&a.addr(), send_v2("New"), T),
    )
    .await
    .unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    assert!(within(cache.refresh("New")).await.unwrap());
    let own = "broker-a:0 broker-a:1 broker-a:2 broker-a:3";
    assert_eq!(cached_queues(&cache, "New"), own);

    // The slow refresh then fetches TBW102; its result is older than the own route: dropped.
    let late = within(slow).await.unwrap().unwrap();
    assert!(!late, "a stale answer was reported as a change");
    assert_eq!(ns.request_count(AUTO_CREATE_TOPIC), 2);
    assert_eq!(cached_queues(&cache, "New"), own);
    within(cluster.shutdown()).await;
}

#[tokio::test]
async fn a_refresh_in_flight_does_not_bring_back_a_dropped_topic() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", two_brokers());
    let cache = cache(vec![ns.addr()]);
    within(cache.publish_info("T", false, T)).await.unwrap();

    ns.faults().set_delay(SLOW);
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.refresh("T").await })
    };
    requests_reach(&ns, "T", 2).await;
    cache.remove("T");
    let late = within(slow).await.unwrap().unwrap();
    assert!(!late);
    assert!(cache.cached("T").is_none());
    assert!(cache.topics().is_empty());
    assert_eq!(cache.master_addr("broker-a"), None);
}

#[tokio::test]
async fn a_late_load_answer_does_not_replace_a_newer_route() {
    // A cached route without a writable queue: every use loads it again.
    let read_only = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queue_data("broker-a", 2, 2, 4)
        .build();
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", read_only);
    let cache = cache(vec![ns.addr()]);
    within(cache.publish_info("T", false, T)).await.unwrap_err();

    // A load whose answer (still read-only) is slow...
    ns.faults().set_delay(SLOW);
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.publish_info("T", false, T).await })
    };
    requests_reach(&ns, "T", 2).await;
    // ...while a refresh stores the route that became writable.
    ns.faults().set_delay(Duration::ZERO);
    ns.set_route("T", broker_a_only());
    assert!(within(cache.refresh("T")).await.unwrap());
    assert_eq!(cached_queues(&cache, "T"), "broker-a:0 broker-a:1");

    // The slow load's answer is older: dropped, and its caller gets the newer cached route.
    let late = within(slow).await.unwrap().unwrap();
    assert_eq!(queues(&late), "broker-a:0 broker-a:1");
    assert_eq!(cached_queues(&cache, "T"), "broker-a:0 broker-a:1");
}
