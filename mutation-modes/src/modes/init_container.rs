//! `init-container` mode: an init container copies secrets-init into a memory-backed
//! emptyDir, which every mutated container mounts read-only at `/secrets-init/bin`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, ResourceRequirements, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{ContainerChange, MutationMode, PodAdditions, bin_mount, default_pull_policy};

/// Where the emptyDir is mounted in the injected init container (`/secrets-init` is the
/// binary itself in the secrets-init image, so the volume cannot go below it).
pub const INSTALL_DIR: &str = "/secrets-init-bin";
/// The binary in the secrets-init image.
pub const IMAGE_BINARY: &str = "/secrets-init";
/// Size limit of the emptyDir (it holds one static binary of a few MiB).
pub const VOLUME_SIZE_LIMIT: &str = "64Mi";

/// The strategy, with the names chosen for this pod.
#[derive(Debug, Clone, PartialEq)]
pub struct InitContainer {
    /// The secrets-init image.
    pub image: String,
    /// Name of the emptyDir volume.
    pub volume: String,
    /// Name of the injected init container.
    pub container_name: String,
    /// Its CPU and memory (requests = limits, so a pod with Guaranteed QoS stays Guaranteed).
    pub cpu: Quantity,
    pub memory: Quantity,
    pub run_as_user: RunAsUser,
}

/// UID/GID the injected init container runs as by default: the distroless `nonroot` user.
pub const DEFAULT_RUN_AS_USER: &str = "65532";

/// `runAsUser`/`runAsGroup` of the injected init container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAsUser {
    /// This UID and GID.
    Id(i64),
    /// Leave them out; the platform assigns them (OpenShift).
    Unset,
}

impl Default for RunAsUser {
    fn default() -> Self {
        Self::Id(65532)
    }
}

impl RunAsUser {
    pub fn id(self) -> Option<i64> {
        match self {
            Self::Id(id) => Some(id),
            Self::Unset => None,
        }
    }
}

impl fmt::Display for RunAsUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "{id}"),
            Self::Unset => f.write_str("none"),
        }
    }
}

impl FromStr for RunAsUser {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "none" {
            return Ok(Self::Unset);
        }
        // Kubernetes: 0 <= runAsUser <= 2147483647; 0 (root) would fail runAsNonRoot.
        match s.parse::<i64>() {
            Ok(id) if (1..=i64::from(i32::MAX)).contains(&id) => Ok(Self::Id(id)),
            _ => Err(format!(
                "`{s}` is not a user id; give a number from 1 to 2147483647 (0 is root, which \
                 runAsNonRoot forbids), or `none` to leave runAsUser/runAsGroup to the platform"
            )),
        }
    }
}

impl serde::Serialize for RunAsUser {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Id(id) => s.serialize_i64(*id),
            Self::Unset => s.serialize_str("none"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for RunAsUser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string().parse(),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A security context that passes Pod Security Admission `restricted`. With
/// [`RunAsUser::Unset`] there is no runAsUser/runAsGroup (the platform assigns them) and
/// runAsNonRoot still holds.
pub fn restricted_security_context(user: RunAsUser) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Default::default()
        }),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: user.id(),
        run_as_group: user.id(),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl InitContainer {
    fn resources(&self) -> ResourceRequirements {
        let q = || -> BTreeMap<String, Quantity> {
            [
                ("cpu".to_owned(), self.cpu.clone()),
                ("memory".to_owned(), self.memory.clone()),
            ]
            .into()
        };
        ResourceRequirements {
            limits: Some(q()),
            requests: Some(q()),
            ..Default::default()
        }
    }
}

impl MutationMode for InitContainer {
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
                security_context: Some(restricted_security_context(self.run_as_user)),
                resources: Some(self.resources()),
                termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
                ..Default::default()
            }),
        }
    }

    fn container_change(&self, _run_image: Option<&str>) -> ContainerChange {
        ContainerChange {
            mount: Some(bin_mount(&self.volume)),
            image: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_as_user() {
        assert_eq!("65532".parse(), Ok(RunAsUser::Id(65532)));
        assert_eq!("none".parse(), Ok(RunAsUser::Unset));
        for bad in ["0", "-1", "root", "2147483648", ""] {
            assert!(bad.parse::<RunAsUser>().is_err(), "{bad}");
        }
        assert_eq!(RunAsUser::default().to_string(), DEFAULT_RUN_AS_USER);
        let json = serde_json::to_string(&[RunAsUser::Id(1000), RunAsUser::Unset]).unwrap();
        assert_eq!(json, r#"[1000,"none"]"#);
        let back: Vec<RunAsUser> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [RunAsUser::Id(1000), RunAsUser::Unset]);
    }
}
