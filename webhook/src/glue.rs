//! The one place that connects the webhook to its collaborators: `mutation_modes` (the pure
//! pod mutation) and `images` (the registry client behind a cache).
//!
//! Everything else in the webhook speaks [`Outcome`] and `MutationConfig` (built by [`mutation_config`]), so a change
//! of those libraries' interfaces is a change of this file only.

use k8s_openapi::api::core::v1::Pod;
use mutation_modes::{Decision, ImageConfigSource, ModeKind, MutationConfig};

use crate::Error;
use crate::config::Config;
use crate::images::{CachedImageSource, ImageSourceSettings};

/// The mutation's settings from the configuration, checked once at start-up (a bad
/// `--secrets-init-image`, `--aws-region` or `--image-swap-template` stops the webhook
/// instead of denying every pod).
pub fn mutation_config(config: &Config) -> Result<MutationConfig, Error> {
    let default_mode: ModeKind = config
        .mutation_mode
        .parse()
        .map_err(|e| Error::Config(format!("--mutation-mode: {e}")))?;
    let mc = MutationConfig {
        default_mode,
        secrets_init_image: config.secrets_init_image.clone(),
        default_region: config.aws_region.clone(),
        image_swap_template: config.image_swap_template.clone(),
    };
    mc.validate().map_err(|e| Error::Config(e.to_string()))?;
    Ok(mc)
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
    config: &MutationConfig,
    images: &S,
) -> Outcome {
    match mutation_modes::mutate_pod(pod, config, images).await {
        Ok(Decision::Skipped { reason, warnings }) => Outcome::Skipped { reason, warnings },
        Ok(Decision::Mutated {
            mode,
            patch,
            warnings,
        }) => Outcome::Mutated {
            mode: mode.to_string(),
            patch,
            warnings,
        },
        Err(e) => Outcome::Denied {
            message: e.to_string(),
        },
    }
}

/// The image-config source the server uses (registry client + cache), with its metrics
/// registered in `registry`.
pub async fn image_source(
    config: &Config,
    registry: &prometheus::Registry,
) -> Result<CachedImageSource, Error> {
    let settings = ImageSourceSettings {
        insecure_registries: config.insecure_registry.clone(),
        docker_config: config.docker_config.clone(),
        request_timeout: config.registry_timeout,
        cache_capacity: config.image_cache_capacity,
        tag_ttl: config.image_cache_ttl,
        error_ttl: config.image_cache_error_ttl,
        ..ImageSourceSettings::default()
    };
    CachedImageSource::new(settings, registry)
        .await
        .map_err(|e| Error::Config(format!("image registry client: {e}")))
}
