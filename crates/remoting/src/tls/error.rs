//! [`TlsError`]: a TLS configuration that cannot be built.

use std::io;
use std::path::PathBuf;

/// A TLS configuration ([`TlsConfig`](crate::TlsConfig), [`ServerTlsConfig`](crate::ServerTlsConfig))
/// could not be built: a file is unreadable, a PEM holds no certificate or key, a key is bad.
///
/// Failures on the wire (handshake, certificate verification) are
/// [`RemotingError::Tls`](crate::RemotingError::Tls) instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A PEM document is malformed.
    #[error("malformed PEM in {what}")]
    Pem {
        /// Which document (a file path, or which PEM argument).
        what: String,
        /// The cause.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A PEM document holds no `CERTIFICATE` section.
    #[error("no certificate in {what}")]
    NoCertificate {
        /// Which document.
        what: String,
    },
    /// A PEM document holds no private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no private key in {what}")]
    NoPrivateKey {
        /// Which document.
        what: String,
    },
    /// A CA certificate cannot serve as a trust anchor.
    #[error("invalid CA certificate in {what}")]
    InvalidCa {
        /// Which document.
        what: String,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The private key is unsupported, malformed, or does not match the certificate.
    #[error("the private key is unusable with the certificate")]
    InvalidKey {
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the configuration (for example the client-certificate verifier).
    #[error("the TLS configuration was refused")]
    Config {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync + 'static>() {}
const _: () = assert_send_sync::<TlsError>();
