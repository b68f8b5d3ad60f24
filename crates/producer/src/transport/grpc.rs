//! The gRPC transport: a RocketMQ 5 proxy (`apache.rocketmq.v2.MessagingService`) in front of
//! the brokers, through one [`Session`] (the 5.x clients' `ProducerImpl` over `ClientImpl`).
//!
//! - Routes come from `QueryRoute` (the proxy's view: its writable master queues, each broker
//!   reached through the proxy endpoint), cached for the route poll interval.
//! - An attempt is one `SendMessage` ([`grpc_convert`](super::grpc_convert) builds the
//!   messages); its answer is read as [`grpc_status`](super::grpc_status) says.
//! - Sends pinned to a queue (selector, `send_to_queue`) write the queue id; this proxy then
//!   sends to the first broker of the route that has a queue of that id. Other sends leave the
//!   queue to the proxy, and the result reports the queue the producer picked (as the 5.x
//!   clients' receipts do).
//! - A batch is one `SendMessage` with several messages: the proxy stores them as one remoting
//!   batch (under a `UNIQ_KEY` of its own for the wrapper) while each receipt carries the
//!   message's own id, which is what [`SendResult::msg_id`] reports (joined by `,`).
//! - The proxy does not report the broker's offset message id: `offset_msg_id` is empty.
//! - Oneway sends are a `SendMessage` whose answer is not awaited.
//! - Transactions: the half message is a `TRANSACTION` message, the end an `EndTransaction`;
//!   the proxy's `RecoverOrphanedTransactionCommand` is routed to the group's transactional
//!   producer as a check-back ([`grpc_orphans`](super::grpc_orphans)).
//! - A heartbeat (`Heartbeat`, client type `PRODUCER`) goes every heartbeat interval; the
//!   telemetry stream runs from start ([`rmq_grpc::telemetry`]); `NotifyClientTermination` goes
//!   on shutdown.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use rmq_common::header::send::DEFAULT_REGION;
use rmq_common::header::transaction::EndTransactionRequestHeader;
use rmq_common::MessageQueue;
use rmq_grpc::{pb, ClientMeta, Endpoint, ServerSettings, Session, SessionConfig, Telemetry};
use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::grpc_convert::{self, Context as ConvertCx};
use super::grpc_status::{call_error, status_error, verdict, Verdict};
use super::{Attempt, EndTarget, LiveLimits, Transport};
use crate::config::{ConfigError, ProducerConfig};
use crate::error::ErrorKind;
use crate::instance::ClientInstance;
use crate::send_result::SendResult;

/// The answer future of a `SendMessage` in flight.
pub(crate) struct GrpcPending {
    fut: Pin<Box<dyn Future<Output = Result<SendResult, ErrorKind>> + Send>>,
}

impl std::fmt::Debug for GrpcPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrpcPending")
    }
}

impl Future for GrpcPending {
    type Output = Result<SendResult, ErrorKind>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// Sends through a proxy. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct GrpcTransport {
    /// The client instance (client id, request/reply and check-back tables); it sends nothing.
    pub(crate) instance: Arc<ClientInstance>,
    pub(super) session: Session,
    pub(super) endpoint: Arc<str>,
    telemetry: Telemetry,
    routes: DashMap<String, (Instant, Arc<PublishRoute>)>,
    route_ttl: Duration,
    topics: Arc<Mutex<BTreeSet<String>>>,
    group: String,
    born_host: String,
    /// The producer's own body limit (the proxy's, when smaller, applies on top, as it changes).
    max_body: usize,
    stop: CancellationToken,
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The protobuf resource of a name (namespaces are already applied to names, as on remoting).
fn resource(name: &str) -> pb::Resource {
    pb::Resource {
        resource_namespace: String::new(),
        name: name.to_owned(),
    }
}

fn to_pb_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

impl GrpcTransport {
    /// A transport to `endpoint` for the producer of `cfg` on `instance`; starts the telemetry
    /// stream and the heartbeat.
    pub(crate) fn start(
        instance: Arc<ClientInstance>,
        cfg: &ProducerConfig,
        endpoint: Endpoint,
    ) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::BadProxy {
            endpoint: endpoint.to_string(),
            reason,
        };
        let meta = ClientMeta::new(
            instance.client_id(),
            env!("CARGO_PKG_VERSION"),
            "",
            cfg.credentials.clone(),
        )
        .map_err(|e| bad(e.to_string()))?;
        let session = Session::new(SessionConfig {
            endpoint: endpoint.clone(),
            meta,
            connect_timeout: cfg.remoting.connect_timeout,
            keep_alive: Some(Duration::from_secs(30)),
            tls: cfg.remoting.tls.clone(),
        })
        .map_err(|e| bad(e.to_string()))?;
        let topics = Arc::new(Mutex::new(BTreeSet::new()));
        let born_host = instance
            .client_id()
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let settings = {
            let topics = Arc::clone(&topics);
            let access_point = endpoint.to_pb();
            let request_timeout = to_pb_duration(cfg.send_timeout);
            let max_body = i32::try_from(cfg.max_message_size).unwrap_or(i32::MAX);
            let hostname = born_host.clone();
            Arc::new(move || pb::Settings {
                client_type: Some(pb::ClientType::Producer as i32),
                access_point: Some(access_point.clone()),
                request_timeout: Some(request_timeout),
                pub_sub: Some(pb::settings::PubSub::Publishing(pb::Publishing {
                    topics: topics
                        .lock()
                        .map(|t| t.iter().map(|n: &String| resource(n)).collect())
                        .unwrap_or_default(),
                    max_body_size: max_body,
                    validate_message_type: false,
                })),
                user_agent: Some(pb::Ua {
                    language: pb::Language::Rust as i32,
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    platform: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
                    hostname: hostname.clone(),
                }),
                ..Default::default()
            }) as rmq_grpc::SettingsFn
        };
        let orphans = super::grpc_orphans::OrphanRouter {
            router: Arc::clone(&instance.checks),
            group: cfg.group.clone(),
            endpoint: endpoint.to_string(),
        };
        let telemetry = Telemetry::start(session.clone(), settings, Arc::new(orphans));
        let stop = CancellationToken::new();
        drop(tokio::spawn(heartbeat(
            session.clone(),
            cfg.group.clone(),
            cfg.heartbeat_interval,
            stop.clone(),
        )));
        tracing::info!(endpoint = %endpoint, client_id = %instance.client_id(), "gRPC proxy transport started");
        Ok(Self {
            instance,
            endpoint: Arc::from(endpoint.to_string()),
            session,
            telemetry,
            routes: DashMap::new(),
            route_ttl: cfg.name_server.poll_interval,
            topics,
            group: cfg.group.clone(),
            born_host,
            max_body: cfg.max_message_size,
            stop,
        })
    }

    /// Waits up to `timeout` for the proxy's settings, and returns what it said.
    pub(crate) async fn server_settings(&self, timeout: Duration) -> ServerSettings {
        self.telemetry.wait_settings(timeout).await;
        self.telemetry.server_settings()
    }

    /// Stops the heartbeat and telemetry and tells the proxy this client is gone, within
    /// `timeout`.
    pub(crate) async fn close(&self, timeout: Duration) {
        self.stop.cancel();
        let req = pb::NotifyClientTerminationRequest {
            group: Some(resource(&self.group)),
        };
        match self.session.notify_client_termination(req, timeout).await {
            Ok(resp) => tracing::debug!(status = ?resp.status, "NotifyClientTermination answered"),
            Err(e) => tracing::debug!(error = %e, "NotifyClientTermination failed"),
        }
        self.telemetry.stop();
    }

    /// The request of `attempt`.
    fn request(&self, attempt: &Attempt<'_>) -> Result<pb::SendMessageRequest, ErrorKind> {
        let messages = grpc_convert::to_pb(
            attempt.out,
            ConvertCx {
                queue_id: attempt.pinned.then_some(attempt.mq.queue_id),
                now_ms: now_ms(),
                born_host: &self.born_host,
            },
        )
        .map_err(|e| ErrorKind::Broker {
            code: rmq_common::ResponseCode::MESSAGE_ILLEGAL,
            remark: Some(e.to_string()),
            broker: attempt.mq.broker_name.clone(),
            addr: self.endpoint.to_string(),
        })?;
        // The proxy's body limit as it is now (its settings may have changed since start).
        let max = body_limit(self.max_body, &self.telemetry.server_settings());
        if let Some(size) = messages.iter().map(|m| m.body.len()).find(|&n| n > max) {
            return Err(ErrorKind::InvalidMessage(
                rmq_common::validate::ValidationError::BodyTooLarge { size, max },
            ));
        }
        Ok(pb::SendMessageRequest { messages })
    }

    /// The send of `attempt` as a future owning what it needs.
    fn send(
        &self,
        attempt: &Attempt<'_>,
    ) -> Result<impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'static, ErrorKind>
    {
        let req = self.request(attempt)?;
        let call = self.session.send_message(req, attempt.budget);
        let queue = MessageQueue::new(
            attempt.out.topic(),
            attempt.mq.broker_name.as_str(),
            attempt.mq.queue_id,
        );
        let msg_id = attempt.out.msg_id.clone();
        let endpoint = Arc::clone(&self.endpoint);
        Ok(async move {
            match call.await {
                Ok(resp) => read_response(resp, msg_id, queue, &endpoint),
                Err(e) => Err(call_error(e, &queue.broker_name, &endpoint)),
            }
        })
    }
}

async fn heartbeat(session: Session, group: String, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let req = pb::HeartbeatRequest {
            group: Some(resource(&group)),
            client_type: pb::ClientType::Producer as i32,
        };
        match session
            .heartbeat(req, every.min(Duration::from_secs(3)))
            .await
        {
            Ok(resp) => {
                if let Some(st) = resp.status.filter(|s| !rmq_grpc::code::is_ok(s.code)) {
                    tracing::warn!(code = rmq_grpc::code::name(st.code), message = %st.message, "heartbeat refused by the proxy");
                }
            }
            Err(e) => {
                tracing::debug!(endpoint = %session.endpoint(), error = %e, "heartbeat failed")
            }
        }
    }
}

/// Reads a `SendMessage` answer: every entry must be stored; the first entry gives the offset,
/// transaction id and recall handle.
pub(crate) fn read_response(
    resp: pb::SendMessageResponse,
    msg_id: String,
    queue: MessageQueue,
    endpoint: &str,
) -> Result<SendResult, ErrorKind> {
    let broker = queue.broker_name.as_str();
    let mut status = None;
    for entry in &resp.entries {
        let code = entry
            .status
            .as_ref()
            .map_or(pb::Code::Ok as i32, |s| s.code);
        match verdict(code) {
            Verdict::Stored(s) => {
                if status.is_none_or(|prev: crate::send_result::SendStatus| prev.is_ok()) {
                    status = Some(s);
                }
            }
            _ => {
                let message = entry.status.as_ref().map_or("", |s| s.message.as_str());
                return Err(status_error(code, message, broker, endpoint));
            }
        }
    }
    let top = resp.status.as_ref().map_or(pb::Code::Ok as i32, |s| s.code);
    let Some(status) = status else {
        // No entry: the request-level status says why.
        let message = resp.status.as_ref().map_or("", |s| s.message.as_str());
        return match verdict(top) {
            Verdict::Stored(_) => Err(status_error(
                pb::Code::InternalError as i32,
                "no send result entry in a successful answer",
                broker,
                endpoint,
            )),
            _ => Err(status_error(top, message, broker, endpoint)),
        };
    };
    let first = &resp.entries[0];
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    // One message: its id as the proxy answered it; a batch: the ids of the request.
    let msg_id = if resp.entries.len() == 1 && !first.message_id.is_empty() {
        first.message_id.clone()
    } else {
        msg_id
    };
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id: String::new(),
        queue,
        queue_offset: first.offset,
        transaction_id: non_empty(&first.transaction_id),
        region_id: DEFAULT_REGION.into(),
        trace_on: true,
        recall_handle: non_empty(&first.recall_handle),
    })
}

/// Epoch milliseconds now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The producer's route of `topic` from the proxy's queues: the writable queues of master
/// brokers, sorted by broker name then queue id, every broker reached through `endpoint`.
pub(crate) fn publish_info(
    queues: &[pb::MessageQueue],
    topic: &str,
    endpoint: &str,
) -> TopicPublishInfo {
    let mut info = TopicPublishInfo::default();
    let mut seen = BTreeSet::new();
    for q in queues {
        let writable = matches!(
            pb::Permission::try_from(q.permission),
            Ok(pb::Permission::Write | pb::Permission::ReadWrite)
        );
        let Some(broker) = q.broker.as_ref().filter(|b| b.id == 0) else {
            continue;
        };
        if !writable || !seen.insert((broker.name.clone(), q.id)) {
            continue;
        }
        info.broker_addrs
            .insert(broker.name.clone(), endpoint.to_owned());
        info.queues
            .push(MessageQueue::new(topic, broker.name.as_str(), q.id));
    }
    info.queues
        .sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
    info
}

impl Transport for GrpcTransport {
    type Pending = GrpcPending;

    fn cached_route(&self, topic: &str, now: Instant) -> Option<Arc<PublishRoute>> {
        let entry = self.routes.get(topic)?;
        let age = now.saturating_duration_since(entry.0);
        (age < self.route_ttl).then(|| Arc::clone(&entry.1))
    }

    async fn load_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<PublishRoute>, ErrorKind> {
        let req = pb::QueryRouteRequest {
            topic: Some(resource(topic)),
            endpoints: Some(self.session.endpoint().to_pb()),
        };
        let resp = self
            .session
            .query_route(req, timeout)
            .await
            .map_err(|e| call_error(e, "", &self.endpoint))?;
        let code = resp.status.as_ref().map_or(pb::Code::Ok as i32, |s| s.code);
        if !rmq_grpc::code::is_ok(code) {
            let message = resp.status.as_ref().map_or("", |s| s.message.as_str());
            let err = status_error(code, message, "", &self.endpoint);
            if err.response_code() == Some(rmq_common::ResponseCode::TOPIC_NOT_EXIST) {
                return Err(ErrorKind::NoRoute {
                    topic: topic.to_owned(),
                    source: None,
                });
            }
            return Err(err);
        }
        let info = publish_info(&resp.message_queues, topic, &self.endpoint);
        if !info.is_ok() {
            return Err(ErrorKind::NoRoute {
                topic: topic.to_owned(),
                source: None,
            });
        }
        // A reloaded route goes on with the round robin where the old one stands.
        let info = Arc::new(info);
        let route = Arc::new(match self.routes.get(topic) {
            Some(old) => PublishRoute::after(info, &old.1),
            None => PublishRoute::new(info),
        });
        self.routes
            .insert(topic.to_owned(), (Instant::now(), Arc::clone(&route)));
        let new = self
            .topics
            .lock()
            .map(|mut t| t.insert(topic.to_owned()))
            .unwrap_or(false);
        if new {
            self.telemetry.sync_settings();
        }
        tracing::debug!(
            topic,
            queues = route.info().queues.len(),
            "route loaded from the proxy"
        );
        Ok(route)
    }

    fn live_limits(&self) -> LiveLimits {
        live_limits(&self.telemetry.server_settings())
    }

    async fn launch(&self, attempt: Attempt<'_>) -> Result<GrpcPending, ErrorKind> {
        let mut fut: Pin<Box<dyn Future<Output = Result<SendResult, ErrorKind>> + Send>> =
            Box::pin(self.send(&attempt)?);
        // One poll hands the request to the channel now, so that the sends of one task leave
        // in order; the answer is awaited later.
        let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(done) = first {
            fut = Box::pin(std::future::ready(done));
        }
        Ok(GrpcPending { fut })
    }

    async fn call<'a>(&'a self, attempt: Attempt<'a>) -> Result<SendResult, ErrorKind> {
        self.send(&attempt)?.await
    }

    async fn oneway(&self, attempt: Attempt<'_>) -> Result<(), ErrorKind> {
        let mut fut = Box::pin(self.send(&attempt)?);
        match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
            Poll::Ready(Err(e)) if !e.maybe_stored() => Err(e),
            Poll::Ready(_) => Ok(()),
            Poll::Pending => {
                // The answer is not awaited by the caller, but the call runs to its end.
                drop(tokio::spawn(fut));
                Ok(())
            }
        }
    }

    async fn end_transaction(
        &self,
        to: EndTarget<'_>,
        header: EndTransactionRequestHeader,
        _remark: Option<String>,
        timeout: Duration,
    ) -> Result<(), ErrorKind> {
        let broker = match to {
            EndTarget::Broker(name) => name.to_owned(),
            EndTarget::Addr(_) => header.broker_name.clone().unwrap_or_default(),
        };
        let resolution = match header.commit_or_rollback {
            rmq_common::sysflag::TRANSACTION_COMMIT_TYPE => pb::TransactionResolution::Commit,
            rmq_common::sysflag::TRANSACTION_ROLLBACK_TYPE => pb::TransactionResolution::Rollback,
            _ => return Ok(()),
        };
        let req = pb::EndTransactionRequest {
            topic: Some(resource(header.topic.as_deref().unwrap_or_default())),
            message_id: header.msg_id.clone(),
            transaction_id: header.transaction_id.clone().unwrap_or_default(),
            resolution: resolution as i32,
            source: if header.from_transaction_check {
                pb::TransactionSource::SourceServerCheck
            } else {
                pb::TransactionSource::SourceClient
            } as i32,
            trace_context: String::new(),
        };
        let resp = self
            .session
            .end_transaction(req, timeout)
            .await
            .map_err(|e| call_error(e, &broker, &self.endpoint))?;
        match resp.status.filter(|s| !rmq_grpc::code::is_ok(s.code)) {
            Some(st) => Err(status_error(st.code, &st.message, &broker, &self.endpoint)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;

/// Applies a proxy's settings to the producer's (the 5.x clients apply the server's retry
/// policy and body limit the same way): the attempts of every send (sync and async), the pause
/// after `TOO_MANY_REQUESTS`, the largest body. At start only: later settings reach the sends
/// through [`Transport::live_limits`] and the body check of each request.
pub(crate) fn apply_server_settings(cfg: &mut ProducerConfig, server: &ServerSettings) {
    if let Some(attempts) = server.max_attempts {
        cfg.retries = attempts.saturating_sub(1);
        cfg.retries_async = cfg.retries;
    }
    if let Some(initial) = server.backoff_initial {
        cfg.busy_backoff = initial;
    }
    if let Some(max) = server.max_body_size {
        cfg.max_message_size = cfg.max_message_size.min(max);
    }
    tracing::debug!(retries = cfg.retries, busy_backoff = ?cfg.busy_backoff, max_message_size = cfg.max_message_size, received = server.received, "proxy settings applied");
}

/// The limits of a proxy's settings that apply while sends run: its attempts and throttling
/// pause (what it did not say stays as configured).
pub(crate) fn live_limits(server: &ServerSettings) -> LiveLimits {
    LiveLimits {
        max_attempts: server.max_attempts,
        busy_backoff: server.backoff_initial,
    }
}

/// The largest body a send may carry now: the producer's limit, or the proxy's when smaller.
pub(crate) fn body_limit(configured: usize, server: &ServerSettings) -> usize {
    server
        .max_body_size
        .map_or(configured, |max| configured.min(max))
}

/// The end of a transaction whose half message `sent` went through a proxy: by message and
/// transaction id (a proxy reports no offset message id, and `EndTransaction` needs none).
pub(crate) fn end_header(
    topic: &str,
    group: &str,
    sent: &SendResult,
    state: crate::TransactionState,
) -> EndTransactionRequestHeader {
    EndTransactionRequestHeader {
        topic: Some(topic.to_owned()),
        producer_group: group.to_owned(),
        tran_state_table_offset: sent.queue_offset,
        commit_log_offset: 0,
        commit_or_rollback: state.wire_value(),
        from_transaction_check: false,
        msg_id: sent.msg_id.clone(),
        transaction_id: sent.transaction_id.clone(),
        broker_name: Some(sent.queue.broker_name.clone()),
    }
}
