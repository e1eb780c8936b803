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

use crate::parse::{parse_duration, parse_path, parse_positive, parse_string, ser_duration};

pub use cache::CachedImageSource;
pub use error::ImagesError;

/// The registry settings that are flags of the webhook (`--insecure-registry`, ...): the
/// flag group of [`crate::config::Config`], declared here, next to what uses them.
#[derive(Debug, Clone, PartialEq, clap::Args, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// Registry reached over plain HTTP (`host` or `host:port`, as written in image
    /// references); development only; repeatable.
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',', value_parser = parse_string)]
    pub insecure_registry: Vec<String>,
    /// Read image configs for <registry> (e.g. docker.io) from <mirror> instead, as a containerd
    /// mirror does; the pod's image is not changed. Repeatable.
    #[arg(long, value_name = "REGISTRY=MIRROR", value_delimiter = ',', value_parser = |s: &str| s.parse::<RegistryMirror>())]
    pub registry_mirror: Vec<RegistryMirror>,
    /// Docker config.json with registry credentials (`auths`), e.g. a mounted
    /// `kubernetes.io/dockerconfigjson` Secret; read at start (a broken file stops start-up)
    /// and on every registry fetch, so a rotated Secret is picked up [default: none;
    /// anonymous pulls, ECR via AWS].
    #[arg(long, value_name = "FILE", value_parser = parse_path)]
    pub docker_config: Option<PathBuf>,
    /// Deadline for one whole registry lookup (token, manifests, config); keep it below
    /// --request-timeout so the denial can still be sent.
    #[arg(long, value_name = "DURATION", default_value = "6s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub registry_timeout: Duration,
    /// How long the config of an image referenced by tag is cached (tags move; by digest:
    /// 24h).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub image_cache_ttl: Duration,
    /// How long a failed image lookup is remembered (absorbs bursts of identical pods while
    /// the registry is down or the image missing).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    #[serde(serialize_with = "ser_duration")]
    pub image_cache_error_ttl: Duration,
    /// Most image configs kept in the cache (least recently used evicted).
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive::<u64>)]
    pub image_cache_capacity: u64,
}

impl Default for RegistryConfig {
    /// Every setting at its declared default.
    fn default() -> Self {
        use clap::{Args, FromArgMatches};
        let parsed = RegistryConfig::augment_args(clap::Command::new("defaults"))
            .try_get_matches_from(["defaults"])
            .and_then(|m| RegistryConfig::from_arg_matches(&m));
        match parsed {
            Ok(c) => c,
            // The declared defaults parse; `tests::defaults` holds them to it.
            Err(e) => panic!("the declared registry defaults do not parse: {e}"),
        }
    }
}

/// How image configs are looked up and cached: the flags, and what tests may change besides.
/// `Default` gives production values.
#[derive(Debug, Clone)]
pub struct ImageSourceSettings {
    pub registry: RegistryConfig,
    /// Largest manifest or image config accepted, in bytes (real ones are a few KiB).
    pub max_document_bytes: u64,
    /// How long a digest reference's config is reused (immutable content).
    pub digest_ttl: Duration,
    /// Get ECR credentials with `GetAuthorizationToken` for ECR hosts.
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
            registry: RegistryConfig::default(),
            max_document_bytes: 4 * 1024 * 1024,
            digest_ttl: Duration::from_secs(24 * 3600),
            ecr: true,
            ecr_endpoint: None,
            aws_sdk_config: None,
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
    fn defaults() {
        let d = RegistryConfig::default();
        assert_eq!(d.registry_timeout, Duration::from_secs(6));
        assert_eq!(d.image_cache_ttl, Duration::from_secs(60));
        assert_eq!(d.image_cache_error_ttl, Duration::from_secs(5));
        assert_eq!(d.image_cache_capacity, 10_000);
        assert!(d.insecure_registry.is_empty() && d.registry_mirror.is_empty());
    }

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
