//! `rmq`: an Apache RocketMQ producer client for Rust, over RocketMQ's remoting protocol.
//!
//! This facade re-exports the layers; depend on one of them directly if that is all you need:
//!
//! - [`common`] (`rmq-common`): messages, queues, codes, headers, route data, ids, validation;
//! - [`remoting`] (`rmq-remoting`): the frame codec and the multiplexed RPC client and server;
//! - [`nameserver`] (`rmq-nameserver-client`): routes, publish info, the route cache;
//! - [`producer`] (`rmq-producer`): the producer.
//!
//! ```no_run
//! use rmq::common::Message;
//! use rmq::producer::Producer;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::builder("my_group").name_server("127.0.0.1:9876").start().await?;
//! let result = producer.send(Message::new("TopicTest", "hello")).await?;
//! println!("{} stored at {}@{}", result.msg_id, result.queue, result.queue_offset);
//! producer.shutdown().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use rmq_common as common;
pub use rmq_nameserver_client as nameserver;
pub use rmq_producer as producer;
pub use rmq_remoting as remoting;

pub use rmq_common::{Message, MessageQueue};
pub use rmq_producer::{
    ClientInstance, ErrorKind, HashSelector, JavaHashSelector, PendingReply, Producer,
    ProducerBuilder, QueueSelector, RandomSelector, RecallError, SendError, SendOptions,
    SendResult, SendStatus, TransactionListener, TransactionProducer, TransactionState,
};

/// The README's code blocks, compiled as doc tests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
