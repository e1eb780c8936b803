//! The one place that connects the webhook to its collaborators: `mutation_modes` (the pure
//! pod mutation) and `images` (the registry client behind a cache).
//!
//! Everything else in the webhook speaks [`Outcome`] and [`MutationSettings`], so a change
//! of those libraries' interfaces is a change of this file only.

use k8s_openapi::api::core::v1::Pod;
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};

use crate::Error;
use crate::config::Config;

/// What the mutation needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationSettings {
    pub default_mode: String,
    pub secrets_init_image: String,
    pub default_region: Option<String>,
    pub image_swap_template: String,
}

impl MutationSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            default_mode: config.mutation_mode.clone(),
            secrets_init_image: config.secrets_init_image.clone(),
            default_region: config.aws_region.clone(),
            image_swap_template: config.image_swap_template.clone(),
        }
    }
}

/// The decision about one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Allowed unchanged; `reason` is logged, `warnings` go to the client.
    Skipped {
        reason: String,
        warnings: Vec<String>,
    },
    /// Allowed with a JSON patch.
    Mutated {
        mode: String,
        patch: json_patch::Patch,
        warnings: Vec<String>,
    },
    /// Denied; `message` is shown to the user.
    Denied { message: String },
}

/// Decides about one pod.
pub async fn mutate<S: ImageConfigSource>(
    pod: &Pod,
    settings: &MutationSettings,
    images: &S,
) -> Outcome {
    let _ = (pod, settings, images);
    Outcome::Denied {
        message: "secrets-init-webhook: pod mutation is not available in this build".into(),
    }
}

/// The image-config source the server uses, with its metrics in `registry`.
pub fn image_source(
    config: &Config,
    registry: &prometheus::Registry,
) -> Result<UnavailableImages, Error> {
    let _ = (config, registry);
    Ok(UnavailableImages)
}

/// Stand-in until the registry client is wired in: every lookup fails with a clear reason.
#[derive(Debug, Clone, Copy)]
pub struct UnavailableImages;

impl ImageConfigSource for UnavailableImages {
    async fn image_config(
        &self,
        image: &str,
        _platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        Err(ImageConfigError::Other {
            image: image.to_owned(),
            reason:
                "registry lookups are not available in this build; set `command` in the pod spec"
                    .into(),
        })
    }
}
