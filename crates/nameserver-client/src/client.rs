//! `NameServerClient`: `GET_ROUTEINFO_BY_TOPIC` with round-robin start and failover.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rmq_common::route::TopicRouteData;
use rmq_common::GetRouteInfoRequestHeader;
use rmq_common::{RequestCode, ResponseCode};
use rmq_remoting::{RemotingClient, RemotingCommand};
use tokio::time::Instant;
use tracing::Instrument;

use crate::error::NameServerError;
use crate::route_json::decode_route;

/// Asks name servers for topic routes.
///
/// Cheap to clone (shared state). The first address tried is chosen at random among the
/// configured ones; after that the client sticks to the last name server that answered, and a
/// name server that refuses, closes, sends what cannot be decoded, or does not answer in time is
/// skipped for the next one within the same call's deadline; one the remoting client is backing
/// off from after a failed connect ([`rmq_remoting::BackoffConfig`]) is skipped at once.
///
/// The addresses can be replaced at run time ([`update_addrs`](Self::update_addrs), Java's
/// `updateNameServerAddressList`).
#[derive(Clone)]
pub struct NameServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    remoting: RemotingClient,
    /// The current list; replaced whole by `update_addrs` (lookups work on the list they began
    /// with, but never ask an address removed since).
    addrs: RwLock<Arc<[String]>>,
    /// Index of the name server to try first (the last good one, or the next after a failure).
    cursor: AtomicUsize,
}

impl fmt::Debug for NameServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameServerClient")
            .field("addrs", &self.current())
            .field("cursor", &self.inner.cursor.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl NameServerClient {
    /// A client over `remoting` for these name-server addresses (`host:port`).
    #[must_use]
    pub fn new(remoting: RemotingClient, addrs: Vec<String>) -> Self {
        let start = if addrs.is_empty() {
            0
        } else {
            fastrand::usize(..addrs.len())
        };
        Self {
            inner: Arc::new(Inner {
                remoting,
                addrs: RwLock::new(addrs.into()),
                cursor: AtomicUsize::new(start),
            }),
        }
    }

    /// The name-server addresses in use.
    #[must_use]
    pub fn addrs(&self) -> Vec<String> {
        self.current().to_vec()
    }

    fn current(&self) -> Arc<[String]> {
        Arc::clone(
            &self
                .inner
                .addrs
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the name-server addresses (Java's `updateNameServerAddressList`); true when the
    /// list changed. An empty list, or the same addresses in any order, changes nothing.
    /// Lookups from now on ask only the new addresses, starting with the name server in use if
    /// it is still listed (else one at random); a lookup under way skips the removed ones. The
    /// connections to removed name servers are closed. Cached routes are kept.
    ///
    /// The addresses are not checked here (the producer's `update_name_servers` checks them).
    pub fn update_addrs(&self, addrs: Vec<String>) -> bool {
        let mut unique: Vec<String> = Vec::with_capacity(addrs.len());
        for a in addrs {
            if !unique.contains(&a) {
                unique.push(a);
            }
        }
        if unique.is_empty() {
            return false;
        }
        let removed: Vec<String> = {
            let mut guard = self
                .inner
                .addrs
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let old = Arc::clone(&guard);
            if old.len() == unique.len() && unique.iter().all(|a| old.contains(a)) {
                return false;
            }
            let chosen = (!old.is_empty())
                .then(|| &old[self.inner.cursor.load(Ordering::Relaxed) % old.len()]);
            let start = chosen
                .and_then(|c| unique.iter().position(|a| a == c))
                .unwrap_or_else(|| fastrand::usize(..unique.len()));
            self.inner.cursor.store(start, Ordering::Relaxed);
            tracing::info!(old = ?old, new = ?unique, "name-server addresses updated");
            *guard = unique.clone().into();
            old.iter()
                .filter(|a| !unique.contains(a))
                .cloned()
                .collect()
        };
        for addr in &removed {
            tracing::debug!(namesrv = %addr, "name server removed: closing its connection");
            self.inner.remoting.close(addr);
        }
        true
    }

    /// Whether `addr` is still a name server in use (`list` is the list a lookup began with).
    fn still_listed(&self, list: &Arc<[String]>, addr: &str) -> bool {
        let now = self.current();
        Arc::ptr_eq(&now, list) || now.iter().any(|a| a == addr)
    }

    /// The remoting client the requests go through.
    #[must_use]
    pub fn remoting(&self) -> &RemotingClient {
        &self.inner.remoting
    }

    /// The route of `topic`, asking the name servers in turn until one answers within `timeout`.
    ///
    /// The request carries `acceptStandardJsonOnly=true`; old name servers that answer in
    /// fastjson's format are decoded too. Each attempt gets an equal share of the time left, so
    /// every address is tried before the deadline even when the first one never answers.
    ///
    /// # Errors
    /// [`NameServerError::NoNameServer`] without addresses; [`NameServerError::Unreachable`]
    /// (with every address tried) when no name server answered; [`NameServerError::TopicNotExist`]
    /// with the name server's remark; [`NameServerError::Server`] for another error code;
    /// [`NameServerError::BadRouteBody`] when the body does not decode.
    pub async fn topic_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicRouteData, NameServerError> {
        let span = tracing::debug_span!("topic_route", topic, ?timeout);
        self.topic_route_in(topic, timeout).instrument(span).await
    }

    async fn topic_route_in(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<TopicRouteData, NameServerError> {
        let deadline = rmq_remoting::deadline_after(timeout);
        match self.lookup(topic, deadline).await {
            // Every address was removed while the lookup ran: ask the new ones, once.
            Err(None) => self
                .lookup(topic, deadline)
                .await
                .map_err(|e| e.unwrap_or(NameServerError::NoNameServer)),
            r => r.map_err(|e| e.unwrap_or(NameServerError::NoNameServer)),
        }
    }

    /// One pass over the current list; `Err(None)` when no address was asked (none left).
    async fn lookup(
        &self,
        topic: &str,
        deadline: Instant,
    ) -> Result<TopicRouteData, Option<NameServerError>> {
        let addrs = self.current();
        let n = addrs.len();
        if n == 0 {
            return Err(Some(NameServerError::NoNameServer));
        }
        let start = self.inner.cursor.load(Ordering::Relaxed) % n;
        let mut tried = Vec::with_capacity(n);
        let mut last = None;
        for k in 0..n {
            let idx = (start + k) % n;
            let addr = &addrs[idx];
            if !self.still_listed(&addrs, addr) {
                continue;
            }
            let now = Instant::now();
            if !tried.is_empty() && now >= deadline {
                break;
            }
            // Each attempt gets an equal share of what is left for the untried ones.
            let left = u32::try_from(n - k).unwrap_or(u32::MAX);
            let slice = deadline.saturating_duration_since(now) / left;
            tried.push(addr.clone());
            let header = GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: Some(true),
            };
            let req =
                RemotingCommand::request_with_header(RequestCode::GET_ROUTEINFO_BY_TOPIC, &header);
            match self.inner.remoting.invoke_sync(addr, req, slice).await {
                Ok(resp) => {
                    // The cursor indexes the current list; leave it when the list changed.
                    if self.still_current(&addrs)
                        && self.inner.cursor.swap(idx, Ordering::Relaxed) % n != idx
                    {
                        tracing::info!(namesrv = %addr, "name server chosen");
                    }
                    return route_from_response(topic, resp).map_err(Some);
                }
                Err(e) => {
                    tracing::warn!(namesrv = %addr, topic, error = %e, "name server failed, trying the next");
                    if self.still_current(&addrs) {
                        self.inner.cursor.store((idx + 1) % n, Ordering::Relaxed);
                    }
                    last = Some(e);
                }
            }
        }
        match last {
            Some(last) => Err(Some(NameServerError::Unreachable { tried, last })),
            None => Err(None),
        }
    }
}

impl NameServerClient {
    /// Whether `list` is still the list in use.
    fn still_current(&self, list: &Arc<[String]>) -> bool {
        Arc::ptr_eq(&self.current(), list)
    }
}

/// Maps a `GET_ROUTEINFO_BY_TOPIC` response to a route or a typed error.
fn route_from_response(
    topic: &str,
    resp: RemotingCommand,
) -> Result<TopicRouteData, NameServerError> {
    match resp.response_code() {
        ResponseCode::SUCCESS => Ok(decode_route(&resp.body)?),
        ResponseCode::TOPIC_NOT_EXIST => Err(NameServerError::TopicNotExist {
            topic: topic.to_owned(),
            remark: resp.remark,
        }),
        code => Err(NameServerError::Server {
            code,
            remark: resp.remark,
        }),
    }
}
