//! The one place that connects the webhook to its collaborators: `mutation_modes` (the pure
//! pod mutation) and `images` (the registry client behind a cache).
//!
//! The admission handler calls the mutation's steps itself (it runs them on different
//! threads); this file builds their configuration and the image source.

use mutation_modes::{ModeKind, MutationConfig};

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
