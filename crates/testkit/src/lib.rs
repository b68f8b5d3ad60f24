//! `rmq-testkit`: an in-process RocketMQ name server and brokers, for tests and local
//! development (the `rmq dev-broker` command).
//!
//! - [`MockNameServer`] serves the routes tests set and change at run time.
//! - [`MockBroker`] stores what it is sent, in memory, and answers like a broker, transactional
//!   messages included (half messages, `END_TRANSACTION`, checks back to the producer group),
//!   timer messages (kept invisible until their time, `RECALL_MESSAGE`), and pushes replies to
//!   their requester (request/reply).
//! - [`MockCluster`] wires a name server and brokers `broker-a`, `broker-b`, ... of one cluster.
//! - [`interop`]: the variables through which `scripts/rocketmq-dev.sh` describes the real
//!   clusters to interop tests and benches.
//!
//! Every server listens on `127.0.0.1` port 0 (unless told otherwise), and every background task
//! ends on `shutdown` or when the last handle is dropped.
//!
//! # Features
//!
//! - `test-util` (off by default): the fault injection tests use, all changeable at run time —
//!   `Faults` (delay, black hole, `GO_AWAY` while "shutting down", scripted replies such as `Reply::Malformed` or
//!   `Reply::Close`) through each mock's `faults()`, and the connection knobs
//!   `refuse_connections`, `accept_connections`, `close_connections`, `down` and `up`. It
//!   enables `rmq-remoting/test-util` (the server's accept pause, connection close and raw
//!   frames). Without it the mocks answer every request normally and cannot be made to fail.
#![warn(missing_docs)]

mod broker;
mod cluster;
mod endpoint;
mod error_chain;
#[cfg(feature = "test-util")]
mod faults;
#[cfg(not(feature = "test-util"))]
#[path = "faults_off.rs"]
mod faults;
mod half;
pub mod interop;
mod namesrv;
mod reply;
mod route;
mod store;
mod timer;
mod transaction;

pub use broker::MockBroker;
pub use cluster::{broker_name, MockCluster, AUTO_CREATE_TOPIC};
pub use error_chain::{error_chain, error_line};
#[cfg(feature = "test-util")]
pub use faults::{Faults, GoAway, Reply, MALFORMED_FRAME};
pub use half::TRANS_HALF_TOPIC;
pub use namesrv::{MockNameServer, RouteRequest};
pub use route::{RouteBuilder, CLUSTER};
pub use store::{
    EndTransactionRecord, HeartbeatRecord, StoredMessage, UnknownTopic, MAX_PROPERTIES_BYTES,
    TBW102_QUEUE_NUMS,
};
pub use timer::RecallRecord;
pub use transaction::TransactionCheck;
