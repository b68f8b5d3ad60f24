//! `rmq-producer`: the send path of RocketMQ's `DefaultMQProducer` in async Rust.
//!
//! A [`Producer`] is built with [`ProducerBuilder`], started on a tokio runtime, and shared by
//! cloning. Every send validates the message, looks the topic's route up, picks a queue
//! (round-robin, avoiding the broker that just failed and brokers isolated by the latency fault
//! tolerance of [`fault`]), and retries what is safe to retry within one deadline. Errors say
//! whether the message may have been stored ([`ProducerError::maybe_stored`]) and hand it back
//! when it certainly was not ([`ProducerError::into_message`]).
#![warn(missing_docs)]

mod async_send;
mod backpressure;
mod builder;
mod completion;
mod config;
mod deliver;
mod error;
pub mod fault;
mod heartbeat;
mod identity;
mod java_hash;
mod kernel;
mod policy;
mod producer;
mod retry;
mod select;
mod send;
mod send_future;
mod send_result;

pub use builder::ProducerBuilder;
pub use config::{
    ConfigError, ProducerConfig, DEFAULT_PRODUCER_GROUP, JAVA_RETRY_RESPONSE_CODES, MAX_TIMEOUT,
};
pub use error::{ProducerError, Unsent};
pub use java_hash::{JavaHashCode, JavaHashSelector};
pub use producer::{Producer, ProducerStats};
/// ACL credentials for [`ProducerBuilder::credentials`] (re-exported from `rmq-remoting`).
pub use rmq_remoting::acl::Credentials;
pub use select::{HashSelector, QueueSelector, RandomSelector};
pub use send_future::SendFuture;
pub use send_result::{SendResult, SendStatus};
