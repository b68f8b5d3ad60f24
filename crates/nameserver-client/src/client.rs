//! `NameServerClient`: `GET_ROUTEINFO_BY_TOPIC` with round-robin start and failover.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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
#[derive(Clone)]
pub struct NameServerClient {
    inner: Arc<Inner>,
}

struct Inner {
    remoting: RemotingClient,
    addrs: Vec<String>,
    /// Index of the name server to try first (the last good one, or the next after a failure).
    cursor: AtomicUsize,
}

impl fmt::Debug for NameServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameServerClient")
            .field("addrs", &self.inner.addrs)
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
                addrs,
                cursor: AtomicUsize::new(start),
            }),
        }
    }

    /// The configured name-server addresses.
    #[must_use]
    pub fn addrs(&self) -> &[String] {
        &self.inner.addrs
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
        let addrs = &self.inner.addrs;
        let n = addrs.len();
        if n == 0 {
            return Err(NameServerError::NoNameServer);
        }
        let deadline = rmq_remoting::deadline_after(timeout);
        let start = self.inner.cursor.load(Ordering::Relaxed) % n;
        let mut tried = Vec::with_capacity(n);
        let mut last = None;
        for k in 0..n {
            let idx = (start + k) % n;
            let addr = &addrs[idx];
            let now = Instant::now();
            if k > 0 && now >= deadline {
                break;
            }
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
                    if self.inner.cursor.swap(idx, Ordering::Relaxed) % n != idx {
                        tracing::info!(namesrv = %addr, "name server chosen");
                    }
                    return route_from_response(topic, resp);
                }
                Err(e) => {
                    tracing::warn!(namesrv = %addr, topic, error = %e, "name server failed, trying the next");
                    self.inner.cursor.store((idx + 1) % n, Ordering::Relaxed);
                    last = Some(e);
                }
            }
        }
        match last {
            Some(last) => Err(NameServerError::Unreachable { tried, last }),
            // Unreachable in practice: the loop always makes its first attempt.
            None => Err(NameServerError::NoNameServer),
        }
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
