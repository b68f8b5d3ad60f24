//! `rmq-remoting`: Apache RocketMQ's remoting protocol over tokio.
//!
//! - [`RemotingCommand`] and [`RemotingCodec`]: frames byte-exact with the Java implementation,
//!   with both header serializations (JSON and ROCKETMQ binary), and frame limits checked before
//!   anything is allocated.
//! - [`RemotingClient`]: RPC over one multiplexed connection per address (sync, async with a
//!   [`ResponseFuture`] or a callback, oneway), correlation by opaque, bounded in-flight calls,
//!   an [`RpcHook`], and [`RequestProcessor`]s for server-initiated requests.
//! - [`RemotingServer`]: the accept side on the same codec, with a processor per request code.
//! - [`acl`]: request signing for ACL-enabled clusters (Java's `AclClientRPCHook`), as an
//!   [`RpcHook`].
//!
//! Every call ends with a reply or a typed [`RemotingError`], whose
//! [`maybe_delivered`](RemotingError::maybe_delivered) tells whether the request may have
//! reached the peer.
#![warn(missing_docs)]

pub mod acl;
mod client;
mod codec;
mod command;
mod config;
mod connection;
mod deadline;
mod error;
mod header_binary;
mod header_json;
mod processor;
mod server;

#[doc(hidden)]
pub mod fuzzing;

pub use client::{RemotingClient, ResponseFuture};
pub use codec::{RemotingCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use command::{RemotingCommand, SerializeType, ONEWAY_FLAG, RESPONSE_FLAG};
pub use config::{OverloadPolicy, RemotingConfig};
pub use connection::ConnectionHandle;
pub use deadline::deadline_after;
pub use error::{DecodeError, EncodeError, RemotingError};
pub use processor::{BoxFuture, ProcessorTable, RequestContext, RequestProcessor, RpcHook};
pub use server::RemotingServer;
