//! `rmq-testkit`: an in-process RocketMQ name server and brokers with fault injection, for the
//! workspace's tests (not published).
//!
//! - [`MockNameServer`] serves the routes tests set and change at run time.
//! - [`MockBroker`] stores what it is sent, in memory, and answers like a broker.
//! - [`MockCluster`] wires a name server and brokers `broker-a`, `broker-b`, ... of one cluster.
//! - [`interop`]: the variables through which `scripts/rocketmq-dev.sh` describes the real
//!   clusters to interop tests and benches.
//!
//! Every server listens on `127.0.0.1` port 0, every fault knob works at run time, and every
//! background task ends on `shutdown` or when the last handle is dropped.
#![warn(missing_docs)]

mod broker;
mod cluster;
mod endpoint;
mod faults;
pub mod interop;
mod namesrv;
mod route;
mod store;

pub use broker::MockBroker;
pub use cluster::{broker_name, MockCluster, AUTO_CREATE_TOPIC};
pub use faults::{Faults, Reply, MALFORMED_FRAME};
pub use namesrv::{MockNameServer, RouteRequest};
pub use route::{RouteBuilder, CLUSTER};
pub use store::{
    EndTransactionRecord, HeartbeatRecord, StoredMessage, UnknownTopic, MAX_PROPERTIES_BYTES,
    TBW102_QUEUE_NUMS,
};
