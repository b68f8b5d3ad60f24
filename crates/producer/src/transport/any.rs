//! [`AnyTransport`]: the producer's transport, remoting or gRPC, chosen at start. An enum, so
//! that the send path stays statically dispatched (one branch per call, no boxing on the
//! remoting path).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use rmq_common::header::transaction::EndTransactionRequestHeader;
use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};

use super::grpc::{GrpcPending, GrpcTransport};
use super::remoting::{RemotingPending, RemotingTransport};
use super::{Attempt, EndTarget, Transport};
use crate::error::ErrorKind;
use crate::instance::ClientInstance;
use crate::send_result::SendResult;

/// The transport of a producer.
#[derive(Debug)]
pub(crate) enum AnyTransport {
    /// Brokers over the remoting protocol.
    Remoting(RemotingTransport),
    /// A RocketMQ 5 gRPC proxy.
    Grpc(Box<GrpcTransport>),
}

impl AnyTransport {
    /// The client instance.
    pub(crate) fn instance(&self) -> &Arc<ClientInstance> {
        match self {
            Self::Remoting(t) => &t.instance,
            Self::Grpc(t) => &t.instance,
        }
    }

    /// The gRPC transport, when this is one.
    pub(crate) fn grpc(&self) -> Option<&GrpcTransport> {
        match self {
            Self::Remoting(_) => None,
            Self::Grpc(t) => Some(t),
        }
    }
}

/// The answer future of either transport.
// The remoting variant is the hot path: boxing it to even the sizes would allocate per send.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum AnyPending {
    Remoting(RemotingPending),
    Grpc(GrpcPending),
}

impl Future for AnyPending {
    type Output = Result<SendResult, ErrorKind>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Remoting(p) => Pin::new(p).poll(cx),
            Self::Grpc(p) => Pin::new(p).poll(cx),
        }
    }
}

// The gRPC side's futures (tonic calls, several KB) are boxed: unboxed, every future that
// awaits one of these methods takes their size and is copied at that size on the remoting hot
// path too (callgrind: 34,055 → 79,774 instructions per `rmq bench --mode sync -c 1` send;
// benches/README.md).
impl Transport for AnyTransport {
    type Pending = AnyPending;

    fn cached_route(&self, topic: &str, now: tokio::time::Instant) -> Option<Arc<PublishRoute>> {
        match self {
            Self::Remoting(t) => t.cached_route(topic, now),
            Self::Grpc(t) => t.cached_route(topic, now),
        }
    }

    async fn load_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> Result<Arc<PublishRoute>, ErrorKind> {
        match self {
            Self::Remoting(t) => t.load_route(topic, timeout).await,
            Self::Grpc(t) => Box::pin(t.load_route(topic, timeout)).await,
        }
    }

    async fn launch(&self, attempt: Attempt<'_>) -> Result<AnyPending, ErrorKind> {
        match self {
            Self::Remoting(t) => t.launch(attempt).await.map(AnyPending::Remoting),
            Self::Grpc(t) => Box::pin(t.launch(attempt)).await.map(AnyPending::Grpc),
        }
    }

    fn call<'a>(
        &'a self,
        attempt: Attempt<'a>,
    ) -> impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'a {
        // Either future as it is, with no state of its own around it (every await copies a
        // future whole: issue 13).
        match self {
            Self::Remoting(t) => Either::Left(t.call(attempt)),
            Self::Grpc(t) => Either::Right(Box::pin(t.call(attempt))),
        }
    }

    async fn oneway(&self, attempt: Attempt<'_>) -> Result<(), ErrorKind> {
        match self {
            Self::Remoting(t) => t.oneway(attempt).await,
            Self::Grpc(t) => Box::pin(t.oneway(attempt)).await,
        }
    }

    fn ends_by_id(&self) -> bool {
        matches!(self, Self::Grpc(_))
    }

    fn store_addr<'a>(&self, info: &'a TopicPublishInfo, broker: &str) -> Option<Cow<'a, str>> {
        match self {
            Self::Remoting(t) => t.store_addr(info, broker),
            Self::Grpc(t) => t.store_addr(info, broker),
        }
    }

    fn live_limits(&self) -> super::LiveLimits {
        match self {
            Self::Remoting(_) => super::LiveLimits::default(),
            Self::Grpc(t) => t.live_limits(),
        }
    }

    async fn end_transaction(
        &self,
        to: EndTarget<'_>,
        header: EndTransactionRequestHeader,
        remark: Option<String>,
        timeout: Duration,
    ) -> Result<(), ErrorKind> {
        match self {
            Self::Remoting(t) => t.end_transaction(to, header, remark, timeout).await,
            Self::Grpc(t) => Box::pin(t.end_transaction(to, header, remark, timeout)).await,
        }
    }
}
