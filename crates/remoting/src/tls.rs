//! TLS over rustls (with the `ring` provider): [`TlsConfig`] for clients, [`ServerTlsConfig`]
//! and [`TlsMode`] for servers, [`TlsError`] for configurations that cannot be built.
//!
//! A TLS connection runs the same reader and writer tasks as a plain one, on the TLS stream.
//! Failures on the wire are [`RemotingError::Tls`](crate::RemotingError::Tls): the client's
//! handshake (bounded by the connect timeout), a peer that refuses the session right after it
//! (a TLS 1.3 server that wants a client certificate), and a peer that answers a plain
//! connection with a TLS record (a TLS-only server). A TLS client on a plain server fails its
//! handshake as soon as the server drops the connection over the bogus frame length.

mod client;
mod error;
mod insecure;
mod pem;
mod server;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::AlertDescription;

use crate::error::{DecodeError, RemotingError};

pub use client::TlsConfig;
pub use error::TlsError;
pub(crate) use server::Accepted;
pub use server::{ServerTlsConfig, TlsMode};

/// The first byte of a TLS handshake record (a ClientHello).
pub(crate) const TLS_HANDSHAKE: u8 = 0x16;
/// The first byte of a TLS alert record.
const TLS_ALERT: u8 = 0x15;

/// The crypto provider of every configuration: ring (no C toolchain beyond `cc`, no cmake).
// rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which only its aws-lc-rs
// provider has; that one needs cmake and a C build, which our CI machines do not have.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether a rustls error is about a certificate: ours rejected by the peer, or the peer's
/// rejected by us (untrusted issuer, wrong name, expired, missing).
pub(crate) fn is_certificate_error(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => true,
        rustls::Error::AlertReceived(alert) => is_certificate_alert(*alert),
        _ => false,
    }
}

fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
    )
}

/// Why a connection closed, when TLS tells more than "closed": recorded by the reader, it
/// turns the waiters' `ConnectionClosed` into [`RemotingError::Tls`].
#[derive(Debug, Clone)]
pub(crate) enum TlsCause {
    /// Before its first frame, the peer refused the session with a handshake alert (a TLS 1.3
    /// server rejects a client certificate, or the lack of one, only after the client's side
    /// of the handshake is done). No request reached the peer's application.
    Refused(rustls::Error),
    /// The peer's first bytes are a TLS record, not a frame: it expects TLS on this
    /// connection. Nothing it received was taken as a request.
    PeerSpeaksTls,
}

impl TlsCause {
    /// The cause behind a read failure, if TLS explains it; `first` when no frame was read yet.
    pub(crate) fn of(err: &DecodeError, first: bool) -> Option<Self> {
        if !first {
            return None;
        }
        match err {
            DecodeError::FrameTooLarge { len, .. } => {
                let word = u32::try_from(len.checked_sub(4)?).ok()?.to_be_bytes();
                let record = matches!(word[0], TLS_HANDSHAKE | TLS_ALERT);
                (record && word[1] == 3 && word[2] <= 4).then_some(Self::PeerSpeaksTls)
            }
            DecodeError::Io(e) => {
                let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
                match tls {
                    rustls::Error::AlertReceived(alert)
                        if is_certificate_alert(*alert)
                            || matches!(
                                alert,
                                AlertDescription::HandshakeFailure | AlertDescription::AccessDenied
                            ) =>
                    {
                        Some(Self::Refused(tls.clone()))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The error a waiter on the connection to `addr` gets.
    pub(crate) fn error(&self, addr: &str) -> RemotingError {
        let source = match self {
            Self::Refused(e) => io::Error::new(io::ErrorKind::InvalidData, e.clone()),
            Self::PeerSpeaksTls => io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer answered with a TLS record: it expects TLS on this port",
            ),
        };
        RemotingError::Tls {
            addr: addr.to_owned(),
            source,
        }
    }
}
