//! `MockNameServer`: serves `GET_ROUTEINFO_BY_TOPIC` from routes tests set at run time.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rmq_common::route::TopicRouteData;
use rmq_common::{GetRouteInfoRequestHeader, LanguageCode, RequestCode, ResponseCode};
use rmq_remoting::{BoxFuture, ProcessorTable, RemotingCommand, RequestContext};
use tokio::net::ToSocketAddrs;

use crate::endpoint::{endpoint_knobs, Endpoint};
use crate::faults::{Faults, Gate};

/// One `GET_ROUTEINFO_BY_TOPIC` as the mock name server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// The topic asked for.
    pub topic: String,
    /// The `acceptStandardJsonOnly` field, when sent.
    pub accept_standard_json_only: Option<bool>,
    /// The request frame's version.
    pub version: i32,
    /// The request frame's language.
    pub language: LanguageCode,
}

#[derive(Debug, Clone)]
struct Route {
    data: Option<TopicRouteData>,
    body: Bytes,
}

#[derive(Debug, Default)]
struct State {
    routes: HashMap<String, Route>,
    requests: Vec<RouteRequest>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-process name server on `127.0.0.1` (ephemeral port, or the address given to
/// [`start_on`](Self::start_on)).
///
/// Answers `GET_ROUTEINFO_BY_TOPIC` with the route set for the topic (standard JSON, or a raw
/// body), `TOPIC_NOT_EXIST` otherwise, and counts the requests per topic. The fault knobs of the
/// `test-util` feature (`faults`, `down`, ...) apply to every route request; scripted replies are
/// consumed one per route request. The delay, the black hole and the route answered
/// are the ones in force when the request arrived (before it was counted): a test can wait for
/// [`request_count`](Self::request_count) to grow, then change the route or the delay without
/// affecting that request's answer.
#[derive(Debug, Clone)]
pub struct MockNameServer {
    endpoint: Endpoint,
    shared: Arc<Shared>,
}

endpoint_knobs!(MockNameServer);

impl MockNameServer {
    /// Starts a name server without routes on `127.0.0.1` (ephemeral port).
    ///
    /// # Errors
    /// The bind error.
    pub async fn start() -> io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts a name server without routes listening on `addr` (for a local development cluster
    /// on a well-known address such as `127.0.0.1:9876`; tests use [`start`](Self::start)).
    ///
    /// # Errors
    /// The bind error (the address is in use, or not local).
    pub async fn start_on(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let faults = Faults::default();
        let processors = ProcessorTable::new();
        let (s, f) = (shared.clone(), faults.clone());
        let route = move |ctx: RequestContext,
                          req: RemotingCommand|
              -> BoxFuture<'static, Option<RemotingCommand>> {
            let (s, f) = (s.clone(), f.clone());
            Box::pin(async move { serve_route(&s, &f, &ctx, &req).await })
        };
        processors.register(RequestCode::GET_ROUTEINFO_BY_TOPIC, Arc::new(route));
        let endpoint = Endpoint::bind_on(addr, processors, faults).await?;
        tracing::debug!(addr = %endpoint.addr(), "mock name server started");
        Ok(Self { endpoint, shared })
    }

    /// Sets (or replaces) the route of `topic`, served as standard JSON.
    pub fn set_route(&self, topic: &str, route: TopicRouteData) {
        let body = match serde_json::to_vec(&route) {
            Ok(v) => Bytes::from(v),
            // Route data always serializes; keep the old route if it ever does not.
            Err(e) => {
                tracing::error!(error = %e, "route not serializable");
                return;
            }
        };
        tracing::debug!(topic, "mock name server: route set");
        self.shared.lock().routes.insert(
            topic.to_owned(),
            Route {
                data: Some(route),
                body,
            },
        );
    }

    /// Sets the route of `topic` as a raw body, served as it is (fastjson forms, broken bodies).
    pub fn set_route_body(&self, topic: &str, body: impl Into<Bytes>) {
        self.shared.lock().routes.insert(
            topic.to_owned(),
            Route {
                data: None,
                body: body.into(),
            },
        );
    }

    /// Applies `f` to the route of `topic` (an empty route when there is none) and stores it.
    pub fn update_route(&self, topic: &str, f: impl FnOnce(&mut TopicRouteData)) {
        let mut route = self.route(topic).unwrap_or_default();
        f(&mut route);
        self.set_route(topic, route);
    }

    /// Removes the route of `topic`: it is answered `TOPIC_NOT_EXIST` again.
    pub fn remove_route(&self, topic: &str) {
        self.shared.lock().routes.remove(topic);
    }

    /// The route set for `topic` (`None` for none, or for a raw body).
    #[must_use]
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        self.shared
            .lock()
            .routes
            .get(topic)
            .and_then(|r| r.data.clone())
    }

    /// Route requests received for `topic`.
    #[must_use]
    pub fn request_count(&self, topic: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.topic == topic)
            .count()
    }

    /// Route requests received, all topics.
    #[must_use]
    pub fn total_requests(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// Every route request received, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<RouteRequest> {
        self.shared.lock().requests.clone()
    }
}

async fn serve_route(
    shared: &Shared,
    faults: &Faults,
    ctx: &RequestContext,
    req: &RemotingCommand,
) -> Option<RemotingCommand> {
    let header = match req.decode_header::<GetRouteInfoRequestHeader>() {
        Ok(h) => h,
        Err(e) => {
            return Some(req.response_to(ResponseCode::SYSTEM_ERROR, Some(e.to_string())));
        }
    };
    // The knobs and the route as they are when the request arrives: a delayed answer carries
    // the route of its arrival time, as a slow network would deliver it.
    let arrival = faults.arrival(ctx);
    let body = {
        let mut state = shared.lock();
        state.requests.push(RouteRequest {
            topic: header.topic.clone(),
            accept_standard_json_only: header.accept_standard_json_only,
            version: req.version,
            language: req.language,
        });
        state.routes.get(&header.topic).map(|r| r.body.clone())
    };
    let scripted = match faults.gate(arrival, ctx, true).await {
        Gate::Done => return None,
        Gate::Refuse(code, remark) => return Some(req.response_to(code, remark)),
        Gate::Proceed(scripted) => scripted,
    };
    if let Some((code, remark)) = scripted {
        if code != ResponseCode::SUCCESS {
            return Some(req.response_to(code, remark));
        }
    }
    Some(match body {
        Some(body) => req.response_to(ResponseCode::SUCCESS, None).with_body(body),
        None => req.response_to(
            ResponseCode::TOPIC_NOT_EXIST,
            Some(format!(
                "No topic route info in name server for the topic: {}",
                header.topic
            )),
        ),
    })
}
