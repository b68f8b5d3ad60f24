//! Certificates and keys out of PEM documents (files or bytes), with the document named in
//! every error.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Reads a whole file, naming it on failure.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A certificate chain and its private key, from two PEM files.
pub(super) fn cert_and_key_files(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certs(&read(cert_path)?, &file_name(cert_path))?;
    let key = key(&read(key_path)?, &file_name(key_path))?;
    Ok((chain, key))
}

/// How a file is named in errors.
pub(super) fn file_name(path: &Path) -> String {
    format!("file {}", path.display())
}

/// Every `CERTIFICATE` section of `pem`, in order; at least one.
pub(super) fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of `pem` (PKCS#8, PKCS#1 or SEC1).
pub(super) fn key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            what: what.to_owned(),
        },
        source => TlsError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

/// A trust store holding every certificate of `pem`, each of which must be a usable anchor.
pub(super) fn roots(
    mut store: RootCertStore,
    pem: &[u8],
    what: &str,
) -> Result<Arc<RootCertStore>, TlsError> {
    for cert in certs(pem, what)? {
        store.add(cert).map_err(|source| TlsError::InvalidCa {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(Arc::new(store))
}
