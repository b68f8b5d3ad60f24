//! [`ClientInstance`]: what the producers of one process share with one set of connection
//! settings (Java's `MQClientInstance`).
//!
//! An instance owns the connections ([`RemotingClient`]), the route cache and its refresher, the
//! table of broker addresses in use, **one** heartbeat listing every producer group registered on
//! it, and the processors of requests that brokers send to the client (transaction check-back,
//! reply push). Producers are handles on it: [`ProducerBuilder::start`](crate::ProducerBuilder)
//! finds the instance of the same settings ([`registry`]) or starts one; a producer's shutdown
//! unregisters its group (`UNREGISTER_CLIENT` to every broker) and the last producer to go closes
//! the instance. Broker requests with no processor are answered `REQUEST_CODE_NOT_SUPPORTED`
//! (by the remoting client), never dropped.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use rmq_common::RequestCode;
use rmq_nameserver_client::RouteCache;
use rmq_remoting::acl::AclHook;
use rmq_remoting::{RemotingClient, RequestProcessor};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ProducerConfig;
use crate::request::{ReplyProcessor, ReplyTable};
use crate::transaction::{CheckProcessor, CheckRouter};

pub(crate) mod heartbeat;
pub(crate) mod registry;

/// The source of [`ClientInstance::id`] (0 is never given: [`LAST_NOTED`]'s "none").
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The instance and the broker address of this thread's last [`ClientInstance::note_broker`].
    static LAST_NOTED: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// The shared client of the producers of one process with the same client id and connection
/// settings. Reached through [`Producer::instance`](crate::Producer::instance).
#[derive(Debug)]
pub struct ClientInstance {
    pub(crate) key: String,
    /// Unique in the process (instances are not compared by address: one may be dropped and
    /// another allocated in its place).
    id: u64,
    client_id: String,
    pub(crate) remoting: RemotingClient,
    pub(crate) routes: RouteCache,
    /// Settings the heartbeat and unregistration use (those of the producer that started it;
    /// the same for every producer sharing it, see [`registry::key`]).
    pub(crate) cfg: ProducerConfig,
    /// Broker addresses used by sends (heartbeat and unregister targets).
    brokers: DashMap<String, (), crate::select::FnvBuild>,
    new_brokers: mpsc::UnboundedSender<String>,
    /// Producer groups registered, with the number of producers of each.
    groups: Mutex<HashMap<String, usize>>,
    stop: CancellationToken,
    background: TaskTracker,
    /// Cleared when the heartbeat task is gone (stopped, or dropped with its runtime).
    alive: Arc<AtomicBool>,
    /// Held while heartbeats are in flight and while a group unregisters, so that a heartbeat
    /// that listed a group never reaches a broker after that group's `UNREGISTER_CLIENT`.
    pub(crate) beat: tokio::sync::Mutex<()>,
    /// Where `CHECK_TRANSACTION_STATE` requests go: the transactional producers by group.
    pub(crate) checks: Arc<CheckRouter>,
    /// Requests awaiting their reply (`PUSH_REPLY_MESSAGE_TO_CLIENT`), by correlation id.
    pub(crate) replies: Arc<ReplyTable>,
}

/// Clears the instance's `alive` flag when the task holding it ends or is dropped.
#[derive(Debug)]
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl ClientInstance {
    /// Starts an instance for `cfg` (already validated) on the current runtime.
    fn start(key: String, client_id: String, cfg: &ProducerConfig) -> Arc<Self> {
        let mut remoting_cfg = cfg.remoting.clone();
        remoting_cfg.serialize_type = cfg.serialize_type;
        let remoting = RemotingClient::new(remoting_cfg);
        if let Some(credentials) = &cfg.credentials {
            remoting.set_hook(Arc::new(AclHook::new(credentials.clone())));
        }
        let checks = Arc::new(CheckRouter::default());
        remoting.register_processor(
            RequestCode::CHECK_TRANSACTION_STATE,
            Arc::new(CheckProcessor {
                router: Arc::clone(&checks),
            }),
        );
        let replies = Arc::new(ReplyTable::default());
        remoting.register_processor(
            RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT,
            Arc::new(ReplyProcessor {
                table: Arc::clone(&replies),
            }),
        );
        let routes = RouteCache::new(remoting.clone(), cfg.name_server.clone());
        let (new_brokers, new_brokers_rx) = mpsc::unbounded_channel();
        let instance = Arc::new(Self {
            key,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client_id,
            remoting,
            routes,
            cfg: cfg.clone(),
            brokers: DashMap::default(),
            new_brokers,
            groups: Mutex::new(HashMap::new()),
            stop: CancellationToken::new(),
            background: TaskTracker::new(),
            alive: Arc::new(AtomicBool::new(true)),
            beat: tokio::sync::Mutex::new(()),
            checks,
            replies,
        });
        // The refresher ends with the token; its handle is not needed.
        drop(instance.routes.start_refresher(instance.stop.child_token()));
        let guard = AliveGuard(Arc::clone(&instance.alive));
        let heartbeat = heartbeat::run(
            Arc::downgrade(&instance),
            new_brokers_rx,
            instance.stop.clone(),
            cfg.heartbeat_interval,
        );
        instance.background.spawn(async move {
            let _alive = guard;
            heartbeat.await;
        });
        tracing::info!(client_id = %instance.client_id, "client instance started");
        instance
    }

    /// Whether its background tasks still run (not stopped, runtime alive).
    pub(crate) fn is_alive(&self) -> bool {
        !self.stop.is_cancelled() && self.alive.load(Ordering::SeqCst)
    }

    /// The client id (`ip@instance[@unit]`) announced to the brokers.
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The producer groups registered on this instance (sorted).
    #[must_use]
    pub fn groups(&self) -> Vec<String> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<String> = groups.keys().cloned().collect();
        names.sort();
        names
    }

    /// Requests awaiting a reply on the instance's connections (every producer's).
    #[must_use]
    pub fn pending_requests(&self) -> usize {
        self.remoting.pending_len()
    }

    /// Requests of this instance's producers waiting for their reply
    /// ([`Producer::request`](crate::Producer::request)).
    #[must_use]
    pub fn waiting_replies(&self) -> usize {
        self.replies.len()
    }

    /// Installs the processor of the requests with `code` that brokers send to this client (for
    /// example `CHECK_TRANSACTION_STATE`); requests with no processor are answered
    /// `REQUEST_CODE_NOT_SUPPORTED` (oneway ones are dropped, as in Java).
    pub fn register_processor(&self, code: RequestCode, processor: Arc<dyn RequestProcessor>) {
        self.remoting.register_processor(code, processor);
    }

    /// Registers a producer of `group` (under the registry's lock, see [`registry::join`]); the
    /// first one of a group triggers a heartbeat, so that brokers know the group before its
    /// first send.
    pub(crate) fn register_group(&self, group: &str) {
        let first = {
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            let n = groups.entry(group.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            tracing::debug!(client_id = %self.client_id, group, "producer group registered");
            for addr in self.broker_addrs(false) {
                let _ = self.new_brokers.send(addr);
            }
        }
    }

    /// Removes a producer of `group` (under the registry's lock, see [`registry::leave`]);
    /// returns whether it was the group's last producer.
    pub(crate) fn deregister_group(&self, group: &str) -> bool {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        match groups.get_mut(group) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                groups.remove(group);
                true
            }
            None => false,
        }
    }

    /// Whether no producer is registered any more.
    pub(crate) fn is_unused(&self) -> bool {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Remembers a broker address used by a send; the first use triggers a heartbeat to it.
    pub(crate) fn note_broker(&self, addr: &str) {
        // Addresses stay in the table for the instance's life: one this thread noted last for
        // this instance is there, no lookup needed (most sends go where the one before went).
        let id = self.id;
        // `try_with`: a thread whose locals are being destroyed looks the address up.
        let seen = LAST_NOTED
            .try_with(|last| {
                let last = last.borrow();
                last.0 == id && last.1 == addr
            })
            .unwrap_or(false);
        if seen {
            return;
        }
        let remember = || {
            let _ = LAST_NOTED.try_with(|last| {
                let mut last = last.borrow_mut();
                last.0 = id;
                last.1.clear();
                last.1.push_str(addr);
            });
        };
        if self.brokers.contains_key(addr) {
            remember();
            return;
        }
        if self.brokers.insert(addr.to_owned(), ()).is_none() {
            tracing::debug!(addr, "first send to broker");
            // The heartbeat task may have stopped (shutdown); then nothing is owed.
            let _ = self.new_brokers.send(addr.to_owned());
        }
        remember();
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

    /// Stops the instance: background tasks, route refresher, connections. Called by the last
    /// producer's shutdown, once [`registry::leave`] took it out of the table.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        self.background.close();
        if tokio::time::timeout(heartbeat::CLIENT_API_TIMEOUT, self.background.wait())
            .await
            .is_err()
        {
            tracing::warn!("client instance: background tasks did not stop in time");
        }
        self.routes.shutdown().await;
        self.remoting.shutdown().await;
        tracing::info!(client_id = %self.client_id, "client instance closed");
    }

    /// Stops the background tasks without any network call (the last producer left by a drop).
    pub(crate) fn stop_background(&self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn noted_brokers_are_kept_per_instance() {
        let cfg = ProducerConfig::new("pg");
        let one = ClientInstance::start("one".into(), "c1".into(), &cfg);
        let two = ClientInstance::start("two".into(), "c2".into(), &cfg);
        for addr in ["127.0.0.1:1", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1"] {
            one.note_broker(addr);
        }
        // This thread noted 127.0.0.1:1 last, for the other instance: this one still needs it.
        two.note_broker("127.0.0.1:1");
        let addrs = |i: &ClientInstance| i.broker_addrs(false).into_iter().collect::<Vec<_>>();
        assert_eq!(addrs(&one), ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(addrs(&two), ["127.0.0.1:1"]);
        two.note_broker("127.0.0.1:3");
        one.note_broker("127.0.0.1:3");
        assert_eq!(addrs(&one), ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(addrs(&two), ["127.0.0.1:1", "127.0.0.1:3"]);
        one.close().await;
        two.close().await;
    }
}
