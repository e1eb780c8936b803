//! `shared-volume` mode: the secrets-init image itself is mounted read-only at
//! `/secrets-init/bin` as a Kubernetes `image` volume (ImageVolume feature). The image's root
//! holds the file `secrets-init`, so the binary appears at `/secrets-init/bin/secrets-init`.

use k8s_openapi::api::core::v1::{ImageVolumeSource, Volume};

use super::{ContainerChange, MutationMode, PodAdditions, bin_mount, default_pull_policy};

/// The strategy, with the volume name chosen for this pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedVolume {
    /// The secrets-init image.
    pub image: String,
    /// Name of the image volume.
    pub volume: String,
}

impl MutationMode for SharedVolume {
    fn pod_additions(&self) -> PodAdditions {
        PodAdditions {
            volumes: vec![Volume {
                name: self.volume.clone(),
                image: Some(ImageVolumeSource {
                    reference: Some(self.image.clone()),
                    pull_policy: Some(default_pull_policy(&self.image).to_owned()),
                }),
                ..Default::default()
            }],
            init_container: None,
        }
    }

    fn container_change(&self, _run_image: Option<&str>) -> ContainerChange {
        ContainerChange {
            mount: Some(bin_mount(&self.volume)),
            image: None,
        }
    }
}
