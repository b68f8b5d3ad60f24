//! `rmq-grpc`: the producer's half of RocketMQ 5's gRPC protocol (`apache.rocketmq.v2`), as
//! spoken to a RocketMQ proxy.
//!
//! - [`pb`]: the protobuf messages and the `MessagingService` client, generated at build time
//!   from the subset of apache/rocketmq-apis in `proto/` (upstream's message and field numbers).
//! - [`Session`]: one HTTP/2 channel to a proxy endpoint and the request metadata the proxy
//!   expects on every call (`x-mq-client-id`, language, protocol and client version, request
//!   id, date-time, namespace, and the `authorization` signature when credentials are set).
//! - [`telemetry`]: the bidirectional `Telemetry` stream: the client's settings on start, the
//!   server's settings applied ([`ServerSettings`]), and the server's commands answered.
//! - [`code`]: what a `apache.rocketmq.v2.Code` means for a client.
#![warn(missing_docs)]

pub mod code;
mod endpoint;
mod metadata;
mod session;
pub mod telemetry;

/// The generated `apache.rocketmq.v2` messages, enums and the `MessagingService` client
/// (`messaging_service_client::MessagingServiceClient`); the server trait is there for
/// loopback tests.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    missing_debug_implementations,
    unused_qualifications,
    elided_lifetimes_in_paths
)]
pub mod pb {
    tonic::include_proto!("apache.rocketmq.v2");
}

pub use endpoint::{Endpoint, EndpointError};
pub use metadata::{ClientMeta, MetadataError, LANGUAGE, PROTOCOL_VERSION};
pub use session::{CallError, Session, SessionConfig};
pub use telemetry::{NoHandler, ServerSettings, SettingsFn, Telemetry, TelemetryHandler};
