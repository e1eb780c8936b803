//! The one error type of the image-config subsystem.
//!
//! Every variant renders as a clause that can follow "could not read the config of image X: "
//! in an admission denial, so it names the registry and says how to fix the problem. None of
//! them ever carries a credential.

use std::path::PathBuf;
use std::time::Duration;

use mutation_modes::ImageConfigError;

/// What went wrong while setting up image-config lookups or reading one image's config.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// A setting is unusable (e.g. an `--insecure-registry` entry that is not `host[:port]`).
    #[error("invalid image source setting: {0}")]
    Settings(String),

    /// The docker `config.json` with registry credentials cannot be read or parsed.
    #[error("registry credentials file {path}: {reason}")]
    DockerConfig { path: PathBuf, reason: String },

    /// Metrics could not be registered (a second source on the same registry).
    #[error("cannot register image-config metrics: {0}")]
    Metrics(#[from] prometheus::Error),

    /// The image reference does not parse.
    #[error("{reason}; expected [registry/]repository[:tag][@digest]")]
    InvalidReference { reason: String },

    /// The registry says the repository, tag or digest does not exist.
    #[error("registry {registry} has no such image")]
    NotFound { registry: String },

    /// The image exists but has no manifest for the platform asked for.
    #[error("no manifest for platform {platform} (it has: {available})")]
    PlatformMissing { platform: String, available: String },

    /// The registry rejected our credentials, or wants some and we have none.
    #[error("registry {registry} answered {status} ({what}); {hint}")]
    Unauthorized {
        registry: String,
        status: u16,
        what: &'static str,
        hint: String,
    },

    /// The registry took longer than the configured timeout.
    #[error("registry {registry} did not answer within {}", humantime::format_duration(*.timeout))]
    Timeout { registry: String, timeout: Duration },

    /// Connecting to the registry failed (DNS, refused, TLS).
    #[error("cannot connect to registry {registry} over {scheme}: {reason}{hint}")]
    Connect {
        registry: String,
        scheme: &'static str,
        reason: String,
        hint: &'static str,
    },

    /// A manifest or config is larger than the limit.
    #[error(
        "registry {registry} sent a {what} of {size} bytes, more than the limit of {limit} bytes"
    )]
    TooLarge {
        registry: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },

    /// The registry answered something we cannot use (bad JSON, unexpected media type, 5xx).
    #[error("registry {registry}: {reason}")]
    Registry { registry: String, reason: String },

    /// ECR `GetAuthorizationToken` failed.
    #[error(
        "cannot get an ECR authorization token for {registry} (region {region}): {reason}; the webhook's own AWS identity (EKS Pod Identity or IRSA role) needs ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer"
    )]
    Ecr {
        registry: String,
        region: String,
        reason: String,
    },
}

impl ImagesError {
    /// Turns this error into the trait-level error the mutation logic puts into denials.
    pub fn into_image_config_error(self, image: &str) -> ImageConfigError {
        match self {
            Self::NotFound { .. } => ImageConfigError::NotFound {
                image: image.to_owned(),
            },
            Self::PlatformMissing {
                platform,
                available,
            } => ImageConfigError::PlatformMissing {
                image: image.to_owned(),
                platform,
                available,
            },
            other => ImageConfigError::Other {
                image: image.to_owned(),
                reason: other.to_string(),
            },
        }
    }
}
