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

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
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
    /// Registries whose image configs are read from a mirror instead, as a containerd mirror
    /// does (the pod's image reference is not changed). Default: none.
    pub mirrors: Vec<RegistryMirror>,
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
            mirrors: Vec::new(),
            http_proxy: None,
            https_proxy: None,
        }
    }
}

/// `--registry-mirror <registry>=<mirror>`: read image configs for `registry` (as image
/// references name it after normalisation: `docker.io` for Docker Hub) from `mirror` (a
/// `host[:port]`, e.g. an ECR pull-through cache or a Harbor proxy project's host). The
/// mirror gets the original registry in the `ns` query parameter, as containerd sends it.
/// Credentials are those of the mirror host (ECR token, docker config entry, or anonymous).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryMirror {
    pub registry: String,
    pub mirror: String,
}

/// The name image references give a registry: lower case, and Docker Hub's aliases as
/// `docker.io`.
pub fn normalise_registry(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => host,
    }
}

fn host_port(what: &str, s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.contains('/')
        && !s.contains(char::is_whitespace)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if ok {
        Ok(normalise_registry(s))
    } else {
        Err(format!(
            "{what} {s:?} must be a registry host or host:port, like \"mirror.example:5000\""
        ))
    }
}

impl FromStr for RegistryMirror {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((registry, mirror)) = s.trim().split_once('=') else {
            return Err(format!(
                "`{s}` is not <registry>=<mirror>; write e.g. `docker.io=mirror.example:5000`"
            ));
        };
        Ok(Self {
            registry: host_port("the mirrored registry", registry.trim())?,
            mirror: host_port("the mirror", mirror.trim())?,
        })
    }
}

impl fmt::Display for RegistryMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.registry, self.mirror)
    }
}

impl serde::Serialize for RegistryMirror {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors() {
        let m: RegistryMirror = "Index.Docker.io=mirror.example:5000".parse().unwrap();
        assert_eq!(m.registry, "docker.io");
        assert_eq!(m.mirror, "mirror.example:5000");
        assert_eq!(m.to_string(), "docker.io=mirror.example:5000");
        for bad in [
            "docker.io",
            "=m",
            "docker.io=",
            "a=http://m",
            "a=m/path",
            "a b=m",
        ] {
            assert!(bad.parse::<RegistryMirror>().is_err(), "{bad}");
        }
    }
}
