//! Reliability at the producer level, against in-process servers on 127.0.0.1 (the testkit's
//! mocks, and raw TCP peers for what the mocks cannot do: a broker that never reads, a peer that
//! answers hostile frames).
//!
//! - name server down with routes cached: known topics keep sending, a new topic fails typed and
//!   names the name server, both recover;
//! - black hole: every send form completes within its deadline, and nothing leaks afterwards
//!   (counters, pending requests, connections, tasks);
//! - a broker that stops reading: memory stays within the async back-pressure byte bound;
//! - hostile frames from a broker and from a name server: a typed error, no panic, and the
//!   healthy traffic next to it is unaffected;
//! - misuse: every send form after shutdown, dropping the producer during sends, invalid
//!   configurations at `start`.
//!
//! Every test prints a `RELIABILITY {json}` line on stderr (`cargo test -- --nocapture`) with its
//! numbers; `RELIABILITY.md` at the top of the repository holds those of a run. Every loop is
//! bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rmq_common::{Message, RequestCode};
use rmq_producer::{ConfigError, ErrorKind, Producer, SendError, SendOptions};
use rmq_remoting::RemotingError;
use rmq_testkit::{MockCluster, MockNameServer, RouteBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A generous bound for any single await.
const T: Duration = Duration::from_secs(30);

/// The memory test measures the process's RSS: it runs alone, every other test holds this
/// lock shared.
static MEMORY_LOCK: RwLock<()> = RwLock::const_new(());

async fn shared() -> RwLockReadGuard<'static, ()> {
    MEMORY_LOCK.read().await
}

async fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MEMORY_LOCK.write().await
}

async fn cluster(brokers: usize) -> MockCluster {
    timeout(T, MockCluster::start(brokers))
        .await
        .expect("cluster in time")
        .expect("cluster")
}

use rmq_testkit::error_line as chain;

/// The transport error behind `kind` (itself, or the last attempt's of a timeout or of
/// exhausted retries).
fn transport_cause(kind: &ErrorKind) -> Option<&RemotingError> {
    match kind {
        ErrorKind::Transport { source, .. } => Some(source),
        ErrorKind::RetriesExhausted { last, .. } => transport_cause(last),
        ErrorKind::Timeout {
            last: Some(last), ..
        } => transport_cause(last),
        _ => None,
    }
}

/// Polls `cond` every 10 ms for at most `bound`.
async fn eventually(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A raw TCP peer on 127.0.0.1 standing in for a broker or a name server; its tasks end when
/// it is dropped.
struct RawPeer {
    addr: String,
    accepted: Arc<AtomicUsize>,
    frames: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum PeerMode {
    /// Accepts and holds every connection, never reads a byte.
    Mute,
    /// Reads frame after frame and answers each with these bytes (the connection stays open
    /// until the client closes it).
    Answer(&'static [u8]),
}

impl RawPeer {
    async fn start(mode: PeerMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (accepted, frames) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, f) = (accepted.clone(), frames.clone());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            let mut conns = tokio::task::JoinSet::new();
            // Bounded: a test opens a handful of connections.
            for _ in 0..256 {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                a.fetch_add(1, Ordering::SeqCst);
                match mode {
                    PeerMode::Mute => held.push(socket),
                    PeerMode::Answer(reply) => {
                        let f = f.clone();
                        conns.spawn(answer_frames(socket, reply, f));
                    }
                }
            }
            // Keep the held sockets open until aborted.
            std::future::pending::<()>().await;
            drop((held, conns));
        });
        Self {
            addr,
            accepted,
            frames,
            task,
        }
    }
}

/// Answers every frame read on `socket` with `reply` (at most 1024 frames).
async fn answer_frames(mut socket: TcpStream, reply: &'static [u8], frames: Arc<AtomicUsize>) {
    for _ in 0..1024 {
        let mut len = [0u8; 4];
        if socket.read_exact(&mut len).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > 64 << 20 {
            return;
        }
        let mut frame = vec![0u8; n];
        if socket.read_exact(&mut frame).await.is_err() {
            return;
        }
        frames.fetch_add(1, Ordering::SeqCst);
        if socket.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// A length word announcing a 2 GiB frame (over any frame bound), then a few bytes.
const OVERSIZE_FRAME: &[u8] = &[0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, b'{', b'}'];

/// A well-framed command whose JSON header is not JSON.
const BAD_JSON_FRAME: &[u8] = &[
    0, 0, 0, 20, // frame length: 4 + 16
    0, 0, 0, 16, // serialize type JSON, header length 16
    b'{', b'n', b'o', b't', b' ', b'j', b's', b'o', b'n', b',', b' ', b'"', b'c', b'o', b'd', b'e',
];

/// Resident set size of this process, in bytes (Linux: `/proc/self/statm`, 4 KiB pages).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `len` pseudo-random (incompressible) bytes.
fn random_body(seed: u64, len: usize) -> Bytes {
    let mut x = seed | 1;
    let mut out = BytesMut::with_capacity(len);
    while out.len() + 8 <= len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.put_u64(x);
    }
    out.resize(len, 0);
    out.freeze()
}

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
