//! Image configs from registries: "what are ENTRYPOINT and CMD of image X for platform P",
//! the only outside knowledge pod mutation needs. [`CachedImageSource`] implements
//! [`mutation_modes::ImageConfigSource`].
//!
//! - [`registry`]: `oci-client` lookups (Docker v2 / OCI manifests and indexes, platform
//!   selection, plain HTTP for `insecure_registries`, size and time limits).
//! - credentials, first match wins: an ECR host (`<account>.dkr.ecr.<region>.amazonaws.com`)
//!   gets a `GetAuthorizationToken` token obtained with the webhook's own AWS identity
//!   ([`ecr`]); any other host the `auths` entry of the docker `config.json` named by
//!   `docker_config` ([`docker_config`]); otherwise anonymous (public images, and registries
//!   that hand out anonymous bearer tokens such as Docker Hub and GHCR).
//! - [`cache`]: moka single-flight cache with per-kind TTLs and the contract's metrics.
//!
//! Not done: reading the pod's `imagePullSecrets` through the Kubernetes API (it would need
//! the webhook to read Secrets cluster-wide; left for an opt-in later), docker credential
//! helpers (`credsStore`, `credHelpers`) and `identitytoken` entries.
//!
//! See `README.md` next to this file for the policy in one page.

pub mod cache;
pub mod docker_config;
pub mod ecr;
pub mod error;
pub mod registry;

use std::path::PathBuf;
use std::time::Duration;

pub use cache::CachedImageSource;
pub use error::ImagesError;

/// How image configs are looked up and cached. `Default` gives production values.
#[derive(Debug, Clone)]
pub struct ImageSourceSettings {
    /// Registries (`host` or `host:port`, as written in image references) spoken to over plain
    /// HTTP instead of HTTPS. For development registries only. Default: none.
    pub insecure_registries: Vec<String>,
    /// A docker `config.json` (e.g. a mounted `kubernetes.io/dockerconfigjson` Secret) with
    /// credentials for private registries. Read at start (a broken file fails start-up) and again
    /// on every registry fetch, so a rotated Secret is picked up. Default: none (anonymous).
    pub docker_config: Option<PathBuf>,
    /// Upper bound for one whole lookup (token, manifests, config). Keep it below the webhook's
    /// `--request-timeout` so the denial can still be sent. Default: 6 s.
    pub request_timeout: Duration,
    /// Largest manifest or image config accepted, in bytes. Default: 4 MiB (real ones are a
    /// few KiB).
    pub max_document_bytes: u64,
    /// Maximum number of cached (image, platform) entries. Default: 10 000.
    pub cache_capacity: u64,
    /// How long a tag reference's config is reused. Tags move, so this is short. Default: 60 s.
    pub tag_ttl: Duration,
    /// How long a digest reference's config is reused (immutable content). Default: 24 h.
    pub digest_ttl: Duration,
    /// How long a failed lookup is remembered (absorbs bursts of identical pods while the
    /// registry is down or the image missing). Default: 5 s.
    pub error_ttl: Duration,
    /// Get ECR credentials with `GetAuthorizationToken` for ECR hosts. Default: true.
    pub ecr: bool,
    /// Overrides the ECR API endpoint (VPC endpoints, tests). Default: none — the SDK's own
    /// resolution, which honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_ECR`.
    pub ecr_endpoint: Option<String>,
    /// AWS configuration to use for ECR instead of loading the default chain (tests). Default:
    /// none — loaded on first ECR use (region, credentials: Pod Identity, IRSA, env, profile).
    pub aws_sdk_config: Option<aws_config::SdkConfig>,
    /// Proxy for plain-HTTP registry traffic. Default: none (`HTTP_PROXY` still applies).
    pub http_proxy: Option<String>,
    /// Proxy for HTTPS registry traffic. Default: none (`HTTPS_PROXY` still applies).
    pub https_proxy: Option<String>,
}

impl Default for ImageSourceSettings {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            docker_config: None,
            request_timeout: Duration::from_secs(6),
            max_document_bytes: 4 * 1024 * 1024,
            cache_capacity: 10_000,
            tag_ttl: Duration::from_secs(60),
            digest_ttl: Duration::from_secs(24 * 3600),
            error_ttl: Duration::from_secs(5),
            ecr: true,
            ecr_endpoint: None,
            aws_sdk_config: None,
            http_proxy: None,
            https_proxy: None,
        }
    }
}
