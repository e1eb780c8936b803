//! `init-container` mode: an init container copies secrets-init into a memory-backed
//! emptyDir, which every mutated container mounts read-only at `/secrets-init/bin`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{MutationMode, PodAdditions, bin_mount, default_pull_policy};
use crate::ModeKind;

/// Where the emptyDir is mounted in the injected init container (`/secrets-init` is the
/// binary itself in the secrets-init image, so the volume cannot go below it).
pub const INSTALL_DIR: &str = "/secrets-init-bin";
/// The binary in the secrets-init image.
pub const IMAGE_BINARY: &str = "/secrets-init";
/// UID/GID the injected init container runs as (the distroless `nonroot` user).
pub const NON_ROOT_ID: i64 = 65532;
/// Size limit of the emptyDir (it holds one static binary of a few MiB).
pub const VOLUME_SIZE_LIMIT: &str = "64Mi";

/// The strategy, with the names chosen for this pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitContainer {
    /// The secrets-init image.
    pub image: String,
    /// Name of the emptyDir volume.
    pub volume: String,
    /// Name of the injected init container.
    pub container_name: String,
}

/// A security context that passes Pod Security Admission `restricted`.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(NON_ROOT_ID),
        run_as_group: Some(NON_ROOT_ID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Requests equal to limits, so a pod with Guaranteed QoS stays Guaranteed.
fn resources() -> ResourceRequirements {
    let q = || -> BTreeMap<String, Quantity> {
        [
            ("cpu".to_owned(), Quantity("50m".to_owned())),
            ("memory".to_owned(), Quantity("64Mi".to_owned())),
        ]
        .into()
    };
    ResourceRequirements {
        limits: Some(q()),
        requests: Some(q()),
        ..Default::default()
    }
}

impl MutationMode for InitContainer {
    fn kind(&self) -> ModeKind {
        ModeKind::InitContainer
    }

    fn pod_additions(&self) -> PodAdditions {
        PodAdditions {
            volumes: vec![Volume {
                name: self.volume.clone(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".to_owned()),
                    size_limit: Some(Quantity(VOLUME_SIZE_LIMIT.to_owned())),
                }),
                ..Default::default()
            }],
            init_container: Some(Container {
                name: self.container_name.clone(),
                image: Some(self.image.clone()),
                image_pull_policy: Some(default_pull_policy(&self.image).to_owned()),
                command: Some(
                    [IMAGE_BINARY, "install", INSTALL_DIR]
                        .map(str::to_owned)
                        .to_vec(),
                ),
                volume_mounts: Some(vec![VolumeMount {
                    name: self.volume.clone(),
                    mount_path: INSTALL_DIR.to_owned(),
                    ..Default::default()
                }]),
                security_context: Some(restricted_security_context()),
                resources: Some(resources()),
                termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                ..Default::default()
            }),
        }
    }

    fn mutate_container(&self, c: &mut Container, _run_image: Option<&str>) {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(bin_mount(&self.volume));
    }
}
