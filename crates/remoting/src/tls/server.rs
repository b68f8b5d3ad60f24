//! [`ServerTlsConfig`] and [`TlsMode`]: how a [`RemotingServer`](crate::RemotingServer) speaks
//! TLS, and the accept-side handshake (with the permissive mode's first-byte sniffing).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{pem, provider, TlsError, TLS_HANDSHAKE};

/// Which connections a TLS server accepts, as Java's `TlsMode` (`tls.server.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsMode {
    /// Plain connections only: TLS is off (as `RemotingServer::bind`).
    Disabled,
    /// TLS and plain connections on the same port: a connection whose first byte is a TLS
    /// handshake record (`0x16`) gets the TLS handshake, any other is served plain. For
    /// migrating clients to TLS one by one.
    Permissive,
    /// TLS connections only: a plain client fails its handshake and is disconnected.
    #[default]
    Enforcing,
}

/// Server-side TLS: the server's certificate chain and key, optionally the CAs whose client
/// certificates it requires (mutual TLS), and the [`TlsMode`] (enforcing by default). Give it
/// to [`RemotingServer::bind_with_tls`](crate::RemotingServer::bind_with_tls).
///
/// Cheap to clone. `Debug` never shows key material.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rmq_remoting::{ProcessorTable, RemotingConfig, RemotingServer, ServerTlsConfig, TlsMode};
///
/// let tls = ServerTlsConfig::from_pem_files("/etc/rocketmq/tls/server.pem", "/etc/rocketmq/tls/server.key")?
///     .require_client_cert(&std::fs::read("/etc/rocketmq/tls/ca.pem")?)?
///     .with_mode(TlsMode::Permissive);
/// let server =
///     RemotingServer::bind_with_tls("0.0.0.0:10911", RemotingConfig::default(), ProcessorTable::new(), tls)
///         .await?;
/// # drop(server); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTlsConfig {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_roots: Option<Arc<RootCertStore>>,
    mode: TlsMode,
    rustls: Arc<ServerConfig>,
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("certificates", &self.chain.len())
            .field(
                "client_cert_required_from",
                &self
                    .client_roots
                    .as_ref()
                    .map(|r| format!("{} CA certificate(s)", r.len())),
            )
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ServerTlsConfig {
    /// The server's certificate chain (PEM file, leaf first) and private key (PEM file:
    /// PKCS#8, PKCS#1 or SEC1); no client certificate asked for; [`TlsMode::Enforcing`].
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoCertificate`],
    /// [`TlsError::NoPrivateKey`], [`TlsError::InvalidKey`].
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let (chain, key) = pem::cert_and_key_files(cert_path.as_ref(), key_path.as_ref())?;
        Self::build(chain, Arc::new(key), None, TlsMode::default())
    }

    /// The server's certificate chain (PEM, leaf first) and private key (PEM); no client
    /// certificate asked for; [`TlsMode::Enforcing`].
    ///
    /// # Errors
    /// [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::NoPrivateKey`],
    /// [`TlsError::InvalidKey`].
    pub fn from_pem(cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = pem::certs(cert, "the server certificate PEM")?;
        let key = pem::key(key, "the server key PEM")?;
        Self::build(chain, Arc::new(key), None, TlsMode::default())
    }

    /// Requires every TLS client to present a certificate issued by one of the CAs of this
    /// PEM document (mutual TLS); a client without one fails its handshake. A second call adds
    /// CAs to the first.
    ///
    /// # Errors
    /// [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::InvalidCa`],
    /// [`TlsError::Config`].
    pub fn require_client_cert(self, ca_pem: &[u8]) -> Result<Self, TlsError> {
        self.add_client_ca(ca_pem, "the client CA PEM")
    }

    /// [`require_client_cert`](Self::require_client_cert) with the CAs of a PEM file.
    ///
    /// # Errors
    /// As `require_client_cert`, and [`TlsError::Read`].
    pub fn require_client_cert_file(self, ca_path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = ca_path.as_ref();
        self.add_client_ca(&pem::read(path)?, &pem::file_name(path))
    }

    fn add_client_ca(self, pem: &[u8], what: &str) -> Result<Self, TlsError> {
        let store = self
            .client_roots
            .as_deref()
            .cloned()
            .unwrap_or_else(RootCertStore::empty);
        let roots = pem::roots(store, pem, what)?;
        Self::build(self.chain, self.key, Some(roots), self.mode)
    }

    /// Which connections the server accepts ([`TlsMode::Enforcing`] unless set).
    #[must_use]
    pub const fn with_mode(mut self, mode: TlsMode) -> Self {
        self.mode = mode;
        self
    }

    /// The mode.
    #[must_use]
    pub const fn mode(&self) -> TlsMode {
        self.mode
    }

    fn build(
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
        client_roots: Option<Arc<RootCertStore>>,
        mode: TlsMode,
    ) -> Result<Self, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Config {
                source: Box::new(source),
            })?;
        let builder = match &client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider)
                        .build()
                        .map_err(|source| TlsError::Config {
                            source: Box::new(source),
                        })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let rustls = builder
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|source| TlsError::InvalidKey { source })?;
        Ok(Self {
            chain,
            key,
            client_roots,
            mode,
            rustls: Arc::new(rustls),
        })
    }

    /// Whether the first byte sniffing and the handshake apply at all.
    pub(crate) fn enabled(&self) -> bool {
        self.mode != TlsMode::Disabled
    }

    /// Turns an accepted socket into a plain or TLS stream as the mode says: waits for the
    /// first byte for at most `first_byte` (permissive mode only), then for the handshake for
    /// at most `handshake`.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        first_byte: Duration,
        handshake: Duration,
    ) -> io::Result<Accepted> {
        match self.mode {
            TlsMode::Disabled => return Ok(Accepted::Plain(tcp)),
            TlsMode::Enforcing => {}
            TlsMode::Permissive => {
                let mut byte = [0u8; 1];
                let peeked = tokio::time::timeout(first_byte, tcp.peek(&mut byte))
                    .await
                    .map_err(|_| {
                        io::Error::new(io::ErrorKind::TimedOut, "no first byte in time")
                    })??;
                if peeked == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                if byte[0] != TLS_HANDSHAKE {
                    return Ok(Accepted::Plain(tcp));
                }
            }
        }
        let acceptor = TlsAcceptor::from(Arc::clone(&self.rustls));
        match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Ok(Accepted::Tls(Box::new(tls))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not done in time",
            )),
        }
    }
}

/// An accepted connection, ready for frames.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// Plain TCP (permissive mode, or TLS disabled).
    Plain(TcpStream),
    /// After a successful handshake.
    Tls(Box<TlsStream<TcpStream>>),
}
