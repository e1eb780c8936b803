//! Pure pod mutation for secrets-init.
//!
//! Public API (the webhook depends on exactly this):
//! - [`image`]: [`ImageConfigSource`], [`ImageConfig`], [`Platform`], [`ImageConfigError`] —
//!   the only I/O, behind a trait.
//!
//! The rest (pod options from annotations, container selection, original-command
//! resolution and the `MutationMode` strategies) is built in the mutation-modes issue.

pub mod image;

pub use image::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
