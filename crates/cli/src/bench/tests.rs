//! Tests of the bench runner: ticks, stop signals, back-pressure room, and runs against a
//! testkit broker.

use super::*;

#[test]
fn body_has_the_requested_size() {
    for size in [1, 26, 27, 4096] {
        let b = body(size);
        assert_eq!(b.len(), size as usize);
        assert!(b.iter().all(u8::is_ascii_lowercase));
    }
}

#[test]
fn the_body_has_no_reference_count_for_the_sends_to_write() {
    // A body with a count of its own is unique while one handle holds it; a static one never
    // is (its clones and drops write nothing shared).
    let b = body(128);
    assert!(!b.is_unique(), "the body is reference-counted");
    let c = b.clone();
    assert_eq!(b.as_ptr(), c.as_ptr(), "one buffer for every message");
}

#[tokio::test(start_paused = true)]
async fn ticks_every_second_until_the_work_ends() {
    let rec = Recorder::default();
    let mut lines = Vec::new();
    let work = async {
        for _ in 0..3 {
            rec.begin(1);
            rec.ok(2, Duration::from_millis(1));
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let started = Instant::now();
    let (_signals, rx) = watch::channel(0);
    let budget = Budget::new(None, None);
    let stop = Stop {
        signals: rx,
        budget: &budget,
    };
    let interrupted = tokio::time::timeout(
        Duration::from_secs(10),
        tick_until(
            work,
            &rec,
            started,
            &mut |i: &Interval| lines.push(*i),
            stop,
        ),
    )
    .await
    .unwrap();
    assert!(!interrupted);
    // The work lasted 3.5 s: ticks at 1, 2 and 3 s.
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines.iter().map(|i| i.at_secs).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

/// Work that stops when the budget does and then takes `linger` to finish (sends in flight).
async fn until_stopped(budget: &Budget, linger: Duration) {
    while budget.take(1) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(linger).await;
}

/// Runs `tick_until` over work that stops with the budget and then lingers `linger`, while
/// the stop-signal count goes to each `(after, count)` in turn: whether the run was
/// interrupted, how long it took, and whether the budget still hands out sends.
async fn signalled(linger: Duration, signals_at: &[(Duration, u32)]) -> (bool, Duration, bool) {
    let rec = Recorder::default();
    let budget = Budget::new(None, None);
    let (signals, rx) = watch::channel(0);
    let stop = Stop {
        signals: rx,
        budget: &budget,
    };
    let work = until_stopped(&budget, linger);
    let signal = async {
        for (after, count) in signals_at {
            tokio::time::sleep(*after).await;
            signals.send_replace(*count);
        }
        std::future::pending::<()>().await;
    };
    let t = Instant::now();
    let mut live = |_: &Interval| {};
    let interrupted = tokio::select! {
        i = tick_until(work, &rec, t, &mut live, stop) => i,
        () = signal => unreachable!("the signals never end"),
    };
    (interrupted, t.elapsed(), budget.take(1) > 0)
}

#[tokio::test(start_paused = true)]
async fn a_first_signal_stops_new_sends_and_waits_for_the_rest() {
    let (interrupted, took, open) =
        signalled(Duration::from_secs(3), &[(Duration::from_millis(2500), 1)]).await;
    assert!(interrupted);
    assert!(!open, "no sends after the signal");
    // Stopped at 2.5 s, then the 3 s of sends in flight were waited for.
    assert!(took >= Duration::from_millis(5400), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_stops_waiting() {
    let second = Duration::from_secs(1);
    let (interrupted, took, open) =
        signalled(Duration::from_secs(3600), &[(second, 1), (second, 2)]).await;
    assert!(interrupted);
    assert!(!open);
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn an_interrupted_summary_says_so_and_a_normal_one_keeps_its_fields() {
    let rec = Recorder::default();
    let mut s = rec.summary("sync", 8, 1, Duration::from_secs(1));
    let normal = serde_json::to_value(&s).unwrap();
    assert!(normal.get("interrupted").is_none(), "{normal}");
    s.interrupted = true;
    let stopped = serde_json::to_value(&s).unwrap();
    assert_eq!(stopped["interrupted"], serde_json::Value::Bool(true));
}

#[test]
fn async_room_follows_the_producers_bounds() {
    let mut cfg = rmq_producer::ProducerBuilder::new("g").config().clone();
    assert_eq!(async_room(&cfg, 128), Some(1024), "by count");
    assert_eq!(
        async_room(&cfg, 1024 * 1024),
        Some(100),
        "by bytes (100 MiB)"
    );
    assert_eq!(
        async_room(&cfg, u32::MAX),
        Some(1),
        "a body over the byte bound"
    );
    cfg.async_backpressure = false;
    assert_eq!(async_room(&cfg, 128), None);
}

/// Against a testkit broker (real clock, real sockets).
mod against_a_broker {
    use rmq_common::RequestCode;
    use rmq_testkit::MockCluster;

    use super::*;

    const WITHIN: Duration = Duration::from_secs(20);

    async fn cluster(topic: &str) -> MockCluster {
        let c = tokio::time::timeout(WITHIN, MockCluster::start(1))
            .await
            .expect("in time")
            .expect("cluster");
        c.create_topic(topic, 4);
        c
    }

    /// A producer for `c` with `max_in_flight` async sends, its route to `topic` known.
    async fn producer(c: &MockCluster, topic: &str, max_in_flight: usize) -> Producer {
        let p = Producer::builder("BenchTest")
            .name_server(c.namesrv_addr())
            .send_timeout(Duration::from_secs(5))
            .async_backpressure(max_in_flight, 1 << 20)
            .start()
            .await
            .expect("start");
        let warm = tokio::time::timeout(WITHIN, p.send(Message::new(topic, "warm"))).await;
        assert!(matches!(warm, Ok(Ok(_))), "{warm:?}");
        p
    }

    /// Send requests the broker received (answered or not).
    fn received(c: &MockCluster) -> usize {
        let b = &c.brokers()[0];
        [RequestCode::SEND_MESSAGE, RequestCode::SEND_MESSAGE_V2]
            .iter()
            .map(|&code| b.request_count(code))
            .sum()
    }

    /// Polls every 5 ms, at most 10 s, until `cond`.
    async fn until(mut cond: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(cond(), "not within 10 s");
    }

    fn plan(topic: &str, mode: BenchMode, concurrency: u32, duration: Duration) -> Plan {
        Plan {
            topic: topic.to_owned(),
            mode,
            size: 16,
            concurrency,
            count: None,
            duration: Some(duration),
            batch: 1,
            send_timeout: Duration::from_secs(5),
            tx: None,
        }
    }

    /// Starts `run` on its own task; the sender sets the stop-signal count.
    fn start(p: &Producer, plan: Plan) -> (watch::Sender<u32>, tokio::task::JoinHandle<Report>) {
        let (tx, rx) = watch::channel(0);
        let p = p.clone();
        let job = tokio::spawn(async move { run(p, None, &plan, rx, |_| {}).await });
        (tx, job)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_first_signal_stops_the_async_sends_waiting_for_room() {
        let c = cluster("BenchRoom").await;
        let p = producer(&c, "BenchRoom", 8).await;
        let base = received(&c);
        c.brokers()[0]
            .faults()
            .set_delay(Duration::from_millis(500));
        let plan = plan("BenchRoom", BenchMode::Async, 100, Duration::from_secs(30));
        let (signals, job) = start(&p, plan);
        // 8 sends written, 92 tasks waiting for room.
        until(|| received(&c) >= base + 8).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(received(&c), base + 8, "bounded by the back-pressure");
        let t = Instant::now();
        signals.send_replace(1);
        let report = tokio::time::timeout(WITHIN, job)
            .await
            .expect("bounded")
            .expect("joined");
        // Only the 8 admitted were awaited (answered within 0.5 s).
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let s = &report.summary;
        assert!(s.interrupted);
        assert_eq!((s.sent, s.failed, s.abandoned), (8, 0, 0), "{s:?}");
        assert_eq!(report.exit_code, crate::output::exit::OK);
        // And none of the waiting tasks sent afterwards.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(received(&c), base + 8, "no send after the signal");
        tokio::time::timeout(WITHIN, p.shutdown())
            .await
            .expect("shutdown");
        c.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_end_of_the_duration_stops_the_async_sends_waiting_for_room() {
        let c = cluster("BenchRoomEnd").await;
        let p = producer(&c, "BenchRoomEnd", 4).await;
        let base = received(&c);
        c.brokers()[0]
            .faults()
            .set_delay(Duration::from_millis(400));
        let plan = plan("BenchRoomEnd", BenchMode::Async, 50, Duration::from_secs(1));
        let t = Instant::now();
        let (_signals, job) = start(&p, plan);
        let report = tokio::time::timeout(WITHIN, job)
            .await
            .expect("bounded")
            .expect("joined");
        // Rounds of 4 at about 0, 0.4 and 0.8 s; none after 1 s.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let s = &report.summary;
        let sent = received(&c) - base;
        assert!(sent <= 16, "{sent} sends: {s:?}");
        assert_eq!(
            (s.sent, s.failed, s.abandoned),
            (sent as u64, 0, 0),
            "{s:?}"
        );
        assert!(!s.interrupted);
        tokio::time::timeout(WITHIN, p.shutdown())
            .await
            .expect("shutdown");
        c.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn broker_refusals_are_javas_response_failed() {
        let c = cluster("BenchRefused").await;
        let p = producer(&c, "BenchRefused", 8).await;
        // Not retried (as in Java): each refusal fails one message.
        c.brokers()[0]
            .faults()
            .script_codes([rmq_common::ResponseCode::MESSAGE_ILLEGAL; 3]);
        let mut plan = plan("BenchRefused", BenchMode::Sync, 1, Duration::from_secs(30));
        plan.count = Some(10);
        let (_signals, job) = start(&p, plan);
        let report = tokio::time::timeout(WITHIN, job)
            .await
            .expect("bounded")
            .expect("joined");
        let s = &report.summary;
        assert_eq!((s.sent, s.failed, report.refused), (7, 3, 3), "{s:?}");
        let line = java_line::complete_line(s, &report.latency, report.refused);
        assert!(
            line.starts_with("[Complete] Send Total: 10 | ")
                && line.ends_with(" | Send Failed: 0 | Response Failed: 3"),
            "{line}"
        );
        assert_eq!(report.latency.len(), 7, "only answered sends are timed");
        tokio::time::timeout(WITHIN, p.shutdown())
            .await
            .expect("shutdown");
        c.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_signal_reports_the_sends_in_flight_as_abandoned() {
        let c = cluster("BenchAbandon").await;
        let p = producer(&c, "BenchAbandon", 8).await;
        let base = received(&c);
        c.brokers()[0].faults().set_delay(Duration::from_secs(1));
        let plan = plan("BenchAbandon", BenchMode::Sync, 20, Duration::from_secs(30));
        let (signals, job) = start(&p, plan);
        // Every task waits for its answer.
        until(|| received(&c) >= base + 20).await;
        let t = Instant::now();
        signals.send_replace(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        signals.send_replace(2);
        let report = tokio::time::timeout(WITHIN, job)
            .await
            .expect("bounded")
            .expect("joined");
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
        let s = &report.summary;
        assert!(s.interrupted);
        assert_eq!((s.sent, s.failed, s.abandoned), (0, 0, 20), "{s:?}");
        assert_eq!(
            report.exit_code,
            crate::output::exit::MAYBE_STORED,
            "abandoned sends may have been stored"
        );
        // They were: answered after the bench stopped waiting.
        tokio::time::timeout(WITHIN, p.shutdown())
            .await
            .expect("shutdown");
        until(|| c.messages_of("BenchAbandon").len() == 21).await;
        c.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn drain_is_bounded() {
    let rec = Recorder::default();
    rec.begin(1); // never completes
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), drain(&rec, Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(2));
}
