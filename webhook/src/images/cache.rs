//! The cache in front of the registry: one fetch per (image, platform) however many admission
//! requests ask at once, and answers from memory afterwards.
//!
//! Policy (all from [`ImageSourceSettings`]):
//! - a digest reference (`repo@sha256:…`) names immutable content: kept `digest_ttl`;
//! - a tag reference can move: kept `tag_ttl`;
//! - a failure (not found, missing platform, auth, timeout…) is kept only `error_ttl`, so a
//!   burst of identical pods makes one registry call, but a fixed problem is seen quickly;
//! - at most `cache_capacity` entries (least-recently-used evicted).
//!
//! Concurrent lookups of one key share a single registry fetch (moka's `entry().or_insert_with`,
//! which, unlike `try_get_with`, also lets failures be cached briefly).
//!
//! Metrics: `secrets_init_webhook_image_config_requests_total{result}` counts lookups —
//! `hit` (answered from the cache), `miss` (fetched from the registry successfully), `error`
//! (the lookup failed, freshly or from a cached failure); and
//! `secrets_init_webhook_image_config_fetch_duration_seconds` times each registry fetch.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use oci_client::Reference;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

use super::ImageSourceSettings;
use super::error::ImagesError;
use super::registry::{RegistryClient, parse_reference};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The normalised reference (`docker.io/library/nginx:latest`).
    reference: String,
    platform: Platform,
    /// The reference has a digest, so its content cannot change.
    pinned: bool,
}

type Value = Result<ImageConfig, ImageConfigError>;

struct Ttls {
    tag: Duration,
    digest: Duration,
    error: Duration,
}

impl moka::Expiry<Key, Value> for Ttls {
    fn expire_after_create(
        &self,
        key: &Key,
        value: &Value,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(match (value, key.pinned) {
            (Err(_), _) => self.error,
            (Ok(_), true) => self.digest,
            (Ok(_), false) => self.tag,
        })
    }
}

#[derive(Debug)]
struct Metrics {
    /// The three `result` series, resolved once (a label lookup hashes and locks per call).
    hit: IntCounter,
    miss: IntCounter,
    error: IntCounter,
    fetch_duration: Histogram,
}

impl Metrics {
    fn register(registry: &Registry) -> Result<Self, ImagesError> {
        let requests = IntCounterVec::new(
            Opts::new(
                "secrets_init_webhook_image_config_requests_total",
                "Image config lookups by result: hit (from cache), miss (fetched from the registry), error (failed).",
            ),
            &["result"],
        )?;
        let fetch_duration = Histogram::with_opts(
            HistogramOpts::new(
                "secrets_init_webhook_image_config_fetch_duration_seconds",
                "Time to fetch one image config from its registry (cache misses), failures included.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(fetch_duration.clone()))?;
        // All three series exist from the start, so rate() works before the first error.
        Ok(Self {
            hit: requests.with_label_values(&["hit"]),
            miss: requests.with_label_values(&["miss"]),
            error: requests.with_label_values(&["error"]),
            fetch_duration,
        })
    }
}

struct Inner {
    registry: RegistryClient,
    cache: moka::future::Cache<Key, Value>,
    parsed: Spellings,
    metrics: Metrics,
}

/// Image configs from registries behind a single-flight cache. Cheap to clone (shared state).
#[derive(Clone)]
pub struct CachedImageSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CachedImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedImageSource")
            .field("registry", &self.inner.registry)
            .field("entries", &self.inner.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl CachedImageSource {
    /// Checks `settings`, registers the image-config metrics on `metrics`, and builds the source.
    ///
    /// Also installs rustls' `ring` provider as the process default if none is installed yet
    /// (the registry client's TLS uses the process default).
    pub async fn new(
        settings: ImageSourceSettings,
        metrics: &Registry,
    ) -> Result<Self, ImagesError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let registry = RegistryClient::new(&settings)?;
        let metrics = Metrics::register(metrics)?;
        let cache = moka::future::Cache::builder()
            .max_capacity(settings.registry.image_cache_capacity)
            .expire_after(Ttls {
                tag: settings.registry.image_cache_ttl,
                digest: settings.digest_ttl,
                error: settings.registry.image_cache_error_ttl,
            })
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                cache,
                parsed: Spellings::new(settings.registry.image_cache_capacity),
                metrics,
            }),
        })
    }

    async fn lookup(&self, image: &str, platform: &Platform) -> Value {
        let inner = &self.inner;
        let parsed = match inner.parsed.get(image) {
            Some(p) => p,
            None => match parse_reference(image) {
                Ok(reference) => inner.parsed.insert(image, reference),
                Err(e) => {
                    inner.metrics.error.inc();
                    return Err(e.into_image_config_error(image));
                }
            },
        };
        let reference = &parsed.reference;
        let key = Key {
            reference: parsed.whole.clone(),
            platform: platform.clone(),
            pinned: parsed.pinned,
        };
        // A plain read first: the entry API's single-flight machinery (a waiter map, an
        // initializer future) is for misses, and cost ~18 k instructions per warm lookup.
        if let Some(value) = inner.cache.get(&key).await {
            match &value {
                Ok(_) => inner.metrics.hit.inc(),
                Err(_) => inner.metrics.error.inc(),
            }
            return value.map_err(|e| with_image(e, image));
        }
        let entry = inner
            .cache
            .entry(key)
            .or_insert_with(async {
                let timer = inner.metrics.fetch_duration.start_timer();
                let result = inner.registry.image_config(reference, platform).await;
                timer.observe_duration();
                match result {
                    Ok(config) => {
                        tracing::debug!(image, %platform, "image config fetched");
                        Ok(config)
                    }
                    Err(e) => {
                        let e = e.into_image_config_error(image);
                        tracing::warn!(image, %platform, error = %e, "image config lookup failed");
                        Err(e)
                    }
                }
            })
            .await;
        let fresh = entry.is_fresh();
        let value = entry.into_value();
        match (&value, fresh) {
            (Err(_), _) => &inner.metrics.error,
            (Ok(_), true) => &inner.metrics.miss,
            (Ok(_), false) => &inner.metrics.hit,
        }
        .inc();
        // A cached failure names the image as this pod spells it.
        value.map_err(|e| with_image(e, image))
    }

    /// Number of cached entries (approximate; for tests and diagnostics).
    pub async fn cached_entries(&self) -> u64 {
        self.inner.cache.run_pending_tasks().await;
        self.inner.cache.entry_count()
    }
}

/// Image references as pods spell them, parsed. Parsing is the OCI reference grammar's regex,
/// which cost more than the rest of a warm-cache admission together (callgrind: ~74 k
/// instructions per parse of a 30-byte reference); a parse depends on the text alone, so
/// each spelling is parsed once. A plain map behind a read lock: a moka read cost ~20 k
/// instructions, and nothing here needs expiry. At `capacity` spellings the map starts
/// over (a pod fleet names far fewer distinct images; a flood of one-off spellings only
/// costs parses again). Only spellings that parsed are kept, and `parse_reference` refuses
/// any longer than `MAX_REFERENCE_BYTES`, so the map holds at most `capacity` × 1 KiB of keys.
struct Spellings {
    map: RwLock<HashMap<String, Arc<Parsed>>>,
    capacity: usize,
}

struct Parsed {
    reference: Reference,
    /// The normalised reference (`docker.io/library/nginx:latest`), the cache key.
    whole: String,
    pinned: bool,
}

impl Spellings {
    fn new(capacity: u64) -> Self {
        Self {
            map: RwLock::default(),
            capacity: usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
        }
    }

    fn get(&self, image: &str) -> Option<Arc<Parsed>> {
        let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
        map.get(image).cloned()
    }

    fn insert(&self, image: &str, reference: Reference) -> Arc<Parsed> {
        let parsed = Arc::new(Parsed {
            whole: reference.whole(),
            pinned: reference.digest().is_some(),
            reference,
        });
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(image.to_owned(), Arc::clone(&parsed));
        parsed
    }
}

fn with_image(e: ImageConfigError, image: &str) -> ImageConfigError {
    let image = image.to_owned();
    match e {
        ImageConfigError::NotFound { .. } => ImageConfigError::NotFound { image },
        ImageConfigError::PlatformMissing {
            platform,
            available,
            ..
        } => ImageConfigError::PlatformMissing {
            image,
            platform,
            available,
        },
        ImageConfigError::Other { reason, .. } => ImageConfigError::Other { image, reason },
    }
}

impl ImageConfigSource for CachedImageSource {
    fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ImageConfig, ImageConfigError>> + Send {
        self.lookup(image, platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_parsed_once_and_bounded() {
        let s = Spellings::new(2);
        let nginx = parse_reference("nginx").expect("valid");
        let first = s.insert("nginx", nginx);
        assert_eq!(first.whole, "docker.io/library/nginx:latest");
        assert!(!first.pinned);
        assert!(Arc::ptr_eq(&first, &s.get("nginx").expect("kept")));
        let digest =
            "r.example/app@sha256:4a2b7c1d9e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9";
        assert!(
            s.insert(digest, parse_reference(digest).expect("valid"))
                .pinned
        );
        // The third spelling starts the map over: never more than `capacity` entries.
        s.insert("busybox:1", parse_reference("busybox:1").expect("valid"));
        assert!(s.map.read().expect("lock").len() <= 2);
        assert!(s.get("nginx").is_none());
        assert!(s.get("busybox:1").is_some());
    }
}
