//! What a workload's pod template references, worked out from the template alone (pure, no
//! I/O): the ids to watch, the references that cannot be watched and why, and the
//! malformed placeholders. The grammar is the `placeholder` crate's, the one secrets-init
//! resolves with.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec};
use mutation_modes::options::{ANNOTATION_AWS_REGION, ANNOTATION_ENV_FROM, ANNOTATION_INJECT};
use placeholder::{self as placeholder, EnvFrom, FetchKey, Source, Version};

/// `secretsinit.io/reload`: `"true"` opts a workload in, `"paused"` holds its restarts.
pub const ANNOTATION_RELOAD: &str = mutation_modes::options::ANNOTATION_RELOAD;

/// One thing whose change restarts the workloads that reference it. Secrets Manager ids are
/// watched per version stage: a rotation first writes `AWSPENDING` and only later moves
/// `AWSCURRENT`, and a pod reading `AWSCURRENT` must not restart at the first step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchKey {
    pub source: Source,
    /// The region the id is asked about in (the ARN's, the template's or the default).
    pub region: String,
    /// The secret's name or ARN, or the parameter's name or ARN, as written.
    pub id: String,
    /// Secrets Manager: the stage (`AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`). Parameter
    /// Store: empty (the latest version is the signal, for labels too).
    pub stage: String,
}

impl WatchKey {
    /// The id as a user wrote it, with its stage: `awssm:prod/db`, `awssm:prod/db (AWSPREVIOUS)`,
    /// `awsssm:/prod/url`. For logs, events and patches: never a value.
    pub fn display(&self) -> String {
        let mut s = format!("{}{}", self.source.prefix(), self.id);
        if !self.stage.is_empty() && self.stage != STAGE_CURRENT {
            s.push_str(&format!(" ({})", self.stage));
        }
        s
    }
}

impl fmt::Display for WatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

pub const STAGE_CURRENT: &str = "AWSCURRENT";

/// Why a reference is not watched (the `reason` label of
/// `secrets_init_controller_unwatched_references`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unwatched {
    /// A fixed version id or parameter version: it never changes.
    Pinned,
    /// An env-from Parameter Store path: its membership is not one id.
    Path,
    /// Placeholders may sit in a ConfigMap the template reads (`--follow-refs` is off).
    ConfigMap,
    /// Placeholders may sit in a Secret the template reads (`--follow-refs` is off).
    Secret,
}

impl Unwatched {
    pub const ALL: [Unwatched; 4] = [Self::Pinned, Self::Path, Self::ConfigMap, Self::Secret];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pinned => "pinned",
            Self::Path => "path",
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }
}

/// A ConfigMap or Secret a template reads env from, to be followed with `--follow-refs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EnvSource {
    /// `envFrom.configMapRef`: every key. `configMapKeyRef`: one key.
    ConfigMap {
        name: String,
        key: Option<String>,
    },
    Secret {
        name: String,
        key: Option<String>,
    },
}

impl EnvSource {
    pub fn describe(&self) -> String {
        let (kind, name, key) = match self {
            EnvSource::ConfigMap { name, key } => ("configmap", name, key),
            EnvSource::Secret { name, key } => ("secret", name, key),
        };
        match key {
            Some(k) => format!("{kind}/{name} key {k}"),
            None => format!("{kind}/{name}"),
        }
    }
}

/// Everything the controller needs to know about one template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateRefs {
    pub watched: BTreeSet<WatchKey>,
    /// The unwatchable references, each with what it is (`awssm:db#k#<id>`, `configmap/app`).
    pub unwatched: BTreeMap<Unwatched, BTreeSet<String>>,
    /// ConfigMaps and Secrets the env reads (followed only with `--follow-refs`).
    pub env_sources: BTreeSet<EnvSource>,
    /// `container/VARIABLE: problem` for each malformed placeholder (never the value).
    pub malformed: Vec<String>,
}

/// What the workload asks of the controller, from `secretsinit.io/reload` on the workload's
/// own metadata (which wins) or its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Not selected: no `inject: "true"`, or no `reload` (or `"false"`, or another value).
    Off,
    On,
    Paused,
}

pub fn reload_mode(
    workload_annotations: Option<&BTreeMap<String, String>>,
    template: &PodTemplateSpec,
) -> Reload {
    let template_annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    let injected = template_annotations
        .and_then(|a| a.get(ANNOTATION_INJECT))
        .is_some_and(|v| v.trim() == "true");
    if !injected {
        return Reload::Off;
    }
    let value = workload_annotations
        .and_then(|a| a.get(ANNOTATION_RELOAD))
        .or_else(|| template_annotations.and_then(|a| a.get(ANNOTATION_RELOAD)));
    match value.map(|v| v.trim()) {
        Some("true") => Reload::On,
        Some("paused") => Reload::Paused,
        _ => Reload::Off,
    }
}

/// The references of `template`. `default_region` is `--aws-region` (None: the SDK chain's,
/// resolved by the caller and passed here as the same string for every workload).
pub fn template_refs(template: &PodTemplateSpec, default_region: &str) -> TemplateRefs {
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    let region = annotations
        .and_then(|a| a.get(ANNOTATION_AWS_REGION))
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .unwrap_or(default_region);
    let mut out = TemplateRefs::default();
    if let Some(spec) = &template.spec {
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter());
        for container in containers {
            container_refs(container, region, &mut out);
        }
    }
    if let Some(list) = annotations.and_then(|a| a.get(ANNOTATION_ENV_FROM)) {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match placeholder::parse_env_from(item) {
                Ok(EnvFrom::Secret { id, version }) => {
                    let fetch = FetchKey {
                        source: Source::SecretsManager,
                        id,
                        version,
                    };
                    add_fetch(&fetch, region, &mut out);
                }
                Ok(EnvFrom::ParameterPath { .. }) => {
                    out.unwatched
                        .entry(Unwatched::Path)
                        .or_default()
                        .insert(item.to_owned());
                }
                Err(e) => out.malformed.push(format!("{ANNOTATION_ENV_FROM}: {e}")),
            }
        }
    }
    out
}

fn container_refs(container: &Container, region: &str, out: &mut TemplateRefs) {
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            match placeholder::parse_value(value) {
                Ok(Some(template)) => {
                    for r in template.refs() {
                        add_fetch(&r.fetch, region, out);
                    }
                }
                Ok(None) => {}
                Err(e) => out
                    .malformed
                    .push(format!("{}/{}: {e}", container.name, var.name)),
            }
        }
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            out.env_sources.insert(EnvSource::ConfigMap {
                name: r.name.clone(),
                key: Some(r.key.clone()),
            });
        }
        if let Some(r) = &from.secret_key_ref {
            out.env_sources.insert(EnvSource::Secret {
                name: r.name.clone(),
                key: Some(r.key.clone()),
            });
        }
    }
    for from in container.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            out.env_sources.insert(EnvSource::ConfigMap {
                name: r.name.clone(),
                key: None,
            });
        }
        if let Some(r) = &from.secret_ref {
            out.env_sources.insert(EnvSource::Secret {
                name: r.name.clone(),
                key: None,
            });
        }
    }
}

/// Adds the placeholders found in a value read from a ConfigMap or Secret (`--follow-refs`).
pub fn add_value_refs(origin: &str, value: &str, region: &str, out: &mut TemplateRefs) {
    match placeholder::parse_value(value) {
        Ok(Some(template)) => {
            for r in template.refs() {
                add_fetch(&r.fetch, region, out);
            }
        }
        Ok(None) => {}
        Err(e) => out.malformed.push(format!("{origin}: {e}")),
    }
}

/// The env sources as unwatched references (when they are not followed).
pub fn mark_sources_unwatched(out: &mut TemplateRefs) {
    for source in &out.env_sources {
        let reason = match source {
            EnvSource::ConfigMap { .. } => Unwatched::ConfigMap,
            EnvSource::Secret { .. } => Unwatched::Secret,
        };
        out.unwatched
            .entry(reason)
            .or_default()
            .insert(source.describe());
    }
}

fn add_fetch(fetch: &FetchKey, region: &str, out: &mut TemplateRefs) {
    let stage = match (&fetch.source, &fetch.version) {
        (Source::SecretsManager, Version::Current) => STAGE_CURRENT.to_owned(),
        (Source::SecretsManager, Version::Stage(s)) => s.clone(),
        (Source::ParameterStore, Version::Current | Version::Label(_)) => String::new(),
        (_, Version::Id(_) | Version::Number(_)) => {
            out.unwatched
                .entry(Unwatched::Pinned)
                .or_default()
                .insert(format!("{}{fetch}", fetch.source.prefix()));
            return;
        }
        // Stages belong to Secrets Manager and labels to Parameter Store; the grammar never
        // gives the other pairing, and if it did the latest version is the safe signal.
        (Source::SecretsManager, Version::Label(_)) => STAGE_CURRENT.to_owned(),
        (Source::ParameterStore, Version::Stage(_)) => String::new(),
    };
    out.watched.insert(WatchKey {
        source: fetch.source,
        region: fetch.arn_region().unwrap_or(region).to_owned(),
        id: fetch.id.clone(),
        stage,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("template")
    }

    fn app(annotations: serde_json::Value, env: serde_json::Value) -> PodTemplateSpec {
        template(json!({
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "app:1", "env": env}]}
        }))
    }

    #[test]
    fn literal_placeholders_env_from_and_regions() {
        let t = template(json!({
            "metadata": {"annotations": {
                "secretsinit.io/inject": "true",
                "secretsinit.io/aws-region": "eu-west-1",
                "secretsinit.io/env-from": "awssm:prod/env, awsssm:/prod/app/"
            }},
            "spec": {
                "initContainers": [{"name": "migrate", "image": "m:1", "env": [
                    {"name": "DB", "value": "awssm:prod/db#user"}
                ]}],
                "containers": [{"name": "app", "image": "app:1", "env": [
                    {"name": "DSN", "value": "postgres://${awssm:prod/db#user}:${awssm:prod/db#pass}@h/${awsssm:/prod/name}"},
                    {"name": "OLD", "value": "awssm:prod/db##AWSPREVIOUS"},
                    {"name": "ARN", "value": "awssm:arn:aws:secretsmanager:us-west-2:123456789012:secret:x-AbCdEf#k"},
                    {"name": "PIN", "value": "awssm:prod/db#k#0123-version-id"},
                    {"name": "PARAM_PIN", "value": "awsssm:/prod/p##3"},
                    {"name": "PARAM_LABEL", "value": "awsssm:/prod/p##live"},
                    {"name": "PLAIN", "value": "hello"}
                ]}]
            }
        }));
        let refs = template_refs(&t, "us-east-1");
        let mut shown: Vec<String> = refs
            .watched
            .iter()
            .map(|k| format!("{} {} {}", k.display(), k.region, k.stage))
            .collect();
        shown.sort();
        assert_eq!(
            shown,
            [
                "awssm:arn:aws:secretsmanager:us-west-2:123456789012:secret:x-AbCdEf us-west-2 AWSCURRENT",
                "awssm:prod/db (AWSPREVIOUS) eu-west-1 AWSPREVIOUS",
                "awssm:prod/db eu-west-1 AWSCURRENT",
                "awssm:prod/env eu-west-1 AWSCURRENT",
                "awsssm:/prod/name eu-west-1 ",
                "awsssm:/prod/p eu-west-1 ",
            ]
        );
        assert_eq!(
            refs.unwatched[&Unwatched::Pinned],
            BTreeSet::from([
                "awssm:prod/db (version 0123-version-id)".to_owned(),
                "awsssm:/prod/p (version 3)".to_owned()
            ])
        );
        assert_eq!(
            refs.unwatched[&Unwatched::Path],
            BTreeSet::from(["awsssm:/prod/app/".to_owned()])
        );
        assert!(refs.malformed.is_empty());
    }

    #[test]
    fn malformed_placeholders_name_container_and_variable_never_the_value() {
        let t = app(
            json!({"secretsinit.io/inject": "true", "secretsinit.io/env-from": "nope"}),
            json!([
                {"name": "BROKEN", "value": "x=${awssm:prod/db"},
                {"name": "EMPTY", "value": "awssm:"}
            ]),
        );
        let refs = template_refs(&t, "us-east-1");
        assert_eq!(refs.malformed.len(), 3, "{:?}", refs.malformed);
        assert!(refs.malformed[0].starts_with("app/BROKEN: malformed placeholder"));
        assert!(refs.malformed[1].starts_with("app/EMPTY: "));
        assert!(refs.malformed[2].starts_with("secretsinit.io/env-from: "));
        assert!(refs.watched.is_empty());
    }

    #[test]
    fn config_map_and_secret_sources_are_listed() {
        let t = template(json!({
            "spec": {"containers": [{"name": "app", "image": "a", "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "A"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "B"}}},
                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ], "envFrom": [{"configMapRef": {"name": "all"}}, {"secretRef": {"name": "alls"}}]}]}
        }));
        let mut refs = template_refs(&t, "r");
        assert_eq!(refs.env_sources.len(), 4);
        mark_sources_unwatched(&mut refs);
        assert_eq!(
            refs.unwatched[&Unwatched::ConfigMap],
            BTreeSet::from(["configmap/all".to_owned(), "configmap/cm key A".to_owned()])
        );
        assert_eq!(
            refs.unwatched[&Unwatched::Secret],
            BTreeSet::from(["secret/alls".to_owned(), "secret/s key B".to_owned()])
        );
    }

    #[test]
    fn reload_needs_inject_and_the_workload_annotation_wins() {
        let on = app(
            json!({"secretsinit.io/inject": "true", "secretsinit.io/reload": "true"}),
            json!([]),
        );
        assert_eq!(reload_mode(None, &on), Reload::On);
        let paused = BTreeMap::from([(ANNOTATION_RELOAD.to_owned(), "paused".to_owned())]);
        assert_eq!(reload_mode(Some(&paused), &on), Reload::Paused);
        let no_inject = app(json!({"secretsinit.io/reload": "true"}), json!([]));
        assert_eq!(reload_mode(None, &no_inject), Reload::Off);
        let skip = app(
            json!({"secretsinit.io/inject": "skip", "secretsinit.io/reload": "true"}),
            json!([]),
        );
        assert_eq!(reload_mode(None, &skip), Reload::Off);
        let other = app(
            json!({"secretsinit.io/inject": "true", "secretsinit.io/reload": "yes"}),
            json!([]),
        );
        assert_eq!(reload_mode(None, &other), Reload::Off);
    }
}
