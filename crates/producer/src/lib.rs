//! `rmq-producer`: the send path of RocketMQ's `DefaultMQProducer` in async Rust.
#![warn(missing_docs)]

pub mod fault;
