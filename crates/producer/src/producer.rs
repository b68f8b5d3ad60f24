//! [`Producer`]: the handle users send with (`Clone + Send + Sync`), and its shared state.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use rmq_common::Message;
use rmq_nameserver_client::{RouteCache, TopicPublishInfo};
use rmq_remoting::acl::AclHook;
use rmq_remoting::RemotingClient;
use tokio::sync::{mpsc, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::backpressure::Backpressure;
use crate::completion::{self, CompletionSender};
use crate::config::ProducerConfig;
use crate::error::ProducerError;
use crate::fault::LatencyFaultTolerance;
use crate::kernel::{ensure_uniq_key, WireConsts};
use crate::select::TopicCounters;
use crate::{heartbeat, identity, ProducerBuilder};

const RUNNING: u8 = 0;
const SHUTTING_DOWN: u8 = 1;
const STOPPED: u8 = 2;

/// How often shutdown closes the connections again while cancelled sends are still ending.
const ABORT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// Header values shared by every request.
    pub(crate) wire: WireConsts,
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
    pub(crate) sends: TaskTracker,
    /// Heartbeat and route refresh.
    background: TaskTracker,
    pub(crate) stop_background: CancellationToken,
    /// Cancelled when shutdown stops waiting for in-flight sends (for the rare waits).
    pub(crate) abort: CancellationToken,
    /// The same as a flag, for the per-attempt check (no lock).
    aborted: AtomicBool,
    pub(crate) flow: Option<Backpressure>,
    /// Where asynchronous sends hand the rest of their work.
    pub(crate) completions: CompletionSender,
    pub(crate) runtime: tokio::runtime::Handle,
    shutdown_done: OnceCell<()>,
}

impl Inner {
    /// The master address of `broker`: from the send's route, else from the cache.
    pub(crate) fn broker_addr<'a>(
        &self,
        info: &'a TopicPublishInfo,
        broker: &str,
    ) -> Option<Cow<'a, str>> {
        info.master_addr(broker)
            .map(Cow::Borrowed)
            .or_else(|| self.routes.master_addr(broker).map(Cow::Owned))
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

    /// Whether shutdown gave up waiting for the sends in flight.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
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
        if let Some(credentials) = &cfg.credentials {
            remoting.set_hook(Arc::new(AclHook::new(credentials.clone())));
        }
        let routes = RouteCache::new(remoting.clone(), cfg.name_server.clone());
        let (new_brokers, new_brokers_rx) = mpsc::unbounded_channel();
        let flow = cfg
            .async_backpressure
            .then(|| Backpressure::new(cfg.async_max_in_flight, cfg.async_max_bytes));
        let (completions, driver) = completion::channel();
        let inner = Arc::new(Inner {
            completions,
            wire: WireConsts::new(&cfg),
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
            aborted: AtomicBool::new(false),
            flow,
            runtime: tokio::runtime::Handle::current(),
            shutdown_done: OnceCell::new(),
            cfg,
        });
        // The driver ends by itself once the state is dropped and every send has finished.
        drop(tokio::spawn(driver));
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

    pub(crate) fn inner(&self) -> &Arc<Inner> {
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

    /// Gives `msg` its unique id (`UNIQ_KEY`, what [`SendResult::msg_id`](crate::SendResult)
    /// reports) now, unless it has one, and returns it. Sends never replace an id already set,
    /// so a message sent again after a "maybe stored" error
    /// ([`ProducerError::maybe_stored`](crate::ProducerError::maybe_stored)) keeps the id of the
    /// first try and consumers can drop the duplicate. Ids come from the process-wide generator
    /// every send uses (Java's `MessageClientIDSetter`).
    pub fn assign_msg_id(&self, msg: &mut Message) -> String {
        ensure_uniq_key(msg, &mut || identity::uniq_ids().next_id())
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
        inner.aborted.store(true, Ordering::SeqCst);
        inner.abort.cancel();
        if let Some(flow) = &inner.flow {
            flow.close();
        }
        // Every wait of a send also ends on the abort token; closing the connections fails the
        // transport's waiters at once too. Repeat for sends that were between two steps, up to
        // a hard cap (a send stuck anyway still resolves by its own deadline, after this).
        let cap = tokio::time::Instant::now() + ABORT_CAP;
        loop {
            for addr in inner.broker_addrs(true) {
                inner.remoting.close(&addr);
            }
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
