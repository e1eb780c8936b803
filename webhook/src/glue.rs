//! The one place that connects the webhook to its collaborators: `mutation_modes` (the pure
//! pod mutation) and `images` (the registry client behind a cache).
//!
//! The admission handler calls the mutation's steps itself (it runs them on different
//! threads); this file builds their configuration and the image source.

use crate::Error;
use crate::config::Config;
use crate::images::{CachedImageSource, ImageSourceSettings};

/// The image-config source the server uses (registry client + cache), with its metrics
/// registered in `registry`.
pub async fn image_source(
    config: &Config,
    registry: &prometheus::Registry,
) -> Result<CachedImageSource, Error> {
    let settings = ImageSourceSettings {
        insecure_registries: config.insecure_registry.clone(),
        mirrors: config.registry_mirror.clone(),
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
