//! `rmq bench`: N tasks send through one producer until the count or the duration is reached
//! (async mode: N sends in flight, see [`async_window`]); a live line every second, one JSON
//! summary at the end.
//!
//! Latency is measured per request: from the call to its answer for sync, batch and async
//! sends, to the return of the call for oneway sends.
//!
//! A stop signal ends the run in two steps: the first starts no new send and waits, bounded,
//! for those started; the second stops waiting.
//! Sends started and not resolved when the bench stops waiting are counted as `abandoned`: they
//! may have been stored, and the exit code says so.
//!
//! The transaction mode is in [`transaction`].

mod async_window;
mod auto_batch;
mod budget;
mod hgrm;
mod java_line;
mod java_live;
mod live_args;
mod report;
mod report_args;
mod stats;
mod transaction;

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
use crate::output::{error_kind, one_line, print_stdout, to_json, Tally};

pub(crate) use auto_batch::AutoBatchArgs;
use budget::Budget;
pub(crate) use live_args::LiveArgs;
pub(crate) use report_args::ReportArgs;
pub(crate) use stats::{Interval, Recorder, Summary};
pub(crate) use transaction::TxSummary;
use transaction::{Tx, TxPlan};

/// How often the live line is printed.
const TICK: Duration = Duration::from_secs(1);

/// Runs `rmq bench` against `namesrv`: live lines on stderr, the summary on stdout.
pub(crate) async fn command(args: &BenchArgs, namesrv: &str) -> Result<u8, Fatal> {
    let plan = Plan::try_from(args)?;
    let mut builder = rmq_producer::ProducerBuilder::new(args.group.as_str())
        .name_server(namesrv)
        .send_timeout(plan.send_timeout);
    if let Some(tls) = args.target.namesrv.tls.config()? {
        builder = builder.tls(tls);
    }
    builder = args.target.namespace.apply(builder);
    builder = args.target.namesrv.proxy.apply(builder);
    builder = args.auto_batch.apply(builder);
    builder = args.trace.apply(builder);
    let metrics = match args.live.metrics {
        true => Some(live_args::Snapshot::new()?),
        false => None,
    };
    if let Some(m) = &metrics {
        builder = m.apply(builder);
    }
    let (producer, tx) = match plan.tx {
        Some(tx_plan) => {
            let tx = transaction::start(builder, tx_plan)
                .await
                .map_err(|e| crate::fatal::producer_start(&e))?;
            (tx.producer().clone(), Some(tx))
        }
        None => {
            let producer = builder
                .start()
                .await
                .map_err(|e| crate::fatal::producer_start(&e))?;
            (producer, None)
        }
    };
    // Ctrl-C / SIGTERM: the first stops new sends and waits for those in flight (bounded), the
    // second stops waiting; either way the summary of what happened is printed.
    let signals = crate::signals::count_stop_signals();
    // The live lines, kept for --report.
    let mut samples = Vec::new();
    let mut java_live = java_live::JavaLive::new(epoch_ms());
    let report = run(producer.clone(), tx.clone(), &plan, signals, |i| {
        if !args.live.quiet {
            eprintln!("rmq bench: {}", i.line());
            eprintln!("rmq bench: {}", java_live.line(epoch_ms(), i));
        }
        if args.report.report.is_some() {
            samples.push(*i);
        }
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
    let java = java_line::complete_line(&report.summary, &report.latency, report.refused);
    eprintln!("rmq bench: {java}");
    print_stdout(&to_json(&report.summary));
    if let Some(m) = &metrics {
        eprint!("{}", m.render());
    }
    let written = args.report.write(&report::Run {
        params: params(args),
        summary: &report.summary,
        java_line: &java,
        latency: &report.latency,
        samples: &samples,
    });
    let bound = if report.summary.abandoned > 0 {
        ABANDONED_SHUTDOWN
    } else {
        plan.send_timeout.saturating_add(ABANDONED_SHUTDOWN)
    };
    let shutdown = async {
        match &tx {
            // Stops answering check-backs first.
            Some(tx) => tx.shutdown().await,
            None => producer.shutdown().await,
        }
    };
    if tokio::time::timeout(bound, shutdown).await.is_err() {
        tracing::debug!(
            ?bound,
            "bench: not waiting longer for the producer to shut down"
        );
    }
    crate::trace_args::report("bench", &producer);
    // A file not written is a failure of the command, whatever the sends came to.
    Ok(if written {
        report.exit_code
    } else {
        report.exit_code.max(crate::output::exit::FAILED)
    })
}

/// Milliseconds since the Unix epoch (0 for a clock before it).
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The parameters of a run, for the report.
fn params(a: &BenchArgs) -> Vec<(&'static str, String)> {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut p = vec![
        ("topic", a.topic.clone()),
        ("mode", a.mode.as_str().to_owned()),
        ("size (bytes)", a.size.to_string()),
        ("concurrency", a.concurrency.to_string()),
        ("count", opt(a.count)),
        ("duration (s)", opt(a.duration)),
        ("send timeout (ms)", a.timeout_ms.to_string()),
        ("group", a.group.clone()),
    ];
    if a.mode == BenchMode::Batch {
        p.push(("batch", a.batch.to_string()));
    }
    if let Some(cfg) = a.auto_batch.config() {
        p.push(("auto-batch", format!("{cfg:?}")));
    }
    p.push(("rmq", env!("CARGO_PKG_VERSION").to_owned()));
    p
}

/// How long the bench waits for the producer to shut down once it abandoned sends.
const ABANDONED_SHUTDOWN: Duration = Duration::from_secs(1);

impl TryFrom<&BenchArgs> for Plan {
    type Error = Fatal;

    /// The plan of `a`; a usage error for transaction options that do not fit.
    fn try_from(a: &BenchArgs) -> Result<Self, Fatal> {
        Ok(Self {
            topic: a.topic.clone(),
            mode: a.mode,
            size: a.size,
            concurrency: a.concurrency,
            count: a.count,
            duration: a.duration.map(Duration::from_secs),
            batch: a.batch,
            send_timeout: Duration::from_millis(a.timeout_ms),
            tx: TxPlan::from_args(a)?,
        })
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
    /// Transaction mode: the rates and the check wait.
    pub(crate) tx: Option<TxPlan>,
}

/// What a run produced.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) summary: Summary,
    /// The first failure, in one line (`kind: message`).
    pub(crate) first_failure: Option<String>,
    /// 0 without failures; 3 when a failed or abandoned message may have been stored, or a
    /// transaction was left undecided; 1 otherwise.
    pub(crate) exit_code: u8,
    /// The whole run's latency (µs).
    pub(crate) latency: hdrhistogram::Histogram<u64>,
    /// Failed messages that the broker refused with a response code.
    pub(crate) refused: u64,
}

/// State shared by the sending tasks.
#[derive(Debug)]
struct Shared {
    producer: Producer,
    /// Transaction mode: the transactional producer (the same client as `producer`).
    tx: Option<Tx>,
    topic: String,
    body: Bytes,
    mode: BenchMode,
    batch: u64,
    budget: Budget,
    rec: Arc<Recorder>,
    first_failure: OnceLock<String>,
    /// The send timeout of each send.
    send_timeout: Duration,
}

impl Shared {
    fn message(&self) -> Message {
        Message::new(self.topic.clone(), self.body.clone())
    }

    fn fail(&self, msgs: u64, e: &SendError) {
        self.rec.failed(msgs, e.maybe_stored());
        if matches!(e.kind(), rmq_producer::ErrorKind::Broker { .. }) {
            self.rec.refused_by_broker(msgs);
        }
        // Only the first failure is kept; later ones are counted.
        let _ = self
            .first_failure
            .set(format!("{}: {}", error_kind(e.kind()), one_line(e)));
    }
}

/// The async sends a producer with `cfg` admits at once for bodies of `size` bytes (`None`:
/// unbounded), as its back-pressure counts them: by sends and by body bytes.
fn async_room(cfg: &rmq_producer::ProducerConfig, size: u32) -> Option<usize> {
    if !cfg.async_backpressure {
        return None;
    }
    let size = (size as usize).max(1);
    let by_bytes = (cfg.async_max_bytes / size).max(1);
    Some(cfg.async_max_in_flight.min(by_bytes).max(1))
}

/// A body of `size` printable bytes, shared by every message of the run as Java's benchmark
/// shares one array among its messages: static (made once per run and never freed, `size`
/// bytes), so that its clones and drops, a few per send and on every core, write no shared
/// reference count. A `Bytes` with a count of its own would put one more cache line, written
/// by every send, between the cores (issue 13): a cost of this harness, not of the producer
/// (an application that builds a body per message writes a count of that message's only).
fn body(size: u32) -> Bytes {
    let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    Bytes::from_static(Box::leak(bytes.into_boxed_slice()))
}

/// Runs `plan` through `producer` (in transaction mode through `tx`, its transactional
/// producer), calling `live` with each interval (every second). A change of `signals` to 1
/// stops handing out new sends (those in flight are still awaited, bounded) and ends the wait
/// for transaction check-backs (the undecided ones are reported as unchecked); 2 or more stops
/// waiting for the sends in flight (they are reported as abandoned).
pub(crate) async fn run(
    producer: Producer,
    tx: Option<Tx>,
    plan: &Plan,
    signals: watch::Receiver<u32>,
    mut live: impl FnMut(&Interval),
) -> Report {
    let start = Instant::now();
    // Async mode: the sends in flight, at most what the producer's back-pressure admits.
    let window = async_window::window(plan.concurrency, async_room(producer.config(), plan.size));
    let shared = Arc::new(Shared {
        producer,
        tx,
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
        send_timeout: plan.send_timeout,
    });
    // When the sends were done (before waiting for check-backs): the end of the measured time.
    let sends_done: OnceLock<Duration> = OnceLock::new();
    let workers: Vec<_> = match plan.mode {
        BenchMode::Async => vec![tokio::spawn(async_window::run(Arc::clone(&shared), window))],
        _ => (0..plan.concurrency)
            .map(|_| tokio::spawn(worker(Arc::clone(&shared))))
            .collect(),
    };
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
        let _ = sends_done.set(start.elapsed());
        if let Some(tx) = &shared.tx {
            tx.wait_checks(shared.budget.stopped()).await;
        }
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
    let total = start.elapsed();
    let elapsed = sends_done.get().copied().unwrap_or(total);
    let mut summary = shared
        .rec
        .summary(plan.mode.as_str(), plan.size, plan.concurrency, elapsed);
    summary.interrupted = interrupted;
    summary.transaction = shared
        .tx
        .as_ref()
        .map(|tx| tx.summary(total.saturating_sub(elapsed)));
    let unchecked = summary.transaction.map_or(0, |t| t.unchecked);
    let (_, maybe_stored) = shared.rec.failures();
    // An abandoned send's outcome is unknown: it may have been stored; an unchecked
    // transaction's message may still become visible.
    let exit_code = Tally {
        ok: summary.sent,
        failed: summary.failed + summary.abandoned + unchecked,
        maybe_stored: maybe_stored + summary.abandoned + unchecked,
    }
    .exit_code();
    Report {
        summary,
        first_failure: shared.first_failure.get().cloned(),
        exit_code,
        latency: shared.rec.latency(),
        refused: shared.rec.refused(),
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
            BenchMode::Transaction => {
                // Always there in this mode; without, nothing to send with.
                let Some(tx) = &s.tx else { return };
                s.rec.begin(1);
                let t = Instant::now();
                match tx.send(s.message()).await {
                    Ok(()) => s.rec.ok(1, t.elapsed()),
                    Err(e) => s.fail(1, &e),
                }
            }
            // `run` gives async mode its own workers; one here is a window of one.
            BenchMode::Async => return async_window::run(s, 1).await,
        }
    }
}

#[cfg(test)]
mod tests;
