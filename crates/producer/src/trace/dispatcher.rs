//! Java's `AsyncTraceDispatcher`: records wait in a bounded queue (a full queue drops them and
//! counts the drops: the send path never waits for tracing); one worker task takes them in
//! batches and sends each batch's trace messages asynchronously from the internal trace
//! producer (on its own client instance); shutdown sends what is queued and waits for it within the deadline given.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use rmq_common::Message;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::TraceConfig;
use super::encoder::pack;
use super::record::{end_record, pub_record, EndTx, TraceRecord};
use super::TraceStats;
use crate::config::{ConfigError, ProducerConfig};
use crate::kernel::Outgoing;
use crate::options::SendOptions;
use crate::send_result::SendResult;
use crate::Producer;

/// Java `TraceConstants.GROUP_NAME_PREFIX`.
const GROUP_NAME_PREFIX: &str = "_INNER_TRACE_PRODUCER";

/// Numbers the trace producers of the process (Java's `AsyncTraceDispatcher.COUNTER`).
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The group of the `n`-th trace producer, for a producer configured `host` (Java
/// `genGroupNameForTrace`: prefix, the host's group as the user gave it — outside its
/// namespace —, `PRODUCE`, the counter).
pub(crate) fn trace_group(host: &ProducerConfig, n: u32) -> String {
    let group = rmq_common::namespace::unwrap(crate::namespace::of(host), &host.group);
    format!("{GROUP_NAME_PREFIX}-{group}-PRODUCE-{n}")
}

/// Java `TraceConstants.TRACE_INSTANCE_NAME`: the instance name of the trace producers.
const TRACE_INSTANCE_NAME: &str = "PID_CLIENT_INNER_TRACE_PRODUCER";

/// The instance name of the trace producers of this process for the name servers `addrs`
/// (Java `AsyncTraceDispatcher.start`: `TRACE_INSTANCE_NAME + "_" + nameSrvAddr`, here with the
/// process id too, so two processes of one host do not announce the same client id). The trace
/// producers of a process (with the same settings) share one client instance, never the user's:
/// their connections, timeouts and budgets are their own, so a trace send that times out
/// cannot fail a user's request.
pub(crate) fn trace_instance_name(addrs: &[String]) -> String {
    format!(
        "{TRACE_INSTANCE_NAME}_{}#{}",
        addrs.join(";"),
        std::process::id()
    )
}

/// Counters of a tracer.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dropped: AtomicU64,
    pub(crate) records_sent: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) messages_failed: AtomicU64,
}

/// The trace of one producer: the hooks' entry ([`Tracer::sent`], [`Tracer::ended`]) and the
/// dispatcher behind it.
#[derive(Debug)]
pub(crate) struct Tracer {
    topic: String,
    /// The host producer's group, as on the wire.
    group: String,
    queue: mpsc::Sender<TraceRecord>,
    capacity: usize,
    counters: Arc<Counters>,
    flush: CancellationToken,
    worker: TaskTracker,
    sends: TaskTracker,
    producer: Producer,
}

/// What the worker needs.
struct Worker {
    cfg: TraceConfig,
    producer: Producer,
    counters: Arc<Counters>,
    sends: TaskTracker,
    permits: Arc<Semaphore>,
}

impl Tracer {
    /// Starts the trace of a producer configured `host` (its wire configuration): the internal
    /// trace producer (its own group, on the process's trace client instance, see
    /// [`trace_instance_name`]; not traced) and the worker.
    ///
    /// # Errors
    /// The trace producer's configuration is unusable (its group, built from the host's, too
    /// long).
    pub(crate) async fn start(
        host: &ProducerConfig,
        cfg: TraceConfig,
    ) -> Result<Self, ConfigError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let mut pcfg = host.clone();
        pcfg.group = trace_group(host, n);
        pcfg.instance_name = Some(trace_instance_name(&host.name_server.addrs));
        pcfg.namespace = None;
        pcfg.trace = None;
        pcfg.auto_batch = None;
        pcfg.send_timeout = cfg.send_timeout;
        pcfg.max_message_size = pcfg.max_message_size.max(cfg.max_body_bytes);
        // Its sends are not the user's: none in the user's metrics.
        let producer = Box::pin(Producer::start_recording(
            pcfg,
            crate::metrics::Recording::Off,
        ))
        .await?;
        Ok(Self::with_producer(host.group.clone(), cfg, producer))
    }

    /// The tracer of a host of `group` over a started trace `producer`.
    pub(crate) fn with_producer(group: String, cfg: TraceConfig, producer: Producer) -> Self {
        let capacity = cfg.queue_capacity.max(1);
        let (queue, intake) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let flush = CancellationToken::new();
        let sends = TaskTracker::new();
        let worker = TaskTracker::new();
        let topic = cfg.topic.clone();
        tracing::info!(group = %group, trace_group = %producer.config().group, trace_topic = %topic, "message trace on");
        let state = Worker {
            permits: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            cfg,
            producer: producer.clone(),
            counters: Arc::clone(&counters),
            sends: sends.clone(),
        };
        drop(worker.spawn(run(state, intake, flush.clone())));
        worker.close();
        Self {
            topic,
            group,
            queue,
            capacity,
            counters,
            flush,
            worker,
            sends,
            producer,
        }
    }

    /// Hook after a stored attempt of `out` to `store_host` that began at `t0` (Java's
    /// `SendMessageTraceHookImpl`): queues its `Pub` record, unless the broker has tracing off
    /// or the message goes to the trace topic.
    pub(crate) fn sent(
        &self,
        out: &Outgoing,
        store_host: Option<&str>,
        t0: Instant,
        result: &SendResult,
    ) {
        if out.topic().starts_with(&self.topic) {
            return;
        }
        if let Some(r) = pub_record(&self.group, out, store_host, t0.elapsed(), now_ms(), result) {
            self.append(TraceRecord::Pub(Box::new(r)));
        }
    }

    /// Hook when a transaction ends (Java's `EndTransactionTraceHookImpl`).
    pub(crate) fn ended(&self, end: &EndTx<'_>) {
        if end.topic.starts_with(&self.topic) {
            return;
        }
        self.append(TraceRecord::EndTransaction(Box::new(end_record(
            end,
            now_ms(),
        ))));
    }

    /// The host producer's group, as on the wire.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Queues `record`, or drops and counts it when the queue is full (or the worker gone).
    pub(crate) fn append(&self, record: TraceRecord) {
        if let Err(e) = self.queue.try_send(record) {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let full = matches!(e, mpsc::error::TrySendError::Full(_));
            // The first drop, then one line per 10 000: a full queue is a steady state.
            if full && (dropped == 1 || dropped.is_multiple_of(10_000)) {
                tracing::warn!(
                    dropped,
                    capacity = self.capacity,
                    "trace queue full: records dropped"
                );
            } else {
                tracing::trace!(dropped, full, "trace record dropped");
            }
        }
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> TraceStats {
        let c = &self.counters;
        TraceStats {
            queued: self.capacity.saturating_sub(self.queue.capacity()),
            dropped: c.dropped.load(Ordering::Relaxed),
            records_sent: c.records_sent.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            messages_failed: c.messages_failed.load(Ordering::Relaxed),
            in_flight: self.sends.len(),
            group: self.producer.config().group.clone(),
            topic: self.topic.clone(),
        }
    }

    /// Sends what is queued and waits for every trace message until `deadline` (then cancels
    /// what is left), and shuts the trace producer down. Records appended later are dropped.
    pub(crate) async fn shutdown(&self, deadline: Instant) {
        self.flush.cancel();
        let sent = tokio::time::timeout_at(deadline, async {
            self.worker.wait().await;
            self.sends.wait().await;
        })
        .await;
        if sent.is_err() {
            tracing::warn!(
                in_flight = self.sends.len(),
                "trace: messages still in flight at the shutdown deadline; cancelling them"
            );
            self.producer.inner().core.abort();
        }
        // Within the host's deadline (with at least a round trip's chance, as the host's own
        // `UNREGISTER_CLIENT`). Boxed: a producer's shutdown runs its tracer's.
        Box::pin(self.producer.shutdown_until(deadline)).await;
        tracing::info!(stats = ?self.stats(), "message trace stopped");
    }
}

/// Wall-clock epoch milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The worker: batches of up to `batch_size` records, each sent once full or once its first
/// record waited `max_delay`; on `flush`, what is queued goes at once and the worker ends.
async fn run(w: Worker, mut intake: mpsc::Receiver<TraceRecord>, flush: CancellationToken) {
    let size = w.cfg.batch();
    let mut batch = Vec::with_capacity(size);
    // One timer for the worker, set again per batch (not one per record received).
    let timer = tokio::time::sleep(w.cfg.max_delay);
    tokio::pin!(timer);
    'outer: loop {
        let first = tokio::select! {
            biased;
            () = flush.cancelled() => break,
            r = intake.recv() => match r {
                Some(r) => r,
                None => break,
            },
        };
        batch.push(first);
        timer.as_mut().reset(Instant::now() + w.cfg.max_delay);
        while batch.len() < size {
            tokio::select! {
                biased;
                () = flush.cancelled() => break 'outer,
                () = &mut timer => break,
                r = intake.recv() => match r {
                    Some(r) => batch.push(r),
                    None => break 'outer,
                },
            }
        }
        dispatch(&w, std::mem::take(&mut batch)).await;
    }
    // Flush: what is queued now, in batches; later records find the queue closed.
    intake.close();
    while let Ok(r) = intake.try_recv() {
        batch.push(r);
        if batch.len() >= size {
            dispatch(&w, std::mem::take(&mut batch)).await;
        }
    }
    if !batch.is_empty() {
        dispatch(&w, batch).await;
    }
    w.sends.close();
    tracing::debug!("trace worker ended");
}

/// Sends the trace messages of `batch`, each once a send slot is free.
async fn dispatch(w: &Worker, batch: Vec<TraceRecord>) {
    for m in pack(&batch, w.cfg.max_body_bytes) {
        // The semaphore is never closed.
        let Ok(permit) = Arc::clone(&w.permits).acquire_owned().await else {
            return;
        };
        let msg = Message::new(w.cfg.topic.as_str(), m.body).with_keys(m.keys);
        let producer = w.producer.clone();
        let counters = Arc::clone(&w.counters);
        let options = SendOptions::new().timeout(w.cfg.send_timeout);
        let records = m.records as u64;
        drop(w.sends.spawn(async move {
            // Asynchronously, as Java's trace producer: a request that times out fails alone,
            // its connection stays open.
            let sent = match producer.send_async(msg, options).await {
                Ok(answer) => answer.await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(r) => {
                    counters.messages_sent.fetch_add(1, Ordering::Relaxed);
                    counters.records_sent.fetch_add(records, Ordering::Relaxed);
                    tracing::trace!(msg_id = %r.msg_id, records, "trace message sent");
                }
                Err(e) => {
                    counters.messages_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, records, "trace message not sent");
                }
            }
            drop(permit);
        }));
    }
}
