//! The one door to the outside world: "what are ENTRYPOINT and CMD of image X for platform P".
//!
//! The webhook implements [`ImageConfigSource`] with a registry client and a cache; tests
//! implement it with a table.

use std::fmt;
use std::future::Future;

use oci_spec::distribution::Reference;

/// Longest image reference parsed. A valid one is at most ~800 bytes: a host name (253) and
/// port, a repository (255, the distribution spec's limit), a tag (128) and a sha512 digest
/// (135). Longer text is refused before the reference grammar's regex reads it (a 1 MiB
/// reference took ~0.1 s there).
pub const MAX_REFERENCE_BYTES: usize = 1024;

/// Parses an image reference with the OCI distribution grammar; the error is the reason,
/// for a denial message.
pub fn parse_reference(s: &str) -> Result<Reference, String> {
    if s.len() > MAX_REFERENCE_BYTES {
        return Err(format!(
            "it is {} bytes long, and an image reference is at most {MAX_REFERENCE_BYTES}",
            s.len()
        ));
    }
    s.parse::<Reference>().map_err(|e| e.to_string())
}

/// An OCI platform, as the pod's `kubernetes.io/arch` (and `kubernetes.io/os`) node selector says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux(architecture: impl Into<String>) -> Self {
        Self {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::linux("amd64")
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The part of an image config that decides what a container runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `config.Entrypoint`; `None` when the image sets none.
    pub entrypoint: Option<Vec<String>>,
    /// `config.Cmd`; `None` when the image sets none.
    pub cmd: Option<Vec<String>>,
}

/// Why an image config could not be had. `Display` is a complete sentence fragment that the
/// webhook puts into a denial message, e.g. "image registry.example/app:1 was not found".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageConfigError {
    /// The registry says the image (or tag) does not exist.
    #[error("image {image} was not found in its registry")]
    NotFound { image: String },
    /// The image exists but has no manifest for the requested platform.
    #[error("image {image} has no manifest for platform {platform} (it has: {available})")]
    PlatformMissing {
        image: String,
        platform: String,
        available: String,
    },
    /// Anything else: auth, network, timeouts, malformed manifests. `reason` says what.
    #[error("could not read the config of image {image}: {reason}")]
    Other { image: String, reason: String },
}

/// Looks up image configs. Implementations do the I/O (registry, cache); the mutation
/// logic stays pure.
pub trait ImageConfigSource: Send + Sync {
    fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> impl Future<Output = Result<ImageConfig, ImageConfigError>> + Send;
}
