//! The `--client-ca` bundle, reloadable.
//!
//! [`ClientCaVerifier`] is the client-certificate verifier rustls is given; it delegates to
//! the verifier built from the bundle in use now, and [`ClientCaReloader`] replaces that one
//! when the file changes (driven by the watcher in [`super::reload`], the same one that
//! reloads the serving certificate).
//!
//! Each verifier is built as at start-up: [`WebPkiClientVerifier`] with the ring provider and
//! `allow_unauthenticated()` (a client certificate is requested, not required: kubelet
//! probes carry none). A swap is atomic per call: every verification of a presented chain
//! runs against exactly one bundle, the old or the new one. A bundle that cannot be used
//! (unreadable, bad PEM, no parsable certificate) keeps the previous one in use, is logged
//! with the file and the reason, and counts `secrets_init_webhook_tls_reloads_total{result="error"}`;
//! a good changed one counts `result="ok"`; unchanged contents do nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::reload::{Reload, Watched, read, remember};
use crate::Error;
use crate::metrics::Metrics;

/// A client-certificate verifier whose CA bundle can be replaced while serving.
///
/// rustls borrows the root hint subjects from the verifier (`&self` lifetime), so a verifier
/// that was once current cannot be dropped while this one lives: each replacement is
/// appended to a chain, and the last link is the current one. The chain grows by one link
/// (a few KiB) per CA rotation that was actually swapped in; readers take no lock.
#[derive(Debug)]
pub struct ClientCaVerifier {
    first: Link,
}

#[derive(Debug)]
struct Link {
    verifier: Arc<dyn ClientCertVerifier>,
    next: OnceLock<Box<Link>>,
}

impl ClientCaVerifier {
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> Self {
        Self {
            first: Link {
                verifier,
                next: OnceLock::new(),
            },
        }
    }

    /// Makes `verifier` the current one for every verification from now on.
    pub fn set(&self, verifier: Arc<dyn ClientCertVerifier>) {
        let mut link = Box::new(Link {
            verifier,
            next: OnceLock::new(),
        });
        loop {
            // Another writer may have appended in the meantime: then append after it.
            match self.last().next.set(link) {
                Ok(()) => return,
                Err(back) => link = back,
            }
        }
    }

    /// The verifier in use now.
    pub fn current(&self) -> &Arc<dyn ClientCertVerifier> {
        &self.last().verifier
    }

    fn last(&self) -> &Link {
        let mut link = &self.first;
        while let Some(next) = link.next.get() {
            link = next;
        }
        link
    }
}

impl Drop for ClientCaVerifier {
    fn drop(&mut self) {
        // Unlink iteratively, so a long chain is not dropped by deep recursion.
        let mut next = self.first.next.take();
        while let Some(mut link) = next {
            next = link.next.take();
        }
    }
}

impl ClientCertVerifier for ClientCaVerifier {
    fn offer_client_auth(&self) -> bool {
        self.current().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.current().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.current().root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.current().requires_raw_public_keys()
    }
}

/// Reads a CA bundle (one or more PEM certificates).
pub fn load_ca(path: &Path) -> Result<RootCertStore, Error> {
    roots_from_pem(&read(path)?, path)
}

/// Parses a CA bundle; `path` names it in errors.
pub fn roots_from_pem(pem: &[u8], path: &Path) -> Result<RootCertStore, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
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

/// The verifier for a CA bundle: WebPKI, ring, a client certificate optional at the TLS
/// level but verified when presented.
pub fn verifier_from_pem(pem: &[u8], path: &Path) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let roots = roots_from_pem(pem, path)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), super::provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| {
            Error::Tls(format!(
                "client CA {}: cannot build a verifier: {e}",
                path.display()
            ))
        })
}

/// Keeps a [`ClientCaVerifier`] in step with the `--client-ca` file.
#[derive(Debug)]
pub struct ClientCaReloader {
    path: PathBuf,
    verifier: Arc<ClientCaVerifier>,
    metrics: Metrics,
    /// Raw bytes last looked at (good or bad), so unchanged contents are not re-counted.
    last_seen: Mutex<Option<Vec<u8>>>,
}

impl ClientCaReloader {
    /// Loads the bundle once (an error here stops start-up) and returns the reloader and the
    /// verifier to give rustls.
    pub fn start(
        path: &Path,
        metrics: Metrics,
    ) -> Result<(Arc<Self>, Arc<ClientCaVerifier>), Error> {
        let pem = read(path)?;
        let verifier = Arc::new(ClientCaVerifier::new(verifier_from_pem(&pem, path)?));
        tracing::info!(
            file = %path.display(),
            certificates = count_certs(&pem),
            "client CA bundle loaded"
        );
        let reloader = Arc::new(Self {
            path: path.to_owned(),
            verifier: verifier.clone(),
            metrics,
            last_seen: Mutex::new(Some(pem)),
        });
        Ok((reloader, verifier))
    }

    /// Re-reads the bundle; swaps in a good new one, keeps the old one otherwise.
    pub fn reload(&self) -> Result<Reload, Error> {
        let result = self.try_reload();
        match &result {
            Ok(Reload::Unchanged) => {}
            Ok(Reload::Swapped(what)) => {
                self.metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(file = %self.path.display(), bundle = %what, "client CA bundle reloaded");
            }
            Err(e) => {
                self.metrics.tls_reloads.with_label_values(&["error"]).inc();
                tracing::warn!(
                    file = %self.path.display(),
                    error = %e,
                    "new client CA bundle rejected; the previous bundle stays in use"
                );
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Reload, Error> {
        let pem = read(&self.path)?;
        if !remember(&self.last_seen, &pem) {
            return Ok(Reload::Unchanged);
        }
        let verifier = verifier_from_pem(&pem, &self.path)?;
        self.verifier.set(verifier);
        Ok(Reload::Swapped(format!(
            "{} certificates",
            count_certs(&pem)
        )))
    }
}

impl Watched for ClientCaReloader {
    fn files(&self) -> Vec<PathBuf> {
        vec![self.path.clone()]
    }

    fn reload(&self) -> Result<Reload, Error> {
        ClientCaReloader::reload(self)
    }
}

fn count_certs(pem: &[u8]) -> usize {
    CertificateDer::pem_slice_iter(pem)
        .filter(Result::is_ok)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str) -> (String, Vec<u8>) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let subject = x509_parser::parse_x509_certificate(cert.der())
            .expect("x509")
            .1
            .subject()
            .as_raw()
            .to_vec();
        (cert.pem(), subject)
    }

    fn hints(v: &ClientCaVerifier) -> Vec<Vec<u8>> {
        v.root_hint_subjects()
            .iter()
            .map(|d| d.as_ref().to_vec())
            .collect()
    }

    #[test]
    fn swapping_changes_every_delegated_answer_and_old_hints_stay_valid() {
        let path = Path::new("ca.pem");
        let (a_pem, a_subject) = ca("ca-a");
        let (b_pem, b_subject) = ca("ca-b");
        let v = ClientCaVerifier::new(verifier_from_pem(a_pem.as_bytes(), path).expect("a"));
        assert!(v.offer_client_auth());
        assert!(!v.client_auth_mandatory(), "probes carry no certificate");
        assert!(!v.supported_verify_schemes().is_empty());
        let old_hints = v.root_hint_subjects();
        assert_eq!(hints(&v), vec![a_subject.clone()]);

        v.set(verifier_from_pem(b_pem.as_bytes(), path).expect("b"));
        assert_eq!(hints(&v), vec![b_subject.clone()]);
        // A borrow handed out before the swap is still the old list.
        assert_eq!(old_hints.len(), 1);
        assert_eq!(old_hints[0].as_ref(), a_subject.as_slice());

        let bundle = format!("{a_pem}{b_pem}");
        v.set(verifier_from_pem(bundle.as_bytes(), path).expect("both"));
        assert_eq!(hints(&v), vec![a_subject, b_subject]);
        assert!(!v.client_auth_mandatory());
    }

    #[test]
    fn bad_bundles_are_refused_with_the_file_named() {
        let path = Path::new("/etc/ca/ca.crt");
        for (pem, want) in [
            (&b"garbage"[..], "no `BEGIN CERTIFICATE` block"),
            (&b""[..], "no `BEGIN CERTIFICATE` block"),
            (
                &b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"[..],
                "bad PEM",
            ),
            (
                &b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"[..],
                "could be parsed",
            ),
        ] {
            let err = verifier_from_pem(pem, path)
                .expect_err("refused")
                .to_string();
            assert!(err.contains("/etc/ca/ca.crt"), "{err}");
            assert!(err.contains(want), "{err} should say {want}");
        }
    }
}
