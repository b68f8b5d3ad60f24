//! `rmq bench`: N tasks send through one producer until the count or the duration is reached;
//! a live line every second, one JSON summary at the end.
//!
//! Latency is measured per request: from the call to its answer for sync and batch sends, to the
//! write for oneway sends, and from admission (after the back-pressure wait) to the answer for
//! async sends.

mod budget;
mod stats;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rmq_common::Message;
use rmq_producer::{Producer, SendError, SendOptions};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cli::{BenchArgs, BenchMode};
use crate::fatal::Fatal;
use crate::output::{error_kind, exit, one_line, print_stdout, to_json};

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
    producer.shutdown().await;
    if let Some(first) = &report.first_failure {
        eprintln!(
            "rmq bench: {} failed; the first: {first}",
            report.summary.failed
        );
    }
    print_stdout(&to_json(&report.summary));
    Ok(report.exit_code)
}

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
    /// 0 without failures; 3 when a failed message may have been stored; 1 otherwise.
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
/// 2 or more stops waiting for them.
pub(crate) async fn run(
    producer: Producer,
    plan: &Plan,
    signals: watch::Receiver<u32>,
    mut live: impl FnMut(&Interval),
) -> Report {
    let start = Instant::now();
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
    });
    let workers: Vec<_> = (0..plan.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&shared))))
        .collect();
    let all_done = async {
        for w in workers {
            // A worker only ends by running out of budget; a panic would be a bug, reported
            // as such on stderr, and the run still ends.
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
    let (failed, maybe_stored) = shared.rec.failures();
    let exit_code = match (failed, maybe_stored) {
        (0, _) => exit::OK,
        (_, 0) => exit::FAILED,
        _ => exit::MAYBE_STORED,
    };
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
                        eprintln!("rmq bench: stopped without waiting for {} in flight", rec.in_flight());
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

/// One sending task: takes messages from the budget until it is spent.
async fn worker(s: Arc<Shared>) {
    loop {
        let n = s.budget.take(s.batch);
        if n == 0 {
            return;
        }
        match s.mode {
            BenchMode::Sync => {
                s.rec.begin();
                let t = Instant::now();
                match s.producer.send(s.message()).await {
                    Ok(_) => s.rec.ok(1, t.elapsed()),
                    Err(e) => s.fail(1, &e),
                }
            }
            BenchMode::Oneway => {
                s.rec.begin();
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
                s.rec.begin();
                let t = Instant::now();
                match s.producer.send_batch(msgs, SendOptions::new()).await {
                    Ok(_) => s.rec.ok(n, t.elapsed()),
                    Err(e) => s.fail(n, &e),
                }
            }
            BenchMode::Async => {
                let admitted = s.producer.send_async(s.message(), SendOptions::new()).await;
                s.rec.begin();
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
                rec.begin();
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

    #[tokio::test(start_paused = true)]
    async fn drain_is_bounded() {
        let rec = Recorder::default();
        rec.begin(); // never completes
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), drain(&rec, Duration::from_secs(2)))
            .await
            .unwrap();
        assert!(t.elapsed() >= Duration::from_secs(2));
    }
}
