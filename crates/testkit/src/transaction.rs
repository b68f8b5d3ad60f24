//! The broker side of transaction checks: the client connections of each producer group and
//! client id (Java's `ProducerManager`; replies are pushed to them too, see [`crate::reply`]) and
//! the `CHECK_TRANSACTION_STATE` requests sent to them, on demand or by
//! the check service (Java's `TransactionalMessageCheckService`). The half messages themselves
//! are in [`crate::half`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rmq_common::RequestCode;
use rmq_remoting::{ConnectionHandle, RemotingCommand};
use tokio_util::sync::CancellationToken;

use crate::half::{CheckRules, DEFAULT_TRANSACTION_TIMEOUT_MS};
use crate::store::{now_ms, Store};

/// How long writing one check may take (a broker allows 10 ms; loopback tests need slack).
const CHECK_WRITE_TIMEOUT: Duration = Duration::from_secs(3);

/// The automatic transaction check of a mock broker (Java's `TransactionalMessageCheckService`
/// and its broker settings), for
/// [`MockBroker::set_transaction_check`](crate::MockBroker::set_transaction_check).
///
/// Every `interval`, each pending half message is looked at in commit-log order: one already
/// checked `max_checks` times is discarded (rolled back: it never becomes visible; logged);
/// one born less than `min_age` ago (or its `CHECK_IMMUNITY_TIME_IN_SECONDS`, if longer) is
/// left for a later pass; the others are checked. [`Default`] is a broker's: 30 s, 6 s, 15.
///
/// ```
/// use std::time::Duration;
/// use rmq_testkit::TransactionCheck;
/// let fast = TransactionCheck {
///     interval: Duration::from_millis(50),
///     min_age: Duration::ZERO,
///     ..TransactionCheck::default()
/// };
/// assert_eq!(fast.max_checks, 15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionCheck {
    /// Time between two check passes (`transactionCheckInterval`). The first pass comes one
    /// interval after the service starts.
    pub interval: Duration,
    /// Only half messages born longer ago than this are checked (`transactionTimeOut`); also
    /// the least immunity time a `CHECK_IMMUNITY_TIME_IN_SECONDS` property can ask for.
    pub min_age: Duration,
    /// Checks per half message before it is discarded (`transactionCheckMax`); 0 acts as 1.
    pub max_checks: u32,
}

impl Default for TransactionCheck {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            min_age: Duration::from_millis(6_000),
            max_checks: 15,
        }
    }
}

impl TransactionCheck {
    pub(crate) fn rules(&self) -> CheckRules {
        CheckRules {
            timeout_ms: duration_ms(self.min_age),
            max_checks: self.max_checks,
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A client connection registered for a producer group.
#[derive(Debug)]
struct ProducerConn {
    client_id: String,
    conn: ConnectionHandle,
}

/// The running check service: stopped when replaced or dropped (with the broker).
#[derive(Debug)]
struct CheckTask {
    config: TransactionCheck,
    stop: CancellationToken,
}

impl Drop for CheckTask {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug, Default)]
struct State {
    producers: HashMap<String, Vec<ProducerConn>>,
    check: Option<CheckTask>,
}

/// Producer connections and the check service of one broker.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    state: Mutex<State>,
    /// Round-robin position among a group's connections (Java's `positiveAtomicCounter`).
    next: AtomicUsize,
}

impl Transactions {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `conn` for `group` (a heartbeat); closed connections of the group are dropped.
    pub(crate) fn register(&self, group: &str, client_id: &str, conn: &ConnectionHandle) {
        let mut state = self.lock();
        let list = state.producers.entry(group.to_owned()).or_default();
        list.retain(|p| !p.conn.is_closed());
        let peer = conn.peer_addr();
        if let Some(p) = list.iter_mut().find(|p| p.conn.peer_addr() == peer) {
            p.client_id = client_id.to_owned();
            p.conn = conn.clone();
        } else {
            tracing::debug!(group, client_id, %peer, "producer connection registered");
            list.push(ProducerConn {
                client_id: client_id.to_owned(),
                conn: conn.clone(),
            });
        }
    }

    /// Forgets the connection from `peer` for `group` (`UNREGISTER_CLIENT`; a broker goes by
    /// the connection, not the client id).
    pub(crate) fn unregister(&self, group: &str, peer: SocketAddr) {
        let mut state = self.lock();
        let Some(list) = state.producers.get_mut(group) else {
            return;
        };
        list.retain(|p| {
            let keep = p.conn.peer_addr() != peer && !p.conn.is_closed();
            if p.conn.peer_addr() == peer {
                let client_id = &p.client_id;
                tracing::debug!(group, client_id, %peer, "producer connection unregistered");
            }
            keep
        });
        if list.is_empty() {
            state.producers.remove(group);
        }
    }

    /// The live connections registered for `group`.
    pub(crate) fn connections(&self, group: &str) -> Vec<ConnectionHandle> {
        self.lock()
            .producers
            .get(group)
            .map_or_else(Vec::new, |list| {
                list.iter()
                    .filter(|p| !p.conn.is_closed())
                    .map(|p| p.conn.clone())
                    .collect()
            })
    }

    /// The live connection a heartbeat of `client_id` registered last (Java's
    /// `ProducerManager.findChannel`, where replies are pushed).
    pub(crate) fn connection_of_client(&self, client_id: &str) -> Option<ConnectionHandle> {
        self.lock()
            .producers
            .values()
            .flatten()
            .filter(|p| p.client_id == client_id && !p.conn.is_closed())
            .map(|p| p.conn.clone())
            .last()
    }

    /// One live connection of `group`, in turn.
    fn pick(&self, group: &str) -> Option<ConnectionHandle> {
        let live = self.connections(group);
        if live.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % live.len();
        live.into_iter().nth(i)
    }

    /// The transaction timeout in force: the check service's `min_age`, else a broker's 6 s.
    pub(crate) fn timeout_ms(&self) -> i64 {
        self.lock()
            .check
            .as_ref()
            .map_or(DEFAULT_TRANSACTION_TIMEOUT_MS, |c| {
                duration_ms(c.config.min_age)
            })
    }

    /// Records a newly started check service, stopping the previous one.
    pub(crate) fn set_check(&self, config: TransactionCheck, stop: CancellationToken) {
        let old = self.lock().check.replace(CheckTask { config, stop });
        drop(old);
    }

    /// Stops the check service, if any.
    pub(crate) fn stop_check(&self) {
        let old = self.lock().check.take();
        if old.is_some() {
            tracing::debug!("transaction check service stopped");
        }
    }
}

/// Sends the checks of one pass (every half message when `rules` is `None`), each oneway to a
/// live connection of its producer group; returns how many were written.
pub(crate) async fn send_checks(
    store: &Store,
    tx: &Transactions,
    rules: Option<CheckRules>,
) -> usize {
    let checks = store.take_checks(rules, now_ms());
    let broker = &store.name;
    let mut sent = 0;
    for check in checks {
        let offset = check.header.commit_log_offset;
        let group = check.group.as_deref().unwrap_or_default();
        let Some(conn) = tx.pick(group) else {
            tracing::warn!(
                broker,
                group,
                offset,
                "no producer connection: check not sent"
            );
            continue;
        };
        let req = RemotingCommand::request_with_header(
            RequestCode::CHECK_TRANSACTION_STATE,
            &check.header,
        )
        .with_body(check.body);
        match conn.invoke_oneway(req, CHECK_WRITE_TIMEOUT).await {
            Ok(()) => {
                sent += 1;
                let peer = conn.peer_addr();
                tracing::debug!(broker, group, offset, %peer, "transaction check sent");
            }
            Err(e) => {
                tracing::warn!(broker, group, offset, error = %e, "transaction check not sent");
            }
        }
    }
    sent
}
