//! Certificate hot reload.
//!
//! [`CertResolver`] hands rustls the current certificate; [`CertReloader`] replaces it.
//! [`watch`] drives every file-backed piece of TLS state (the serving pair, and the
//! `--client-ca` bundle through [`super::client_ca::ClientCaReloader`]), each a [`Watched`].
//! It watches the DIRECTORIES holding the files (not the files), so it sees both ways
//! certificates change:
//!
//! - Kubernetes Secret volumes: the kubelet writes a new timestamped directory, points a
//!   `..data_tmp` symlink at it and renames that over `..data`; `tls.crt` and `tls.key` are
//!   symlinks through `..data`, so the files themselves are never written.
//! - plain rewrites (cert-manager csi, hand edits, `cp`): the files are modified in place.
//!
//! Events are debounced (a rotation is several events), then every watched item re-reads
//! its files. The serving certificate and key are checked as a pair: a pair that fails
//! (unreadable, bad PEM, key not matching, expired) keeps the old certificate serving and
//! counts `result="error"`; a good new pair is swapped in atomically and counts
//! `result="ok"`. The client CA bundle is handled the same way (see
//! [`super::client_ca`]). Unchanged contents are ignored. A slow periodic re-check covers
//! events a filesystem does not deliver.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::LoadedCert;
use super::certs::from_pem;
use crate::Error;
use crate::metrics::Metrics;

/// Quiet time after the last filesystem event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);
/// Re-check interval when no event arrives.
pub const RECHECK: Duration = Duration::from_secs(60);

/// The certificate rustls serves; swapped whole, so a handshake sees the old or the new pair.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: RwLock::new(key),
        }
    }

    /// Replaces the served certificate.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut guard) => *guard = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// Watches a certificate/key pair on disk and keeps a [`CertResolver`] up to date.
#[derive(Debug)]
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    resolver: Arc<CertResolver>,
    metrics: Metrics,
    /// Raw bytes last looked at (good or bad), so unchanged contents are not re-counted.
    last_seen: Mutex<Option<(Vec<u8>, Vec<u8>)>>,
}

/// Outcome of one reload attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// Files unchanged since the last look.
    Unchanged,
    /// New contents are in use; what they are (the serial of a new serving certificate,
    /// the size of a new client CA bundle).
    Swapped(String),
}

impl CertReloader {
    /// Loads the pair once (an error here stops start-up) and returns the reloader and the
    /// resolver to give rustls.
    pub fn start(
        cert_path: &Path,
        key_path: &Path,
        metrics: Metrics,
    ) -> Result<(Arc<Self>, Arc<CertResolver>), Error> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let loaded = from_pem(
            &cert_pem,
            &key_pem,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )?;
        metrics.tls_cert_expiry.set(loaded.not_after as f64);
        tracing::info!(
            cert = %cert_path.display(),
            serial = %loaded.serial,
            not_after = loaded.not_after,
            "serving certificate loaded"
        );
        let resolver = Arc::new(CertResolver::new(loaded.key));
        let reloader = Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            resolver: resolver.clone(),
            metrics,
            last_seen: Mutex::new(Some((cert_pem, key_pem))),
        });
        Ok((reloader, resolver))
    }

    /// Re-reads both files; swaps in a good new pair, keeps the old one otherwise.
    pub fn reload(&self) -> Result<Reload, Error> {
        let result = self.try_reload();
        match &result {
            Ok(Reload::Unchanged) => {}
            Ok(Reload::Swapped(serial)) => {
                self.metrics.tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(cert = %self.cert_path.display(), serial = %serial, "serving certificate reloaded");
            }
            Err(e) => {
                self.metrics.tls_reloads.with_label_values(&["error"]).inc();
                tracing::error!(
                    error = %e,
                    "new serving certificate rejected; the previous certificate stays in use"
                );
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Reload, Error> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        let pair = (cert_pem, key_pem);
        if !remember(&self.last_seen, &pair) {
            return Ok(Reload::Unchanged);
        }
        let (cert_pem, key_pem) = pair;
        let LoadedCert {
            key,
            not_after,
            serial,
        } = from_pem(
            &cert_pem,
            &key_pem,
            &self.cert_path.display().to_string(),
            &self.key_path.display().to_string(),
        )?;
        self.resolver.set(key);
        self.metrics.tls_cert_expiry.set(not_after as f64);
        Ok(Reload::Swapped(serial))
    }
}

impl Watched for CertReloader {
    fn files(&self) -> Vec<PathBuf> {
        vec![self.cert_path.clone(), self.key_path.clone()]
    }

    fn reload(&self) -> Result<Reload, Error> {
        CertReloader::reload(self)
    }
}

/// Something read from files that [`watch`] keeps current.
pub trait Watched: std::fmt::Debug + Send + Sync + 'static {
    /// The files it is read from; their directories are watched.
    fn files(&self) -> Vec<PathBuf>;

    /// Re-reads the files: a good change is swapped in, a bad one keeps what is in use; the
    /// outcome is counted in `secrets_init_webhook_tls_reloads_total` and logged (nothing
    /// for unchanged contents).
    fn reload(&self) -> Result<Reload, Error>;
}

/// Directories to watch: the parents of every item's files, once each.
fn watch_dirs(items: &[Arc<dyn Watched>]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for p in items.iter().flat_map(|item| item.files()) {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Starts one watcher for all `items`: any change in one of their directories (after
/// [`DEBOUNCE`]), and every [`RECHECK`], re-reads them all (each ignores unchanged
/// contents). The returned task runs until aborted (dropping it does not stop it).
pub fn watch(items: Vec<Arc<dyn Watched>>) -> Result<JoinHandle<()>, Error> {
    watch_every(items, RECHECK)
}

/// [`watch`] with another re-check interval. Not a setting of the webhook: it exists so
/// the integration tests can see the periodic re-check without waiting a minute.
pub fn watch_every(
    items: Vec<Arc<dyn Watched>>,
    recheck: Duration,
) -> Result<JoinHandle<()>, Error> {
    let dirs = watch_dirs(&items);
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Reading the files ourselves must not trigger another reload.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(e) => tracing::warn!(error = %e, "certificate watcher error"),
        }
    })
    .map_err(|source| Error::Watch {
        path: dirs.first().cloned().unwrap_or_default(),
        source,
    })?;
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| Error::Watch {
                path: dir.clone(),
                source,
            })?;
    }
    let items: Arc<[Arc<dyn Watched>]> = items.into();
    let task = tokio::spawn(async move {
        let _watcher = watcher; // lives as long as the task
        loop {
            match tokio::time::timeout(recheck, rx.recv()).await {
                Ok(None) => return,
                Ok(Some(())) => {
                    // Debounce: wait until the directories have been quiet for a moment.
                    while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
                }
                Err(_) => {} // periodic re-check
            }
            let items = items.clone();
            let _ = tokio::task::spawn_blocking(move || {
                for item in items.iter() {
                    // Each item logs and counts its own outcome.
                    let _ = item.reload();
                }
            })
            .await;
        }
    });
    Ok(task)
}

/// Records `now` as the contents last looked at; false when they are the same as before.
pub(super) fn remember<T: PartialEq + Clone>(last_seen: &Mutex<Option<T>>, now: &T) -> bool {
    let mut last = last_seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.as_ref() == Some(now) {
        return false;
    }
    *last = Some(now.clone());
    true
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}
