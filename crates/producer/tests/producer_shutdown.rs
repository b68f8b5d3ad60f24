//! Shutdown: in-flight sends drain (or are cancelled at the deadline) before `shutdown` returns,
//! `UNREGISTER_CLIENT` reaches every broker, later sends are refused, dropping never blocks.

use std::time::{Duration, Instant};

use rmq_common::{Message, RequestCode};
use rmq_producer::{ErrorKind, Producer, SendError, SendFuture, SendOptions};
use rmq_testkit::MockCluster;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const T: Duration = Duration::from_secs(20);

async fn cluster(topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 2);
    c
}

/// Whether `f` is already resolved (one poll).
async fn ready(f: SendFuture) -> Option<Result<rmq_producer::SendResult, SendError>> {
    timeout(Duration::ZERO, f).await.ok()
}

/// `SEND_MESSAGE_V2` requests the brokers received so far (counted on arrival).
fn sends_received(c: &MockCluster) -> usize {
    c.brokers()
        .iter()
        .map(|b| b.request_count(RequestCode::SEND_MESSAGE_V2))
        .sum()
}

fn spawn_sync_sends(
    p: &Producer,
    topic: &str,
    n: usize,
) -> Vec<JoinHandle<Result<rmq_producer::SendResult, SendError>>> {
    (0..n)
        .map(|i| {
            let p = p.clone();
            let msg = Message::new(topic, format!("sync{i}"));
            tokio::spawn(async move { p.send(msg).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_sends_in_flight_and_unregisters_from_every_broker() {
    let c = cluster("Drain").await;
    let p = timeout(
        T,
        Producer::builder("DrainGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    // Learn the route and use both brokers.
    for i in 0..4 {
        timeout(T, p.send(Message::new("Drain", format!("warm{i}"))))
            .await
            .expect("in time")
            .expect("sent");
    }
    const DELAY: Duration = Duration::from_secs(1);
    for b in c.brokers() {
        b.faults().set_delay(DELAY);
    }
    let mut futures = Vec::new();
    for i in 0..40 {
        futures.push(
            timeout(
                T,
                p.send_async(
                    Message::new("Drain", format!("async{i}")),
                    SendOptions::new(),
                ),
            )
            .await
            .expect("in time")
            .expect("admitted"),
        );
    }
    let syncs = spawn_sync_sends(&p, "Drain", 5);
    // Every send has reached a broker, which holds its answer for DELAY.
    let deadline = Instant::now() + T;
    while sends_received(&c) < 4 + 40 + 5 {
        assert!(Instant::now() < deadline, "sends never reached the brokers");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(p.stats().sends_in_flight > 0, "sends are in flight");
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert!(
        t0.elapsed() >= DELAY / 2,
        "waited for the slow answers: {:?}",
        t0.elapsed()
    );
    assert!(!p.is_running());
    for f in futures {
        let outcome = ready(f).await.expect("resolved before shutdown returned");
        outcome.expect("drained, not cancelled");
    }
    for h in syncs {
        timeout(Duration::from_secs(1), h)
            .await
            .expect("resolved")
            .expect("task")
            .expect("drained");
    }
    assert_eq!(c.messages_of("Drain").len(), 4 + 40 + 5);
    // The brokers answer (and record) 1 s after a request arrives; shutdown waits at most 1 s
    // for UNREGISTER_CLIENT's answers, so the records may come just after it returned.
    let deadline = Instant::now() + T;
    while c.brokers().iter().any(|b| b.unregisters().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "UNREGISTER_CLIENT never reached a broker"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for b in c.brokers() {
        let unregisters = b.unregisters();
        assert_eq!(unregisters.len(), 1, "{}", b.name());
        assert_eq!(unregisters[0].client_id, p.client_id());
        assert_eq!(unregisters[0].producer_group.as_deref(), Some("DrainGroup"));
        assert_eq!(unregisters[0].consumer_group, None);
    }
    assert_eq!(p.stats().pending_requests, 0);

    // Refused afterwards, with the message back; shutdown is idempotent.
    let err = timeout(T, p.send(Message::new("Drain", "late")))
        .await
        .expect("in time")
        .expect_err("stopped");
    assert!(matches!(err.kind(), ErrorKind::NotRunning), "{err}");
    assert!(err.into_message().is_some());
    assert!(p
        .try_send_async(Message::new("Drain", "late"), SendOptions::new())
        .is_err());
    // Nothing left to do: far less than the DELAY a real second drain would take... and no
    // second UNREGISTER_CLIENT (below).
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("second shutdown");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "nothing left to do: {:?}",
        t0.elapsed()
    );
    for b in c.brokers() {
        assert_eq!(
            b.request_count(RequestCode::UNREGISTER_CLIENT),
            1,
            "unregistered once"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_what_is_left_at_its_deadline() {
    let c = cluster("Stuck").await;
    let p = timeout(
        T,
        Producer::builder("StuckGroup")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_secs(15))
            .shutdown_timeout(Duration::from_millis(300))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Stuck", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    for b in c.brokers() {
        b.faults().set_black_hole(true);
    }
    let mut futures = Vec::new();
    for i in 0..10 {
        futures.push(
            timeout(
                T,
                p.send_async(Message::new("Stuck", format!("{i}")), SendOptions::new()),
            )
            .await
            .expect("in time")
            .expect("admitted"),
        );
    }
    let syncs = spawn_sync_sends(&p, "Stuck", 3);
    // All 13 sends are in flight (admitted) before shutdown begins.
    let deadline = Instant::now() + T;
    while p.stats().sends_in_flight < 13 {
        assert!(Instant::now() < deadline, "sends never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Concurrent shutdowns all wait for the same one.
    let other = {
        let p = p.clone();
        tokio::spawn(async move { p.shutdown().await })
    };
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "waited for the drain deadline: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "did not wait for the 15 s send timeout: {took:?}"
    );
    timeout(T, other)
        .await
        .expect("other shutdown returns")
        .expect("task");
    for f in futures {
        let err = ready(f)
            .await
            .expect("resolved before shutdown returned")
            .expect_err("cancelled");
        assert!(matches!(err.kind(), ErrorKind::Cancelled { .. }), "{err}");
        assert!(err.maybe_stored(), "written, then abandoned");
    }
    for h in syncs {
        let err = timeout(Duration::from_secs(1), h)
            .await
            .expect("resolved")
            .expect("task")
            .expect_err("cancelled");
        assert!(matches!(err.kind(), ErrorKind::Cancelled { .. }), "{err}");
    }
    assert_eq!(p.stats().sends_in_flight, 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_never_blocks_and_started_sends_finish() {
    let c = cluster("Dropped").await;
    let p = timeout(
        T,
        Producer::builder("DropGroup")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_secs(10))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Dropped", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // Answers take 3 s: a drop that waited for the send would take that long.
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_secs(3));
    }
    let f = timeout(
        T,
        p.send_async(Message::new("Dropped", "late"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("admitted");
    let t0 = Instant::now();
    drop(p);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "drop returned at once: {:?}",
        t0.elapsed()
    );
    let r = timeout(T, f)
        .await
        .expect("resolves")
        .expect("the started send completes");
    assert_eq!(r.queue.topic, "Dropped");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_ends_sends_still_looking_up_their_route() {
    // A name server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let namesrv = listener.local_addr().expect("addr").to_string();
    let hole = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..64 {
            match listener.accept().await {
                Ok((s, _)) => held.push(s),
                Err(_) => break,
            }
        }
    });
    let mut cfg = rmq_producer::ProducerConfig::new("HoleGroup");
    cfg.name_server.request_timeout = Duration::from_secs(60);
    let p = timeout(
        T,
        rmq_producer::ProducerBuilder::from_config(cfg)
            .name_server(&namesrv)
            .shutdown_timeout(Duration::from_secs(1))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let sync = {
        let p = p.clone();
        tokio::spawn(async move {
            p.send_with(
                Message::new("Hole", "sync"),
                SendOptions::new().timeout(Duration::from_secs(60)),
            )
            .await
        })
    };
    let asynchronous = {
        let p = p.clone();
        tokio::spawn(async move {
            p.send_async(Message::new("Hole", "async"), SendOptions::new())
                .await
        })
    };
    // Both are in flight (looking their route up).
    let deadline = Instant::now() + T;
    while p.stats().sends_in_flight < 2 {
        assert!(Instant::now() < deadline, "sends never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown honoured its 1 s deadline: {took:?}"
    );
    let err = timeout(Duration::from_secs(5), sync)
        .await
        .expect("resolved")
        .expect("task")
        .expect_err("cancelled");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Cancelled {
                maybe_stored: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.into_message().is_some(), "never written: handed back");
    let fut = timeout(Duration::from_secs(5), asynchronous)
        .await
        .expect("resolved")
        .expect("task")
        .expect("admitted before shutdown began");
    let err = ready(fut)
        .await
        .expect("resolved before shutdown returned")
        .expect_err("cancelled");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Cancelled {
                maybe_stored: false,
                ..
            }
        ),
        "{err:?}"
    );
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneway_sends_resolved_before_shutdown_all_reach_the_broker() {
    // A oneway send resolves once queued on the connection; shutdown writes what is queued
    // before the connections close, so every one of them is stored.
    const N: usize = 4_000;
    let c = cluster("OnewayDrain").await;
    let p = timeout(
        T,
        Producer::builder("OnewayDrainGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let tasks: Vec<JoinHandle<()>> = (0..4)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..N / 4 {
                    let msg = Message::new("OnewayDrain", vec![b'o'; 512])
                        .with_keys([format!("{t}-{i}")]);
                    timeout(T, p.send_oneway(msg, SendOptions::new()))
                        .await
                        .expect("in time")
                        .expect("queued");
                }
            })
        })
        .collect();
    for t in tasks {
        timeout(T, t).await.expect("in time").expect("task");
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    // The broker may still be reading what was written before the socket closed.
    let deadline = Instant::now() + T;
    while c.messages_of("OnewayDrain").len() < N && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        c.messages_of("OnewayDrain").len(),
        N,
        "every oneway send stored"
    );
    c.shutdown().await;
}
