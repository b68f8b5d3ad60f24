//! `MockCluster`: a mock name server and brokers `broker-a`, `broker-b`, ... of one cluster.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rmq_common::route::{perm, TopicRouteData};
use tokio::net::ToSocketAddrs;

use crate::broker::MockBroker;
use crate::namesrv::MockNameServer;
use crate::route::RouteBuilder;
use crate::store::{StoredMessage, UnknownTopic, TBW102_QUEUE_NUMS};
use crate::transaction::TransactionCheck;

/// The default topic brokers create unknown topics from.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";

/// A name server and `n` brokers (`broker-a`, `broker-b`, ...) of [`CLUSTER`](crate::CLUSTER).
///
/// Topics are created with [`create_topic`](Self::create_topic), which configures the brokers
/// and registers the route with the name server. Every broker has the cluster's reply topic
/// `DefaultCluster_REPLY_TOPIC` (one queue), as a Java broker creates `{cluster}_REPLY_TOPIC`. Sends to unknown topics are answered
/// `TOPIC_NOT_EXIST` unless [`set_auto_create`](Self::set_auto_create) is on.
#[derive(Debug)]
pub struct MockCluster {
    namesrv: MockNameServer,
    brokers: Vec<MockBroker>,
}

/// The name of the `i`-th broker: `broker-a` ... `broker-z`, then `broker-26`, ...
#[must_use]
pub fn broker_name(i: usize) -> String {
    match u8::try_from(i) {
        Ok(i) if i < 26 => format!("broker-{}", char::from(b'a' + i)),
        _ => format!("broker-{i}"),
    }
}

impl MockCluster {
    /// Starts a name server and `brokers` brokers, all on `127.0.0.1` (ephemeral ports).
    ///
    /// # Errors
    /// A bind error.
    pub async fn start(brokers: usize) -> io::Result<Self> {
        Self::start_on("127.0.0.1:0", brokers).await
    }

    /// Starts a name server listening on `namesrv_addr` (such as `127.0.0.1:9876`, for a local
    /// development cluster clients find at the usual address) and `brokers` brokers on
    /// `127.0.0.1` (ephemeral ports; the routes carry their addresses).
    ///
    /// # Errors
    /// A bind error (the name-server address in use, for one).
    pub async fn start_on(namesrv_addr: impl ToSocketAddrs, brokers: usize) -> io::Result<Self> {
        let namesrv = MockNameServer::start_on(namesrv_addr).await?;
        let seq = Arc::new(AtomicU64::new(0));
        let mut list = Vec::with_capacity(brokers);
        for i in 0..brokers {
            let broker =
                MockBroker::start_with(&broker_name(i), seq.clone(), UnknownTopic::Reject).await?;
            let (ns, addr) = (namesrv.clone(), broker.addr());
            broker.set_create_hook(Arc::new(move |name: &str, topic: &str, queues: i32| {
                // A real broker registers the new topic with the name servers.
                ns.update_route(topic, |route| {
                    let built = RouteBuilder::from(std::mem::take(route))
                        .broker(name, &addr)
                        .queues(name, queues)
                        .build();
                    *route = built;
                });
            }));
            list.push(broker);
        }
        let cluster = Self {
            namesrv,
            brokers: list,
        };
        // Every broker has its cluster's reply topic (one queue), registered like any topic.
        cluster.create_topic(&rmq_common::reply::reply_topic(crate::CLUSTER), 1);
        Ok(cluster)
    }

    /// The name server.
    #[must_use]
    pub fn namesrv(&self) -> &MockNameServer {
        &self.namesrv
    }

    /// The name server's address.
    #[must_use]
    pub fn namesrv_addr(&self) -> String {
        self.namesrv.addr()
    }

    /// The brokers, in name order.
    #[must_use]
    pub fn brokers(&self) -> &[MockBroker] {
        &self.brokers
    }

    /// A broker by name.
    #[must_use]
    pub fn broker(&self, name: &str) -> Option<&MockBroker> {
        self.brokers.iter().find(|b| b.name() == name)
    }

    /// Creates `topic` with `queues_per_broker` read-write queues on every broker and registers
    /// its route.
    pub fn create_topic(&self, topic: &str, queues_per_broker: i32) {
        let on: Vec<(&str, i32)> = self
            .brokers
            .iter()
            .map(|b| (b.name(), queues_per_broker))
            .collect();
        self.create_topic_on(topic, &on);
    }

    /// Creates `topic` on some brokers (`(broker name, queues)`; unknown names are skipped) and
    /// registers its route (replacing any previous one).
    pub fn create_topic_on(&self, topic: &str, brokers: &[(&str, i32)]) {
        let mut route = RouteBuilder::new();
        for (name, queues) in brokers {
            let Some(b) = self.broker(name) else {
                tracing::warn!(name, "no such mock broker");
                continue;
            };
            b.create_topic(topic, *queues);
            route = route.broker(name, &b.addr()).queues(name, *queues);
        }
        self.namesrv.set_route(topic, route.build());
    }

    /// The route the name server serves for `topic`.
    #[must_use]
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        self.namesrv.route(topic)
    }

    /// Turns broker-side topic auto-creation on or off (as `autoCreateTopicEnable`).
    ///
    /// On: every broker has `TBW102` (perm 7, 8 queues) and its route is registered; a send to
    /// an unknown topic creates it with `min(defaultTopicQueueNums, 8)` queues on that broker and
    /// adds the broker to the topic's route. Off: unknown topics get `TOPIC_NOT_EXIST` and
    /// `TBW102` is unregistered.
    pub fn set_auto_create(&self, on: bool) {
        if on {
            let mut route = RouteBuilder::new();
            for b in &self.brokers {
                let p = perm::READ | perm::WRITE | perm::INHERIT;
                b.create_topic_with_perm(AUTO_CREATE_TOPIC, TBW102_QUEUE_NUMS, p);
                b.set_unknown_topic(UnknownTopic::AutoCreate);
                route = route.broker(b.name(), &b.addr()).queue_data(
                    b.name(),
                    TBW102_QUEUE_NUMS,
                    TBW102_QUEUE_NUMS,
                    p,
                );
            }
            self.namesrv.set_route(AUTO_CREATE_TOPIC, route.build());
        } else {
            for b in &self.brokers {
                b.remove_topic(AUTO_CREATE_TOPIC);
                b.set_unknown_topic(UnknownTopic::Reject);
            }
            self.namesrv.remove_route(AUTO_CREATE_TOPIC);
        }
    }

    /// Every message stored by any broker, in arrival order.
    #[must_use]
    pub fn messages(&self) -> Vec<StoredMessage> {
        let mut all: Vec<StoredMessage> =
            self.brokers.iter().flat_map(MockBroker::messages).collect();
        all.sort_by_key(|m| m.seq);
        all
    }

    /// The messages of `topic` stored by any broker, in arrival order.
    #[must_use]
    pub fn messages_of(&self, topic: &str) -> Vec<StoredMessage> {
        let mut all = self.messages();
        all.retain(|m| m.topic() == topic);
        all
    }

    /// The pending half messages of every broker (see [`MockBroker::half_messages`]), in
    /// arrival order.
    #[must_use]
    pub fn half_messages(&self) -> Vec<StoredMessage> {
        let mut all: Vec<StoredMessage> = self
            .brokers
            .iter()
            .flat_map(MockBroker::half_messages)
            .collect();
        all.sort_by_key(|m| m.seq);
        all
    }

    /// Checks every pending half message of every broker now (see
    /// [`MockBroker::check_transactions`]); returns how many checks were written.
    pub async fn check_transactions(&self) -> usize {
        let mut sent = 0;
        for b in &self.brokers {
            sent += b.check_transactions().await;
        }
        sent
    }

    /// Starts, replaces or (`None`) stops the automatic transaction check of every broker (see
    /// [`MockBroker::set_transaction_check`]).
    pub fn set_transaction_check(&self, check: Option<TransactionCheck>) {
        for b in &self.brokers {
            b.set_transaction_check(check);
        }
    }

    /// Stops the name server and every broker.
    pub async fn shutdown(&self) {
        for b in &self.brokers {
            b.shutdown().await;
        }
        self.namesrv.shutdown().await;
    }
}
