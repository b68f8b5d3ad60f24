//! [`Producer`]: the handle users send with (`Clone + Send + Sync`), and its shared state.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use rmq_common::Message;
use tokio::sync::OnceCell;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::auto_batch::Accumulator;
use crate::backpressure::Backpressure;
use crate::completion::{self, CompletionSender};
use crate::config::{ConfigError, ProducerConfig};
use crate::instance::{heartbeat, registry, ClientInstance};
use crate::kernel::{ensure_uniq_key, WireConsts};
use crate::metrics::Recording;
use crate::retry::Core;
use crate::transport::any::AnyTransport;
use crate::transport::grpc::GrpcTransport;
use crate::transport::remoting::RemotingTransport;
use crate::{identity, ProducerBuilder};

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;
const STOPPED: u8 = 2;

/// How often shutdown checks whether cancelled sends have ended.
const ABORT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The shortest bound of `UNREGISTER_CLIENT` when shutdown's own deadline has passed.
const UNREGISTER_FLOOR: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest start waits for a gRPC proxy's settings.
const PROXY_SETTINGS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The longest shutdown waits for cancelled sends to end.
const ABORT_CAP: std::time::Duration = std::time::Duration::from_secs(5);

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

/// The user-facing owner of [`Inner`]: when the last one drops, the producer leaves its client
/// instance (without any network call) and background work it alone used stops.
#[derive(Debug)]
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.leave_instance();
    }
}

/// Counters of a producer's in-flight work ([`Producer::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProducerStats {
    /// Sends of any kind not yet resolved (a send leaves this count just after its outcome is
    /// delivered: what [`Producer::shutdown`] waits for).
    pub sends_in_flight: usize,
    /// Asynchronous sends holding back-pressure room.
    pub async_in_flight: usize,
    /// Body bytes of those asynchronous sends.
    pub async_bytes_in_flight: usize,
    /// Requests awaiting a reply on the client instance's connections (shared with the other
    /// producers of the instance).
    pub pending_requests: usize,
}

/// State shared by every handle and task of one producer.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The send loop's shared state, over the client instance's remoting transport or a gRPC
    /// proxy.
    pub(crate) core: Arc<Core<AnyTransport>>,
    state: AtomicU8,
    /// Whether the producer's group is still registered on the instance.
    registered: AtomicBool,
    /// Sends in flight: a token per synchronous send, a task per asynchronous one.
    pub(crate) sends: TaskTracker,
    pub(crate) flow: Option<Backpressure>,
    /// The auto-batching accumulator, when on.
    pub(crate) batcher: Option<Arc<Accumulator>>,
    /// Where asynchronous sends hand the rest of their work.
    pub(crate) completions: CompletionSender,
    /// Asynchronous sends waiting for a first answer that settles them where it arrives.
    pub(crate) waiting: crate::rendezvous::Registry,
    pub(crate) runtime: tokio::runtime::Handle,
    shutdown_done: OnceCell<()>,
}

impl Inner {
    pub(crate) fn cfg(&self) -> &ProducerConfig {
        &self.core.cfg
    }

    pub(crate) fn instance(&self) -> &Arc<ClientInstance> {
        self.core.transport.instance()
    }

    pub(crate) fn is_running(&self) -> bool {
        self.state.load(Ordering::SeqCst) == RUNNING
    }

    /// Registers a send in flight, or refuses it when not running. The token is taken before the
    /// state is read, so shutdown either sees the send or the send sees shutdown.
    pub(crate) fn begin(&self) -> Option<TaskTrackerToken> {
        let token = self.sends.token();
        self.is_running().then_some(token)
    }

    /// Takes the producer off its instance (once); `None` when already done.
    fn leave(&self) -> Option<registry::Left> {
        self.registered
            .swap(false, Ordering::SeqCst)
            .then(|| registry::leave(self.instance(), &self.cfg().group))
    }

    /// The counters of [`Producer::stats`].
    pub(crate) fn stats(&self) -> ProducerStats {
        let (async_in_flight, async_bytes_in_flight) =
            self.flow.as_ref().map_or((0, 0), Backpressure::in_flight);
        ProducerStats {
            sends_in_flight: self.sends.len(),
            async_in_flight,
            async_bytes_in_flight,
            pending_requests: self.instance().pending_requests(),
        }
    }

    /// The last handle is gone without a shutdown: leave the instance without network calls.
    fn leave_instance(&self) {
        if self.leave().is_some_and(|left| left.unused) {
            self.instance().stop_background();
        }
    }
}

impl Producer {
    /// A builder for a producer of `group`.
    pub fn builder(group: impl Into<String>) -> ProducerBuilder {
        ProducerBuilder::new(group)
    }

    /// Starts a producer with a validated configuration (see [`ProducerBuilder::start`]).
    pub(crate) async fn start(cfg: ProducerConfig) -> Result<Self, ConfigError> {
        Self::start_recording(cfg, Recording::AsConfigured).await
    }

    /// [`Producer::start`], recording metrics as `recording` says (an internal producer, the
    /// trace's, records none: its sends are not the user's).
    pub(crate) async fn start_recording(
        cfg: ProducerConfig,
        recording: Recording,
    ) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut cfg = crate::namespace::wire_config(cfg);
        if cfg.proxy.is_some() {
            // This proxy takes identity bodies only: compressing would only cost an inflate.
            cfg.compress_threshold = usize::MAX;
        }
        let instance = registry::join(&cfg);
        let trace = match cfg.trace.clone() {
            None => None,
            Some(tc) => match crate::trace::dispatcher::Tracer::start(&cfg, tc).await {
                Ok(trace) => Some(trace),
                Err(e) => {
                    if registry::leave(&instance, &cfg.group).unused {
                        instance.stop_background();
                    }
                    return Err(e);
                }
            },
        };
        let flow = cfg
            .async_backpressure
            .then(|| Backpressure::new(cfg.async_max_in_flight, cfg.async_max_bytes));
        let (completions, driver) = completion::channel();
        let cfg_batcher = cfg
            .auto_batch
            .clone()
            .map(|ab| Arc::new(Accumulator::new(ab, cfg.max_message_size)));
        let transport = match cfg.proxy.clone() {
            None => AnyTransport::Remoting(RemotingTransport::new(instance, WireConsts::new(&cfg))),
            Some(endpoint) => {
                let endpoint = endpoint.parse().map_err(|e: rmq_grpc::EndpointError| {
                    ConfigError::BadProxy {
                        endpoint,
                        reason: e.to_string(),
                    }
                })?;
                let grpc = GrpcTransport::start(instance, &cfg, endpoint)?;
                let wait = cfg.send_timeout.min(PROXY_SETTINGS_WAIT);
                crate::transport::grpc::apply_server_settings(
                    &mut cfg,
                    &grpc.server_settings(wait).await,
                );
                AnyTransport::Grpc(Box::new(grpc))
            }
        };
        #[cfg(feature = "metrics")]
        let meter = (recording == Recording::AsConfigured).then(|| crate::metrics::meter_of(&cfg));
        #[cfg(not(feature = "metrics"))]
        let _ = recording;
        let mut core = Core::new(transport, cfg);
        core.trace = trace;
        #[cfg(feature = "metrics")]
        if let Some(meter) = &meter {
            core.metrics =
                crate::metrics::Metrics::new(meter, core.transport.instance().client_id());
        }
        let inner = Arc::new(Inner {
            core: Arc::new(core),
            state: AtomicU8::new(RUNNING),
            registered: AtomicBool::new(true),
            sends: TaskTracker::new(),
            flow,
            batcher: cfg_batcher,
            completions,
            waiting: crate::rendezvous::Registry::default(),
            runtime: tokio::runtime::Handle::current(),
            shutdown_done: OnceCell::new(),
        });
        #[cfg(feature = "metrics")]
        if let Some(meter) = &meter {
            crate::metrics::observe(meter, &inner);
        }
        // The driver ends by itself once the state is dropped and every send has finished.
        drop(tokio::spawn(driver));
        tracing::info!(group = %inner.cfg().group, client_id = %inner.instance().client_id(), "producer started");
        Ok(Self {
            handle: Arc::new(Handle { inner }),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// The client id (`ip@instance`) announced to the brokers.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.inner().instance().client_id()
    }

    /// The client instance this producer sends through (shared with the producers of this
    /// process that have the same client id and connection settings).
    #[must_use]
    pub fn instance(&self) -> &Arc<ClientInstance> {
        self.inner().instance()
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &ProducerConfig {
        self.inner().cfg()
    }

    /// Whether sends are accepted (false once `shutdown` began).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.inner().is_running()
    }

    /// Gives `msg` its unique id (`UNIQ_KEY`, what [`SendResult::msg_id`](crate::SendResult)
    /// reports) now, unless it has one, and returns it. Sends never replace an id already set,
    /// so a message sent again after a "maybe stored" error
    /// ([`SendError::maybe_stored`](crate::SendError::maybe_stored)) keeps the id of the
    /// first try and consumers can drop the duplicate. Ids come from the process-wide generator
    /// every send uses (Java's `MessageClientIDSetter`).
    pub fn assign_msg_id(&self, msg: &mut Message) -> String {
        ensure_uniq_key(msg, &mut || identity::uniq_ids().next_id())
    }

    /// Counters of in-flight work.
    #[must_use]
    pub fn stats(&self) -> ProducerStats {
        self.inner().stats()
    }

    /// Stops the producer: new sends fail with [`ErrorKind::NotRunning`](crate::ErrorKind);
    /// sends in flight are awaited up to `shutdown_timeout`, then cancelled (each still
    /// resolves, with [`ErrorKind::Cancelled`](crate::ErrorKind)); when it is the last producer
    /// of its group on the client instance, `UNREGISTER_CLIENT` for the group goes to every
    /// broker at once, within what is left of `shutdown_timeout` and at most 1 s (a hung broker
    /// does not hold shutdown up; it forgets the client when its connection closes anyway); when
    /// it is the instance's last producer, the instance's background tasks and connections stop
    /// (each connection first writes what is queued on it, such as oneway sends, which resolve
    /// once queued; for at most 4 s when the broker reads nothing). Idempotent; concurrent calls
    /// all wait for the same shutdown.
    pub async fn shutdown(&self) {
        let deadline = tokio::time::Instant::now() + self.inner().cfg().shutdown_timeout;
        self.shutdown_until(deadline).await;
    }

    /// [`Producer::shutdown`] within `deadline` instead of `shutdown_timeout` from now: an
    /// internal producer (the trace's) shares its host's deadline. A call while a shutdown
    /// runs waits for that one, whatever its deadline.
    pub(crate) async fn shutdown_until(&self, deadline: tokio::time::Instant) {
        let inner = Arc::clone(self.inner());
        inner
            .shutdown_done
            .get_or_init(|| shutdown(Arc::clone(&inner), deadline))
            .await;
    }
}

async fn shutdown(inner: Arc<Inner>, deadline: tokio::time::Instant) {
    inner.state.store(SHUTTING_DOWN, Ordering::SeqCst);
    // Held messages go now, not at the end of their hold time.
    if let Some(batcher) = &inner.batcher {
        batcher.flush_all();
    }
    let instance = Arc::clone(inner.instance());
    let group = inner.cfg().group.clone();
    tracing::info!(group = %group, client_id = %instance.client_id(), in_flight = inner.sends.len(), "producer shutting down");
    inner.sends.close();
    if tokio::time::timeout_at(deadline, inner.sends.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = inner.sends.len(),
            "shutdown: cancelling sends still in flight"
        );
        inner.core.abort();
        // The sends waiting for an answer by callback have no wait to end: end them here.
        inner.waiting.cancel_all();
        if let Some(flow) = &inner.flow {
            flow.close();
        }
        // Every wait of a send ends on the abort token, so the connections, which other
        // producers of the instance may share, stay open. Wait for the cancelled sends to
        // resolve, up to a hard cap (a send stuck anyway still resolves by its own deadline).
        let cap = tokio::time::Instant::now() + ABORT_CAP;
        loop {
            if tokio::time::timeout(ABORT_POLL, inner.sends.wait())
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= cap {
                tracing::warn!(
                    in_flight = inner.sends.len(),
                    "shutdown: sends still in flight after cancellation; not waiting longer"
                );
                break;
            }
        }
    }
    if let Some(trace) = &inner.core.trace {
        // Within the deadline, with at least a round trip's chance.
        trace
            .shutdown(deadline.max(tokio::time::Instant::now() + UNREGISTER_FLOOR))
            .await;
    }
    if let Some(grpc) = inner.core.transport.grpc() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        grpc.close(
            left.min(heartbeat::UNREGISTER_TIMEOUT)
                .max(UNREGISTER_FLOOR),
        )
        .await;
    }
    let left = inner.leave();
    let mut unregistered = 0;
    if left.is_some_and(|l| l.last_of_group) {
        // Within what is left of the shutdown deadline, at most UNREGISTER_TIMEOUT, and never
        // less than a round trip's chance.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let bound = left
            .min(heartbeat::UNREGISTER_TIMEOUT)
            .max(UNREGISTER_FLOOR);
        unregistered = heartbeat::unregister_group(&instance, &group, bound).await;
    }
    if left.is_some_and(|l| l.unused) {
        instance.close().await;
    }
    inner.state.store(STOPPED, Ordering::SeqCst);
    tracing::info!(group = %group, client_id = %instance.client_id(), unregistered, "producer stopped");
}
