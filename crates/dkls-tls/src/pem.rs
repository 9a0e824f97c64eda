//! Reading certificates and keys from PEM files, with errors that name the file.

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::TlsError;

/// Every certificate in a PEM file; an error when there is none.
pub(crate) fn certs_from_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    certs_from_pem(&bytes).map_err(|reason| TlsError::config(path, reason))
}

/// Every certificate in PEM text; an error when there is none.
pub(crate) fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block in the file".into());
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    key_from_pem(&bytes).map_err(|reason| TlsError::config(path, reason))
}

/// The private key in PEM text.
pub(crate) fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PRIVATE KEY block in the file (PKCS#8, EC or RSA)".to_owned()
        }
        e => format!("not a PEM private key file: {e}"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::config(path, format!("cannot read: {e}")))
}
