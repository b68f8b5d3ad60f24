//! `rmq bench`: N tasks send through one producer until the count or the duration is reached;
//! a live line every second, one JSON summary at the end.
//!
//! Latency is measured per request: from the call to its answer for sync and batch sends, to the
//! write for oneway sends, and from admission (after the back-pressure wait) to the answer for
//! async sends.
//!
//! A stop signal ends the run in two steps: the first starts no new send (tasks waiting for
//! back-pressure room give up) and waits, bounded, for those started; the second stops waiting.
//! Sends started and not resolved when the bench stops waiting are counted as `abandoned`: they
//! may have been stored, and the exit code says so.

mod auto_batch;
mod budget;
mod stats;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rmq_common::Message;
use rmq_producer::{Producer, SendError, SendOptions};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cli::{BenchArgs, BenchMode};
use crate::fatal::Fatal;
use crate::output::{error_kind, one_line, print_stdout, to_json, Tally};

pub(crate) use auto_batch::AutoBatchArgs;
use budget::Budget;
pub(crate) use stats::{Interval, Recorder, Summary};

/// How often the live line is printed.
const TICK: Duration = Duration::from_secs(1);

/// Runs `rmq bench` against `namesrv`: live lines on stderr, the summary on stdout.
pub(crate) async fn command(args: &BenchArgs, namesrv: &str) -> Result<u8, Fatal> {
    let plan = Plan::from(args);
    let mut builder = rmq_producer::ProducerBuilder::new(args.group.as_str())
        .name_server(namesrv)
        .send_timeout(plan.send_timeout);
    if let Some(tls) = args.target.namesrv.tls.config()? {
        builder = builder.tls(tls);
    }
    builder = args.auto_batch.apply(builder);
    let producer = builder
        .start()
        .await
        .map_err(|e| crate::fatal::producer_start(&e))?;
    // Ctrl-C / SIGTERM: the first stops new sends and waits for those in flight (bounded), the
    // second stops waiting; either way the summary of what happened is printed.
    let signals = crate::signals::count_stop_signals();
    let report = run(producer.clone(), &plan, signals, |i| {
        eprintln!("rmq bench: {}", i.line())
    })
    .await;
    // The summary first: after a second signal nobody waits for the abandoned sends (their
    // outcome is unknown, and reported so), so shutdown gets only a short bound after it.
    if let Some(first) = &report.first_failure {
        eprintln!(
            "rmq bench: {} failed; the first: {first}",
            report.summary.failed
        );
    }
    if report.summary.abandoned > 0 {
        eprintln!(
            "rmq bench: {} abandoned: sent, not answered when the bench stopped waiting; they may have been stored",
            report.summary.abandoned
        );
    }
    print_stdout(&to_json(&report.summary));
    let bound = if report.summary.abandoned > 0 {
        ABANDONED_SHUTDOWN
    } else {
        plan.send_timeout.saturating_add(ABANDONED_SHUTDOWN)
    };
    if tokio::time::timeout(bound, producer.shutdown())
        .await
        .is_err()
    {
        tracing::debug!(
            ?bound,
            "bench: not waiting longer for the producer to shut down"
        );
    }
    Ok(report.exit_code)
}

/// How long the bench waits for the producer to shut down once it abandoned sends.
const ABANDONED_SHUTDOWN: Duration = Duration::from_secs(1);

impl From<&BenchArgs> for Plan {
    fn from(a: &BenchArgs) -> Self {
        Self {
            topic: a.topic.clone(),
            mode: a.mode,
            size: a.size,
            concurrency: a.concurrency,
            count: a.count,
            duration: a.duration.map(Duration::from_secs),
            batch: a.batch,
            send_timeout: Duration::from_millis(a.timeout_ms),
        }
    }
}

/// One benchmark run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) topic: String,
    pub(crate) mode: BenchMode,
    pub(crate) size: u32,
    pub(crate) concurrency: u32,
    pub(crate) count: Option<u64>,
    pub(crate) duration: Option<Duration>,
    pub(crate) batch: u32,
    /// The producer's send timeout: bounds the drain of async sends at the end.
    pub(crate) send_timeout: Duration,
}

/// What a run produced.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) summary: Summary,
    /// The first failure, in one line (`kind: message`).
    pub(crate) first_failure: Option<String>,
    /// 0 without failures; 3 when a failed or abandoned message may have been stored; 1
    /// otherwise.
    pub(crate) exit_code: u8,
}

/// State shared by the sending tasks.
#[derive(Debug)]
struct Shared {
    producer: Producer,
    topic: String,
    body: Bytes,
    mode: BenchMode,
    batch: u64,
    budget: Budget,
    rec: Arc<Recorder>,
    first_failure: OnceLock<String>,
    /// Async mode: room among the sends in flight, as much as the producer's back-pressure
    /// bounds give (`None`: unbounded). Waited for here, not in `send_async`, so that a stop
    /// can end the wait: a pending `send_async` may already be writing its request.
    room: Option<Arc<Semaphore>>,
    /// The send timeout: it covers an async send's wait for room too, as in the producer.
    send_timeout: Duration,
}

impl Shared {
    fn message(&self) -> Message {
        Message::new(self.topic.clone(), self.body.clone())
    }

    fn fail(&self, msgs: u64, e: &SendError) {
        self.rec.failed(msgs, e.maybe_stored());
        // Only the first failure is kept; later ones are counted.
        let _ = self
            .first_failure
            .set(format!("{}: {}", error_kind(e.kind()), one_line(e)));
    }

    /// Waits for room for one async send (`Ok(None)` without a bound).
    async fn room(&self) -> Result<Option<OwnedSemaphorePermit>, NoRoom> {
        let Some(room) = &self.room else {
            return Ok(None);
        };
        if self.budget.is_closed() {
            return Err(NoRoom::Closed);
        }
        if let Ok(p) = Arc::clone(room).try_acquire_owned() {
            return Ok(Some(p));
        }
        tokio::select! {
            biased;
            () = self.budget.closed() => Err(NoRoom::Closed),
            p = tokio::time::timeout(self.send_timeout, Arc::clone(room).acquire_owned()) => match p {
                Ok(Ok(p)) => Ok(Some(p)),
                // Never closed; as a stop if it were.
                Ok(Err(_)) => Err(NoRoom::Closed),
                Err(_) => Err(NoRoom::TimedOut),
            },
        }
    }
}

/// Why an async send got no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoRoom {
    /// The budget closed (a stop signal, the end of the duration): no new send.
    Closed,
    /// None within the send timeout.
    TimedOut,
}

/// The async sends a producer with `cfg` admits at once for bodies of `size` bytes (`None`:
/// unbounded), as its back-pressure counts them: by sends and by body bytes.
fn async_room(cfg: &rmq_producer::ProducerConfig, size: u32) -> Option<usize> {
    if !cfg.async_backpressure {
        return None;
    }
    let size = (size as usize).max(1);
    let by_bytes = (cfg.async_max_bytes / size).max(1);
    Some(
        cfg.async_max_in_flight
            .min(by_bytes)
            .clamp(1, Semaphore::MAX_PERMITS),
    )
}

/// A body of `size` printable bytes.
fn body(size: u32) -> Bytes {
    (0..size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Runs `plan` through `producer`, calling `live` with each interval (every second). A change
/// of `signals` to 1 stops handing out new sends (those in flight are still awaited, bounded);
/// 2 or more stops waiting for them (they are reported as abandoned).
pub(crate) async fn run(
    producer: Producer,
    plan: &Plan,
    signals: watch::Receiver<u32>,
    mut live: impl FnMut(&Interval),
) -> Report {
    let start = Instant::now();
    let room = match plan.mode {
        BenchMode::Async => {
            async_room(producer.config(), plan.size).map(|n| Arc::new(Semaphore::new(n)))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        producer,
        topic: plan.topic.clone(),
        body: body(plan.size),
        mode: plan.mode,
        batch: if plan.mode == BenchMode::Batch {
            u64::from(plan.batch)
        } else {
            1
        },
        budget: Budget::new(plan.count, plan.duration.map(|d| start.into_std() + d)),
        rec: Arc::new(Recorder::default()),
        first_failure: OnceLock::new(),
        room,
        send_timeout: plan.send_timeout,
    });
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&shared))))
        .collect();
    let all_done = async {
        for w in workers {
            // A worker only ends by running out of budget (or a stop); a panic would be a bug,
            // reported as such on stderr, and the run still ends.
            if let Err(e) = w.await {
                eprintln!("rmq bench: a sending task failed: {e}");
            }
            // Async sends resolve after their worker returned: wait for them, bounded.
        }
        drain(&shared.rec, plan.send_timeout + Duration::from_secs(5)).await;
    };
    let interrupted = tick_until(
        all_done,
        &shared.rec,
        start,
        &mut live,
        Stop {
            signals,
            budget: &shared.budget,
        },
    )
    .await;
    let elapsed = start.elapsed();
    let mut summary = shared
        .rec
        .summary(plan.mode.as_str(), plan.size, plan.concurrency, elapsed);
    summary.interrupted = interrupted;
    let (_, maybe_stored) = shared.rec.failures();
    // An abandoned send's outcome is unknown: it may have been stored.
    let exit_code = Tally {
        ok: summary.sent,
        failed: summary.failed + summary.abandoned,
        maybe_stored: maybe_stored + summary.abandoned,
    }
    .exit_code();
    Report {
        summary,
        first_failure: shared.first_failure.get().cloned(),
        exit_code,
    }
}

/// What stops a run early: the count of stop signals, and the budget to close.
struct Stop<'a> {
    signals: watch::Receiver<u32>,
    budget: &'a Budget,
}

/// Calls `live` every [`TICK`] until `work` finishes, or until a second stop signal; returns
/// whether a stop signal came.
async fn tick_until(
    work: impl Future<Output = ()>,
    rec: &Recorder,
    start: Instant,
    live: &mut impl FnMut(&Interval),
    mut stop: Stop<'_>,
) -> bool {
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(Instant::now() + TICK, TICK);
    let (mut last_at, mut last_sent) = (Instant::now(), 0);
    let (mut listening, mut interrupted) = (true, false);
    loop {
        tokio::select! {
            () = &mut work => return interrupted,
            _ = ticks.tick() => {
                let now = Instant::now();
                let interval = rec.interval(start.elapsed().as_secs(), last_sent, now - last_at);
                (last_at, last_sent) = (now, rec.sent());
                live(&interval);
            }
            changed = stop.signals.changed(), if listening => {
                let count = *stop.signals.borrow_and_update();
                match (changed, count) {
                    (Err(_), _) => listening = false,
                    (Ok(()), 0) => {}
                    (Ok(()), 1) => {
                        interrupted = true;
                        stop.budget.stop();
                        eprintln!(
                            "rmq bench: stopping: no new sends; waiting for {} in flight (again to stop now)",
                            rec.in_flight()
                        );
                    }
                    (Ok(()), _) => {
                        // Two signals may arrive as one change: stop new sends in any case.
                        stop.budget.stop();
                        eprintln!(
                            "rmq bench: stopped without waiting for {} in flight (they may have been stored)",
                            rec.in_flight()
                        );
                        return true;
                    }
                }
            }
        }
    }
}

/// Waits until nothing is in flight, at most `bound`.
async fn drain(rec: &Recorder, bound: Duration) {
    let until = rmq_remoting::deadline_after(bound);
    while rec.in_flight() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// One sending task: takes messages from the budget until it is spent or closed.
async fn worker(s: Arc<Shared>) {
    loop {
        let n = s.budget.take(s.batch);
        if n == 0 {
            return;
        }
        match s.mode {
            BenchMode::Sync => {
                s.rec.begin(1);
                let t = Instant::now();
                match s.producer.send(s.message()).await {
                    Ok(_) => s.rec.ok(1, t.elapsed()),
                    Err(e) => s.fail(1, &e),
                }
            }
            BenchMode::Oneway => {
                s.rec.begin(1);
                let t = Instant::now();
                match s
                    .producer
                    .send_oneway(s.message(), SendOptions::new())
                    .await
                {
                    Ok(()) => s.rec.ok(1, t.elapsed()),
                    Err(e) => s.fail(1, &e),
                }
            }
            BenchMode::Batch => {
                let msgs: Vec<Message> = (0..n).map(|_| s.message()).collect();
                s.rec.begin(n);
                let t = Instant::now();
                match s.producer.send_batch(msgs, SendOptions::new()).await {
                    Ok(_) => s.rec.ok(n, t.elapsed()),
                    Err(e) => s.fail(n, &e),
                }
            }
            BenchMode::Async => {
                let waiting = Instant::now();
                let room = match s.room().await {
                    Ok(room) => room,
                    // Stopped: no new send; what was taken from the budget is not sent.
                    Err(NoRoom::Closed) => return,
                    Err(NoRoom::TimedOut) => {
                        // As the producer's own wait ends: a timeout, not sent.
                        s.rec.begin(1);
                        s.rec.failed(1, false);
                        let _ = s.first_failure.set(format!(
                            "Timeout: send timed out after {:?} (0 attempts): no back-pressure room",
                            s.send_timeout
                        ));
                        continue;
                    }
                };
                // One deadline covers the wait for room, as in the producer.
                let left = s.send_timeout.saturating_sub(waiting.elapsed());
                s.rec.begin(1);
                let admitted = s
                    .producer
                    .send_async(s.message(), SendOptions::new().timeout(left))
                    .await;
                match admitted {
                    Err(e) => s.fail(1, &e),
                    Ok(fut) => {
                        let t = Instant::now();
                        let s = Arc::clone(&s);
                        tokio::spawn(async move {
                            match fut.await {
                                Ok(_) => s.rec.ok(1, t.elapsed()),
                                Err(e) => s.fail(1, &e),
                            }
                            // The room is given back once the send resolved.
                            drop(room);
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_requested_size() {
        for size in [1, 26, 27, 4096] {
            let b = body(size);
            assert_eq!(b.len(), size as usize);
            assert!(b.iter().all(u8::is_ascii_lowercase));
        }
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
            }
        }

        /// Starts `run` on its own task; the sender sets the stop-signal count.
        fn start(
            p: &Producer,
            plan: Plan,
        ) -> (watch::Sender<u32>, tokio::task::JoinHandle<Report>) {
            let (tx, rx) = watch::channel(0);
            let p = p.clone();
            let job = tokio::spawn(async move { run(p, &plan, rx, |_| {}).await });
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
}
