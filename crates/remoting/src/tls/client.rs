//! [`TlsConfig`]: how a [`RemotingClient`](crate::RemotingClient) speaks TLS, and the client
//! handshake.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::insecure::AcceptAnyServerCert;
use super::{pem, provider, TlsError};
use crate::error::RemotingError;

/// Mozilla's root certificates, compiled in (`webpki-roots`): the default trust does not depend
/// on the machine's certificate store, so it is the same on every host and in containers.
static WEBPKI_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    Arc::new(RootCertStore::from_iter(
        webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
    ))
});

/// Client-side TLS: whom to trust, which certificate to show (mutual TLS), and which name to
/// check the server's certificate against. Set it in
/// [`RemotingConfig::tls`](crate::RemotingConfig::tls); every connection of that client then
/// does a TLS handshake (bounded by the connect timeout) before its first frame.
///
/// - [`TlsConfig::new`] trusts the public web PKI (Mozilla's roots, compiled in);
/// - [`with_ca_file`](Self::with_ca_file) / [`with_ca_pem`](Self::with_ca_pem) trust only the
///   given CAs (a private PKI, as RocketMQ deployments usually have);
/// - [`with_client_cert_files`](Self::with_client_cert_files) /
///   [`with_client_cert_pem`](Self::with_client_cert_pem) present a client certificate;
/// - [`with_server_name`](Self::with_server_name) overrides the name checked (by default the
///   host of the address: an IP address is checked against the certificate's IP SANs, a host
///   name against its DNS SANs);
/// - [`dangerous_insecure_no_verify`](Self::dangerous_insecure_no_verify) accepts any server.
///
/// Cheap to clone. `Debug` never shows key material.
///
/// ```
/// use rmq_remoting::{RemotingConfig, TlsConfig, TlsError};
///
/// let tls = TlsConfig::new().with_server_name("broker-a.internal");
/// let config = RemotingConfig { tls: Some(tls), ..RemotingConfig::default() };
/// assert!(format!("{config:?}").contains("broker-a.internal"));
///
/// // A CA bundle without a certificate is refused when the configuration is built.
/// let err = TlsConfig::new().with_ca_pem(b"no PEM here").unwrap_err();
/// assert!(matches!(err, TlsError::NoCertificate { .. }));
/// ```
///
/// From files (the paths are examples):
///
/// ```no_run
/// # fn demo() -> Result<(), rmq_remoting::TlsError> {
/// use rmq_remoting::{RemotingClient, RemotingConfig, TlsConfig};
///
/// let tls = TlsConfig::new()
///     .with_ca_file("/etc/rocketmq/tls/ca.pem")?
///     .with_client_cert_files("/etc/rocketmq/tls/client.pem", "/etc/rocketmq/tls/client.key")?;
/// let client = RemotingClient::new(RemotingConfig { tls: Some(tls), ..RemotingConfig::default() });
/// # drop(client); Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    trust: Trust,
    client_cert: Option<ClientCert>,
    server_name: Option<String>,
    rustls: Arc<ClientConfig>,
}

/// Whom the client trusts.
#[derive(Clone)]
enum Trust {
    WebPki,
    Custom(Arc<RootCertStore>),
    Insecure,
}

/// A client certificate chain and its key.
#[derive(Clone)]
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trust = match &self.trust {
            Trust::WebPki => "webpki roots".to_owned(),
            Trust::Custom(roots) => format!("{} CA certificate(s)", roots.len()),
            Trust::Insecure => "NONE (insecure: any certificate)".to_owned(),
        };
        f.debug_struct("TlsConfig")
            .field("trust", &trust)
            .field(
                "client_cert",
                &self
                    .client_cert
                    .as_ref()
                    .map(|c| format!("{} certificate(s) and a key", c.chain.len())),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsConfig {
    /// Verifies servers against Mozilla's root certificates (compiled in), with no client
    /// certificate.
    #[must_use]
    pub fn new() -> Self {
        Self::with_trust(Trust::WebPki)
    }

    /// Accepts **any** server certificate, whoever issued it and whatever name it carries,
    /// as Java's TLS test mode does: the traffic is encrypted, but the server is not
    /// authenticated, so anyone on the path can impersonate it. For tests and first setups
    /// only; every client built with it logs a warning.
    #[must_use]
    pub fn dangerous_insecure_no_verify() -> Self {
        Self::with_trust(Trust::Insecure)
    }

    fn with_trust(trust: Trust) -> Self {
        let rustls = build(&trust, None)
            .unwrap_or_else(|e| unreachable!("no client certificate, nothing to refuse: {e}"));
        Self {
            trust,
            client_cert: None,
            server_name: None,
            rustls,
        }
    }

    /// Trusts only the CA certificates of this PEM file (one or more `CERTIFICATE` sections)
    /// instead of the default roots; a second call adds to the first.
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoCertificate`],
    /// [`TlsError::InvalidCa`].
    pub fn with_ca_file(self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let path = path.as_ref();
        self.add_ca(&pem::read(path)?, &pem::file_name(path))
    }

    /// Trusts only the CA certificates of this PEM document instead of the default roots; a
    /// second call adds to the first.
    ///
    /// # Errors
    /// [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::InvalidCa`].
    pub fn with_ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        self.add_ca(pem, "the CA PEM")
    }

    fn add_ca(mut self, pem: &[u8], what: &str) -> Result<Self, TlsError> {
        let store = match &self.trust {
            Trust::Custom(roots) => RootCertStore::clone(roots),
            Trust::WebPki | Trust::Insecure => RootCertStore::empty(),
        };
        self.trust = Trust::Custom(pem::roots(store, pem, what)?);
        self.rebuild()
    }

    /// Presents this certificate chain (PEM file, leaf first) and private key (PEM file:
    /// PKCS#8, PKCS#1 or SEC1) to servers that ask for one (mutual TLS).
    ///
    /// # Errors
    /// [`TlsError::Read`], [`TlsError::Pem`], [`TlsError::NoCertificate`],
    /// [`TlsError::NoPrivateKey`], [`TlsError::InvalidKey`] (also when the key does not
    /// match the certificate).
    pub fn with_client_cert_files(
        self,
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let (chain, key) = pem::cert_and_key_files(cert_path.as_ref(), key_path.as_ref())?;
        self.with_client_cert(chain, key)
    }

    /// Presents this certificate chain (PEM, leaf first) and private key (PEM) to servers
    /// that ask for one (mutual TLS).
    ///
    /// # Errors
    /// [`TlsError::Pem`], [`TlsError::NoCertificate`], [`TlsError::NoPrivateKey`],
    /// [`TlsError::InvalidKey`] (also when the key does not match the certificate).
    pub fn with_client_cert_pem(self, cert: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = pem::certs(cert, "the client certificate PEM")?;
        let key = pem::key(key, "the client key PEM")?;
        self.with_client_cert(chain, key)
    }

    fn with_client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        self.client_cert = Some(ClientCert {
            chain,
            key: Arc::new(key),
        });
        self.rebuild()
    }

    /// Checks the server's certificate against this name (a DNS name or an IP address)
    /// instead of the host of the address connected to; with a DNS name it is also sent as
    /// SNI. An invalid name fails each connect with [`RemotingError::Tls`].
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Whether server certificates go unverified.
    /// Whether `other` is this configuration or a clone of it (same trust, client certificate
    /// and server name). Two configurations built separately from the same files are not the
    /// same: certificates are not compared.
    #[must_use]
    pub fn is_same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.rustls, &other.rustls) && self.server_name == other.server_name
    }

    pub(crate) const fn is_insecure(&self) -> bool {
        matches!(self.trust, Trust::Insecure)
    }

    fn rebuild(mut self) -> Result<Self, TlsError> {
        self.rustls = build(&self.trust, self.client_cert.as_ref())?;
        Ok(self)
    }

    /// The name to verify the server at `addr` ("host:port") against.
    fn server_name(&self, addr: &str) -> Result<ServerName<'static>, RemotingError> {
        let name = match &self.server_name {
            Some(name) => name.as_str(),
            None => {
                if let Ok(sa) = addr.parse::<SocketAddr>() {
                    return Ok(ServerName::IpAddress(sa.ip().into()));
                }
                host_of(addr)
            }
        };
        ServerName::try_from(name.to_owned()).map_err(|e| RemotingError::Tls {
            addr: addr.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })
    }

    /// The client handshake on a connected socket to `addr` ("host:port"), offering the
    /// application protocols `alpn` (e.g. `h2` for a gRPC client), with this configuration's
    /// trust, client certificate and server name: the TLS of another protocol (gRPC) through
    /// the same settings as remoting.
    ///
    /// # Errors
    /// [`RemotingError::Tls`] when the server name is invalid or the handshake fails.
    pub async fn connect_with_alpn(
        &self,
        addr: &str,
        tcp: TcpStream,
        alpn: &[&[u8]],
    ) -> Result<TlsStream<TcpStream>, RemotingError> {
        let name = self.server_name(addr)?;
        let mut config = (*self.rustls).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let connector = TlsConnector::from(Arc::new(config));
        connector
            .connect(name, tcp)
            .await
            .map_err(|source| RemotingError::Tls {
                addr: addr.to_owned(),
                source,
            })
    }

    /// The client handshake on a connected socket.
    pub(crate) async fn connect(
        &self,
        addr: &str,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, RemotingError> {
        let name = self.server_name(addr)?;
        let connector = TlsConnector::from(Arc::clone(&self.rustls));
        connector.connect(name, tcp).await.map_err(|source| {
            tracing::debug!(addr, error = %source, "TLS handshake failed");
            RemotingError::Tls {
                addr: addr.to_owned(),
                source,
            }
        })
    }
}

/// The host part of "host:port" ("[v6]:port" too); the whole string when there is no port.
pub(super) fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn build(trust: &Trust, cert: Option<&ClientCert>) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config {
            source: Box::new(source),
        })?;
    let builder = match trust {
        Trust::WebPki => builder.with_root_certificates(Arc::clone(&WEBPKI_ROOTS)),
        Trust::Custom(roots) => builder.with_root_certificates(Arc::clone(roots)),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(provider))),
    };
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .map_err(|source| TlsError::InvalidKey { source })?,
    };
    Ok(Arc::new(config))
}
