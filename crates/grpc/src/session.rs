//! [`Session`]: one HTTP/2 channel to a proxy endpoint, every call signed with the client's
//! metadata and bounded by its own deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tonic::transport::Channel;

use crate::endpoint::Endpoint;
use crate::metadata::ClientMeta;
use crate::pb;
use crate::pb::messaging_service_client::MessagingServiceClient;

/// How a [`Session`] reaches its proxy.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The proxy endpoint.
    pub endpoint: Endpoint,
    /// What every request announces.
    pub meta: ClientMeta,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive pings on the connection (none when `None`).
    pub keep_alive: Option<Duration>,
    /// TLS, with the same settings as the remoting transport (ALPN `h2`); plain when `None`.
    pub tls: Option<rmq_remoting::TlsConfig>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the call's deadline; the request may have reached the proxy.
    #[error("no answer from the proxy within {0:?}")]
    Timeout(Duration),
    /// The call failed with a gRPC status (the connection, the HTTP/2 stream, or the proxy's
    /// server rejected it before the RocketMQ handler ran).
    #[error("gRPC call failed: {0}")]
    Rpc(#[source] tonic::Status),
}

impl CallError {
    /// Whether the request may have reached the proxy's handler: false only when the channel
    /// could not connect (nothing was written).
    #[must_use]
    pub fn maybe_delivered(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Rpc(status) => !is_connect_failure(status),
        }
    }
}

/// Whether `status` reports a connection that could not be made (tonic's transport errors are
/// `UNAVAILABLE` with the connector's error as the source).
fn is_connect_failure(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    let mut text = status.message().to_ascii_lowercase();
    while let Some(e) = source {
        text.push(' ');
        text.push_str(&e.to_string().to_ascii_lowercase());
        source = e.source();
    }
    text.contains("connect") || text.contains("refused") || text.contains("dns error")
}

/// A connection to one proxy endpoint, cheap to clone (clones share the channel). Connects
/// lazily, on the first call, and reconnects by itself.
#[derive(Debug, Clone)]
pub struct Session {
    client: MessagingServiceClient<Channel>,
    meta: Arc<ClientMeta>,
    endpoint: Endpoint,
}

impl Session {
    /// A session to `cfg.endpoint` (no network activity until the first call).
    ///
    /// # Errors
    /// The endpoint does not make a valid URI.
    pub fn new(cfg: SessionConfig) -> Result<Self, tonic::transport::Error> {
        let mut ep = tonic::transport::Endpoint::from_shared(cfg.endpoint.uri(false))?
            .connect_timeout(cfg.connect_timeout)
            .tcp_nodelay(true);
        if let Some(interval) = cfg.keep_alive {
            ep = ep
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(interval)
                .keep_alive_while_idle(true);
        }
        let channel = match cfg.tls {
            None => ep.connect_lazy(),
            Some(tls) => {
                let addr = cfg.endpoint.to_string();
                let connector = tower::service_fn(move |_uri: tonic::transport::Uri| {
                    let (tls, addr) = (tls.clone(), addr.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect(addr.as_str()).await?;
                        let _ = tcp.set_nodelay(true);
                        let stream = tls.connect_with_alpn(&addr, tcp, &[b"h2"]).await?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                            hyper_util::rt::TokioIo::new(stream),
                        )
                    }
                });
                ep.connect_with_connector_lazy(connector)
            }
        };
        Ok(Self {
            client: MessagingServiceClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
            meta: Arc::new(cfg.meta),
            endpoint: cfg.endpoint,
        })
    }

    /// The endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The client metadata.
    #[must_use]
    pub fn meta(&self) -> &ClientMeta {
        &self.meta
    }

    /// A signed request of `msg` bounded by `timeout` (sent as `grpc-timeout` too).
    #[must_use]
    pub fn request<T>(&self, msg: T, timeout: Duration) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        self.meta.apply(req.metadata_mut(), SystemTime::now());
        req.set_timeout(timeout);
        req
    }

    /// `QueryRoute`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn query_route(
        &self,
        req: pb::QueryRouteRequest,
        timeout: Duration,
    ) -> Result<pb::QueryRouteResponse, CallError> {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move { client.query_route(req).await }).await
    }

    /// `SendMessage`: a future that owns what it needs (it can be moved to another task).
    pub fn send_message(
        &self,
        req: pb::SendMessageRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<pb::SendMessageResponse, CallError>> + Send + 'static {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move { client.send_message(req).await })
    }

    /// `Heartbeat`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn heartbeat(
        &self,
        req: pb::HeartbeatRequest,
        timeout: Duration,
    ) -> Result<pb::HeartbeatResponse, CallError> {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move { client.heartbeat(req).await }).await
    }

    /// `EndTransaction`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn end_transaction(
        &self,
        req: pb::EndTransactionRequest,
        timeout: Duration,
    ) -> Result<pb::EndTransactionResponse, CallError> {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move { client.end_transaction(req).await }).await
    }

    /// `RecallMessage`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn recall_message(
        &self,
        req: pb::RecallMessageRequest,
        timeout: Duration,
    ) -> Result<pb::RecallMessageResponse, CallError> {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move { client.recall_message(req).await }).await
    }

    /// `NotifyClientTermination`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn notify_client_termination(
        &self,
        req: pb::NotifyClientTerminationRequest,
        timeout: Duration,
    ) -> Result<pb::NotifyClientTerminationResponse, CallError> {
        let mut client = self.client.clone();
        let req = self.request(req, timeout);
        bounded(timeout, async move {
            client.notify_client_termination(req).await
        })
        .await
    }

    /// Opens the `Telemetry` stream with `outbound` as the client's side (signed, without a
    /// deadline: the stream lives as long as the client), within `timeout` for the server's
    /// headers.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn telemetry<S>(
        &self,
        outbound: S,
        timeout: Duration,
    ) -> Result<tonic::Streaming<pb::TelemetryCommand>, CallError>
    where
        S: tokio_stream::Stream<Item = pb::TelemetryCommand> + Send + 'static,
    {
        let mut client = self.client.clone();
        let mut req = tonic::Request::new(outbound);
        self.meta.apply(req.metadata_mut(), SystemTime::now());
        bounded(timeout, async move { client.telemetry(req).await }).await
    }

    /// A client over the same channel, for callers that build their own requests (benchmarks).
    #[must_use]
    pub fn raw_client(&self) -> MessagingServiceClient<Channel> {
        self.client.clone()
    }
}

/// `call` bounded by `timeout`, its response unwrapped.
async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(CallError::Timeout(timeout)),
        Ok(Err(status))
            if status.code() == tonic::Code::Cancelled
                && status.message().contains("Timeout expired") =>
        {
            Err(CallError::Timeout(timeout))
        }
        Ok(Err(status)) => Err(CallError::Rpc(status)),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
    }
}
