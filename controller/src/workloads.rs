//! The opted-in workloads, kept current by one `kube::runtime::watcher` per kind (list, then
//! watch; a `410 Gone` or a dropped connection relists with backoff). Only what the
//! controller needs is kept of each: its key, the template's references and its reload
//! state, so memory follows the number of opted-in workloads, not the cluster's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use mutation_modes::options::{ANNOTATION_RESTART_REASON, ANNOTATION_RESTARTED_AT};
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;
use crate::refs::{self, Reload, TemplateRefs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Deployment, Kind::StatefulSet, Kind::DaemonSet];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What the controller keeps of one opted-in workload.
#[derive(Debug, Clone)]
pub struct Workload {
    pub key: WorkloadKey,
    pub uid: Option<String>,
    pub reload: Reload,
    pub refs: TemplateRefs,
    /// The template's region (annotation, else the default), for values read from
    /// ConfigMaps and Secrets with `--follow-refs`.
    pub region: String,
    /// The template's `secretsinit.io/restartedAt`.
    pub restarted_at: Option<SystemTime>,
    /// The template's `secretsinit.io/restart-reason`.
    pub restart_reason: Option<String>,
}

/// The workloads of every kind and what has synced.
#[derive(Debug, Default)]
pub struct Index {
    pub workloads: BTreeMap<WorkloadKey, Arc<Workload>>,
    synced: BTreeSet<Kind>,
    /// With `--namespace-selector`: the matching namespaces (None until listed).
    namespaces: Option<BTreeSet<String>>,
    namespaces_required: bool,
}

impl Index {
    pub fn synced(&self) -> bool {
        self.synced.len() == Kind::ALL.len()
            && (!self.namespaces_required || self.namespaces.is_some())
    }

    /// The opted-in workloads in selected namespaces.
    pub fn selected(&self) -> impl Iterator<Item = &Arc<Workload>> {
        self.workloads.values().filter(|w| {
            !self.namespaces_required
                || self
                    .namespaces
                    .as_ref()
                    .is_some_and(|n| n.contains(&w.key.namespace))
        })
    }

    pub fn get(&self, key: &WorkloadKey) -> Option<&Arc<Workload>> {
        self.workloads.get(key).filter(|w| {
            !self.namespaces_required
                || self
                    .namespaces
                    .as_ref()
                    .is_some_and(|n| n.contains(&w.key.namespace))
        })
    }
}

pub type Shared = Arc<RwLock<Index>>;

pub fn shared(namespace_selector: bool) -> Shared {
    Arc::new(RwLock::new(Index {
        namespaces_required: namespace_selector,
        ..Index::default()
    }))
}

/// Reads the parts every workload kind shares.
pub trait HasTemplate:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static
{
    const KIND: Kind;
    fn template(&self) -> Option<&PodTemplateSpec>;
}

impl HasTemplate for Deployment {
    const KIND: Kind = Kind::Deployment;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl HasTemplate for StatefulSet {
    const KIND: Kind = Kind::StatefulSet;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl HasTemplate for DaemonSet {
    const KIND: Kind = Kind::DaemonSet;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

/// What the watchers need besides the API.
#[derive(Debug, Clone)]
pub struct Context {
    pub default_region: String,
    pub metrics: Metrics,
    /// (workload, generation) whose malformed placeholders were already logged.
    pub logged: Arc<Mutex<HashMap<WorkloadKey, Option<i64>>>>,
}

fn key_of(kind: Kind, meta: &ObjectMeta) -> Option<WorkloadKey> {
    Some(WorkloadKey {
        kind,
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
    })
}

/// The controller's view of an object, or None when it does not opt in.
pub fn view<K: HasTemplate>(object: &K, ctx: &Context) -> Option<Workload> {
    let meta = object.meta();
    let key = key_of(K::KIND, meta)?;
    let template = object.template()?;
    let reload = refs::reload_mode(meta.annotations.as_ref(), template);
    if reload == Reload::Off {
        return None;
    }
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    let region = annotations
        .and_then(|a| a.get(mutation_modes::options::ANNOTATION_AWS_REGION))
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| ctx.default_region.clone());
    let refs = refs::template_refs(template, &ctx.default_region);
    if !refs.malformed.is_empty() {
        let mut logged = ctx.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.get(&key) != Some(&meta.generation) {
            logged.insert(key.clone(), meta.generation);
            for problem in &refs.malformed {
                ctx.metrics.malformed.inc();
                tracing::warn!(workload = %key, generation = meta.generation.unwrap_or(0), problem = %problem, "malformed placeholder in a watched template: that reference is not watched; fix the workload's env (the webhook will deny its pods too)");
            }
        }
    }
    let restarted_at = annotations
        .and_then(|a| a.get(ANNOTATION_RESTARTED_AT))
        .and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok());
    Some(Workload {
        key,
        uid: meta.uid.clone(),
        reload,
        refs,
        region,
        restarted_at,
        restart_reason: annotations
            .and_then(|a| a.get(ANNOTATION_RESTART_REASON))
            .cloned(),
    })
}

/// Keeps `shared` current with every object of kind `K`, until the stream ends (never,
/// unless the runtime shuts down).
pub async fn watch<K: HasTemplate>(client: Client, shared: Shared, ctx: Context) {
    let api: Api<K> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer: Option<BTreeMap<WorkloadKey, Arc<Workload>>> = None;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(kind = K::KIND.as_str(), error = %e, "watching workloads failed; retrying with backoff");
                continue;
            }
        };
        match event {
            Event::Init => buffer = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                if let (Some(b), Some(w)) = (buffer.as_mut(), view(&o, &ctx)) {
                    b.insert(w.key.clone(), Arc::new(w));
                }
            }
            Event::InitDone => {
                let fresh = buffer.take().unwrap_or_default();
                let mut index = shared.write().unwrap_or_else(|e| e.into_inner());
                index.workloads.retain(|k, _| k.kind != K::KIND);
                let n = fresh.len();
                index.workloads.extend(fresh);
                if index.synced.insert(K::KIND) {
                    tracing::info!(kind = K::KIND.as_str(), opted_in = n, "workloads listed");
                }
            }
            Event::Apply(o) => {
                let Some(key) = key_of(K::KIND, o.meta()) else {
                    continue;
                };
                let w = view(&o, &ctx);
                let mut index = shared.write().unwrap_or_else(|e| e.into_inner());
                match w {
                    Some(w) => {
                        index.workloads.insert(key, Arc::new(w));
                    }
                    None => {
                        index.workloads.remove(&key);
                    }
                }
            }
            Event::Delete(o) => {
                if let Some(key) = key_of(K::KIND, o.meta()) {
                    shared
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .workloads
                        .remove(&key);
                    ctx.logged
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                }
            }
        }
    }
}

/// Asks the API server to parse `--namespace-selector` (a one-item list), so a malformed
/// selector stops the start with the server's own words instead of a watcher that retries
/// forever behind a /readyz 503. Other failures (API server not reachable yet, RBAC) are
/// left to the watcher, which retries and logs them.
pub async fn check_namespace_selector(client: &Client, selector: &str) -> Result<(), String> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api
        .list_metadata(&ListParams::default().labels(selector).limit(1))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 400 => Err(format!(
            "--namespace-selector {selector:?} is not a valid label selector: {}",
            e.message
        )),
        Err(kube::Error::Api(e)) if e.code == 403 => {
            tracing::warn!(selector, error = %e.message, "cannot list namespaces: grant list and watch on namespaces (the chart does when controller.namespaceSelector is set)");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(selector, error = %e, "could not check --namespace-selector now; the namespace watch retries");
            Ok(())
        }
        Ok(_) => Ok(()),
    }
}

/// With `--namespace-selector`: keeps the set of matching namespaces current.
pub async fn watch_namespaces(client: Client, selector: String, shared: Shared) {
    let api: Api<Namespace> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default().labels(&selector))
        .default_backoff()
        .boxed();
    let mut buffer: Option<BTreeSet<String>> = None;
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "watching namespaces failed; retrying with backoff");
                continue;
            }
        };
        let name = |n: &Namespace| n.metadata.name.clone();
        match event {
            Event::Init => buffer = Some(BTreeSet::new()),
            Event::InitApply(n) => {
                if let (Some(b), Some(name)) = (buffer.as_mut(), name(&n)) {
                    b.insert(name);
                }
            }
            Event::InitDone => {
                let fresh = buffer.take().unwrap_or_default();
                shared.write().unwrap_or_else(|e| e.into_inner()).namespaces = Some(fresh);
            }
            Event::Apply(n) => {
                if let Some(name) = name(&n) {
                    let mut index = shared.write().unwrap_or_else(|e| e.into_inner());
                    index
                        .namespaces
                        .get_or_insert_with(BTreeSet::new)
                        .insert(name);
                }
            }
            Event::Delete(n) => {
                if let Some(name) = name(&n) {
                    let mut index = shared.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(set) = index.namespaces.as_mut() {
                        set.remove(&name);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context {
            default_region: "us-east-1".into(),
            metrics: Metrics::new(),
            logged: Arc::default(),
        }
    }

    fn deployment(generation: i64, env_value: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "team", "uid": "u", "generation": generation},
            "spec": {"selector": {}, "template": {
                "metadata": {"annotations": {
                    "secretsinit.io/inject": "true", "secretsinit.io/reload": "true",
                    "secretsinit.io/restartedAt": "2026-12-06T10:00:00Z"
                }},
                "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "V", "value": env_value}]}]}
            }}
        }))
        .expect("deployment")
    }

    #[test]
    fn a_view_keeps_refs_and_restarted_at_and_logs_malformed_once_per_generation() {
        let c = ctx();
        let w = view(&deployment(1, "awssm:prod/db#k"), &c).expect("opted in");
        assert_eq!(w.key.to_string(), "Deployment/team/app");
        assert_eq!(w.refs.watched.len(), 1);
        assert!(w.restarted_at.is_some());
        for _ in 0..3 {
            view(&deployment(2, "${awssm:broken"), &c).expect("still opted in");
        }
        assert_eq!(c.metrics.malformed.get(), 1);
        view(&deployment(3, "${awssm:broken"), &c).expect("opted in");
        assert_eq!(c.metrics.malformed.get(), 2);
    }
}
