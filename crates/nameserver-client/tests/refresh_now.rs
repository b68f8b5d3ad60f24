//! `RouteCache::refresh_now` (after send failures): never locked out by an aborted refresh, and
//! throttled per topic so a failure storm cannot hammer the name server.

use std::future::Future;
use std::time::Duration;

use rmq_common::route::TopicRouteData;
use rmq_nameserver_client::{NameServerConfig, RouteCache, TopicPublishInfo};
use rmq_remoting::{RemotingClient, RemotingConfig};
use rmq_testkit::{MockNameServer, RouteBuilder};
use tokio::time::Instant;

const T: Duration = Duration::from_secs(5);

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test step timed out")
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

fn cache(addrs: Vec<String>, min_interval: Duration) -> RouteCache {
    let config = NameServerConfig {
        poll_interval: Duration::from_secs(3600),
        topic_idle_expiry: Duration::from_secs(3600),
        min_immediate_refresh_interval: min_interval,
        ..NameServerConfig::new(addrs)
    };
    RouteCache::new(RemotingClient::new(RemotingConfig::default()), config)
}

fn route(queues: i32) -> TopicRouteData {
    RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queues("broker-a", queues)
        .build()
}

fn queue_count(cache: &RouteCache, topic: &str) -> usize {
    cache
        .cached(topic)
        .as_deref()
        .map_or(0, |i: &TopicPublishInfo| i.queues.len())
}

#[tokio::test]
async fn a_refresh_dropped_with_its_runtime_does_not_lock_the_topic_out() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", route(1));
    let cache = cache(vec![ns.addr()], Duration::from_millis(100));
    within(cache.publish_info("T", false, T)).await.unwrap();

    // An immediate refresh started on a runtime that shuts down while the name server does not
    // answer: its task is dropped mid-flight.
    ns.faults().set_black_hole(true);
    let other = cache.clone();
    let ns2 = ns.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            other.refresh_now("T");
            tokio::time::timeout(Duration::from_secs(10), async {
                while ns2.request_count("T") < 2 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap();
        });
        drop(rt);
    });
    within(tokio::task::spawn_blocking(move || thread.join()))
        .await
        .unwrap()
        .unwrap();

    // The topic can be refreshed at once again.
    ns.faults().set_black_hole(false);
    ns.set_route("T", route(3));
    cache.refresh_now("T");
    eventually("refresh after the aborted one", || {
        queue_count(&cache, "T") == 3
    })
    .await;
    within(cache.shutdown()).await;
}

#[tokio::test]
async fn a_failure_storm_refreshes_at_most_once_per_interval_and_the_last_call_is_served() {
    let interval = Duration::from_millis(300);
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", route(1));
    let cache = cache(vec![ns.addr()], interval);
    within(cache.publish_info("T", false, T)).await.unwrap();
    let loaded = ns.request_count("T");

    // 60 failures 10 ms apart (at least 600 ms).
    let start = Instant::now();
    for _ in 0..60 {
        cache.refresh_now("T");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The route changes after the last failure: the call pending then must still be served.
    ns.set_route("T", route(2));
    cache.refresh_now("T");
    eventually("the pending refresh served", || {
        queue_count(&cache, "T") == 2
    })
    .await;
    // Let any refresh still pending run, then count.
    tokio::time::sleep(interval * 2).await;
    let refreshes = ns.request_count("T") - loaded;
    let elapsed = start.elapsed();
    // Starts are at least `interval` apart, so at most elapsed / interval + 1 of them.
    let max = usize::try_from(elapsed.as_millis() / interval.as_millis()).unwrap() + 1;
    assert!(
        (2..=max).contains(&refreshes),
        "{refreshes} refreshes in {elapsed:?} (at most {max})"
    );
    within(cache.shutdown()).await;
}

#[tokio::test]
async fn the_first_immediate_refresh_is_not_delayed() {
    let ns = within(MockNameServer::start()).await.unwrap();
    ns.set_route("T", route(1));
    // An interval far longer than the test: only the first call may run before the end.
    let cache = cache(vec![ns.addr()], Duration::from_secs(3600));
    within(cache.publish_info("T", false, T)).await.unwrap();
    ns.set_route("T", route(2));
    cache.refresh_now("T");
    eventually("first immediate refresh", || queue_count(&cache, "T") == 2).await;
    ns.set_route("T", route(3));
    cache.refresh_now("T");
    cache.refresh_now("T");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        queue_count(&cache, "T"),
        2,
        "a second refresh ran within the interval"
    );
    assert_eq!(ns.request_count("T"), 2);
    // Shutdown ends the pending one at once.
    within(cache.shutdown()).await;
    assert_eq!(ns.request_count("T"), 2);
}
