//! [`Producer`]: the handle users send with (`Clone + Send + Sync`), and its shared state.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rmq_common::{Message, MessageQueue};
use rmq_nameserver_client::{RouteCache, TopicPublishInfo};
use rmq_remoting::RemotingClient;
use tokio::sync::{mpsc, oneshot, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;
use tracing::{field::Empty, Instrument, Span};

use crate::backpressure::{Backpressure, Permit};
use crate::config::ProducerConfig;
use crate::error::{ProducerError, Unsent};
use crate::fault::LatencyFaultTolerance;
use crate::kernel::{prepare_batch, prepare_single, Outgoing};
use crate::retry::{self, Job, Mode, Target};
use crate::select::{QueueSelector, TopicCounters};
use crate::send_future::SendFuture;
use crate::send_result::SendResult;
use crate::{heartbeat, identity, ProducerBuilder};

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;
const STOPPED: u8 = 2;

/// A started producer. Cheap to clone; every clone sends through the same connections, routes
/// and fault table, from any number of tasks at once.
///
/// Call [`Producer::shutdown`] for a clean stop (in-flight sends drained, `UNREGISTER_CLIENT` sent).
/// Dropping the last handle never blocks: it only stops the background tasks; asynchronous sends
/// already started still complete.
///
/// ```no_run
/// use rmq_common::Message;
/// use rmq_producer::Producer;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let producer = Producer::builder("my_group").name_server("127.0.0.1:9876").start().await?;
/// let result = producer.send(Message::new("TopicTest", "hello").with_tags("TagA")).await?;
/// println!("{result}");
/// producer.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// The user-facing owner of [`Inner`]: when the last one drops, background tasks stop.
#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.stop_background.cancel();
    }
}

/// Counters of a producer's in-flight work ([`Producer::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Sends of any kind not yet resolved.
    pub sends_in_flight: usize,
    /// Asynchronous sends holding back-pressure room.
    pub async_in_flight: usize,
    /// Body bytes of those asynchronous sends.
    pub async_bytes_in_flight: usize,
    /// Requests awaiting a reply in the transport's correlation tables.
    pub pending_requests: usize,
}

/// State shared by every handle and task of one producer.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: ProducerConfig,
    pub(crate) client_id: String,
    pub(crate) remoting: RemotingClient,
    pub(crate) routes: RouteCache,
    pub(crate) faults: LatencyFaultTolerance,
    pub(crate) counters: TopicCounters,
    /// Broker addresses used by sends (heartbeat and unregister targets).
    brokers: DashMap<String, ()>,
    new_brokers: mpsc::UnboundedSender<String>,
    state: AtomicU8,
    /// Sends in flight: a token per synchronous send, a task per asynchronous one.
    sends: TaskTracker,
    /// Heartbeat and route refresh.
    background: TaskTracker,
    pub(crate) stop_background: CancellationToken,
    /// Cancelled when shutdown stops waiting for in-flight sends.
    pub(crate) abort: CancellationToken,
    flow: Option<Backpressure>,
    runtime: tokio::runtime::Handle,
    shutdown_done: OnceCell<()>,
}

impl Inner {
    /// The master address of `broker`: from the send's route, else from the cache.
    pub(crate) fn broker_addr(&self, info: &TopicPublishInfo, broker: &str) -> Option<String> {
        info.master_addr(broker)
            .map(str::to_owned)
            .or_else(|| self.routes.master_addr(broker))
    }

    /// Remembers a broker address used by a send; the first use triggers a heartbeat to it.
    pub(crate) fn note_broker(&self, addr: &str) {
        if self.brokers.contains_key(addr) {
            return;
        }
        if self.brokers.insert(addr.to_owned(), ()).is_none() {
            tracing::debug!(addr, "first send to broker");
            // The heartbeat task may have stopped (shutdown); then nothing is owed.
            let _ = self.new_brokers.send(addr.to_owned());
        }
    }

    /// Every broker address to heartbeat (masters) or unregister (`with_slaves`, as Java): those
    /// used by sends and those of the cached routes.
    pub(crate) fn broker_addrs(&self, with_slaves: bool) -> BTreeSet<String> {
        let mut addrs: BTreeSet<String> = self.brokers.iter().map(|e| e.key().clone()).collect();
        if with_slaves {
            addrs.extend(self.routes.all_broker_addrs());
        } else {
            addrs.extend(self.routes.all_master_addrs());
        }
        addrs
    }

    fn is_running(&self) -> bool {
        self.state.load(Ordering::SeqCst) == RUNNING
    }

    /// Registers a send in flight, or refuses it when not running. The token is taken before the
    /// state is read, so shutdown either sees the send or the send sees shutdown.
    fn begin(&self) -> Option<TaskTrackerToken> {
        let token = self.sends.token();
        self.is_running().then_some(token)
    }
}

impl Producer {
    /// A builder for a producer of `group`.
    pub fn builder(group: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder::new(group)
    }

    /// Starts a producer with a validated configuration (see [`ProducerBuilder::start`]).
    pub(crate) async fn start(cfg: ProducerConfig) -> Result<Self, ProducerError> {
        cfg.validate()?;
        let ip = cfg
            .client_ip
            .clone()
            .unwrap_or_else(|| identity::local_ip().to_string());
        let instance = cfg
            .instance_name
            .clone()
            .unwrap_or_else(identity::default_instance_name);
        let client_id = identity::client_id(&cfg, &ip, &instance);
        let mut remoting_cfg = cfg.remoting.clone();
        remoting_cfg.serialize_type = cfg.serialize_type;
        let remoting = RemotingClient::new(remoting_cfg);
        let routes = RouteCache::new(remoting.clone(), cfg.name_server.clone());
        let (new_brokers, new_brokers_rx) = mpsc::unbounded_channel();
        let flow = cfg
            .async_backpressure
            .then(|| Backpressure::new(cfg.async_max_in_flight, cfg.async_max_bytes));
        let inner = Arc::new(Inner {
            client_id,
            remoting,
            routes,
            faults: LatencyFaultTolerance::new(),
            counters: TopicCounters::default(),
            brokers: DashMap::new(),
            new_brokers,
            state: AtomicU8::new(RUNNING),
            sends: TaskTracker::new(),
            background: TaskTracker::new(),
            stop_background: CancellationToken::new(),
            abort: CancellationToken::new(),
            flow,
            runtime: tokio::runtime::Handle::current(),
            shutdown_done: OnceCell::new(),
            cfg,
        });
        // The refresher ends with the token; its handle is not needed.
        drop(
            inner
                .routes
                .start_refresher(inner.stop_background.child_token()),
        );
        inner.background.spawn(heartbeat::run(
            Arc::clone(&inner),
            new_brokers_rx,
            inner.stop_background.clone(),
        ));
        tracing::info!(group = %inner.cfg.group, client_id = %inner.client_id, "producer started");
        Ok(Self {
            handle: Arc::new(Handle { inner }),
        })
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The client id (`ip@instance`) announced to the brokers.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.inner().client_id
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ProducerConfig {
        &self.inner().cfg
    }

    /// Whether sends are accepted (false once `shutdown` began).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.inner().is_running()
    }

    /// Counters of in-flight work.
    #[must_use]
    pub fn stats(&self) -> ProducerStats {
        let inner = self.inner();
        let (async_in_flight, async_bytes_in_flight) =
            inner.flow.as_ref().map_or((0, 0), Backpressure::in_flight);
        ProducerStats {
            sends_in_flight: inner.sends.len(),
            async_in_flight,
            async_bytes_in_flight,
            pending_requests: inner.remoting.pending_len(),
        }
    }

    /// Sends `msg` and waits for the broker's answer, within the configured send timeout.
    ///
    /// # Errors
    /// A [`ProducerError`]; [`ProducerError::maybe_stored`] tells whether the message may have
    /// been stored, [`ProducerError::into_message`] hands it back when it certainly was not.
    pub async fn send(&self, msg: Message) -> Result<SendResult, ProducerError> {
        self.send_with_timeout(msg, self.inner().cfg.send_timeout)
            .await
    }

    /// [`Producer::send`] with its own deadline (covering the route lookup and every attempt).
    ///
    /// # Errors
    /// As [`Producer::send`].
    pub async fn send_with_timeout(
        &self,
        msg: Message,
        timeout: Duration,
    ) -> Result<SendResult, ProducerError> {
        let inner = self.inner();
        let retries = inner.cfg.retries;
        send_single(inner, msg, Target::Any, Mode::Reply, retries, timeout)
            .await
            .and_then(expect_result)
    }

    /// Sends `msg` once without waiting for an answer (resolves once written). No retry.
    ///
    /// # Errors
    /// As [`Producer::send`], for the route lookup and the write.
    pub async fn send_oneway(&self, msg: Message) -> Result<(), ProducerError> {
        let inner = self.inner();
        let timeout = inner.cfg.send_timeout;
        send_single(inner, msg, Target::Any, Mode::Oneway, 0, timeout)
            .await
            .map(|_| ())
    }

    /// Sends `msg` to `queue` only. Retried (on that queue) only when certainly not stored.
    ///
    /// # Errors
    /// [`ProducerError::QueueUnavailable`] when the queue's topic is not the message's; else as
    /// [`Producer::send`].
    pub async fn send_to_queue(
        &self,
        msg: Message,
        queue: &MessageQueue,
    ) -> Result<SendResult, ProducerError> {
        if queue.topic != msg.topic() {
            return Err(ProducerError::QueueUnavailable {
                topic: msg.topic().to_owned(),
                queue: queue.to_string(),
                unsent: Unsent::one(msg),
            });
        }
        let inner = self.inner();
        let (retries, timeout) = (inner.cfg.retries, inner.cfg.send_timeout);
        send_single(
            inner,
            msg,
            Target::Queue(queue.clone()),
            Mode::Reply,
            retries,
            timeout,
        )
        .await
        .and_then(expect_result)
    }

    /// Sends `msg` to the queue `selector` picks among the topic's writable queues for `arg`
    /// (ordered messages). The queue is never changed; retried on it only when certainly not
    /// stored.
    ///
    /// # Errors
    /// [`ProducerError::QueueUnavailable`] when the selector picks no valid index; else as
    /// [`Producer::send`].
    pub async fn send_with_selector<S, A>(
        &self,
        msg: Message,
        selector: &S,
        arg: &A,
    ) -> Result<SendResult, ProducerError>
    where
        S: QueueSelector<A> + ?Sized,
        A: ?Sized + Sync,
    {
        let inner = self.inner();
        if !inner.is_running() {
            return Err(ProducerError::not_running(Unsent::one(msg)));
        }
        let started = Instant::now();
        let timeout = inner.cfg.send_timeout;
        let info = match retry::publish_info(inner, msg.topic(), started, timeout).await {
            Ok(info) => info,
            Err(e) => return Err(e.with_unsent(Unsent::one(msg))),
        };
        let pick = selector.select(&info.queues, &msg, arg);
        let Some(queue) = pick.and_then(|i| info.queues.get(i)) else {
            return Err(ProducerError::QueueUnavailable {
                topic: msg.topic().to_owned(),
                queue: format!("selector index {pick:?} of {}", info.queues.len()),
                unsent: Unsent::one(msg),
            });
        };
        let target = Target::Queue(queue.clone());
        let left = timeout.saturating_sub(started.elapsed());
        send_single(inner, msg, target, Mode::Reply, inner.cfg.retries, left)
            .await
            .and_then(expect_result)
    }

    /// Sends `msgs` as one batch (`SEND_BATCH_MESSAGE`): one topic, same `WAIT`, no delay, never
    /// compressed. Retried as [`Producer::send`].
    ///
    /// # Errors
    /// [`ProducerError::InvalidBatch`] / [`ProducerError::InvalidMessage`] before anything is
    /// sent; else as [`Producer::send`] ([`ProducerError::into_batch`] hands the batch back).
    pub async fn send_batch(&self, mut msgs: Vec<Message>) -> Result<SendResult, ProducerError> {
        let inner = self.inner();
        let Some(_token) = inner.begin() else {
            return Err(ProducerError::not_running(Unsent::batch(msgs)));
        };
        for m in &msgs {
            if let Err(source) =
                rmq_common::validate::validate_message(m, inner.cfg.max_message_size)
            {
                return Err(ProducerError::InvalidMessage {
                    source,
                    unsent: Unsent::batch(msgs),
                });
            }
        }
        let out = match prepare_batch(&mut msgs, &mut || identity::uniq_ids().next_id()) {
            Ok(out) if out.body.len() > inner.cfg.max_message_size => {
                let source = rmq_common::validate::ValidationError::BodyTooLarge {
                    size: out.body.len(),
                    max: inner.cfg.max_message_size,
                };
                return Err(ProducerError::InvalidMessage {
                    source,
                    unsent: Unsent::batch(msgs),
                });
            }
            Ok(out) => out,
            Err(source) => {
                return Err(ProducerError::InvalidBatch {
                    source,
                    unsent: Unsent::batch(msgs),
                })
            }
        };
        let job = job(
            out,
            Target::Any,
            Mode::Reply,
            inner.cfg.retries,
            inner.cfg.send_timeout,
        );
        run_job(inner, &job)
            .await
            .and_then(expect_result)
            .map_err(|e| e.with_unsent(Unsent::batch(msgs)))
    }

    /// Starts an asynchronous send. Waits while the back-pressure bounds are reached, then
    /// returns a [`SendFuture`] that resolves exactly once with the outcome (the send goes on even
    /// if the future is dropped). Attempts and retries follow the same rules as
    /// [`Producer::send`]; the deadline starts once the send is admitted.
    ///
    /// # Errors
    /// [`ProducerError::InvalidMessage`] or [`ProducerError::NotRunning`], with the message.
    pub async fn send_async(&self, msg: Message) -> Result<SendFuture, ProducerError> {
        let inner = self.inner();
        let (token, out, msg) = admit(inner, msg)?;
        let permit = match &inner.flow {
            None => None,
            Some(flow) => {
                let got = tokio::select! {
                    biased;
                    () = inner.abort.cancelled() => None,
                    p = flow.acquire(out.size) => p,
                };
                match got {
                    Some(p) => Some(p),
                    None => return Err(ProducerError::not_running(Unsent::one(msg))),
                }
            }
        };
        if !inner.is_running() {
            return Err(ProducerError::not_running(Unsent::one(msg)));
        }
        Ok(spawn_async(inner, token, out, msg, permit))
    }

    /// Starts an asynchronous send if the back-pressure bounds leave room, without waiting.
    ///
    /// # Errors
    /// [`ProducerError::Overloaded`] (with the message) when full; else as
    /// [`Producer::send_async`].
    pub fn try_send_async(&self, msg: Message) -> Result<SendFuture, ProducerError> {
        let inner = self.inner();
        let (token, out, msg) = admit(inner, msg)?;
        let permit = match &inner.flow {
            None => None,
            Some(flow) => match flow.try_acquire(out.size) {
                Some(p) => Some(p),
                None => {
                    let (max_in_flight, max_bytes) = flow.limits();
                    return Err(ProducerError::Overloaded {
                        max_in_flight,
                        max_bytes,
                        unsent: Unsent::one(msg),
                    });
                }
            },
        };
        Ok(spawn_async(inner, token, out, msg, permit))
    }

    /// [`Producer::send_async`] with a callback instead of a future: `callback` runs exactly
    /// once, with the outcome or with the error that prevented the send.
    pub async fn send_async_with_callback<F>(&self, msg: Message, callback: F)
    where
        F: FnOnce(Result<SendResult, ProducerError>) + Send + 'static,
    {
        match self.send_async(msg).await {
            Err(e) => callback(Err(e)),
            Ok(fut) => {
                self.inner()
                    .runtime
                    .spawn(async move { callback(fut.await) });
            }
        }
    }

    /// Stops the producer: new sends fail with [`ProducerError::NotRunning`]; sends in flight are
    /// awaited up to `shutdown_timeout`, then cancelled (each still resolves, with
    /// [`ProducerError::Cancelled`]); `UNREGISTER_CLIENT` goes to every broker; the background
    /// tasks and connections stop. Idempotent; concurrent calls all wait for the same shutdown.
    pub async fn shutdown(&self) {
        let inner = Arc::clone(self.inner());
        inner
            .shutdown_done
            .get_or_init(|| shutdown(Arc::clone(&inner)))
            .await;
    }
}

async fn shutdown(inner: Arc<Inner>) {
    inner.state.store(SHUTTING_DOWN, Ordering::SeqCst);
    tracing::info!(client_id = %inner.client_id, in_flight = inner.sends.len(), "producer shutting down");
    inner.stop_background.cancel();
    inner.sends.close();
    if tokio::time::timeout(inner.cfg.shutdown_timeout, inner.sends.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = inner.sends.len(),
            "shutdown: cancelling sends still in flight"
        );
        inner.abort.cancel();
        if let Some(flow) = &inner.flow {
            flow.close();
        }
        inner.sends.wait().await;
    }
    inner.background.close();
    if tokio::time::timeout(heartbeat::CLIENT_API_TIMEOUT, inner.background.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: background tasks did not stop in time");
    }
    inner.routes.shutdown().await;
    let brokers = inner.broker_addrs(true).len();
    let unregistered = heartbeat::unregister_all(&inner).await;
    inner.remoting.shutdown().await;
    inner.state.store(STOPPED, Ordering::SeqCst);
    tracing::info!(client_id = %inner.client_id, brokers, unregistered, "producer stopped");
}

/// Validates and prepares one message for an asynchronous send.
fn admit(
    inner: &Inner,
    mut msg: Message,
) -> Result<(TaskTrackerToken, Outgoing, Message), ProducerError> {
    let Some(token) = inner.begin() else {
        return Err(ProducerError::not_running(Unsent::one(msg)));
    };
    if let Err(source) = rmq_common::validate::validate_message(&msg, inner.cfg.max_message_size) {
        return Err(ProducerError::InvalidMessage {
            source,
            unsent: Unsent::one(msg),
        });
    }
    let out = prepare_single(&mut msg, &inner.cfg, &mut || identity::uniq_ids().next_id());
    Ok((token, out, msg))
}

/// Runs an admitted asynchronous send on its own task.
fn spawn_async(
    inner: &Arc<Inner>,
    token: TaskTrackerToken,
    out: Outgoing,
    msg: Message,
    permit: Option<Permit>,
) -> SendFuture {
    let (tx, rx) = oneshot::channel();
    let job = job(
        out,
        Target::Any,
        Mode::Reply,
        inner.cfg.retries_async,
        inner.cfg.send_timeout,
    );
    let task_inner = Arc::clone(inner);
    inner.sends.spawn_on(
        async move {
            let outcome = run_job(&task_inner, &job)
                .await
                .and_then(expect_result)
                .map_err(|e| e.with_unsent(Unsent::one(msg)));
            drop(permit);
            drop(token);
            // The receiver may be gone (the caller dropped the future): the outcome is discarded.
            let _ = tx.send(outcome);
        },
        &inner.runtime,
    );
    SendFuture::new(rx)
}

/// Validates, prepares and runs one message (sync, oneway, queue-pinned).
async fn send_single(
    inner: &Arc<Inner>,
    mut msg: Message,
    target: Target,
    mode: Mode,
    retries: u32,
    timeout: Duration,
) -> Result<Option<SendResult>, ProducerError> {
    let Some(_token) = inner.begin() else {
        return Err(ProducerError::not_running(Unsent::one(msg)));
    };
    if let Err(source) = rmq_common::validate::validate_message(&msg, inner.cfg.max_message_size) {
        return Err(ProducerError::InvalidMessage {
            source,
            unsent: Unsent::one(msg),
        });
    }
    let out = prepare_single(&mut msg, &inner.cfg, &mut || identity::uniq_ids().next_id());
    let job = job(out, target, mode, retries, timeout);
    run_job(inner, &job)
        .await
        .map_err(|e| e.with_unsent(Unsent::one(msg)))
}

fn job(out: Outgoing, target: Target, mode: Mode, retries: u32, timeout: Duration) -> Job {
    Job {
        out,
        target,
        mode,
        retries,
        started: Instant::now(),
        timeout,
    }
}

/// Looks the route up and runs the attempts, in one `send` span.
async fn run_job(inner: &Inner, job: &Job) -> Result<Option<SendResult>, ProducerError> {
    let span = tracing::info_span!(
        "send",
        topic = %job.out.topic,
        attempts = Empty,
        broker = Empty,
        queue = Empty,
        latency_ms = Empty,
    );
    async {
        let outcome =
            match retry::publish_info(inner, &job.out.topic, job.started, job.timeout).await {
                Ok(info) => retry::run(inner, job, &info).await,
                Err(e) => Err(e),
            };
        let span = Span::current();
        span.record(
            "latency_ms",
            u64::try_from(job.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        );
        match &outcome {
            Ok(Some(r)) => {
                tracing::debug!(status = %r.status, offset_msg_id = %r.offset_msg_id, "sent")
            }
            Ok(None) => tracing::debug!("sent oneway"),
            Err(e) => tracing::debug!(error = %e, maybe_stored = e.maybe_stored(), "send failed"),
        }
        outcome
    }
    .instrument(span)
    .await
}

/// A reply-mode job always yields a result; `None` only comes from oneway jobs.
fn expect_result(r: Option<SendResult>) -> Result<SendResult, ProducerError> {
    r.ok_or(ProducerError::Cancelled {
        maybe_stored: true,
        unsent: Unsent::none(),
    })
}
