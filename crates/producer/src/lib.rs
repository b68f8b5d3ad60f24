//! `rmq-producer`: the send path of RocketMQ's `DefaultMQProducer` in async Rust.
//!
//! A [`Producer`] is built with [`ProducerBuilder`], started on a tokio runtime, and shared by
//! cloning. Every send validates the message, looks the topic's route up, picks a queue
//! (round-robin, avoiding the broker that just failed and brokers isolated by the latency fault
//! tolerance of [`fault`]), and retries what is safe to retry within one deadline. What varies
//! between sends (deadline, target queue or selector) is a [`SendOptions`] value. Errors say
//! whether the message may have been stored ([`SendError::maybe_stored`]) and hand it back when
//! it certainly was not ([`SendError::into_message`]).
//!
//! Producers of one process with the same client id and connection settings share a
//! [`ClientInstance`] (connections, routes, one heartbeat, processors of broker requests).
//!
//! Request/reply (Java 4.6+): [`Producer::request`] sends a message and waits for the reply a
//! replier sends with [`Producer::send_reply`] ([`Producer::send_request`] returns once the
//! request is stored, with a [`PendingReply`] to await).
//!
//! Transactional messages: [`ProducerBuilder::start_transactional`] with a
//! [`TransactionListener`] gives a [`TransactionProducer`] (half message, local transaction,
//! commit or rollback, and the answers to the brokers' check-backs).
#![warn(missing_docs)]

mod async_send;
mod auto_batch;
mod backpressure;
mod builder;
mod checks;
mod completion;
mod config;
mod deliver;
mod error;
pub mod fault;
mod identity;
mod instance;
mod java_hash;
mod kernel;
mod launching;
pub mod metrics;
mod name_servers;
mod namespace;
mod options;
mod policy;
mod producer;
mod recall;
mod rendezvous;
mod request;
mod retry;
mod select;
mod send;
mod send_future;
mod send_result;
mod trace;
mod transaction;
mod transport;

pub use auto_batch::AutoBatchConfig;
pub use builder::ProducerBuilder;
pub use config::{
    ConfigError, ProducerConfig, DEFAULT_PRODUCER_GROUP, JAVA_RETRY_RESPONSE_CODES, MAX_TIMEOUT,
};
pub use error::{ErrorKind, SendError};
pub use instance::ClientInstance;
pub use java_hash::{JavaHashCode, JavaHashSelector};
pub use options::SendOptions;
pub use producer::{Producer, ProducerStats};
pub use recall::RecallError;
pub use request::PendingReply;
/// ACL credentials for [`ProducerBuilder::credentials`] (re-exported from `rmq-remoting`).
pub use rmq_remoting::acl::Credentials;
/// TLS settings for [`ProducerBuilder::tls`] (re-exported from `rmq-remoting`).
pub use rmq_remoting::TlsConfig;
pub use select::{HashSelector, QueueSelector, RandomSelector};
pub use send_future::SendFuture;
pub use send_result::{SendResult, SendStatus};
pub use trace::{TraceConfig, TraceStats, DEFAULT_TRACE_TOPIC, MAX_TRACE_BATCH};
pub use transaction::{
    ListenerError, TransactionConfig, TransactionListener, TransactionProducer,
    TransactionSendResult, TransactionState,
};
