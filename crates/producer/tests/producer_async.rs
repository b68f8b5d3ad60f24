//! Asynchronous sends: exactly-once resolution under random faults, and back-pressure.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmq_common::{property, Message, ResponseCode};
use rmq_producer::{ErrorKind, Producer, SendError, SendOptions, SendResult};
use rmq_testkit::{MockCluster, Reply};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(60);

/// A small deterministic generator (xorshift64*), seeded per run and printed on failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_reply(rng: &mut Rng) -> Reply {
    // Per mille. Connection-killing faults are rare: each one fails every request in flight on
    // that connection (up to the back-pressure bound), as a real broker crash would.
    match rng.below(1000) {
        0..=879 => Reply::Code(ResponseCode::SUCCESS, None),
        880..=929 => ResponseCode::SYSTEM_BUSY.into(),
        930..=949 => ResponseCode::MESSAGE_ILLEGAL.into(),
        950..=969 => ResponseCode::FLUSH_DISK_TIMEOUT.into(),
        970..=989 => ResponseCode::TOPIC_NOT_EXIST.into(),
        990..=993 => Reply::Close,
        994..=996 => Reply::Malformed,
        _ => Reply::NoReply,
    }
}

type Outcome = Result<SendResult, SendError>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_async_sends_with_random_faults_resolve_exactly_once() {
    const N: usize = 10_000;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let c = timeout(T, MockCluster::start(2))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Chaos", 4);
    for b in c.brokers() {
        b.faults().script((0..N).map(|_| random_reply(&mut rng)));
    }
    let p = timeout(
        T,
        Producer::builder("ChaosGroup")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_millis(800))
            .async_backpressure(256, 16 << 20)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");

    // Chaos: close live connections now and then while the sends run (bounded in count).
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let stop = Arc::clone(&stop);
        let brokers: Vec<_> = c.brokers().to_vec();
        let mut rng = Rng(seed.rotate_left(17) | 1);
        tokio::spawn(async move {
            for _ in 0..100 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let i = usize::try_from(rng.below(brokers.len() as u64)).unwrap_or(0);
                brokers[i].close_connections();
            }
        })
    };

    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..N / 2).map(|_| AtomicU8::new(0)).collect());
    let callback_outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let callbacks_done = Arc::new(AtomicUsize::new(0));
    let mut futures = Vec::with_capacity(N / 2);
    let mut callback_tasks = Vec::with_capacity(N / 2);
    let started = Instant::now();
    for i in 0..N {
        let msg = Message::new("Chaos", format!("m{i}")).with_keys([format!("k{i}")]);
        let f = timeout(T, p.send_async(msg, SendOptions::new()))
            .await
            .expect("admitted in time")
            .expect("admitted");
        if i % 2 == 0 {
            futures.push(f);
        } else {
            // The callback form: a task awaiting the future, then calling back.
            let slot = i / 2;
            let (calls, outcomes, done) = (
                Arc::clone(&calls),
                Arc::clone(&callback_outcomes),
                Arc::clone(&callbacks_done),
            );
            let cb = move |outcome: Outcome| {
                calls[slot].fetch_add(1, Ordering::SeqCst);
                outcomes.lock().expect("lock").push(outcome);
                done.fetch_add(1, Ordering::SeqCst);
            };
            callback_tasks.push(tokio::spawn(async move { cb(f.await) }));
        }
    }
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(N);
    for f in futures {
        outcomes.push(timeout(T, f).await.expect("every future resolves"));
    }
    let deadline = Instant::now() + T;
    while callbacks_done.load(Ordering::SeqCst) < N / 2 {
        assert!(
            Instant::now() < deadline,
            "callbacks missing: {}",
            callbacks_done.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    timeout(T, chaos)
        .await
        .expect("chaos ends")
        .expect("chaos task");
    // Back-pressure room is freed before an outcome is delivered: nothing holds it now.
    let stats = p.stats();
    assert_eq!(
        (stats.async_in_flight, stats.async_bytes_in_flight),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(
        stats.pending_requests, 0,
        "correlation tables end empty: {stats:?}"
    );
    outcomes.append(&mut callback_outcomes.lock().expect("lock"));
    assert_eq!(outcomes.len(), N, "results + errors == sent");

    // What the errors say about storage holds against what the brokers stored.
    let stored: HashSet<String> = c
        .messages_of("Chaos")
        .iter()
        .filter_map(|m| m.property(property::UNIQ_KEY).map(str::to_owned))
        .collect();
    let (mut ok, mut not_stored, mut maybe) = (0, 0, 0);
    for outcome in outcomes {
        match outcome {
            Ok(r) => {
                assert!(
                    stored.contains(&r.msg_id),
                    "acknowledged but not stored: {r}"
                );
                ok += 1;
            }
            Err(e) if e.maybe_stored() => {
                assert!(e.into_message().is_none());
                maybe += 1;
            }
            Err(e) => {
                let msg = e.into_message().expect("certainly unsent: handed back");
                let id = msg
                    .property(property::UNIQ_KEY)
                    .expect("id set before sending");
                assert!(!stored.contains(id), "said not stored, but stored: {id}");
                not_stored += 1;
            }
        }
    }
    eprintln!(
        "{ok} ok, {not_stored} not stored, {maybe} maybe stored in {:?}",
        started.elapsed()
    );
    assert!(ok > N / 2, "most sends succeed despite the faults ({ok})");
    // Shutdown waits for every send; every callback task has ended: no callback can run again.
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert_eq!(p.stats().sends_in_flight, 0);
    for task in callback_tasks {
        timeout(T, task)
            .await
            .expect("callback task ends")
            .expect("callback task");
    }
    assert!(
        calls.iter().all(|c| c.load(Ordering::SeqCst) == 1),
        "a callback ran twice or never"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_bounds_sends_in_flight() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Bp", 1);
    let p = timeout(
        T,
        Producer::builder("BpGroup")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_millis(800))
            .retries_async(0)
            .async_backpressure(4, 1 << 20)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    // Learn the route, then hold every answer.
    timeout(T, p.send(Message::new("Bp", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    let broker = &c.brokers()[0];
    broker.faults().set_black_hole(true);
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(
            p.try_send_async(Message::new("Bp", format!("{i}")), SendOptions::new())
                .expect("room for 4"),
        );
    }
    assert_eq!(p.stats().async_in_flight, 4);
    let err = p
        .try_send_async(Message::new("Bp", "fifth"), SendOptions::new())
        .expect_err("full");
    assert!(err.is_overloaded(), "{err}");
    assert!(!err.maybe_stored());
    let back = err.into_message().expect("handed back");
    assert_eq!(back.body(), "fifth");
    assert_eq!(
        back.property(property::UNIQ_KEY),
        None,
        "refused before any preparation (no id assigned)"
    );

    // send_async waits for room instead, within its own deadline (which covers the wait: give
    // it more time than the held sends have left).
    let waiting = {
        let p = p.clone();
        tokio::spawn(async move {
            let options = SendOptions::new().timeout(Duration::from_secs(5));
            p.send_async(Message::new("Bp", "waiter"), options).await
        })
    };
    // The waiter is admitted as in flight (then waits for room), without being launched.
    let deadline = Instant::now() + T;
    while p.stats().sends_in_flight < 5 {
        assert!(Instant::now() < deadline, "the waiter never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "waits while full");
    assert_eq!(p.stats().async_in_flight, 4, "no room taken by the waiter");
    broker.faults().set_black_hole(false);
    for f in held {
        let err = timeout(T, f)
            .await
            .expect("resolves")
            .expect_err("held answers time out");
        assert!(err.maybe_stored(), "{err}");
    }
    let fut = timeout(T, waiting)
        .await
        .expect("admitted once room freed")
        .expect("task")
        .expect("admitted");
    timeout(T, fut).await.expect("resolves").expect("sent");

    // The byte bound: two bodies of 600 bytes do not fit in 1000.
    timeout(T, p.shutdown()).await.expect("shutdown");
    let p = timeout(
        T,
        Producer::builder("BpGroup")
            .name_server(c.namesrv_addr())
            .async_backpressure(100, 1000)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("Bp", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    broker.faults().set_black_hole(true);
    let first = p
        .try_send_async(Message::new("Bp", vec![b'x'; 600]), SendOptions::new())
        .expect("room");
    let err = p
        .try_send_async(Message::new("Bp", vec![b'y'; 600]), SendOptions::new())
        .expect_err("bytes full");
    assert!(err.is_overloaded());
    assert_eq!(p.stats().async_bytes_in_flight, 600);
    broker.faults().set_black_hole(false);
    broker.close_connections();
    let _ = timeout(T, first).await.expect("resolves");
    timeout(T, p.shutdown()).await.expect("shutdown");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_sends_from_one_task_are_written_in_order() {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic("Ordered", 1);
    let p = timeout(
        T,
        Producer::builder("OrderGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    let mut futures = Vec::new();
    for i in 0..500 {
        let msg = Message::new("Ordered", format!("{i}"));
        futures.push(
            timeout(T, p.send_async(msg, SendOptions::new()))
                .await
                .expect("in time")
                .expect("admitted"),
        );
    }
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(
            timeout(T, f)
                .await
                .expect("in time")
                .expect("sent")
                .queue_offset,
        );
    }
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "queue offsets follow the send order"
    );
    let bodies: Vec<String> = c
        .messages_of("Ordered")
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    let expected: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(bodies, expected);
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    c.shutdown().await;
}

async fn one_broker(topic: &str) -> MockCluster {
    let c = timeout(T, MockCluster::start(1))
        .await
        .expect("in time")
        .expect("cluster");
    c.create_topic(topic, 2);
    c
}

/// The callback form of an asynchronous send is a task awaiting its [`SendFuture`]: a callback
/// that panics ends its own task only; the other sends (and callbacks) are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_does_not_affect_other_sends() {
    let c = one_broker("Panic").await;
    let p = timeout(
        T,
        Producer::builder("PanicGroup")
            .name_server(c.namesrv_addr())
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    const N: usize = 60;
    let calls: Arc<Vec<AtomicU8>> = Arc::new((0..N).map(|_| AtomicU8::new(0)).collect());
    let oks = Arc::new(AtomicUsize::new(0));
    let mut futures = Vec::new();
    let mut callback_tasks = Vec::new();
    for i in 0..N {
        let (calls, oks) = (Arc::clone(&calls), Arc::clone(&oks));
        let cb = move |outcome: Outcome| {
            calls[i].fetch_add(1, Ordering::SeqCst);
            assert!(i % 3 != 0, "callback {i} panics");
            if outcome.is_ok() {
                oks.fetch_add(1, Ordering::SeqCst);
            }
        };
        let f = timeout(
            T,
            p.send_async(Message::new("Panic", format!("{i}")), SendOptions::new()),
        )
        .await
        .expect("admitted in time")
        .expect("admitted");
        callback_tasks.push(tokio::spawn(async move { cb(f.await) }));
        futures.push(
            timeout(
                T,
                p.send_async(Message::new("Panic", format!("f{i}")), SendOptions::new()),
            )
            .await
            .expect("in time")
            .expect("admitted"),
        );
    }
    for f in futures {
        timeout(T, f)
            .await
            .expect("every future resolves")
            .expect("sent despite panicking callbacks");
    }
    // Later sends still complete normally.
    let later = timeout(
        T,
        p.send_async(Message::new("Panic", "later"), SendOptions::new()),
    )
    .await
    .expect("in time")
    .expect("admitted");
    timeout(T, later).await.expect("resolves").expect("sent");
    // Every callback task ends: the panicking ones with their panic, the others normally.
    for (i, task) in callback_tasks.into_iter().enumerate() {
        let joined = timeout(T, task).await.expect("callback task ends");
        if i % 3 == 0 {
            assert!(
                joined.expect_err("callback panics").is_panic(),
                "callback {i}"
            );
        } else {
            joined.expect("callback returns");
        }
    }
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert!(
        calls.iter().all(|c| c.load(Ordering::SeqCst) == 1),
        "every callback ran exactly once"
    );
    assert_eq!(oks.load(Ordering::SeqCst), N - N.div_ceil(3));
    assert_eq!(c.messages_of("Panic").len(), 2 * N + 1);
    c.shutdown().await;
}

/// An asynchronous send given up by its caller while it waits for back-pressure room (the
/// `send_async` future dropped before it returned a [`SendFuture`]) is never written, gives its
/// admission back at once (the room it waited for goes to the next send), and leaves the
/// producer's accounting and shutdown untouched. (The callback form `spawn(cb(fut.await))`
/// never runs for it: there is no future to await, and the message went with the caller.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_pending_send_is_never_written_and_frees_its_admission() {
    let c = one_broker("DropCb").await;
    let p = timeout(
        T,
        Producer::builder("DropCbGroup")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_secs(2))
            .retries_async(0)
            .async_backpressure(1, 1 << 20)
            .start(),
    )
    .await
    .expect("in time")
    .expect("start");
    timeout(T, p.send(Message::new("DropCb", "warm")))
        .await
        .expect("in time")
        .expect("sent");
    c.brokers()[0].faults().set_black_hole(true);
    let held = p
        .try_send_async(Message::new("DropCb", "held"), SendOptions::new())
        .expect("room for one");
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<Outcome>();
    let cb = {
        let calls = Arc::clone(&calls);
        move |outcome: Outcome| {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(outcome);
        }
    };
    // The send waits for room; the caller gives up and drops it.
    let gave_up = timeout(
        Duration::from_millis(100),
        p.send_async(Message::new("DropCb", "dropped"), SendOptions::new()),
    )
    .await;
    assert!(gave_up.is_err(), "still waiting for room when dropped");
    // Its admission is gone with it: only the held send is in flight.
    let deadline = Instant::now() + T;
    while p.stats().sends_in_flight != 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped send stays in flight: {:?}",
            p.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.stats().async_in_flight, 1, "{:?}", p.stats());
    // A refused send (full) hands its message back, certainly not stored: what a callback of
    // a send that never started sees.
    let err = p
        .try_send_async(Message::new("DropCb", "refused"), SendOptions::new())
        .expect_err("still full");
    assert!(
        matches!(err.kind(), ErrorKind::Overloaded { .. }),
        "{err:?}"
    );
    assert!(!err.maybe_stored(), "never admitted: certainly not stored");
    c.brokers()[0].faults().set_black_hole(false);
    let _ = timeout(T, held).await.expect("resolves");
    // The room the dropped send waited for goes to the next send, whose callback runs once.
    let next = timeout(
        T,
        p.send_async(Message::new("DropCb", "next"), SendOptions::new()),
    )
    .await
    .expect("room freed")
    .expect("admitted");
    let task = tokio::spawn(async move { cb(next.await) });
    let outcome = timeout(T, rx)
        .await
        .expect("called back in time")
        .expect("called");
    outcome.expect("the next send goes through");
    timeout(T, task).await.expect("task ends").expect("task");
    timeout(T, p.shutdown()).await.expect("shutdown in time");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(p.stats().sends_in_flight, 0);
    assert!(
        c.messages_of("DropCb")
            .iter()
            .all(|m| m.body() != "dropped"),
        "the dropped send was never written"
    );
    c.shutdown().await;
}

/// A body that records when its last reference goes.
struct TrackedBody {
    dropped: Arc<AtomicBool>,
    bytes: Vec<u8>,
}

impl AsRef<[u8]> for TrackedBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

/// Polls `cond` every 10 ms for at most 5 s.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// A finished send whose future is not awaited yet keeps neither the message body nor the
/// producer's connections alive; awaiting it later still gives the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unawaited_finished_send_holds_no_body_and_no_connection() {
    let cluster = one_broker("AsyncHeld").await;
    let broker = &cluster.brokers()[0];
    let p = Producer::builder("AsyncHeldGroup")
        .name_server(cluster.namesrv_addr())
        .start()
        .await
        .expect("start");
    let dropped = Arc::new(AtomicBool::new(false));
    let body = bytes::Bytes::from_owner(TrackedBody {
        dropped: Arc::clone(&dropped),
        bytes: vec![7; 64],
    });
    let fut = p
        .send_async(Message::new("AsyncHeld", body), SendOptions::new())
        .await
        .expect("admitted");
    assert!(eventually(|| broker.message_count() == 1).await, "stored");
    assert!(
        eventually(|| dropped.load(Ordering::SeqCst)).await,
        "the body is released once the send is over, before its future is awaited"
    );
    assert!(broker.connection_count() > 0);
    drop(p);
    assert!(
        eventually(|| broker.connection_count() == 0).await,
        "the last producer handle gone, its connections close though a finished future is held"
    );
    let result = timeout(Duration::from_secs(5), fut)
        .await
        .expect("resolves")
        .expect("sent");
    assert_eq!(result.queue.topic, "AsyncHeld");
}
