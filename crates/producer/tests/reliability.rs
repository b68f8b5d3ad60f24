//! Reliability at the producer level, against in-process servers on 127.0.0.1 (the testkit's
//! mocks, and raw TCP peers for what the mocks cannot do: a broker that never reads):
//!
//! - name server down with routes cached: known topics keep sending, a new topic fails typed and
//!   names the name server, both recover;
//! - black hole: every send form completes within its deadline, and nothing leaks afterwards
//!   (counters, pending requests, connections, tasks);
//! - a broker that stops reading: memory stays within the async back-pressure byte bound.
//!
//! Hostile frames and misuse are in `reliability_hostile.rs`. Every test prints a
//! `RELIABILITY {json}` line on stderr (`cargo test -- --nocapture`) with its numbers;
//! `RELIABILITY.md` at the top of the repository holds those of a run. Every loop is bounded in
//! count and time.

mod reliability_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rmq_common::Message;
use rmq_producer::{ErrorKind, Producer, SendError, SendOptions};
use rmq_testkit::{MockNameServer, RouteBuilder};
use tokio::time::timeout;

use reliability_support::*;

// ---------------------------------------------------------------------------------------------
// 2. Name server down with routes cached.
// ---------------------------------------------------------------------------------------------

/// The name server goes down (connections refused and closed) while the producer has the route
/// of `Known` cached and refreshes every 100 ms: sends to `Known` go on; a send to a topic never
/// looked up fails with a typed name-server error whose causes name the name server; when it is
/// back, both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_server_down_cached_routes_keep_sending_new_topics_fail_typed_then_recover() {
    let _g = shared().await;
    let c = cluster(2).await;
    c.create_topic("Known", 2);
    c.create_topic("Fresh", 2);
    let ns = c.namesrv_addr();
    let p = timeout(
        T,
        Producer::builder("ReliNsDown")
            .name_server(&ns)
            .send_timeout(Duration::from_secs(3))
            .route_poll_interval(Duration::from_millis(100))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let (mut sent, mut acked, mut failed) = (0usize, 0usize, 0usize);
    for i in 0..4 {
        sent += 1;
        timeout(T, p.send(Message::new("Known", format!("warm{i}"))))
            .await
            .expect("in time")
            .expect("sent");
        acked += 1;
    }

    let down_at = Instant::now();
    timeout(T, c.namesrv().down()).await.expect("down in time");
    // A route request already read when the connections closed may still be counted: let
    // it land before taking the count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests_at_down = c.namesrv().total_requests();
    // Several refresh periods pass with the name server down: the cached route is kept.
    for i in 0..40 {
        sent += 1;
        let r = timeout(T, p.send(Message::new("Known", format!("down{i}"))))
            .await
            .expect("in time");
        match r {
            Ok(_) => acked += 1,
            Err(e) => panic!("send {i} to a cached topic failed: {}", chain(&e)),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = Instant::now();
    sent += 1;
    let err = timeout(T, p.send(Message::new("Fresh", "new topic")))
        .await
        .expect("in time")
        .expect_err("no route without the name server");
    failed += 1;
    let new_topic_failed_in = t0.elapsed();
    let text = chain(&err);
    assert!(
        matches!(
            err.kind(),
            ErrorKind::NameServer(_) | ErrorKind::NoRoute { .. }
        ),
        "typed name-server error: {err:?}"
    );
    assert!(
        text.contains(&ns),
        "the causes name the name server {ns}: {text}"
    );
    assert!(!err.maybe_stored(), "never sent: {text}");
    assert!(err.into_message().is_some(), "the message comes back");
    assert!(
        new_topic_failed_in < Duration::from_secs(3) + Duration::from_secs(5),
        "failed within its deadline: {new_topic_failed_in:?}"
    );
    assert_eq!(
        c.namesrv().total_requests(),
        requests_at_down,
        "no request reached the name server while it was down"
    );

    timeout(T, c.namesrv().up())
        .await
        .expect("up in time")
        .expect("up");
    let up_at = Instant::now();
    // The name-server connection may be backed off after failed connects: retry, bounded.
    let mut recovered = None;
    for i in 0..300 {
        sent += 1;
        match timeout(T, p.send(Message::new("Fresh", format!("after{i}"))))
            .await
            .expect("in time")
        {
            Ok(_) => {
                acked += 1;
                recovered = Some(up_at.elapsed());
                break;
            }
            Err(_) => failed += 1,
        }
        if up_at.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered =
        recovered.expect("the new topic is sendable within 30 s of the name server's return");
    for i in 0..10 {
        sent += 1;
        timeout(T, p.send(Message::new("Known", format!("after{i}"))))
            .await
            .expect("in time")
            .expect("known topic after recovery");
        acked += 1;
    }
    let stored = c.messages_of("Known").len() + c.messages_of("Fresh").len();
    let lost = acked.saturating_sub(stored);
    eprintln!(
        "RELIABILITY {{\"scenario\":\"name_server_down\",\"load\":\"sequential sync sends, 100 ms route poll\",\"sent\":{sent},\"acked\":{acked},\"failed\":{failed},\"read_back\":{stored},\"lost\":{lost},\"duplicates\":{},\"down_ms\":{},\"new_topic_failed_in_ms\":{},\"recovery_ms\":{},\"error\":\"{}\"}}",
        stored.saturating_sub(acked),
        up_at.duration_since(down_at).as_millis(),
        new_topic_failed_in.as_millis(),
        recovered.as_millis(),
        text.replace('"', "'")
    );
    assert_eq!(lost, 0);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Black hole.
// ---------------------------------------------------------------------------------------------

/// Every broker reads requests and never answers. Sync, async and oneway sends each complete
/// within their deadline (plus a margin for a loaded machine); afterwards nothing is left:
/// counters and pending requests at zero, no broker connection after shutdown, and the runtime's
/// task count back to where it was before the producer started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_every_send_form_ends_by_its_deadline_and_nothing_leaks() {
    const DEADLINE: Duration = Duration::from_millis(800);
    const MARGIN: Duration = Duration::from_secs(3);
    const EACH: usize = 30;
    let _g = shared().await;
    let c = cluster(2).await;
    c.create_topic("Hole", 2);
    let metrics = tokio::runtime::Handle::current().metrics();
    // Let the cluster's start-up tasks settle before taking the baseline.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tasks_before = metrics.num_alive_tasks();
    let p = timeout(
        T,
        Producer::builder("ReliHole")
            .name_server(c.namesrv_addr())
            .send_timeout(DEADLINE)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Hole", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    for b in c.brokers() {
        b.faults().set_black_hole(true);
    }

    let started = Instant::now();
    let mut syncs = Vec::new();
    for i in 0..EACH {
        let p = p.clone();
        syncs.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = p.send(Message::new("Hole", format!("sync{i}"))).await;
            (t0.elapsed(), r.map(|_| ()))
        }));
    }
    let mut asyncs = Vec::new();
    for i in 0..EACH {
        let t0 = Instant::now();
        let fut = timeout(
            T,
            p.send_async(
                Message::new("Hole", format!("async{i}")),
                SendOptions::new().timeout(DEADLINE),
            ),
        )
        .await
        .expect("admitted in time")
        .expect("admitted");
        asyncs.push(tokio::spawn(async move {
            let r = fut.await;
            (t0.elapsed(), r.map(|_| ()))
        }));
    }
    let mut oneways = Vec::new();
    for i in 0..EACH {
        let p = p.clone();
        oneways.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = p
                .send_oneway(
                    Message::new("Hole", format!("oneway{i}")),
                    SendOptions::new().timeout(DEADLINE),
                )
                .await;
            (t0.elapsed(), r)
        }));
    }
    let mut worst = Duration::ZERO;
    let (mut failed, mut acked, mut timeouts) = (0usize, 0usize, 0usize);
    let mut oneway_ok = 0usize;
    for (form, handles) in [("sync", syncs), ("async", asyncs), ("oneway", oneways)] {
        for h in handles {
            let (took, r): (Duration, Result<(), SendError>) =
                timeout(T, h).await.expect("resolves").expect("task");
            worst = worst.max(took);
            assert!(
                took <= DEADLINE + MARGIN,
                "{form} send took {took:?}, deadline {DEADLINE:?}"
            );
            match r {
                Ok(()) if form == "oneway" => oneway_ok += 1,
                Ok(()) => acked += 1,
                Err(e) => {
                    failed += 1;
                    if e.is_timeout() {
                        timeouts += 1;
                    }
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::Timeout { .. } | ErrorKind::RetriesExhausted { .. }
                        ),
                        "{form}: {}",
                        chain(&e)
                    );
                }
            }
        }
    }
    assert_eq!(acked, 0, "nothing answered");
    let all_done = started.elapsed();

    // No leak: counters, pending requests.
    let stats_zero = eventually(Duration::from_secs(10), || {
        let s = p.stats();
        s.sends_in_flight == 0 && s.async_in_flight == 0 && s.async_bytes_in_flight == 0
    })
    .await;
    let stats = p.stats();
    assert!(stats_zero, "stats back to zero: {stats:?}");
    // A black-holed request stays pending until its own timeout; heartbeats too.
    let pending_zero = eventually(Duration::from_secs(10), || {
        p.instance().pending_requests() == 0
    })
    .await;
    let pending = p.instance().pending_requests();
    assert!(pending_zero, "pending requests back to zero: {pending}");
    let conns_before_shutdown: usize = c.brokers().iter().map(|b| b.connection_count()).sum();
    for b in c.brokers() {
        b.faults().reset();
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let conns_zero = eventually(Duration::from_secs(10), || {
        c.brokers().iter().all(|b| b.connection_count() == 0) && c.namesrv().connection_count() == 0
    })
    .await;
    let conns: Vec<usize> = c.brokers().iter().map(|b| b.connection_count()).collect();
    drop(p);
    let tasks_back = eventually(Duration::from_secs(10), || {
        metrics.num_alive_tasks() <= tasks_before
    })
    .await;
    let tasks_after = metrics.num_alive_tasks();
    eprintln!(
        "RELIABILITY {{\"scenario\":\"black_hole\",\"load\":\"{EACH} sync + {EACH} async + {EACH} oneway, deadline {}ms\",\"sent\":{},\"acked\":{acked},\"oneway_written\":{oneway_ok},\"failed\":{failed},\"timeouts\":{timeouts},\"worst_ms\":{},\"all_done_ms\":{},\"connections_before_shutdown\":{conns_before_shutdown},\"connections_after_shutdown\":{conns:?},\"tasks_before\":{tasks_before},\"tasks_after\":{tasks_after}}}",
        DEADLINE.as_millis(),
        3 * EACH,
        worst.as_millis(),
        all_done.as_millis(),
    );
    assert!(
        conns_zero,
        "broker connections closed after shutdown: {conns:?}"
    );
    assert!(
        tasks_back,
        "runtime tasks back to {tasks_before} after shutdown: {tasks_after}"
    );
    c.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A broker that stops reading.
// ---------------------------------------------------------------------------------------------

/// The route points at two peers that accept connections and never read. 200 asynchronous sends
/// of 1 MiB of incompressible bytes each (200 MiB) are pushed with a 100 MiB back-pressure
/// bound (compression off): admission waits, sends time out, and the process's resident memory
/// grows by less than 1.5 x the bound plus 64 MiB. Runs alone (the RSS is the process's).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_never_reads_cannot_grow_memory_past_the_back_pressure_bound() {
    const BODY: usize = 1 << 20;
    const SENDS: usize = 200;
    const BOUND: usize = 100 << 20;
    const SLACK: usize = 64 << 20;
    const SEND_TIMEOUT: Duration = Duration::from_secs(3);
    let _g = exclusive().await;
    // Two of them: the remoting layer bounds the bytes queued on one connection too
    // (`max_queued_bytes`, 64 MiB), which would stop a single one below the producer's bound.
    let peers = [
        RawPeer::start(PeerMode::Mute).await,
        RawPeer::start(PeerMode::Mute).await,
    ];
    let ns = timeout(T, MockNameServer::start())
        .await
        .expect("in time")
        .expect("name server");
    ns.set_route(
        "Mute",
        RouteBuilder::new()
            .broker("broker-mute-a", &peers[0].addr)
            .queues("broker-mute-a", 4)
            .broker("broker-mute-b", &peers[1].addr)
            .queues("broker-mute-b", 4)
            .build(),
    );
    let p = timeout(
        T,
        Producer::builder("ReliMute")
            .name_server(ns.addr())
            .send_timeout(SEND_TIMEOUT)
            .async_backpressure(1024, BOUND)
            // Not compressed: the bound is on body bytes, and zlib over 200 MiB in a debug
            // build would make the test CPU-bound instead of bound by the back-pressure.
            .compression(4 * BODY, 5)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");

    // Sample the RSS from a thread (the runtime's workers may be busy compressing).
    let base = rss_bytes().expect("RSS");
    let peak = Arc::new(AtomicUsize::new(base));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        std::thread::spawn(move || {
            // Bounded: at most 10 minutes of samples.
            for _ in 0..60_000 {
                if !sampling.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(rss) = rss_bytes() {
                    peak.fetch_max(rss, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let block = random_body(0x5EED, BODY);
    let started = Instant::now();
    let (mut admitted, mut refused) = (0usize, 0usize);
    let mut max_bytes_in_flight = 0usize;
    let mut longest_wait = Duration::ZERO;
    let mut futures = Vec::new();
    for i in 0..SENDS {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        // A body of its own (1 MiB copied, then stamped): generating one in a debug build
        // would pace the loop below the bound.
        let mut body = BytesMut::from(&block[..]);
        body[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let body = body.freeze();
        let asked = Instant::now();
        match timeout(
            T,
            p.send_async(Message::new("Mute", body), SendOptions::new()),
        )
        .await
        .expect("admission ends by the send timeout")
        {
            Ok(f) => {
                admitted += 1;
                // The outcome is dropped at once: a failed send hands its 1 MiB body back.
                futures.push(tokio::spawn(async move { f.await.is_ok() }));
            }
            Err(e) => {
                refused += 1;
                assert!(e.is_timeout(), "waiting for room times out: {}", chain(&e));
            }
        }
        max_bytes_in_flight = max_bytes_in_flight.max(p.stats().async_bytes_in_flight);
        longest_wait = longest_wait.max(asked.elapsed());
    }
    let (mut ok, mut failed) = (0usize, 0usize);
    for f in futures {
        if timeout(T, f).await.expect("resolves").expect("task") {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    let pushed_in = started.elapsed();
    sampling.store(false, Ordering::SeqCst);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::SeqCst);
    let growth = peak.saturating_sub(base);
    let limit = BOUND * 3 / 2 + SLACK;
    let stats = p.stats();
    eprintln!(
        "RELIABILITY {{\"scenario\":\"broker_never_reads\",\"load\":\"{SENDS} async x 1 MiB random, bound {} MiB, timeout {}s\",\"sent\":{SENDS},\"admitted\":{admitted},\"refused_at_admission\":{refused},\"acked\":{ok},\"failed\":{failed},\"max_async_bytes_in_flight_mib\":{},\"longest_admission_wait_ms\":{},\"rss_base_mib\":{},\"rss_peak_mib\":{},\"rss_growth_mib\":{},\"limit_mib\":{},\"took_ms\":{},\"accepted_connections\":{}}}",
        BOUND >> 20,
        SEND_TIMEOUT.as_secs(),
        max_bytes_in_flight >> 20,
        longest_wait.as_millis(),
        base >> 20,
        peak >> 20,
        growth >> 20,
        limit >> 20,
        pushed_in.as_millis(),
        peers[0].accepted.load(Ordering::SeqCst) + peers[1].accepted.load(Ordering::SeqCst),
    );
    assert_eq!(ok, 0, "nothing can be answered");
    assert!(max_bytes_in_flight <= BOUND, "{max_bytes_in_flight}");
    assert!(
        growth < limit,
        "RSS grew by {} MiB, limit {} MiB",
        growth >> 20,
        limit >> 20
    );
    assert_eq!(stats.async_bytes_in_flight, 0, "{stats:?}");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    ns.shutdown().await;
}
