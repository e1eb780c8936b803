//! The three ways of getting the secrets-init binary into a container (contract §5).

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{Container, Volume, VolumeMount};

use crate::error::MutationError;
use crate::select::Selected;

pub mod image_swap;
pub mod init_container;
pub mod shared_volume;

pub use image_swap::ImageSwap;
pub use init_container::InitContainer;
pub use shared_volume::SharedVolume;

/// Where the directory holding `secrets-init` is mounted in mutated containers.
pub const BIN_MOUNT_PATH: &str = "/secrets-init/bin";

/// The mutation mode, spelled as in the contract (`init-container`, ...).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ModeKind {
    #[default]
    InitContainer,
    SharedVolume,
    ImageSwap,
}

impl ModeKind {
    pub const ALL: [ModeKind; 3] = [Self::InitContainer, Self::SharedVolume, Self::ImageSwap];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InitContainer => "init-container",
            Self::SharedVolume => "shared-volume",
            Self::ImageSwap => "image-swap",
        }
    }

    /// `init-container, shared-volume, image-swap`
    pub fn valid_values() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for ModeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutation mode {0:?}; valid values: init-container, shared-volume, image-swap")]
pub struct UnknownMode(pub String);

impl FromStr for ModeKind {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// What a mode adds to the pod as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodAdditions {
    /// Appended to `spec.volumes`.
    pub volumes: Vec<Volume>,
    /// Put first in `spec.initContainers`.
    pub init_container: Option<Container>,
}

/// One mutation strategy. The shared work (selection, command rewriting, probes, annotations,
/// the patch) is done by [`crate::mutate_pod`]; a mode only says which image a container runs,
/// what it adds to the pod, and what it changes in each mutated container besides the command.
pub trait MutationMode: Send + Sync + fmt::Debug {
    /// The image the mutated container will run (its config decides the program when the pod
    /// sets no command). Default: the container's own image.
    fn run_image(&self, who: &Selected, c: &Container) -> Result<Option<String>, MutationError> {
        let _ = who;
        Ok(c.image.clone())
    }

    /// Whether [`Self::run_image`] must be looked up even when the pod spec gives the command
    /// (image-swap checks that the variant exists).
    fn always_look_up(&self) -> bool {
        false
    }

    /// Volumes and init container this mode adds.
    fn pod_additions(&self) -> PodAdditions;

    /// What this mode changes in each mutated container besides its command.
    fn container_change(&self, run_image: Option<&str>) -> ContainerChange;
}

/// A mode's change to one mutated container, besides its command.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerChange {
    /// Mounted into the container (after its own mounts).
    pub mount: Option<VolumeMount>,
    /// Replaces the container's image.
    pub image: Option<String>,
}

/// The read-only mount of the binary's directory, for modes that use a volume.
pub(crate) fn bin_mount(volume: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: BIN_MOUNT_PATH.to_owned(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The pull policy Kubernetes would default for `image`: `Always` when the tag is `latest`
/// (written or implied), `IfNotPresent` otherwise (digest-only references included). Written
/// out so the patched pod says what it does.
///
/// The reference was validated already (configuration, annotation), so splitting it is enough;
/// a full grammar parse here was a tenth of the mutation's time (BENCHMARKS.md).
pub(crate) fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest.is_some() => "IfNotPresent",
        None => "Always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_names() {
        for m in ModeKind::ALL {
            assert_eq!(m.to_string().parse::<ModeKind>(), Ok(m));
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{m}\""));
            assert_eq!(serde_json::from_str::<ModeKind>(&json).unwrap(), m);
        }
        let e = "initcontainer".parse::<ModeKind>().unwrap_err().to_string();
        assert!(
            e.contains("init-container, shared-volume, image-swap"),
            "{e}"
        );
    }

    #[test]
    fn pull_policies() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1", "IfNotPresent"),
            ("nginx:1.27", "IfNotPresent"),
            (
                "nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "IfNotPresent",
            ),
            (
                "nginx:latest@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "Always",
            ),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }
}
