//! Loading and checking a serving certificate/key pair.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A usable serving certificate with the facts the webhook reports about it.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// notAfter of the leaf, Unix seconds.
    pub not_after: i64,
    /// Serial number of the leaf, lower-case hex with colons (as `openssl` prints it).
    pub serial: String,
}

/// Reads `cert` (chain, leaf first) and `key` (PKCS#8, PKCS#1 or SEC1) PEM files.
pub fn load_pair(cert: &Path, key: &Path) -> Result<LoadedCert, Error> {
    let cert_pem = std::fs::read(cert).map_err(|source| Error::Read {
        path: cert.to_owned(),
        source,
    })?;
    let key_pem = std::fs::read(key).map_err(|source| Error::Read {
        path: key.to_owned(),
        source,
    })?;
    from_pem(
        &cert_pem,
        &key_pem,
        &cert.display().to_string(),
        &key.display().to_string(),
    )
}

/// Builds a [`LoadedCert`] from PEM bytes; `cert_name`/`key_name` name the sources in errors.
pub fn from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<LoadedCert, Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("certificate {cert_name}: bad PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(Error::Tls(format!(
            "certificate {cert_name}: no `BEGIN CERTIFICATE` block found"
        )));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).map_err(|e| {
        Error::Tls(format!(
            "certificate {cert_name}: not a valid X.509 certificate: {e}"
        ))
    })?;
    let not_after = parsed.validity().not_after.timestamp();
    let serial = parsed.raw_serial_as_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if not_after < now {
        return Err(Error::Tls(format!(
            "certificate {cert_name} expired at {} (Unix time {not_after}); renew it",
            parsed.validity().not_after
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        Error::Tls(format!(
            "key {key_name}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM expected): {e}"
        ))
    })?;
    let certified = CertifiedKey::from_der(chain, key, &super::provider()).map_err(|e| {
        Error::Tls(format!(
            "certificate {cert_name} and key {key_name} do not belong together: {e}"
        ))
    })?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        not_after,
        serial,
    })
}
