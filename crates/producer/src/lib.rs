//! `rmq-producer`: the send path of RocketMQ's `DefaultMQProducer` in async Rust.
#![warn(missing_docs)]

pub mod fault;
mod select;
mod send_result;

pub use select::{HashSelector, QueueSelector, RandomSelector};
pub use send_result::{SendResult, SendStatus};
