//! Shared pieces of the fuzz targets: a table-backed image source, the checks every mutated
//! pod must pass, and a structure-aware pod builder for `arbitrary`.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, Container, EnvFromSource, EnvVar, EnvVarSource, ExecAction, Pod, PodSpec,
    Probe, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutation_modes::{
    ANNOTATION_INJECT, ANNOTATION_INJECTED, Decision, ImageConfig, ImageConfigError,
    ImageConfigSource, LABEL_INJECTED, ModeKind, MutationConfig, Platform,
};

/// A deterministic image source: the answer depends only on the image name, so the same
/// pod always gets the same decision. Images whose name contains `missing` are not found,
/// `broken` gives a registry error, `arm-only` has no linux/amd64 manifest.
#[derive(Debug, Default)]
pub struct TableImages;

impl ImageConfigSource for TableImages {
    async fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        if image.contains("missing") {
            return Err(ImageConfigError::NotFound {
                image: image.to_owned(),
            });
        }
        if image.contains("broken") {
            return Err(ImageConfigError::Other {
                image: image.to_owned(),
                reason: "the registry answered 500".to_owned(),
            });
        }
        if image.contains("arm-only") && platform.architecture != "arm64" {
            return Err(ImageConfigError::PlatformMissing {
                image: image.to_owned(),
                platform: platform.to_string(),
                available: "linux/arm64".to_owned(),
            });
        }
        let sum: usize = image.bytes().map(usize::from).sum();
        Ok(match sum % 4 {
            0 => ImageConfig {
                entrypoint: Some(vec!["/entry".into(), "$(HOME)".into()]),
                cmd: Some(vec!["serve".into(), "--price=$5".into()]),
            },
            1 => ImageConfig {
                entrypoint: None,
                cmd: Some(vec!["/bin/app".into()]),
            },
            2 => ImageConfig {
                entrypoint: Some(vec!["/entry".into()]),
                cmd: None,
            },
            _ => ImageConfig::default(),
        })
    }
}

/// Runs the mutation to completion. The table source never waits, so no runtime is needed.
pub fn mutate(
    pod: &Pod,
    config: &MutationConfig,
) -> Result<Decision, mutation_modes::MutationError> {
    futures::executor::block_on(mutation_modes::mutate_pod(pod, config, &TableImages))
}

/// The configuration for `mode`, everything else at its default.
pub fn config(mode: ModeKind) -> MutationConfig {
    MutationConfig {
        default_mode: mode,
        default_region: Some("eu-west-1".into()),
        ..MutationConfig::default()
    }
}

/// Mutates `pod` in every mode and checks what must always hold:
/// - a denial has a non-empty message;
/// - a patch applies to the pod as serialised, gives a valid Pod marked injected (annotation
///   and label, both the mode), and only ever adds to the pod's metadata (never drops an
///   annotation or a label, changes no label but its own);
/// - mutating the result again is a no-op (`Skipped`).
pub fn check_all_modes(pod: &Pod) {
    for mode in ModeKind::ALL {
        check_mode(pod, mode);
    }
}

pub fn check_mode(pod: &Pod, mode: ModeKind) {
    let config = config(mode);
    let decision = match mutate(pod, &config) {
        Ok(d) => d,
        Err(e) => {
            assert!(!e.to_string().trim().is_empty(), "empty denial message");
            return;
        }
    };
    let Decision::Mutated {
        patch, mode: used, ..
    } = decision
    else {
        return;
    };
    let original = serde_json::to_value(pod).expect("a Pod serialises");
    let mut doc = original.clone();
    if let Err(e) = json_patch::patch(&mut doc, &patch) {
        panic!("patch does not apply: {e}\npatch: {patch:?}");
    }
    let mutated: Pod = serde_json::from_value(doc).expect("patched pod is a Pod");
    let annotations = mutated.metadata.annotations.clone().unwrap_or_default();
    assert!(
        annotations.contains_key(ANNOTATION_INJECTED),
        "mutated pod is not marked injected"
    );
    for (k, v) in pod.metadata.annotations.iter().flatten() {
        assert_eq!(annotations.get(k), Some(v), "annotation {k} changed");
    }
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(LABEL_INJECTED.to_owned(), used.to_string());
    assert_eq!(
        mutated.metadata.labels,
        Some(labels),
        "labels other than {LABEL_INJECTED} changed, or it is not the mode"
    );
    match mutate(&mutated, &config) {
        Ok(Decision::Skipped { .. }) => {}
        other => panic!("mutating twice is not a no-op: {other:?}"),
    }
}

// ---- structure-aware pods ------------------------------------------------------------

/// Text that is usually meaningful for the webhook and sometimes arbitrary.
#[derive(Debug)]
pub struct Text(pub String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        const WORDS: &[&str] = &[
            "true",
            "false",
            "skip",
            "",
            " true ",
            "init-container",
            "shared-volume",
            "image-swap",
            "eu-west-1",
            "US EAST",
            "registry.example/app:1",
            "registry.example/missing:1",
            "registry.example/broken:1",
            "registry.example/arm-only:1",
            "registry.example/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "localhost:5000/ns/app:v2",
            "app",
            "c0",
            "c1",
            "i0",
            "c0, i0",
            "nope",
            "awssm:prod/db#user",
            "${awssm:db#pass}",
            "x ${awssm:db",
            "$(HOME) $$ $(X",
            "/secrets-init/bin",
            "/secrets-init",
            "secrets-init",
            "secrets-init-bin",
            "arm64",
            "amd64",
            "windows",
        ];
        Ok(Text(if u.ratio(7, 8)? {
            (*u.choose(WORDS)?).to_owned()
        } else {
            String::arbitrary(u)?
        }))
    }
}

#[derive(Debug, Arbitrary)]
pub enum EnvShape {
    Value(Text),
    ConfigMapRef,
    SecretRef,
    FieldRef,
}

#[derive(Debug, Arbitrary)]
pub struct ContainerShape {
    pub name: Text,
    pub image: Option<Text>,
    pub command: Option<Vec<Text>>,
    pub args: Option<Vec<Text>>,
    pub env: Vec<(Text, EnvShape)>,
    pub env_from: bool,
    pub mounts: Vec<Text>,
    pub liveness: Option<Vec<Text>>,
    pub readiness: Option<Vec<Text>>,
}

#[derive(Debug, Arbitrary)]
pub struct PodShape {
    pub annotations: Vec<(Annotation, Text)>,
    pub containers: Vec<ContainerShape>,
    pub init_containers: Option<Vec<ContainerShape>>,
    pub volumes: Vec<Text>,
    pub node_selector: Vec<(NodeSelectorKey, Text)>,
    pub has_spec: bool,
}

#[derive(Debug, Arbitrary)]
pub enum Annotation {
    Known(u8),
    Other(Text),
}

#[derive(Debug, Arbitrary)]
pub enum NodeSelectorKey {
    Arch,
    Os,
    Other(Text),
}

fn texts(v: Option<Vec<Text>>) -> Option<Vec<String>> {
    v.map(|v| v.into_iter().map(|t| t.0).collect())
}

fn container(shape: ContainerShape) -> Container {
    let probe = |cmd: Option<Vec<Text>>| {
        cmd.map(|c| Probe {
            exec: Some(ExecAction {
                command: texts(Some(c)),
            }),
            ..Default::default()
        })
    };
    Container {
        name: shape.name.0,
        image: shape.image.map(|t| t.0),
        command: texts(shape.command),
        args: texts(shape.args),
        env: (!shape.env.is_empty()).then(|| {
            shape
                .env
                .into_iter()
                .map(|(name, value)| {
                    let mut var = EnvVar {
                        name: name.0,
                        ..Default::default()
                    };
                    match value {
                        EnvShape::Value(t) => var.value = Some(t.0),
                        EnvShape::ConfigMapRef => {
                            var.value_from = Some(EnvVarSource {
                                config_map_key_ref: Some(ConfigMapKeySelector {
                                    name: "cm".into(),
                                    key: "k".into(),
                                    optional: None,
                                }),
                                ..Default::default()
                            })
                        }
                        EnvShape::SecretRef => {
                            var.value_from = Some(EnvVarSource {
                                secret_key_ref: Some(SecretKeySelector {
                                    name: "s".into(),
                                    key: "k".into(),
                                    optional: None,
                                }),
                                ..Default::default()
                            })
                        }
                        EnvShape::FieldRef => {
                            var.value_from = Some(EnvVarSource {
                                field_ref: Some(Default::default()),
                                ..Default::default()
                            })
                        }
                    }
                    var
                })
                .collect()
        }),
        env_from: shape.env_from.then(|| vec![EnvFromSource::default()]),
        volume_mounts: (!shape.mounts.is_empty()).then(|| {
            shape
                .mounts
                .into_iter()
                .map(|m| VolumeMount {
                    name: "v".into(),
                    mount_path: m.0,
                    ..Default::default()
                })
                .collect()
        }),
        liveness_probe: probe(shape.liveness),
        readiness_probe: probe(shape.readiness),
        ..Default::default()
    }
}

impl PodShape {
    pub fn into_pod(self) -> Pod {
        let mut annotations = BTreeMap::new();
        for (key, value) in self.annotations {
            let key = match key {
                Annotation::Known(i) => {
                    let known = mutation_modes::KNOWN_ANNOTATIONS;
                    known[usize::from(i) % known.len()].to_owned()
                }
                Annotation::Other(t) => t.0,
            };
            annotations.insert(key, value.0);
        }
        // Most interesting pods ask for injection.
        annotations
            .entry(ANNOTATION_INJECT.to_owned())
            .or_insert_with(|| "true".to_owned());
        let node_selector: BTreeMap<String, String> = self
            .node_selector
            .into_iter()
            .map(|(k, v)| {
                let k = match k {
                    NodeSelectorKey::Arch => mutation_modes::NODE_SELECTOR_ARCH.to_owned(),
                    NodeSelectorKey::Os => mutation_modes::NODE_SELECTOR_OS.to_owned(),
                    NodeSelectorKey::Other(t) => t.0,
                };
                (k, v.0)
            })
            .collect();
        let spec = PodSpec {
            containers: self.containers.into_iter().map(container).collect(),
            init_containers: self
                .init_containers
                .map(|v| v.into_iter().map(container).collect()),
            volumes: (!self.volumes.is_empty()).then(|| {
                self.volumes
                    .into_iter()
                    .map(|v| Volume {
                        name: v.0,
                        ..Default::default()
                    })
                    .collect()
            }),
            node_selector: (!node_selector.is_empty()).then_some(node_selector),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("fuzzed".into()),
                annotations: Some(annotations),
                ..Default::default()
            },
            spec: self.has_spec.then_some(spec),
            ..Default::default()
        }
    }
}
