//! The transport seam: what the send loop ([`crate::retry`]) asks of the network.
//!
//! The loop owns everything a send decides (the deadline, queue selection, per-attempt budgets,
//! retry rules, the fault table, backoff); a [`Transport`] owns how a broker is reached: route
//! lookups, broker addresses, the request encoding, the call, and reading the answer into a
//! [`SendResult`] or a typed [`ErrorKind`]. The remoting protocol ([`remoting`]) is the transport
//! today; a RocketMQ 5 gRPC proxy, which routes by itself, plugs in the same way: its routes
//! name the queues the proxy exposes and its attempts go to the proxy endpoint.
//!
//! Every method is bounded by the budget it is given; none retries by itself.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmq_common::header::transaction::EndTransactionRequestHeader;
use rmq_common::MessageQueue;
use rmq_nameserver_client::{PublishRoute, TopicPublishInfo};

use crate::error::ErrorKind;
use crate::kernel::Outgoing;
use crate::send_result::SendResult;

pub(crate) mod any;
pub(crate) mod grpc;
mod grpc_convert;
mod grpc_orphans;
mod grpc_recall;
mod grpc_status;
pub(crate) mod remoting;

#[cfg(test)]
pub(crate) mod fake;

/// One attempt: a prepared message to one queue of a route, within a budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The route the queue was chosen from.
    pub(crate) info: &'a Arc<TopicPublishInfo>,
    /// The queue (for a static topic: already the real broker's).
    pub(crate) mq: &'a MessageQueue,
    /// The master address of `mq`'s broker when the route has it at hand (a queue of the
    /// route's list); `None`: resolve it from `info` or elsewhere.
    pub(crate) addr: Option<&'a Arc<str>>,
    /// The message, prepared once per send.
    pub(crate) out: &'a Outgoing,
    /// The longest this attempt may take, connecting and writing included.
    pub(crate) budget: Duration,
    /// When the attempt started: the clock read `budget` counts from (its deadline is
    /// `started + budget`, no later than the send's).
    pub(crate) started: tokio::time::Instant,
    /// Whether the attempt is born at the prepare's clock read ([`Outgoing::born_ms`]: a first
    /// attempt made without a wait); else the transport reads the clock for `bornTimestamp`.
    pub(crate) born_at_prepare: bool,
    /// Whether the send is pinned to this queue (a selector or a queue target); a gRPC proxy
    /// is then told the queue id, else it picks the queue itself.
    pub(crate) pinned: bool,
}

/// Where an `END_TRANSACTION` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndTarget<'a> {
    /// The master of the named broker, the one that stored the half message (Java's
    /// `findBrokerAddressInPublish`).
    Broker(&'a str),
    /// The address a check came from (`ip:port`).
    Addr(&'a str),
}

/// Send limits a server may change while the producer runs (a gRPC proxy's later settings),
/// consulted once per send; `None`: the producer's configuration stays in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LiveLimits {
    /// Attempts per send (sync and async), the first included.
    pub(crate) max_attempts: Option<u32>,
    /// The pause after a throttled attempt (`SYSTEM_BUSY`).
    pub(crate) busy_backoff: Option<Duration>,
}

/// How the send loop reaches brokers. See the [module docs](self).
pub(crate) trait Transport: Send + Sync + 'static {
    /// An attempt handed to the network, resolving with its answer. Owns what it needs, so an
    /// asynchronous send can move it to the task that awaits it.
    ///
    /// A single message's answer may leave [`SendResult::msg_id`] empty: the send's state fills
    /// it from the prepared request when it settles the attempt (the remoting transport does,
    /// to avoid a copy per attempt). Every answer must therefore go through that settle.
    type Pending: Future<Output = Result<SendResult, ErrorKind>> + Send + Unpin + 'static;

    /// The address an attempt to `broker`, a broker of the route `info`, goes to, resolved as
    /// [`Transport::launch`] resolves it (what the trace records as the store host).
    fn store_addr<'a>(&self, info: &'a TopicPublishInfo, broker: &str) -> Option<Cow<'a, str>> {
        info.master_addr(broker).map(Cow::Borrowed)
    }

    /// The topic's route when it is known without a network call (the hot path), the topic
    /// marked as in use at `now` (the send's own clock read).
    fn cached_route(&self, topic: &str, now: tokio::time::Instant) -> Option<Arc<PublishRoute>>;

    /// Loads the topic's route within `timeout` ([`ErrorKind::NoRoute`] when the topic has no
    /// writable queue, [`ErrorKind::NameServer`] when it cannot be asked).
    fn load_route(
        &self,
        topic: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Arc<PublishRoute>, ErrorKind>> + Send;

    /// Hands the attempt to the network and returns once it is written or queued for writing
    /// (this is where connection set-up and back-pressure wait), so that the sends of one task
    /// go out in order. The answer comes through the returned [`Transport::Pending`].
    fn launch(
        &self,
        attempt: Attempt<'_>,
    ) -> impl Future<Output = Result<Self::Pending, ErrorKind>> + Send;

    /// A whole attempt in one call, for a caller that awaits it anyway.
    fn call<'a>(
        &'a self,
        attempt: Attempt<'a>,
    ) -> impl Future<Output = Result<SendResult, ErrorKind>> + Send + 'a;

    /// Sends once without an answer; resolves once queued on the connection (not once written).
    fn oneway(&self, attempt: Attempt<'_>) -> impl Future<Output = Result<(), ErrorKind>> + Send;

    /// The limits the server set since start, read at the start of every send.
    fn live_limits(&self) -> LiveLimits {
        LiveLimits::default()
    }

    /// Whether transactions end by message and transaction id alone (a gRPC proxy), so that
    /// no offset message id is needed.
    fn ends_by_id(&self) -> bool {
        false
    }

    /// Ends a transaction (oneway, as Java); resolves once queued on the connection (not once
    /// written), within `timeout`.
    fn end_transaction(
        &self,
        to: EndTarget<'_>,
        header: EndTransactionRequestHeader,
        remark: Option<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ErrorKind>> + Send;
}
