//! `rmq-nameserver-client`: where a RocketMQ topic can be written.
//!
//! - [`NameServerClient`] asks name servers for a topic's route (`GET_ROUTEINFO_BY_TOPIC`),
//!   with a round-robin start and failover between addresses within one deadline.
//! - [`decode_route`] reads the route body: standard JSON or fastjson's unquoted numeric keys.
//! - [`TopicPublishInfo::from_route`] turns a route into the queues a producer may write, as
//!   the Java client does (ordered, static and normal topics), within the queue-count limits
//!   [`MAX_QUEUES_PER_BROKER`] and [`MAX_QUEUES_PER_ROUTE`].
//! - [`RouteCache`] is shared by the producers of one client: it loads routes on demand (with
//!   the `TBW102` fallback for auto-created topics), refreshes the topics in use periodically or
//!   at once after a send failure, replaces a route only when it changed, and keeps a stale
//!   route usable while every name server is down.
#![warn(missing_docs)]

mod cache;
mod client;
mod config;
mod error;
mod limits;
mod publish_info;
mod publish_route;
mod refresher;
mod route_json;
mod static_topic;

pub use cache::{RouteCache, RouteStats};
pub use client::NameServerClient;
pub use config::{
    parse_addr_list, ConfigError, NameServerConfig, DEFAULT_MIN_IMMEDIATE_REFRESH_INTERVAL,
    DEFAULT_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS, MIN_POLL_INTERVAL,
};
pub use error::{NameServerError, RouteDecodeError};
pub use limits::{MAX_QUEUES_PER_BROKER, MAX_QUEUES_PER_ROUTE};
pub use publish_info::TopicPublishInfo;
pub use publish_route::PublishRoute;
pub use route_json::decode_route;
pub use static_topic::{
    mock_broker_name, LOGICAL_QUEUE_MOCK_BROKER_NAME_NOT_EXIST, LOGICAL_QUEUE_MOCK_BROKER_PREFIX,
    METADATA_SCOPE_GLOBAL,
};
