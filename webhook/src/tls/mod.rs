//! TLS for the admission server: rustls, TLS 1.3 only, ring.
//!
//! - [`certs`]: PEM loading and validation of a certificate/key pair.
//! - [`reload`]: the certificate resolver that is swapped atomically, and the `notify`
//!   watcher on the certificate directories that drives it (and the client CA reload).
//! - [`client_ca`]: the client-certificate verifier for `--client-ca`, swapped atomically
//!   when the bundle changes.
//! - [`dev`]: the in-memory self-signed certificate of development mode.

pub mod certs;
pub mod client_ca;
pub mod dev;
pub mod reload;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};

use crate::Error;

pub use certs::LoadedCert;
pub use client_ca::{ClientCaReloader, ClientCaVerifier, load_ca};
pub use reload::{CertReloader, CertResolver, Watched, watch, watch_every};

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
/// http/1.1, and — when `client_ca` is set (`--client-ca`) — client certificates verified by
/// it.
///
/// A client certificate is requested but not required at the TLS level (kubelet probes of
/// `/healthz` present none); when one is presented it must verify, and the auth layer
/// requires a verified one on `/mutate`. With client certificates, session resumption is
/// off: a resumed session skips verification, so a client whose certificate came from a CA
/// that has since been rotated out of the bundle could otherwise come back without it.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client_ca: Option<Arc<ClientCaVerifier>>,
) -> Result<ServerConfig, Error> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(format!("TLS 1.3 is not available: {e}")))?;
    let verifies_clients = client_ca.is_some();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if verifies_clients {
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(NoServerSessionStorage {});
    }
    Ok(config)
}
