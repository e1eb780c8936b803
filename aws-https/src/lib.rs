//! The HTTPS client secrets-init and the webhook give the AWS SDK: rustls with the `ring`
//! provider, Mozilla's trust roots compiled in (`webpki-root-certs`, so TLS works in images
//! without a CA bundle: `scratch`, distroless static), plus the CA certificates of the PEM
//! file named by `SSL_CERT_FILE`.
//!
//! The SDK's connector set-up panics on a certificate it cannot parse
//! (`aws-smithy-http-client` `expect`s every PEM block to decode and every certificate to be
//! a trust anchor), and it only does that set-up on the first request. So the file is read
//! and checked here, with the parsers the SDK uses, before the SDK sees it: an unusable file
//! is an [`Error`] for the caller to report as a configuration error.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{self, PemObject as _};

/// The variable naming a PEM file of extra CA certificates (the OpenSSL convention).
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Files larger than this are refused rather than read: Debian's whole CA bundle
/// (`/etc/ssl/certs/ca-certificates.crt`, 144 certificates) is 215 KiB, and
/// `SSL_CERT_FILE=/dev/zero` must not eat the container's memory.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why the trust roots cannot be set up. Messages name `SSL_CERT_FILE` and its path, say
/// what is wrong with the file and how to fix it; they never quote the file's content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "SSL_CERT_FILE={} cannot be read: {source}; point it at a readable PEM file of CA certificates, or unset it to trust the compiled-in roots only",
        shown(.path)
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "SSL_CERT_FILE={} is larger than {} MiB, so it is not a CA bundle (a full one is a few hundred KiB); point it at a PEM file of CA certificates",
        shown(.path), MAX_FILE_BYTES / 1024 / 1024
    )]
    TooLarge { path: PathBuf },
    #[error(
        "SSL_CERT_FILE={} is not a valid PEM file: {problem} {}; fix or replace the file, or unset SSL_CERT_FILE",
        shown(.path), block_position(*.good_certificates)
    )]
    Pem {
        path: PathBuf,
        problem: String,
        good_certificates: usize,
    },
    #[error(
        "SSL_CERT_FILE={}: certificate {number} is not a usable CA certificate ({reason}); remove it from the file, or unset SSL_CERT_FILE",
        shown(.path)
    )]
    Certificate {
        path: PathBuf,
        number: usize,
        reason: String,
    },
    #[error(
        "SSL_CERT_FILE={} holds no certificate (no -----BEGIN CERTIFICATE----- block); a DER file converts with `openssl x509 -inform der -in <file> -out <file>.pem`",
        shown(.path)
    )]
    NoCertificate { path: PathBuf },
    #[error("TLS set-up for AWS failed: {0}")]
    Tls(String),
}

/// A path on one line: control characters (a newline in a mounted file's name) escaped.
fn shown(path: &Path) -> String {
    path.display().to_string().escape_debug().to_string()
}

fn block_position(good_certificates: usize) -> String {
    match good_certificates {
        0 => "in its first PEM block".to_owned(),
        n => format!("in the PEM block after certificate {n}"),
    }
}

/// `SSL_CERT_FILE` from this process's environment. Empty counts as unset, as in Go's
/// crypto/x509 and OpenSSL (a Helm value left blank must not stop the container).
pub fn ssl_cert_file_from_env() -> Option<PathBuf> {
    std::env::var_os(SSL_CERT_FILE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The HTTPS client for the AWS SDK: compiled-in roots plus the certificates of
/// `ssl_cert_file`. Every problem with that file is an error, a missing file included: the
/// file was named to be trusted, and going on without it would only move the failure to the
/// first TLS handshake, as a less clear "unknown issuer".
pub fn https_client(ssl_cert_file: Option<&Path>) -> Result<SharedHttpClient, Error> {
    let mut trust = TrustStore::empty().with_native_roots(false);
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        trust.add_pem_certificate(der_to_pem(der));
    }
    if let Some(path) = ssl_cert_file {
        // The SDK wants PEM; it gets the checked certificates re-encoded, so what it parses is
        // exactly what was checked.
        for der in extra_roots(path)? {
            trust.add_pem_certificate(der_to_pem(&der));
        }
    }
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https())
}

/// The CA certificates of the PEM file at `path`, each checked to be a usable trust anchor.
/// Blocks of other kinds (a private key next to the certificate) are skipped, as OpenSSL does.
pub fn extra_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_owned(),
        });
    }
    let mut roots = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| Error::Pem {
            path: path.to_owned(),
            problem: pem_problem(&e),
            good_certificates: roots.len(),
        })?;
        if let Err(e) = webpki::anchor_from_trusted_cert(&cert) {
            return Err(Error::Certificate {
                path: path.to_owned(),
                number: roots.len() + 1,
                reason: format!("{e:?}"),
            });
        }
        roots.push(cert);
    }
    if roots.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::Base64Decode(why) => format!("bad base64 ({why})"),
        pem::Error::MissingSectionEnd { .. } => "a block without its -----END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a malformed -----BEGIN line".to_owned(),
        other => other.to_string(),
    }
}

fn der_to_pem(der: &[u8]) -> Vec<u8> {
    let b64 = aws_smithy_types::base64::encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    // Base64 is ASCII, so every 64-byte chunk is a whole line of text.
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

#[cfg(test)]
mod tests;
