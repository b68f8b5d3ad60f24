//! `RouteCache` against mock name servers: periodic and immediate refresh, change detection,
//! idle expiry, stale routes, the TBW102 auto-create path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::header::send::{SendMessageRequestHeader, SendMessageRequestHeaderV2};
use rmq_common::route::TopicRouteData;
use rmq_common::{RequestCode, ResponseCode};
use rmq_nameserver_client::{NameServerConfig, NameServerError, RouteCache, TopicPublishInfo};
use rmq_remoting::{RemotingClient, RemotingCommand, RemotingConfig};
use rmq_testkit::{MockCluster, MockNameServer, RouteBuilder, AUTO_CREATE_TOPIC};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(5);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
}

/// Polls `cond` every 10 ms until it holds; panics after `limit`.
async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(polled.is_ok(), "not within {limit:?}: {what}");
}

fn cache(addrs: Vec<String>, poll: Duration, expiry: Duration) -> RouteCache {
    let config = NameServerConfig {
        poll_interval: poll,
        topic_idle_expiry: expiry,
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

fn route_a(n: i32) -> TopicRouteData {
    RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queues("broker-a", n)
        .build()
}

async fn namesrv_with(topic: &str, route: TopicRouteData) -> MockNameServer {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route(topic, route);
    ns
}

/// Changes the route and waits until the cache shows `expected`; at most one refresh may be
/// needed for that (the first one that reads the new route).
async fn change_and_observe(
    ns: &MockNameServer,
    cache: &RouteCache,
    change: impl FnOnce(&mut TopicRouteData),
    expected: &str,
) {
    let before = ns.request_count("T");
    ns.update_route("T", change);
    eventually(expected, Duration::from_secs(10), || {
        cache.cached("T").is_some_and(|i| queues(&i) == expected)
    })
    .await;
    let refreshes = ns.request_count("T") - before;
    assert!(refreshes <= 1, "{refreshes} refreshes to see {expected}");
}

#[tokio::test]
async fn periodic_refresh_picks_up_route_changes_at_the_next_interval() {
    let ns = namesrv_with("T", route_a(2)).await;
    let cache = cache(
        vec![ns.addr()],
        Duration::from_millis(200),
        Duration::from_secs(60),
    );
    let token = CancellationToken::new();
    let refresher = cache.start_refresher(token.clone());
    let info = within(cache.publish_info("T", false, T)).await.unwrap();
    assert_eq!(queues(&info), "broker-a:0 broker-a:1");

    // A broker added.
    change_and_observe(
        &ns,
        &cache,
        |r| {
            *r = RouteBuilder::from(r.clone())
                .broker("broker-b", "127.0.0.1:10921")
                .queues("broker-b", 1)
                .build();
        },
        "broker-a:0 broker-a:1 broker-b:0",
    )
    .await;
    assert_eq!(
        cache.master_addr("broker-b").as_deref(),
        Some("127.0.0.1:10921")
    );
    // A broker removed.
    change_and_observe(
        &ns,
        &cache,
        |r| {
            *r = RouteBuilder::from(r.clone())
                .without_broker("broker-a")
                .build()
        },
        "broker-b:0",
    )
    .await;
    assert_eq!(cache.master_addr("broker-a"), None);
    assert_eq!(cache.all_master_addrs(), ["127.0.0.1:10921"]);
    // Queue counts changed.
    change_and_observe(
        &ns,
        &cache,
        |r| r.queue_datas[0].write_queue_nums = 3,
        "broker-b:0 broker-b:1 broker-b:2",
    )
    .await;

    token.cancel();
    within(refresher).await.unwrap();
    let after = ns.request_count("T");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ns.request_count("T"),
        after,
        "refresher still running after cancel"
    );
}

#[tokio::test]
async fn send_failure_refresh_happens_at_once() {
    let ns = namesrv_with("T", route_a(2)).await;
    // No periodic refresh during the test.
    let cache = cache(
        vec![ns.addr()],
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let _refresher = cache.start_refresher(CancellationToken::new());
    within(cache.publish_info("T", false, T)).await.unwrap();
    assert_eq!(ns.request_count("T"), 1);

    ns.set_route("T", route_a(1));
    cache.refresh_now("T");
    eventually("immediate refresh", Duration::from_secs(10), || {
        cache
            .cached("T")
            .is_some_and(|i| queues(&i) == "broker-a:0")
    })
    .await;
    assert_eq!(ns.request_count("T"), 2);

    // A topic that is not cached is not fetched by refresh_now.
    cache.refresh_now("Unknown");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ns.request_count("Unknown"), 0);
    within(cache.shutdown()).await;
}

#[tokio::test]
async fn idle_topics_are_dropped_and_no_longer_refreshed() {
    let ns = namesrv_with("Idle", route_a(1)).await;
    ns.set_route("Busy", route_a(1));
    // Busy is touched every 50 ms, far more often than the 1 s expiry even on a loaded machine.
    let cache = cache(
        vec![ns.addr()],
        Duration::from_millis(100),
        Duration::from_secs(1),
    );
    let token = CancellationToken::new();
    let _refresher = cache.start_refresher(token.clone());
    within(cache.publish_info("Idle", false, T)).await.unwrap();
    within(cache.publish_info("Busy", false, T)).await.unwrap();

    let keep_busy = {
        let cache = cache.clone();
        let token = token.clone();
        tokio::spawn(async move {
            // Bounded: at most 20 s of 50 ms touches, or until the test cancels.
            for _ in 0..400 {
                if token.is_cancelled() {
                    break;
                }
                let _ = cache.publish_info("Busy", false, T).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    eventually("Idle dropped", Duration::from_secs(10), || {
        !cache.topics().contains(&"Idle".to_owned())
    })
    .await;
    let idle = ns.request_count("Idle");
    let busy = ns.request_count("Busy");
    eventually(
        "Busy refreshed 3 more times",
        Duration::from_secs(10),
        || ns.request_count("Busy") >= busy + 3,
    )
    .await;
    assert_eq!(
        ns.request_count("Idle"),
        idle,
        "an idle topic was refreshed"
    );
    assert!(cache.cached("Idle").is_none());
    token.cancel();
    within(keep_busy).await.unwrap();

    // Used again: loaded again.
    within(cache.publish_info("Idle", false, T)).await.unwrap();
    assert_eq!(ns.request_count("Idle"), idle + 1);
}

#[tokio::test]
async fn a_route_replaces_the_cached_one_only_when_it_changed() {
    let route = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .broker("broker-b", "127.0.0.1:10921")
        .queues("broker-a", 2)
        .queues("broker-b", 2)
        .build();
    let ns = namesrv_with("T", route.clone()).await;
    let cache = cache(
        vec![ns.addr()],
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let first = within(cache.publish_info("T", false, T)).await.unwrap();

    assert!(!within(cache.refresh("T")).await.unwrap());
    assert!(Arc::ptr_eq(&first, &cache.cached("T").unwrap()));

    // Same content in another order is no change either.
    let mut reordered = route.clone();
    reordered.queue_datas.reverse();
    reordered.broker_datas.reverse();
    ns.set_route("T", reordered);
    assert!(!within(cache.refresh("T")).await.unwrap());
    assert!(Arc::ptr_eq(&first, &cache.cached("T").unwrap()));

    // A slave added is a change of the route (not of the queues).
    ns.update_route("T", |r| {
        r.broker_datas[0]
            .broker_addrs
            .insert(1, "127.0.0.1:10912".into());
    });
    assert!(within(cache.refresh("T")).await.unwrap());
    let second = cache.cached("T").unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(first.queues, second.queues);
    assert!(cache
        .all_broker_addrs()
        .contains(&"127.0.0.1:10912".to_owned()));
    assert!(!cache
        .all_master_addrs()
        .contains(&"127.0.0.1:10912".to_owned()));

    ns.set_route("T", route_a(1));
    assert!(within(cache.refresh("T")).await.unwrap());
    assert_eq!(queues(&cache.cached("T").unwrap()), "broker-a:0");
}

#[tokio::test]
async fn stale_route_is_kept_while_every_name_server_is_down() {
    let a = namesrv_with("T", route_a(2)).await;
    let b = namesrv_with("T", route_a(2)).await;
    let cache = cache(
        vec![a.addr(), b.addr()],
        Duration::from_millis(100),
        Duration::from_secs(60),
    );
    let _refresher = cache.start_refresher(CancellationToken::new());
    let info = within(cache.publish_info("T", false, T)).await.unwrap();
    a.down().await;
    b.down().await;
    let err = within(cache.refresh("T")).await.unwrap_err();
    assert!(
        matches!(err, NameServerError::Unreachable { .. }),
        "{err:?}"
    );
    // Several refresh intervals later the route is still served.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let again = within(cache.publish_info("T", false, T)).await.unwrap();
    assert!(Arc::ptr_eq(&info, &again));
    assert_eq!(
        cache.master_addr("broker-a").as_deref(),
        Some("127.0.0.1:10911")
    );
    // A topic never loaded cannot be served.
    let err = within(cache.publish_info("Other", false, T))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NameServerError::Unreachable { .. }),
        "{err:?}"
    );
    // Back up: refreshed again.
    b.up().await.unwrap();
    b.set_route("T", route_a(3));
    eventually("refresh after recovery", Duration::from_secs(10), || {
        cache.cached("T").is_some_and(|i| i.queues.len() == 3)
    })
    .await;
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
async fn auto_created_topics_use_the_tbw102_route_capped_at_default_queue_nums() {
    let cluster = within(MockCluster::start(2)).await.unwrap();
    cluster.set_auto_create(true);
    let cache = cache(
        vec![cluster.namesrv_addr()],
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );

    let err = within(cache.publish_info("New", false, T))
        .await
        .unwrap_err();
    assert!(err.is_topic_not_exist(), "{err:?}");
    let info = within(cache.publish_info("New", true, T)).await.unwrap();
    assert_eq!(
        queues(&info),
        "broker-a:0 broker-a:1 broker-a:2 broker-a:3 broker-b:0 broker-b:1 broker-b:2 broker-b:3"
    );
    assert!(info.queues.iter().all(|q| q.topic == "New"));
    assert_eq!(cluster.namesrv().request_count(AUTO_CREATE_TOPIC), 1);
    // Cached: no new request, even without allow_auto_create.
    within(cache.publish_info("New", false, T)).await.unwrap();
    assert_eq!(cluster.namesrv().request_count("New"), 2);

    // The first send creates it on broker-a only; the next refresh follows the real route.
    let a = cluster.broker("broker-a").unwrap();
    let client = cache.client().remoting().clone();
    let resp = within(client.invoke_sync(&a.addr(), send_v2("New"), T))
        .await
        .unwrap();
    assert_eq!(
        resp.response_code(),
        ResponseCode::SUCCESS,
        "{:?}",
        resp.remark
    );
    assert!(within(cache.refresh("New")).await.unwrap());
    assert_eq!(
        queues(&cache.cached("New").unwrap()),
        "broker-a:0 broker-a:1 broker-a:2 broker-a:3"
    );

    // Without TBW102 the topic's own answer is the error.
    cluster.set_auto_create(false);
    let err = within(cache.publish_info("Other", true, T))
        .await
        .unwrap_err();
    match err {
        NameServerError::TopicNotExist { topic, remark } => {
            assert_eq!(topic, "Other");
            assert!(remark.unwrap().contains("Other"));
        }
        other => panic!("unexpected {other:?}"),
    }
    within(cluster.shutdown()).await;
}

#[tokio::test]
async fn routes_without_a_writable_master_are_errors() {
    let read_only = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queue_data("broker-a", 4, 4, 4)
        .build();
    let slaves_only = RouteBuilder::new()
        .broker_ids("broker-a", &[(1, "127.0.0.1:10912")])
        .queues("broker-a", 4)
        .build();
    let ns = namesrv_with("RO", read_only).await;
    ns.set_route("Slaves", slaves_only);
    let cache = cache(
        vec![ns.addr()],
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    for topic in ["RO", "Slaves"] {
        let err = within(cache.publish_info(topic, true, T))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, NameServerError::NoWritableMaster { topic: t } if t == topic),
            "{err:?}"
        );
    }
    // Each use retries the load while the route has no queue (as Java does).
    within(cache.publish_info("RO", false, T))
        .await
        .unwrap_err();
    assert_eq!(ns.request_count("RO"), 2);
    ns.set_route("RO", route_a(1));
    let info = within(cache.publish_info("RO", false, T)).await.unwrap();
    assert!(info.is_ok());
}

#[tokio::test]
async fn concurrent_first_uses_share_one_load() {
    let ns = namesrv_with("T", route_a(4)).await;
    ns.faults().set_delay(Duration::from_millis(200));
    let cache = cache(
        vec![ns.addr()],
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.publish_info("T", false, T).await })
        })
        .collect();
    let mut infos = Vec::new();
    for t in tasks {
        infos.push(within(t).await.unwrap().unwrap());
    }
    assert_eq!(ns.request_count("T"), 1);
    assert!(infos.iter().all(|i| Arc::ptr_eq(i, &infos[0])));
}

#[tokio::test]
async fn refresher_ends_on_shutdown_and_when_the_cache_is_dropped() {
    let ns = namesrv_with("T", route_a(1)).await;
    let cache = cache(
        vec![ns.addr()],
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    within(cache.publish_info("T", false, T)).await.unwrap();
    let handle = cache.start_refresher(CancellationToken::new());
    within(cache.shutdown()).await;
    within(handle).await.unwrap();
    let after = ns.request_count("T");
    cache.refresh_now("T");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ns.request_count("T"), after);

    let dropped = self::cache(
        vec![ns.addr()],
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    let handle = dropped.start_refresher(CancellationToken::new());
    drop(dropped);
    within(handle).await.unwrap();
}
