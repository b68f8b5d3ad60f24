//! `rmq-remoting`: Apache RocketMQ's remoting protocol over tokio.
//!
//! - [`RemotingCommand`] and [`RemotingCodec`]: frames byte-exact with the Java implementation,
//!   with both header serializations (JSON and ROCKETMQ binary).
#![warn(missing_docs)]

mod codec;
mod command;
mod config;
mod error;
mod header_binary;
mod header_json;

#[doc(hidden)]
pub mod fuzzing;

pub use codec::{RemotingCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use command::{RemotingCommand, SerializeType, ONEWAY_FLAG, RESPONSE_FLAG};
pub use config::{OverloadPolicy, RemotingConfig};
pub use error::{DecodeError, EncodeError, RemotingError};
