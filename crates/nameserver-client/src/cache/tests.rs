//! Unit tests of `RouteCache` internals that the public API cannot observe.

use std::time::Duration;

use rmq_remoting::{RemotingClient, RemotingConfig};
use rmq_testkit::{MockNameServer, RouteBuilder};

use super::RouteCache;
use crate::config::NameServerConfig;

const STEP: Duration = Duration::from_secs(10);

async fn cache_with_topic(topic: &str) -> (MockNameServer, RouteCache) {
    let ns = tokio::time::timeout(STEP, MockNameServer::start())
        .await
        .expect("start timed out")
        .expect("bind");
    let route = RouteBuilder::new()
        .broker("broker-a", "127.0.0.1:10911")
        .queues("broker-a", 1)
        .build();
    ns.set_route(topic, route);
    let cache = RouteCache::new(
        RemotingClient::new(RemotingConfig::default()),
        NameServerConfig::new([ns.addr()]),
    );
    tokio::time::timeout(
        STEP,
        cache.publish_info(topic, false, Duration::from_secs(5)),
    )
    .await
    .expect("load timed out")
    .expect("load");
    (ns, cache)
}

/// When `topic` was last used, in the cache's milliseconds.
fn last_used(cache: &RouteCache, topic: &str) -> u64 {
    cache
        .inner
        .topics
        .get(topic)
        .expect("cached")
        .last_used
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_cached_topic_is_served_under_the_maps_read_lock() {
    let (ns, cache) = cache_with_topic("T").await;
    // Another sender holds a read guard on the topic's shard: marking a use must not need the
    // write lock (senders of one topic would serialize on it).
    let held = cache.inner.topics.get("T").expect("cached");
    let (tx, rx) = std::sync::mpsc::channel();
    let other = cache.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let served = rt.block_on(other.publish_info("T", false, Duration::from_secs(5)));
        let _ = tx.send(served.is_ok());
    });
    let served = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    assert_eq!(served, Ok(true), "publish_info waited for a write lock");
    thread.join().expect("thread");
    // And the use was recorded.
    assert!(last_used(&cache, "T") <= cache.now_ms());
    tokio::time::timeout(STEP, ns.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn a_cancelled_load_leaves_no_load_lock_behind() {
    let (ns, cache) = cache_with_topic("T").await;
    ns.set_route(
        "U",
        RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .queues("broker-a", 1)
            .build(),
    );
    ns.faults().set_delay(Duration::from_secs(3));
    // The caller gives up (its future is dropped) while the load waits for the name server.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        cache.publish_info("U", false, Duration::from_secs(5)),
    )
    .await;
    assert!(gave_up.is_err());
    assert!(cache.inner.load_locks.is_empty(), "a load lock leaked");
    // Finished loads leave none either.
    ns.faults().set_delay(Duration::ZERO);
    tokio::time::timeout(STEP, cache.publish_info("U", false, Duration::from_secs(5)))
        .await
        .expect("load timed out")
        .expect("load");
    assert!(cache.inner.load_locks.is_empty());
    tokio::time::timeout(STEP, ns.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn cached_publish_info_answers_only_from_the_cache_and_marks_the_use() {
    let (ns, cache) = cache_with_topic("T").await;
    let requests = ns.request_count("T");
    assert!(cache.cached_publish_info("Unknown").is_none(), "no load");
    let before = last_used(&cache, "T");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let info = cache.cached_publish_info("T").expect("cached with a queue");
    assert_eq!(info.queues.len(), 1);
    let after = last_used(&cache, "T");
    assert!(after > before, "the use is recorded: {before} -> {after}");
    assert_eq!(
        ns.request_count("T"),
        requests,
        "never asks the name server"
    );
    assert_eq!(ns.request_count("Unknown"), 0);
    tokio::time::timeout(STEP, ns.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn cached_route_marks_the_use_at_the_senders_clock_read() {
    let (ns, cache) = cache_with_topic("T").await;
    let before = last_used(&cache, "T");
    let later = tokio::time::Instant::now() + Duration::from_secs(5);
    let route = cache.cached_route("T", later).expect("cached");
    assert_eq!(route.info().queues.len(), 1);
    assert!(
        last_used(&cache, "T") >= before + 5_000,
        "the use is recorded at the given instant"
    );
    assert!(cache.cached_route("Unknown", later).is_none(), "no load");
    tokio::time::timeout(STEP, ns.shutdown())
        .await
        .expect("shutdown");
}

#[tokio::test]
async fn a_refresh_keeps_an_unchanged_routes_counter_and_replaces_a_changed_route() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    let (ns, cache) = cache_with_topic("T").await;
    let now = tokio::time::Instant::now;
    let first = cache.cached_route("T", now()).expect("cached");
    assert_eq!(first.brokers(), 1);
    first.counter().store(7, Ordering::Relaxed);
    // The same route again: the same publish route, counter and all.
    let refreshed = tokio::time::timeout(STEP, cache.refresh("T"))
        .await
        .expect("refresh timed out");
    assert!(matches!(refreshed, Ok(false)), "{refreshed:?}");
    let same = cache.cached_route("T", now()).expect("cached");
    assert!(Arc::ptr_eq(&first, &same));
    // A changed route (a second broker): a new publish route whose queues and broker count are
    // the new route's, never the old one's; its round robin goes on from the old counter.
    first.counter().store(9, Ordering::Relaxed);
    ns.set_route(
        "T",
        RouteBuilder::new()
            .broker("broker-a", "127.0.0.1:10911")
            .broker("broker-b", "127.0.0.1:10921")
            .queues("broker-a", 1)
            .queues("broker-b", 2)
            .build(),
    );
    let refreshed = tokio::time::timeout(STEP, cache.refresh("T"))
        .await
        .expect("refresh timed out");
    assert!(matches!(refreshed, Ok(true)), "{refreshed:?}");
    let changed = cache.cached_route("T", now()).expect("cached");
    assert!(!Arc::ptr_eq(&first, &changed));
    assert_eq!(changed.info().queues.len(), 3);
    assert_eq!(changed.brokers(), 2);
    assert_eq!(changed.counter().load(Ordering::Relaxed), 9);
    // The old publish info API serves the same info.
    let info = cache.cached_publish_info("T").expect("cached");
    assert!(Arc::ptr_eq(&info, changed.info()));
    tokio::time::timeout(STEP, ns.shutdown())
        .await
        .expect("shutdown");
}
