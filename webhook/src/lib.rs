//! The secrets-init admission webhook.
//!
//! - [`images`]: image configs from registries (oci-client, ECR auth) behind a moka cache;
//!   implements [`mutation_modes::ImageConfigSource`].

pub mod images;
