//! PEM loading errors, address parsing, and the TLS-record sniffing of a plain reader.

use std::io;

use rustls::AlertDescription;

use super::client::host_of;
use super::{ServerTlsConfig, TlsCause, TlsConfig, TlsError};
use crate::error::DecodeError;

fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn hosts_of_addresses() {
    assert_eq!(host_of("127.0.0.1:10911"), "127.0.0.1");
    assert_eq!(host_of("broker-a.internal:10911"), "broker-a.internal");
    assert_eq!(host_of("[::1]:9876"), "::1");
    assert_eq!(host_of("localhost"), "localhost");
}

#[test]
fn pem_without_certificate_or_key_is_named() {
    let (cert, key) = self_signed();
    assert!(matches!(
        TlsConfig::new().with_ca_pem(key.as_bytes()),
        Err(TlsError::NoCertificate { what }) if what == "the CA PEM"
    ));
    assert!(matches!(
        ServerTlsConfig::from_pem(cert.as_bytes(), cert.as_bytes()),
        Err(TlsError::NoPrivateKey { what }) if what == "the server key PEM"
    ));
    let truncated = &cert[..cert.len() / 2];
    assert!(matches!(
        TlsConfig::new().with_ca_pem(truncated.as_bytes()),
        Err(TlsError::Pem { .. })
    ));
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let (cert, _) = self_signed();
    let (_, other_key) = self_signed();
    let err =
        ServerTlsConfig::from_pem(cert.as_bytes(), other_key.as_bytes()).expect_err("mismatch");
    assert!(matches!(err, TlsError::InvalidKey { .. }), "{err:?}");
    let err = TlsConfig::new()
        .with_client_cert_pem(cert.as_bytes(), other_key.as_bytes())
        .expect_err("mismatch");
    assert!(matches!(err, TlsError::InvalidKey { .. }), "{err:?}");
}

#[test]
fn a_tls_record_in_place_of_the_first_frame_is_recognized() {
    let too_large = |word: [u8; 4]| DecodeError::FrameTooLarge {
        len: u64::from(u32::from_be_bytes(word)) + 4,
        max: 16 * 1024 * 1024,
    };
    // A ClientHello (TLS 1.0 record version) and an alert (TLS 1.2 record version).
    for word in [[0x16, 3, 1, 2], [0x15, 3, 3, 0]] {
        assert!(matches!(
            TlsCause::of(&too_large(word), true),
            Some(TlsCause::PeerSpeaksTls)
        ));
        assert!(TlsCause::of(&too_large(word), false).is_none(), "not first");
    }
    assert!(TlsCause::of(&too_large([0x7f, 0, 0, 0]), true).is_none());
    let e = TlsCause::PeerSpeaksTls.error("10.0.0.1:10911");
    assert!(e.is_tls() && !e.is_certificate_error() && !e.maybe_delivered());
}

#[test]
fn a_refusal_alert_before_the_first_frame_is_a_tls_error() {
    let alert = |a| {
        DecodeError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(a),
        ))
    };
    let cause = TlsCause::of(&alert(AlertDescription::CertificateRequired), true);
    let e = cause.expect("a refusal").error("10.0.0.1:10911");
    assert!(e.is_tls() && e.is_certificate_error() && !e.maybe_delivered());
    assert!(TlsCause::of(&alert(AlertDescription::CertificateRequired), false).is_none());
    assert!(TlsCause::of(&alert(AlertDescription::CloseNotify), true).is_none());
    let plain_io = DecodeError::Io(io::ErrorKind::ConnectionReset.into());
    assert!(TlsCause::of(&plain_io, true).is_none());
}
