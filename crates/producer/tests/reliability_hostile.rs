//! Reliability at the producer level, against in-process servers on 127.0.0.1 (the testkit's
//! mocks, and raw TCP peers that answer hostile frames):
//!
//! - hostile frames from a broker and from a name server: a typed error, no panic, and the
//!   healthy traffic next to it is unaffected;
//! - misuse: every send form after shutdown, dropping the producer during sends, invalid
//!   configurations at `start`.
//!
//! Name server outage, black hole and memory are in `reliability.rs`. Every test prints a
//! `RELIABILITY {json}` line on stderr (`cargo test -- --nocapture`) with its numbers;
//! `RELIABILITY.md` at the top of the repository holds those of a run. Every loop is bounded in
//! count and time.

mod reliability_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rmq_common::{Message, RequestCode};
use rmq_producer::{ConfigError, ErrorKind, Producer, SendError, SendOptions};
use rmq_testkit::{MockCluster, MockNameServer, RouteBuilder};
use tokio::time::timeout;

use reliability_support::*;

// ---------------------------------------------------------------------------------------------
// 5. Hostile frames.
// ---------------------------------------------------------------------------------------------

/// A cluster with a healthy topic on broker-a, plus `Hostile` routed to `peer`.
async fn cluster_with_hostile_broker(peer: &RawPeer) -> MockCluster {
    let c = cluster(1).await;
    c.create_topic("Healthy", 2);
    c.namesrv().set_route(
        "Hostile",
        RouteBuilder::new()
            .broker("broker-hostile", &peer.addr)
            .queues("broker-hostile", 2)
            .build(),
    );
    c
}

/// Sends to a broker answering `reply` fail with a typed transport error (no panic, before the
/// deadline), while the same producer's sends to a healthy broker and another producer's sends
/// go on.
async fn hostile_broker_case(label: &str, reply: &'static [u8]) {
    const SEND_TIMEOUT: Duration = Duration::from_secs(5);
    let peer = RawPeer::start(PeerMode::Answer(reply)).await;
    let c = cluster_with_hostile_broker(&peer).await;
    let start = |instance: &str| {
        Producer::builder("ReliHostile")
            .name_server(c.namesrv_addr())
            .instance_name(instance)
            .send_timeout(SEND_TIMEOUT)
            .start()
    };
    let p = timeout(T, start("hostile-1"))
        .await
        .expect("in time")
        .expect("start");
    let other = timeout(T, start("hostile-2"))
        .await
        .expect("in time")
        .expect("start");
    let (mut worst, mut errors) = (Duration::ZERO, Vec::new());
    let (mut healthy_ok, mut other_ok) = (0usize, 0usize);
    for i in 0..5 {
        let t0 = Instant::now();
        let (hostile, healthy, beside) = tokio::join!(
            p.send(Message::new("Hostile", format!("h{i}"))),
            p.send(Message::new("Healthy", format!("same producer {i}"))),
            other.send(Message::new("Healthy", format!("other producer {i}"))),
        );
        let took = t0.elapsed();
        worst = worst.max(took);
        let err = hostile.expect_err("a hostile answer is no acknowledgement");
        assert!(
            transport_cause(err.kind()).is_some(),
            "{label}: a transport error: {err:?}"
        );
        assert!(
            !err.is_timeout(),
            "{label}: detected as a protocol error, not waited out: {}",
            chain(&err)
        );
        assert!(
            took < SEND_TIMEOUT,
            "{label}: failed before its deadline: {took:?}"
        );
        errors.push(chain(&err));
        healthy.expect("the same producer's healthy broker is unaffected");
        healthy_ok += 1;
        beside.expect("another producer is unaffected");
        other_ok += 1;
    }
    assert_eq!(c.messages_of("Healthy").len(), healthy_ok + other_ok);
    eprintln!(
        "RELIABILITY {{\"scenario\":\"hostile_broker_{label}\",\"load\":\"5 rounds: hostile + 2 healthy sends at once\",\"sent\":15,\"acked\":{},\"failed\":{},\"read_back\":{},\"lost\":0,\"worst_ms\":{},\"hostile_connections\":{},\"frames_answered\":{},\"error\":\"{}\"}}",
        healthy_ok + other_ok,
        errors.len(),
        c.messages_of("Healthy").len(),
        worst.as_millis(),
        peer.accepted.load(Ordering::SeqCst),
        peer.frames.load(Ordering::SeqCst),
        errors[0].replace('"', "'"),
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    timeout(T, other.shutdown())
        .await
        .expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_answering_an_oversize_frame_fails_the_send_typed_and_nothing_else() {
    let _g = shared().await;
    hostile_broker_case("oversize_length", OVERSIZE_FRAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_answering_an_invalid_json_header_fails_the_send_typed_and_nothing_else() {
    let _g = shared().await;
    hostile_broker_case("invalid_json_header", BAD_JSON_FRAME).await;
}

/// The testkit broker's scripted `Reply::Malformed` (a header length past the frame): same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_answering_a_malformed_frame_fails_the_send_typed_and_nothing_else() {
    let _g = shared().await;
    let c = cluster(2).await;
    c.create_topic("Mixed", 2);
    let p = timeout(
        T,
        Producer::builder("ReliMalformed")
            .name_server(c.namesrv_addr())
            .retries(0)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Mixed", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    // broker-a answers its next send with a malformed frame; broker-b is healthy.
    c.brokers()[0]
        .faults()
        .script([rmq_testkit::Reply::Malformed]);
    let (mut ok, mut failed, mut error) = (0usize, 0usize, String::new());
    for i in 0..20 {
        match timeout(T, p.send(Message::new("Mixed", format!("m{i}"))))
            .await
            .expect("in time")
        {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                assert!(
                    transport_cause(e.kind()).is_some() && !e.is_timeout(),
                    "a transport error: {}",
                    chain(&e)
                );
                error = chain(&e);
            }
        }
    }
    assert_eq!(
        failed, 1,
        "only the send answered with the malformed frame fails"
    );
    assert_eq!(c.messages_of("Mixed").len(), 1 + ok);
    eprintln!(
        "RELIABILITY {{\"scenario\":\"hostile_broker_malformed_frame\",\"load\":\"20 sequential sync sends, retries 0\",\"sent\":21,\"acked\":{},\"failed\":{failed},\"read_back\":{},\"lost\":0,\"error\":\"{}\"}}",
        ok + 1,
        c.messages_of("Mixed").len(),
        error.replace('"', "'")
    );
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

/// A name server answering route requests with `reply`: the send fails with a typed
/// name-server error (no panic, before its deadline) and a producer using a healthy name server
/// at the same time is unaffected.
async fn hostile_name_server_case(label: &str, reply: &'static [u8]) {
    const SEND_TIMEOUT: Duration = Duration::from_secs(5);
    let peer = RawPeer::start(PeerMode::Answer(reply)).await;
    let c = cluster(1).await;
    c.create_topic("Healthy", 2);
    let hostile = timeout(
        T,
        Producer::builder("ReliHostileNs")
            .name_server(&peer.addr)
            .send_timeout(SEND_TIMEOUT)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let healthy = timeout(
        T,
        Producer::builder("ReliHealthyNs")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let (mut worst, mut error, mut ok) = (Duration::ZERO, String::new(), 0usize);
    for i in 0..3 {
        let t0 = Instant::now();
        let (bad, good) = tokio::join!(
            hostile.send(Message::new("Healthy", format!("h{i}"))),
            healthy.send(Message::new("Healthy", format!("g{i}"))),
        );
        let took = t0.elapsed();
        worst = worst.max(took);
        let err = bad.expect_err("no route from a hostile name server");
        error = chain(&err);
        assert!(
            matches!(
                err.kind(),
                ErrorKind::NameServer(_) | ErrorKind::NoRoute { .. }
            ),
            "{label}: typed name-server error: {err:?}"
        );
        assert!(!err.maybe_stored(), "{label}: never sent");
        assert!(
            took < SEND_TIMEOUT + Duration::from_secs(5),
            "{label}: {took:?}"
        );
        good.expect("the healthy producer is unaffected");
        ok += 1;
    }
    assert_eq!(c.messages_of("Healthy").len(), ok);
    eprintln!(
        "RELIABILITY {{\"scenario\":\"hostile_name_server_{label}\",\"load\":\"3 rounds: hostile + healthy producer at once\",\"sent\":6,\"acked\":{ok},\"failed\":3,\"read_back\":{},\"lost\":0,\"worst_ms\":{},\"error\":\"{}\"}}",
        c.messages_of("Healthy").len(),
        worst.as_millis(),
        error.replace('"', "'")
    );
    timeout(T, hostile.shutdown())
        .await
        .expect("shutdown in time");
    timeout(T, healthy.shutdown())
        .await
        .expect("shutdown in time");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_server_answering_an_oversize_frame_fails_the_lookup_typed() {
    let _g = shared().await;
    hostile_name_server_case("oversize_length", OVERSIZE_FRAME).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_server_answering_an_invalid_json_header_fails_the_lookup_typed() {
    let _g = shared().await;
    hostile_name_server_case("invalid_json_header", BAD_JSON_FRAME).await;
}

// ---------------------------------------------------------------------------------------------
// 6. Misuse (what producer_shutdown.rs and the config unit tests do not cover already).
// ---------------------------------------------------------------------------------------------

/// After shutdown, every send form is refused with `NotRunning` and hands the message(s) back,
/// without a request reaching a broker; shutdown again returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_send_form_after_shutdown_is_refused_with_the_message_back() {
    let _g = shared().await;
    let c = cluster(1).await;
    c.create_topic("Late", 2);
    let p = timeout(
        T,
        Producer::builder("ReliLate")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Late", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    let received = c.brokers()[0].request_count(RequestCode::SEND_MESSAGE_V2)
        + c.brokers()[0].request_count(RequestCode::SEND_BATCH_MESSAGE);
    let msg = || Message::new("Late", "late");
    let not_running = |e: &SendError| matches!(e.kind(), ErrorKind::NotRunning);

    let e = timeout(T, p.send(msg()))
        .await
        .expect("in time")
        .expect_err("sync");
    assert!(not_running(&e) && !e.maybe_stored(), "{e:?}");
    assert!(e.into_message().is_some());
    let e = timeout(T, p.send_oneway(msg(), SendOptions::new()))
        .await
        .expect("in time")
        .expect_err("oneway");
    assert!(not_running(&e), "{e:?}");
    assert!(e.into_message().is_some());
    let e = timeout(T, p.send_async(msg(), SendOptions::new()))
        .await
        .expect("in time")
        .expect_err("async");
    assert!(not_running(&e), "{e:?}");
    assert!(e.into_message().is_some());
    let e = p
        .try_send_async(msg(), SendOptions::new())
        .expect_err("try async");
    assert!(not_running(&e), "{e:?}");
    assert!(e.into_message().is_some());
    let e = timeout(T, p.send_batch(vec![msg(), msg()], SendOptions::new()))
        .await
        .expect("in time")
        .expect_err("batch");
    assert!(not_running(&e), "{e:?}");
    assert_eq!(e.into_batch().map(|b| b.len()), Some(2));
    let e = timeout(
        T,
        p.send_batch_async(vec![msg(), msg()], SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect_err("batch async");
    assert!(not_running(&e), "{e:?}");
    assert_eq!(e.into_batch().map(|b| b.len()), Some(2));

    let t0 = Instant::now();
    timeout(T, p.shutdown()).await.expect("second shutdown");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        c.brokers()[0].request_count(RequestCode::SEND_MESSAGE_V2)
            + c.brokers()[0].request_count(RequestCode::SEND_BATCH_MESSAGE),
        received,
        "nothing reached the broker after shutdown"
    );
    assert_eq!(p.stats().sends_in_flight, 0);
    eprintln!(
        "RELIABILITY {{\"scenario\":\"send_after_shutdown\",\"load\":\"one send per form after shutdown\",\"sent\":7,\"acked\":1,\"failed\":6,\"lost\":0}}"
    );
    c.shutdown().await;
}

/// The last handle is dropped (no shutdown) while 100 async sends, 20 sync sends (in tasks
/// holding clones, which end with their send) and 20 oneway sends are in flight against slow
/// brokers: every future resolves, every acknowledged message is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_producer_during_sends_resolves_every_future() {
    let _g = shared().await;
    let c = cluster(2).await;
    c.create_topic("Drop", 2);
    let p = timeout(
        T,
        Producer::builder("ReliDrop")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_secs(10))
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Drop", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    for b in c.brokers() {
        b.faults().set_delay(Duration::from_millis(500));
    }
    let mut asyncs = Vec::new();
    for i in 0..100 {
        asyncs.push(
            timeout(
                T,
                p.send_async(Message::new("Drop", format!("a{i}")), SendOptions::new()),
            )
            .await
            .expect("in time")
            .expect("admitted"),
        );
    }
    let syncs: Vec<_> = (0..20)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { p.send(Message::new("Drop", format!("s{i}"))).await })
        })
        .collect();
    let oneways: Vec<_> = (0..20)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                p.send_oneway(Message::new("Drop", format!("o{i}")), SendOptions::new())
                    .await
            })
        })
        .collect();
    let t0 = Instant::now();
    drop(p);
    let drop_took = t0.elapsed();
    let (mut ok, mut failed) = (0usize, 0usize);
    for f in asyncs {
        match timeout(T, f).await.expect("every async future resolves") {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    for h in syncs {
        match timeout(T, h)
            .await
            .expect("every sync send resolves")
            .expect("task")
        {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    let mut written = 0usize;
    for h in oneways {
        if timeout(T, h)
            .await
            .expect("every oneway send resolves")
            .expect("task")
            .is_ok()
        {
            written += 1;
        }
    }
    let resolved_in = t0.elapsed();
    // Oneway messages are stored some time after they were written.
    eventually(Duration::from_secs(10), || {
        c.messages_of("Drop").len() >= 1 + ok + written
    })
    .await;
    let stored = c.messages_of("Drop").len();
    let conns_gone = eventually(Duration::from_secs(10), || {
        c.brokers().iter().all(|b| b.connection_count() == 0)
    })
    .await;
    let conns: Vec<usize> = c.brokers().iter().map(|b| b.connection_count()).collect();
    eprintln!(
        "RELIABILITY {{\"scenario\":\"drop_during_sends\",\"load\":\"100 async + 20 sync + 20 oneway in flight, 500 ms broker delay\",\"sent\":141,\"acked\":{},\"oneway_written\":{written},\"failed\":{failed},\"read_back\":{stored},\"lost\":{},\"drop_ms\":{},\"all_resolved_ms\":{},\"connections_after\":{conns:?}}}",
        ok + 1,
        (1 + ok + written).saturating_sub(stored),
        drop_took.as_millis(),
        resolved_in.as_millis(),
    );
    assert!(
        drop_took < Duration::from_secs(1),
        "drop never blocks: {drop_took:?}"
    );
    assert_eq!(
        failed, 0,
        "slow brokers still answer within the 10 s deadline"
    );
    assert!(
        stored >= 1 + ok + written,
        "every acknowledged message is stored"
    );
    assert!(
        conns_gone,
        "connections close once the last handle and send are gone: {conns:?}"
    );
    c.shutdown().await;
}

/// Invalid configurations fail `start` with a typed `ConfigError` and open no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configurations_fail_start_typed_without_touching_the_network() {
    let _g = shared().await;
    let ns = timeout(T, MockNameServer::start())
        .await
        .expect("in time")
        .expect("name server");
    let addr = ns.addr();
    let cases: Vec<(&str, rmq_producer::ProducerBuilder)> = vec![
        ("blank group", Producer::builder("").name_server(&addr)),
        (
            "bad group char",
            Producer::builder("a group").name_server(&addr),
        ),
        (
            "reserved group",
            Producer::builder("DEFAULT_PRODUCER").name_server(&addr),
        ),
        ("no name server", Producer::builder("ReliCfg")),
        (
            "not host:port",
            Producer::builder("ReliCfg").name_server("localhost"),
        ),
        (
            "url",
            Producer::builder("ReliCfg").name_server("http://127.0.0.1:9876"),
        ),
        (
            "port 0",
            Producer::builder("ReliCfg").name_server("127.0.0.1:0"),
        ),
        (
            "zero timeout",
            Producer::builder("ReliCfg")
                .name_server(&addr)
                .send_timeout(Duration::ZERO),
        ),
        (
            "huge timeout",
            Producer::builder("ReliCfg")
                .name_server(&addr)
                .send_timeout(Duration::from_secs(u64::MAX / 4)),
        ),
        (
            "zero back-pressure",
            Producer::builder("ReliCfg")
                .name_server(&addr)
                .async_backpressure(0, 1),
        ),
        (
            "compression level",
            Producer::builder("ReliCfg")
                .name_server(&addr)
                .compression(4096, 10),
        ),
    ];
    let mut rejected = Vec::new();
    for (what, builder) in cases {
        match timeout(T, builder.start()).await.expect("in time") {
            Ok(p) => {
                p.shutdown().await;
                panic!("{what}: started");
            }
            Err(e) => {
                // Typed: one of the variants, with a message.
                let _typed: &ConfigError = &e;
                assert!(!e.to_string().is_empty(), "{what}");
                rejected.push(format!("{what}: {e}"));
            }
        }
    }
    assert_eq!(ns.total_requests(), 0);
    assert_eq!(ns.connection_count(), 0, "no connection opened");
    eprintln!("invalid configurations: {rejected:#?}");
    eprintln!(
        "RELIABILITY {{\"scenario\":\"invalid_configuration\",\"load\":\"{} configurations\",\"sent\":0,\"failed\":{},\"lost\":0}}",
        rejected.len(),
        rejected.len()
    );
    ns.shutdown().await;
}
