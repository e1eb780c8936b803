//! TLS for the admission server: rustls, TLS 1.3 only, ring.
//!
//! - [`certs`]: PEM loading and validation of a certificate/key pair.
//! - [`reload`]: the certificate resolver that is swapped atomically, and the `notify`
//!   watcher on the certificate directory that drives it.
//! - [`dev`]: the in-memory self-signed certificate of development mode.

pub mod certs;
pub mod dev;
pub mod reload;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::Error;

pub use certs::LoadedCert;
pub use reload::{CertReloader, CertResolver};

/// The crypto provider used everywhere in the webhook (ring; no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider, for clients (registry, AWS) that use
/// the default. Safe to call more than once.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The server configuration: TLS 1.3 only, certificates from `resolver`, ALPN h2 and
/// http/1.1, and — when `client_ca` is set — client certificates verified against it.
///
/// A client certificate is requested but not required at the TLS level (kubelet probes of
/// `/healthz` present none); when one is presented it must verify, and the auth layer
/// requires a verified one on `/mutate`.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, Error> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("TLS 1.3 is not available: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = load_ca(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    Error::Tls(format!(
                        "client CA {}: cannot build a verifier: {e}",
                        path.display()
                    ))
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Reads a CA bundle (one or more PEM certificates).
pub fn load_ca(path: &Path) -> Result<RootCertStore, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("client CA {}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "client CA {}: no `BEGIN CERTIFICATE` block found; give a PEM CA bundle",
            path.display()
        )));
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Tls(format!(
            "client CA {}: none of the {ignored} certificates could be parsed",
            path.display()
        )));
    }
    Ok(roots)
}
