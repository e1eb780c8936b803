//! The crate's one error type. Every `Display` is the complete denial message a user sees
//! from `kubectl apply`: what is wrong, where, and how to fix it.

use crate::image::ImageConfigError;

/// Why a pod is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutationError {
    /// An annotation has a value outside its set of valid values.
    #[error(
        "secrets-init: annotation {annotation} has the invalid value {value}; valid values: {valid}"
    )]
    InvalidAnnotation {
        annotation: String,
        /// Quoted and bounded ([`crate::bounded::quoted`]).
        value: String,
        /// Human-readable list, e.g. `"true", "false"`.
        valid: String,
    },

    /// `secretsinit.io/containers` names a container the pod does not have.
    #[error(
        "secrets-init: annotation secretsinit.io/containers names {unknown} which the pod does not have; the pod's containers are [{containers}] and its init containers are [{init_containers}]"
    )]
    UnknownContainer {
        /// Lists bounded by [`crate::bounded::quoted_list`].
        unknown: String,
        containers: String,
        init_containers: String,
    },

    /// A literal placeholder of a selected container does not parse (it would fail at
    /// container start, exit 2).
    #[error("secrets-init: {container}, variable {variable}: {problem}")]
    MalformedPlaceholder {
        container: String,
        /// Quoted and bounded.
        variable: String,
        problem: String,
    },

    /// The secrets-init flags, repeated on every wrapped command and probe, would grow the pod
    /// past what the API server can store.
    #[error(
        "secrets-init: the secrets-init flags would add {added} bytes to this pod (on every mutated container and exec probe), more than {limit}; shorten secretsinit.io/env-from, or name fewer containers in secretsinit.io/containers"
    )]
    TooManyFlags { added: usize, limit: usize },

    /// A selected container has no `image` (and its program must be read from one).
    #[error("secrets-init: {container} has no image; {why}")]
    NoImage { container: String, why: String },

    /// The original program of a container cannot be worked out.
    #[error(
        "secrets-init: cannot work out the program of {container}: {reason}; set `command` on the container in the pod spec"
    )]
    ProgramUnknown { container: String, reason: String },

    /// Reading an image config failed.
    #[error("secrets-init: cannot {doing} {containers}: {source}")]
    ImageConfig {
        /// "work out the program of" or "check the image-swap variant of".
        doing: String,
        containers: String,
        #[source]
        source: ImageConfigError,
    },

    /// image-swap: the variant image does not exist in the registry.
    #[error(
        "secrets-init: image-swap mode needs the image {variant} for {container} (variant of {image}), but it was not found in its registry; push that image, or choose another mode with the annotation secretsinit.io/mutation-mode (init-container, shared-volume)"
    )]
    VariantMissing {
        container: String,
        image: String,
        variant: String,
    },

    /// image-swap: the container's image is referenced by digest only.
    #[error(
        "secrets-init: image-swap needs a tag, but {container} uses the digest-only image {image}; reference the image by tag (e.g. repo:1.2.3 or repo:1.2.3@sha256:...), or choose another mode with the annotation secretsinit.io/mutation-mode (init-container, shared-volume)"
    )]
    DigestOnly { container: String, image: String },

    /// An image reference that does not parse.
    #[error("secrets-init: {what} {image} is not a valid image reference: {reason}")]
    InvalidImage {
        what: String,
        /// Quoted and bounded ([`crate::bounded::quoted`]).
        image: String,
        reason: String,
    },

    /// The image-swap template is malformed (a webhook configuration error).
    #[error(
        "secrets-init: the image-swap template {template:?} is invalid: {reason}; the placeholders are {{registry}}, {{repository}} and {{tag}} (fix --image-swap-template)"
    )]
    InvalidTemplate { template: String, reason: String },

    /// A webhook setting is invalid (a configuration error, reported at start-up).
    #[error("secrets-init: {setting}: {reason}")]
    InvalidSetting { setting: String, reason: String },

    /// A mutated container already mounts something where secrets-init goes.
    #[error(
        "secrets-init: {container} already has a volume mount at {path}, where secrets-init mounts its binary; move that mount elsewhere"
    )]
    MountPathTaken { container: String, path: String },

    /// The pod is scheduled on a non-Linux node; secrets-init is built for Linux only.
    #[error(
        "secrets-init: the pod runs on {os} nodes (node selector kubernetes.io/os or spec.os), but secrets-init is built for Linux only; remove the annotation secretsinit.io/inject from this pod"
    )]
    UnsupportedOs { os: String },
}
