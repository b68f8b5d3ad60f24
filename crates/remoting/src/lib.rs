//! `rmq-remoting`: Apache RocketMQ's remoting protocol over tokio.
//!
//! - [`RemotingCommand`] and [`RemotingCodec`]: frames byte-exact with the Java implementation,
//!   with both header serializations (JSON and ROCKETMQ binary), and frame limits checked before
//!   anything is allocated.
//! - [`RemotingClient`]: RPC over one multiplexed connection per address (sync, async with a
//!   [`ResponseFuture`] or a callback, oneway), correlation by opaque, bounded in-flight calls,
//!   an [`RpcHook`], [`RequestProcessor`]s for server-initiated requests, and a reconnect
//!   backoff per address ([`BackoffConfig`]).
//! - [`RemotingServer`]: the accept side on the same codec, with a processor per request code.
//! - TLS over rustls ([`TlsConfig`] in [`RemotingConfig::tls`] for clients, [`ServerTlsConfig`]
//!   with [`RemotingServer::bind_with_tls`] for servers, plain and TLS on one port with
//!   [`TlsMode::Permissive`]).
//! - [`acl`]: request signing for ACL-enabled clusters (Java's `AclClientRPCHook`), as an
//!   [`RpcHook`].
//!
//! Every call ends with a reply or a typed [`RemotingError`], whose
//! [`maybe_delivered`](RemotingError::maybe_delivered) tells whether the request may have
//! reached the peer.
//!
//! # Features
//!
//! - `test-util`: fault-injection knobs for tests, off by default:
//!   `RemotingServer::pause_accept`, `RemotingServer::resume_accept`,
//!   `RemotingServer::close_connections` and `ConnectionHandle::send_raw`.
#![warn(missing_docs)]

pub mod acl;
mod backoff;
mod client;
mod codec;
mod command;
mod config;
mod connection;
mod deadline;
mod encoded_ext;
mod error;
mod error_duplicate;
mod header_binary;
mod header_json;
mod header_json_fast;
mod json_write;
mod processor;
mod server;
mod tls;

#[doc(hidden)]
pub mod fuzzing;

pub use backoff::BackoffConfig;
pub use client::{ConnectionStats, RemotingClient, ResponseFuture};
pub use codec::{RemotingCodec, DEFAULT_MAX_FRAME_LENGTH};
pub use command::{RemotingCommand, SerializeType, ONEWAY_FLAG, RESPONSE_FLAG};
pub use config::{OverloadPolicy, RemotingConfig};
pub use connection::ConnectionHandle;
pub use deadline::deadline_after;
pub use encoded_ext::{EncodedExtBuilder, EncodedExtFields};
pub use error::{DecodeError, EncodeError, RemotingError};
pub use processor::{BoxFuture, ProcessorTable, RequestContext, RequestProcessor, RpcHook};
pub use server::RemotingServer;
pub use tls::{ServerTlsConfig, TlsConfig, TlsError, TlsMode};
