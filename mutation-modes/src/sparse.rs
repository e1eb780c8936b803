//! A Pod decoded with only the fields the mutation reads ([`SparsePod`]).
//!
//! Decoding the whole `k8s_openapi` Pod of an admission request was two thirds of the
//! webhook's own work per admission (callgrind, typical 4.6 KB pod: ~228 k of ~339 k
//! instructions in the handler): every field of every container, the volumes' sources, the
//! managed fields, the status — allocated, then dropped unread. This decoder fills only what
//! [`crate::plan`] and [`crate::build_patch`] look at and skips the rest without allocating:
//!
//! - metadata: `name`, `generateName`, `namespace`, `labels`, `annotations` (the patch adds
//!   to both maps, and whether each exists decides the shape of the `add`);
//! - spec: `containers` and `initContainers` (below), the names of `ephemeralContainers` and
//!   `volumes`, `nodeSelector`, `os.name`, `shareProcessNamespace`;
//! - each container: `name`, `image`, `command`, `args`, `env`, `envFrom`, `volumeMounts` and
//!   the three probes (those leaves whole, as `k8s_openapi` decodes them).
//!
//! The patch never copies anything from the pod (it writes new values at positions it counts
//! here), so a field left out can only matter if the mutation starts reading it: then it
//! must be added here. The golden suite runs every case through both decoders and requires
//! the same outcome, and so does the webhook's handler test with a pod that sets every field.
//!
//! Each field is read as `k8s_openapi` reads it: absent and `null` are the same, required
//! strings and lists default to empty, `apiVersion`/`kind` must be `v1`/`Pod` when present.
//! One difference: a key repeated within one object is an error here (serde's derive),
//! where `k8s_openapi` keeps the last; the API server never sends one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EphemeralContainer, Pod, PodOS, PodSpec, Probe, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A [`Pod`] holding only the fields the mutation reads (module docs); the rest are unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparsePod(pub Pod);

impl<'de> Deserialize<'de> for SparsePod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PodFields::deserialize(d).map(|p| SparsePod(p.into()))
    }
}

/// So that `kube_core::admission::AdmissionRequest<SparsePod>` decodes a review directly.
impl k8s_openapi::Resource for SparsePod {
    const API_VERSION: &'static str = <Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for SparsePod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// `apiVersion` and `kind` are checked, not kept, as `k8s_openapi` does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodFields {
    #[serde(default, rename = "apiVersion", deserialize_with = "api_version")]
    _api_version: (),
    #[serde(default, rename = "kind", deserialize_with = "kind")]
    _kind: (),
    #[serde(default)]
    metadata: Option<MetaFields>,
    #[serde(default)]
    spec: Option<SpecFields>,
}

fn expect_str<'de, D: Deserializer<'de>>(d: D, want: &'static str) -> Result<(), D::Error> {
    let got = String::deserialize(d)?;
    if got == want {
        Ok(())
    } else {
        Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(&got),
            &want,
        ))
    }
}

fn api_version<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    expect_str(d, <Pod as k8s_openapi::Resource>::API_VERSION)
}

fn kind<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    expect_str(d, <Pod as k8s_openapi::Resource>::KIND)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFields {
    #[serde(default)]
    containers: Option<Vec<ContainerFields>>,
    #[serde(default)]
    init_containers: Option<Vec<ContainerFields>>,
    #[serde(default)]
    ephemeral_containers: Option<Vec<Named>>,
    #[serde(default)]
    volumes: Option<Vec<Named>>,
    #[serde(default)]
    node_selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    os: Option<Named>,
    #[serde(default)]
    share_process_namespace: Option<bool>,
}

/// An object of which only `name` is read (a volume, an ephemeral container, `spec.os`).
#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerFields {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<EnvVar>>,
    #[serde(default)]
    env_from: Option<Vec<EnvFromSource>>,
    #[serde(default)]
    volume_mounts: Option<Vec<VolumeMount>>,
    #[serde(default)]
    liveness_probe: Option<Probe>,
    #[serde(default)]
    readiness_probe: Option<Probe>,
    #[serde(default)]
    startup_probe: Option<Probe>,
}

impl From<PodFields> for Pod {
    fn from(p: PodFields) -> Self {
        let meta = p.metadata.map(|m| ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            labels: m.labels,
            annotations: m.annotations,
            ..ObjectMeta::default()
        });
        Pod {
            metadata: meta.unwrap_or_default(),
            spec: p.spec.map(PodSpec::from),
            status: None,
        }
    }
}

impl From<SpecFields> for PodSpec {
    fn from(s: SpecFields) -> Self {
        let containers = |v: Option<Vec<ContainerFields>>| {
            v.map(|v| v.into_iter().map(Container::from).collect())
        };
        PodSpec {
            containers: containers(s.containers).unwrap_or_default(),
            init_containers: containers(s.init_containers),
            ephemeral_containers: s.ephemeral_containers.map(|v| {
                v.into_iter()
                    .map(|c| EphemeralContainer {
                        name: c.name.unwrap_or_default(),
                        ..EphemeralContainer::default()
                    })
                    .collect()
            }),
            volumes: s.volumes.map(|v| {
                v.into_iter()
                    .map(|v| Volume {
                        name: v.name.unwrap_or_default(),
                        ..Volume::default()
                    })
                    .collect()
            }),
            node_selector: s.node_selector,
            os: s.os.map(|o| PodOS {
                name: o.name.unwrap_or_default(),
            }),
            share_process_namespace: s.share_process_namespace,
            ..PodSpec::default()
        }
    }
}

impl From<ContainerFields> for Container {
    fn from(c: ContainerFields) -> Self {
        Container {
            name: c.name.unwrap_or_default(),
            image: c.image,
            command: c.command,
            args: c.args,
            env: c.env,
            env_from: c.env_from,
            volume_mounts: c.volume_mounts,
            liveness_probe: c.liveness_probe,
            readiness_probe: c.readiness_probe,
            startup_probe: c.startup_probe,
            ..Container::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sparse(v: serde_json::Value) -> Result<Pod, String> {
        serde_json::from_value::<SparsePod>(v)
            .map(|p| p.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_the_fields_the_mutation_reads_and_nothing_else() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"},
                         "annotations": {"secretsinit.io/inject": "true"},
                         "managedFields": [{"manager": "kubectl"}],
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "rs", "uid": "1"}]},
            "spec": {
                "containers": [{"name": "app", "image": "app:1", "command": ["/app"],
                                "env": [{"name": "A", "value": "awssm:x"}],
                                "ports": [{"containerPort": 80}],
                                "resources": {"limits": {"cpu": "1"}}}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "nodeSelector": {"kubernetes.io/arch": "arm64"},
                "tolerations": [{"operator": "Exists"}]
            },
            "status": {"phase": "Pending"}
        });
        let got = sparse(pod).unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("p"));
        assert_eq!(
            got.metadata.labels,
            Some([("a".to_owned(), "b".to_owned())].into())
        );
        assert!(got.metadata.managed_fields.is_none() && got.metadata.owner_references.is_none());
        let spec = got.spec.unwrap();
        assert_eq!(
            spec.containers[0].command.as_deref(),
            Some(&["/app".to_owned()][..])
        );
        assert_eq!(spec.containers[0].env.as_ref().unwrap()[0].name, "A");
        assert!(spec.containers[0].ports.is_none() && spec.containers[0].resources.is_none());
        assert_eq!(spec.volumes.unwrap()[0].name, "data");
        assert!(spec.tolerations.is_none() && got.status.is_none());
    }

    #[test]
    fn absent_null_and_missing_names_read_as_k8s_openapi_reads_them() {
        for v in [
            json!({}),
            json!({"metadata": null, "spec": null}),
            json!({"metadata": {"labels": null, "annotations": null}}),
            json!({"metadata": {"labels": {}, "annotations": {}}}),
            json!({"spec": {"containers": null, "volumes": [{}], "os": {}}}),
            json!({"spec": {"containers": [{}], "initContainers": [{"name": null}]}}),
            json!({"spec": {"ephemeralContainers": [{"name": "debug"}]}}),
        ] {
            let full: Pod = serde_json::from_value(v.clone()).unwrap();
            let got = sparse(v.clone()).unwrap();
            assert_eq!(got, full, "{v}");
        }
    }

    #[test]
    fn refuses_what_k8s_openapi_refuses_among_the_fields_it_reads() {
        for v in [
            json!({"apiVersion": "apps/v1"}),
            json!({"kind": "Deployment"}),
            json!({"spec": {"containers": "not a list"}}),
            json!({"spec": {"containers": [{"name": 3}]}}),
            json!({"metadata": {"annotations": {"a": 1}}}),
            json!({"metadata": {"labels": {"a": 1}}}),
            json!({"metadata": {"labels": ["a"]}}),
            json!({"spec": {"containers": [{"env": [{"name": "A", "value": ["x"]}]}]}}),
        ] {
            let full = serde_json::from_value::<Pod>(v.clone())
                .unwrap_err()
                .to_string();
            let got = sparse(v.clone()).unwrap_err();
            assert_eq!(got, full, "{v}");
        }
    }
}
