//! The listening side every mock shares: a `RemotingServer` (on `127.0.0.1:0` unless told
//! otherwise) plus, with the `test-util` feature, the connection-level fault knobs.

use std::io;
use std::net::SocketAddr;

use rmq_remoting::{ProcessorTable, RemotingConfig, RemotingServer};
use tokio::net::ToSocketAddrs;
use tokio_util::sync::CancellationToken;

use crate::faults::Faults;

#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) server: RemotingServer,
    pub(crate) faults: Faults,
    /// Cancelled by `shutdown`: the mock's own background tasks stop on it.
    pub(crate) shut: CancellationToken,
}

impl Endpoint {
    pub(crate) async fn bind(processors: ProcessorTable, faults: Faults) -> io::Result<Self> {
        Self::bind_on("127.0.0.1:0", processors, faults).await
    }

    pub(crate) async fn bind_on(
        addr: impl ToSocketAddrs,
        processors: ProcessorTable,
        faults: Faults,
    ) -> io::Result<Self> {
        let server = RemotingServer::bind(addr, RemotingConfig::default(), processors).await?;
        Ok(Self {
            server,
            faults,
            shut: CancellationToken::new(),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

/// Generates the knob methods every mock offers by forwarding to its `endpoint` field.
macro_rules! endpoint_knobs {
    ($ty:ty) => {
        impl $ty {
            /// The listening address as `"127.0.0.1:port"` (the form routes and clients use).
            #[must_use]
            pub fn addr(&self) -> String {
                self.endpoint.addr().to_string()
            }

            /// The listening socket address.
            #[must_use]
            pub fn socket_addr(&self) -> std::net::SocketAddr {
                self.endpoint.addr()
            }

            /// The run-time fault knobs (delay, black hole, scripted replies).
            #[cfg(feature = "test-util")]
            #[must_use]
            pub fn faults(&self) -> &$crate::Faults {
                &self.endpoint.faults
            }

            /// New connections are refused from now on (live ones stay up).
            #[cfg(feature = "test-util")]
            pub async fn refuse_connections(&self) {
                self.endpoint.server.pause_accept().await;
            }

            /// Accepts connections again on the same port.
            ///
            /// # Errors
            /// The bind error, if the port was taken meanwhile.
            #[cfg(feature = "test-util")]
            pub async fn accept_connections(&self) -> std::io::Result<()> {
                self.endpoint.server.resume_accept().await
            }

            /// Closes every live connection (clients see the socket close).
            #[cfg(feature = "test-util")]
            pub fn close_connections(&self) {
                self.endpoint.server.close_connections();
            }

            /// Refuses new connections and closes the live ones: the server looks down.
            #[cfg(feature = "test-util")]
            pub async fn down(&self) {
                self.refuse_connections().await;
                self.close_connections();
            }

            /// Undoes [`down`](Self::down).
            ///
            /// # Errors
            /// The bind error, if the port was taken meanwhile.
            #[cfg(feature = "test-util")]
            pub async fn up(&self) -> std::io::Result<()> {
                self.accept_connections().await
            }

            /// Live connections.
            #[must_use]
            pub fn connection_count(&self) -> usize {
                self.endpoint.server.connection_count()
            }

            /// Handles of the live connections: a test sends requests *to* the clients through
            /// them (as a broker asks a producer to check a transaction).
            #[must_use]
            pub fn connections(&self) -> Vec<rmq_remoting::ConnectionHandle> {
                self.endpoint.server.connections()
            }

            /// Stops the server: closes every connection and ends its tasks.
            pub async fn shutdown(&self) {
                self.endpoint.shut.cancel();
                self.endpoint.server.shutdown().await;
            }
        }
    };
}

pub(crate) use endpoint_knobs;
