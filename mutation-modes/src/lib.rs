//! Pure pod mutation for secrets-init (contract §4–§5): a Pod in, a JSON patch (or a denial
//! message) out. The only I/O is reading image configs, behind [`ImageConfigSource`].
//!
//! [`mutate_pod`] runs four steps: the annotations say whether to go on, [`plan`] says what
//! to do with which container, [`look_up`] reads the image configs the plan needs (the only
//! I/O), [`build_patch`] writes the JSON patch. The webhook runs the two CPU steps where they
//! cannot hold up other requests, the I/O step on its runtime.
//!
//! Every step is linear in the size of the pod, and every message echoing the pod is bounded
//! ([`bounded`]): the pod is not validated yet when the webhook sees it, and anyone who may
//! create a pod may send one of megabytes. Behaviour choices are documented in the crate's
//! README.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use futures::{StreamExt as _, TryStreamExt as _};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde_json::Value;

pub mod bounded;
pub mod command;
pub mod config;
pub mod error;
pub mod image;
pub mod modes;
pub mod options;
pub mod select;
pub mod sparse;

pub use command::{Flags, SECRETS_INIT_BIN};
pub use config::MutationConfig;
pub use error::MutationError;
pub use image::{
    ImageConfig, ImageConfigError, ImageConfigSource, MAX_REFERENCE_BYTES, Platform,
    parse_reference,
};
pub use modes::image_swap::{DEFAULT_TEMPLATE, SwapTemplate};
pub use modes::init_container::RunAsUser;
pub use modes::{BIN_MOUNT_PATH, ImageSwap, InitContainer, ModeKind, MutationMode, SharedVolume};
pub use options::*;
pub use select::{ContainerKind, Selected};
pub use sparse::SparsePod;

/// Base name of the volume that carries the binary (`-1`, `-2`, ... appended when taken).
pub const VOLUME_NAME: &str = "secrets-init-bin";
/// Base name of the injected init container (`-1`, `-2`, ... appended when taken).
pub const INIT_CONTAINER_NAME: &str = "secrets-init";
/// Node selector keys that choose the image platform.
pub const NODE_SELECTOR_ARCH: &str = "kubernetes.io/arch";
pub const NODE_SELECTOR_OS: &str = "kubernetes.io/os";
/// Most bytes the secrets-init flags may add to a pod, over all its wrapped commands and
/// probes. The flags (region, env-from references, role) repeat on every one of them, so a
/// pod of many small containers and a long `secretsinit.io/env-from` would multiply into a
/// patch far larger than the request; and a pod past ~1.5 MiB cannot be stored in etcd
/// anyway. Real pods add a few hundred bytes.
pub const MAX_ADDED_FLAG_BYTES: usize = 1 << 20;
/// Image configs read at once for one pod. Pods name a handful of distinct images; a pod
/// naming thousands must not open thousands of registry connections at once (the request
/// deadline bounds the rest).
pub const LOOKUPS_AT_ONCE: usize = 16;

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Pod left untouched (inject absent/"skip", already injected, or nothing to mutate).
    /// `warnings` go into `AdmissionResponse.warnings`.
    Skipped {
        reason: String,
        warnings: Vec<String>,
    },
    /// Apply `patch` to the pod.
    Mutated {
        mode: ModeKind,
        patch: json_patch::Patch,
        warnings: Vec<String>,
    },
}

/// The image platform for a pod: its `kubernetes.io/arch` / `kubernetes.io/os` node selector,
/// else `spec.os.name` for the OS; default `linux/amd64`. Node affinity is not consulted.
pub fn platform_of(spec: &PodSpec) -> Platform {
    let selector = spec.node_selector.as_ref();
    let get = |k: &str| selector.and_then(|s| s.get(k)).cloned();
    Platform {
        os: get(NODE_SELECTOR_OS)
            .or_else(|| spec.os.as_ref().map(|o| o.name.clone()))
            .unwrap_or_else(|| "linux".to_owned()),
        architecture: get(NODE_SELECTOR_ARCH).unwrap_or_else(|| "amd64".to_owned()),
        variant: None,
    }
}

/// `base`, or `base-1`, `base-2`, ... — the first that `taken` does not contain.
pub fn unique_name(base: &str, taken: &BTreeSet<&str>) -> String {
    if !taken.contains(base) {
        return base.to_owned();
    }
    (1..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken.contains(n.as_str()))
        .unwrap_or_else(|| base.to_owned())
}

fn container<'a>(spec: &'a PodSpec, s: &Selected) -> &'a Container {
    match s.kind {
        ContainerKind::Init => &spec.init_containers.as_deref().unwrap_or_default()[s.index],
        ContainerKind::Main => &spec.containers[s.index],
    }
}

fn skipped(reason: impl Into<String>) -> Decision {
    Decision::Skipped {
        reason: reason.into(),
        warnings: Vec::new(),
    }
}

/// A mount that would hide (or sit inside) the binary's directory.
fn check_mount_paths(who: &Selected, c: &Container) -> Result<(), MutationError> {
    for m in c.volume_mounts.iter().flatten() {
        let p = m.mount_path.trim_end_matches('/');
        if p == "/secrets-init" || p == BIN_MOUNT_PATH || p.starts_with("/secrets-init/bin/") {
            return Err(MutationError::MountPathTaken {
                container: who.to_string(),
                path: bounded::clip(&m.mount_path, bounded::VALUE_BYTES),
            });
        }
    }
    Ok(())
}

/// One selected container and the image whose config decides its program.
#[derive(Debug)]
struct ContainerPlan {
    who: Selected,
    /// The image as written in the pod (for messages).
    image: Option<String>,
    /// The image the mutated container runs (image-swap: the variant).
    run_image: Option<String>,
    look_up: bool,
    /// The pod spec does not give the program (the image config decides it).
    needs_program: bool,
}

/// What [`plan`] decided: the pod is left alone, or mutated as the [`Plan`] says.
#[derive(Debug)]
pub enum Planned {
    Done(Decision),
    Mutate(Plan),
}

/// How one pod is mutated: the mode, the flags, the selected containers and the images to
/// read. Owns its data (no borrow of the pod), so the steps around it may run on other
/// threads.
#[derive(Debug)]
pub struct Plan {
    mode: ModeKind,
    strategy: Box<dyn MutationMode>,
    flags: Flags,
    mutate_probes: bool,
    platform: Platform,
    containers: Vec<ContainerPlan>,
    /// For the AdmissionResponse of the mutated pod.
    warnings: Vec<String>,
}

impl Plan {
    pub fn mode(&self) -> ModeKind {
        self.mode
    }

    /// True when [`look_up`] has anything to read.
    pub fn needs_image_configs(&self) -> bool {
        self.containers
            .iter()
            .any(|p| p.look_up && p.run_image.is_some())
    }

    /// The distinct images to read, each with the containers that need it.
    fn lookups(&self) -> BTreeMap<&str, Vec<&ContainerPlan>> {
        let mut wanted: BTreeMap<&str, Vec<&ContainerPlan>> = BTreeMap::new();
        for p in self.containers.iter().filter(|p| p.look_up) {
            if let Some(img) = p.run_image.as_deref() {
                wanted.entry(img).or_default().push(p);
            }
        }
        wanted
    }
}

/// The image configs a [`Plan`] needs, by image.
#[derive(Debug, Default)]
pub struct ImageConfigs(HashMap<String, ImageConfig>);

/// Decides what to do with `pod` and, when it is mutated, returns the JSON patch.
///
/// Image configs are read (at most [`LOOKUPS_AT_ONCE`] at a time, once per distinct image)
/// only for containers whose program the pod spec does not give, and in image-swap mode for
/// every variant (to check it exists).
pub async fn mutate_pod<S: ImageConfigSource>(
    pod: &Pod,
    config: &MutationConfig,
    images: &S,
) -> Result<Decision, MutationError> {
    let plan = match plan(pod, config)? {
        Planned::Done(decision) => return Ok(decision),
        Planned::Mutate(plan) => plan,
    };
    let configs = look_up(&plan, images).await?;
    build_patch(pod, &plan, &configs)
}

/// Step 1: the `secretsinit.io/*` annotations say whether to go on, and how.
fn gate(pod: &Pod) -> Result<ControlFlow<Decision, PodOptions>, MutationError> {
    let annotations = pod.metadata.annotations.as_ref();
    match Inject::from_annotations(annotations)? {
        Inject::Absent => {
            return Ok(ControlFlow::Break(Decision::Skipped {
                reason: format!("no {ANNOTATION_INJECT} annotation"),
                warnings: unannotated_placeholders(pod).into_iter().collect(),
            }));
        }
        Inject::Skip => {
            return Ok(ControlFlow::Break(skipped(format!(
                "{ANNOTATION_INJECT} is \"skip\""
            ))));
        }
        Inject::True => {}
    }
    if let Some(mode) = annotations.and_then(|a| a.get(ANNOTATION_INJECTED)) {
        return Ok(ControlFlow::Break(skipped(format!(
            "already injected ({ANNOTATION_INJECTED}: {})",
            bounded::quoted(mode)
        ))));
    }
    PodOptions::from_annotations(annotations).map(ControlFlow::Continue)
}

/// A warning when a pod without `secretsinit.io/inject` has placeholders in its env values:
/// nothing will resolve them, and the app would take the placeholder text for the secret.
fn unannotated_placeholders(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let (container, variable) = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find_map(|c| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.value.as_deref().is_some_and(select::is_placeholder))
                .map(|e| (c.name.as_str(), e.name.as_str()))
        })?;
    Some(format!(
        "secrets-init: env holds placeholders (container {}, variable {}) but the pod has no \
         {ANNOTATION_INJECT}: \"true\": they will reach the app unresolved",
        bounded::quoted(bounded::prefix(container, 63)),
        bounded::quoted(bounded::prefix(variable, 63)),
    ))
}

/// Kubernetes' own expansion of `$$` in an env value (to `$`), which happens before
/// secrets-init sees the value; `$(VAR)` references are left as written (their values are not
/// known here, and cannot make a placeholder malformed).
fn kubelet_unescaped(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains("$$") {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && chars.peek() == Some(&'$') {
            chars.next();
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Contract §4: every literal placeholder of a selected container is parsed as secrets-init
/// will parse it, so a malformed one is denied at `kubectl apply` instead of crash-looping
/// the container (exit 2).
fn check_placeholders(who: &Selected, c: &Container) -> Result<(), MutationError> {
    for e in c.env.iter().flatten() {
        let Some(value) = e.value.as_deref().filter(|v| select::is_placeholder(v)) else {
            continue;
        };
        if let Err(problem) = placeholder::parse_value(&kubelet_unescaped(value)) {
            return Err(MutationError::MalformedPlaceholder {
                container: who.to_string(),
                variable: bounded::quoted(&e.name),
                problem: bounded::clip(&problem.to_string(), 1024),
            });
        }
    }
    Ok(())
}

/// Steps 1 and 2: gate on the annotations, select the containers, choose the strategy and
/// what each selected container needs. Pure and linear in the size of the pod.
pub fn plan(pod: &Pod, config: &MutationConfig) -> Result<Planned, MutationError> {
    let mut opts = match gate(pod)? {
        ControlFlow::Break(decision) => return Ok(Planned::Done(decision)),
        ControlFlow::Continue(opts) => opts,
    };
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Planned::Done(Decision::Skipped {
            reason: "the pod has no spec".to_owned(),
            warnings: vec!["secrets-init: the pod has no spec; nothing was injected".to_owned()],
        }));
    };

    let selected = select::select(spec, opts.containers.as_deref(), !opts.env_from.is_empty())?;
    let mut warnings = std::mem::take(&mut opts.warnings);
    if selected.is_empty() {
        return Ok(Planned::Done(Decision::Skipped {
            reason: "no container could see a placeholder".to_owned(),
            // At most 256 bytes, as the API asks of warnings.
            warnings: [format!(
                "secrets-init: {ANNOTATION_INJECT} is \"true\" but no container can see a placeholder \
                 (env value with awssm:, envFrom, or valueFrom of a ConfigMap/Secret): pod admitted \
                 unchanged; to mutate containers anyway, name them in {ANNOTATION_CONTAINERS}"
            )]
            .into_iter()
            .chain(warnings)
            .collect(),
        }));
    }
    if opts.mutate_probes && spec.share_process_namespace == Some(true) {
        warnings.push(format!(
            "secrets-init: {ANNOTATION_MUTATE_PROBES} with shareProcessNamespace: true: PID 1 is \
             the pause process, so every probe run reads its secrets from AWS"
        ));
    }

    let platform = platform_of(spec);
    if platform.os != "linux" {
        return Err(MutationError::UnsupportedOs {
            os: bounded::clip(&platform.os, bounded::VALUE_BYTES),
        });
    }
    let mode = opts.mode.unwrap_or(config.default_mode);
    let strategy = strategy(mode, spec, &opts, config);

    let flags = Flags {
        region: opts.region.or_else(|| config.default_region.clone()),
        ignore_missing: opts.ignore_missing,
        env_from: std::mem::take(&mut opts.env_from),
        role_arn: opts.role_arn.take(),
        role_external_id: opts.role_external_id.take(),
    };
    let wraps: usize = selected
        .iter()
        .map(|who| {
            let c = container(spec, who);
            let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
                .into_iter()
                .filter(|p| opts.mutate_probes && p.as_ref().is_some_and(|p| p.exec.is_some()))
                .count();
            1 + probes
        })
        .sum();
    let added = wraps.saturating_mul(flags.wrap(Vec::new(), true).iter().map(String::len).sum());
    if added > MAX_ADDED_FLAG_BYTES {
        return Err(MutationError::TooManyFlags {
            added,
            limit: MAX_ADDED_FLAG_BYTES,
        });
    }

    let mut containers = Vec::with_capacity(selected.len());
    for who in selected {
        let c = container(spec, &who);
        check_mount_paths(&who, c)?;
        check_placeholders(&who, c)?;
        let run_image = strategy.run_image(&who, c)?;
        let needs_program = command::needs_image_config(c);
        let look_up = strategy.always_look_up() || needs_program;
        if look_up {
            let Some(image) = run_image.as_deref() else {
                return Err(MutationError::NoImage {
                    container: who.to_string(),
                    why: "the pod sets no command, so the program must be read from the image config; set image (or command)".to_owned(),
                });
            };
            if image.len() > MAX_REFERENCE_BYTES {
                return Err(MutationError::InvalidImage {
                    what: format!("the image of {who}"),
                    image: bounded::quoted(image),
                    reason: format!(
                        "it is {} bytes long, and an image reference is at most {MAX_REFERENCE_BYTES}",
                        image.len()
                    ),
                });
            }
        }
        containers.push(ContainerPlan {
            image: c.image.clone(),
            who,
            run_image,
            look_up,
            needs_program,
        });
    }
    Ok(Planned::Mutate(Plan {
        mode,
        strategy,
        flags,
        mutate_probes: opts.mutate_probes,
        platform,
        containers,
        warnings,
    }))
}

/// The strategy for `mode`, with names that do not clash with the pod's.
fn strategy(
    mode: ModeKind,
    spec: &PodSpec,
    opts: &PodOptions,
    config: &MutationConfig,
) -> Box<dyn MutationMode> {
    let image = opts
        .secrets_init_image
        .clone()
        .unwrap_or_else(|| config.secrets_init_image.clone());
    let volumes = || -> BTreeSet<&str> {
        spec.volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect()
    };
    match mode {
        ModeKind::InitContainer => {
            let containers: BTreeSet<&str> = spec
                .init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
                .map(|c| c.name.as_str())
                .chain(
                    spec.ephemeral_containers
                        .iter()
                        .flatten()
                        .map(|c| c.name.as_str()),
                )
                .collect();
            Box::new(InitContainer {
                image,
                volume: unique_name(VOLUME_NAME, &volumes()),
                container_name: unique_name(INIT_CONTAINER_NAME, &containers),
                cpu: config.init_container_cpu.clone(),
                memory: config.init_container_memory.clone(),
                run_as_user: config.run_as_user,
            })
        }
        ModeKind::SharedVolume => Box::new(SharedVolume {
            image,
            volume: unique_name(VOLUME_NAME, &volumes()),
        }),
        ModeKind::ImageSwap => Box::new(ImageSwap {
            template: config.image_swap_template.clone(),
        }),
    }
}

/// Step 3, the only I/O: the image configs the plan needs, at most [`LOOKUPS_AT_ONCE`] at a
/// time.
pub async fn look_up<S: ImageConfigSource>(
    plan: &Plan,
    images: &S,
) -> Result<ImageConfigs, MutationError> {
    // The futures are made first and the stream only buffers them: a closure inside the
    // stream would make the future not `Send` (rust-lang/rust#102211).
    let lookups: Vec<_> = plan
        .lookups()
        .into_iter()
        .map(|(image, users)| look_up_one(plan, images, image, users))
        .collect();
    let found: HashMap<String, ImageConfig> = futures::stream::iter(lookups)
        .buffered(LOOKUPS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(ImageConfigs(found))
}

async fn look_up_one<S: ImageConfigSource>(
    plan: &Plan,
    images: &S,
    image: &str,
    users: Vec<&ContainerPlan>,
) -> Result<(String, ImageConfig), MutationError> {
    match images.image_config(image, &plan.platform).await {
        Ok(cfg) => Ok((image.to_owned(), cfg)),
        Err(ImageConfigError::NotFound { .. }) if plan.mode == ModeKind::ImageSwap => {
            Err(MutationError::VariantMissing {
                container: users[0].who.to_string(),
                image: bounded::clip(
                    users[0].image.as_deref().unwrap_or_default(),
                    bounded::VALUE_BYTES,
                ),
                variant: image.to_owned(),
            })
        }
        Err(source) => Err(MutationError::ImageConfig {
            doing: if users.iter().any(|p| p.needs_program) {
                "work out the program of"
            } else {
                "check the image-swap variant of"
            }
            .to_owned(),
            containers: bounded::list(users.iter().map(|p| &p.who)),
            source,
        }),
    }
}

/// Step 4: the JSON patch. Pure and linear in the size of the pod: only the changed parts
/// (the selected containers' touched fields, the volumes, one annotation and one label) are
/// copied and compared, not the whole pod (cloning and serializing a full pod twice to diff
/// it cost most of the admission: BENCHMARKS.md, "Mutation core").
pub fn build_patch(
    pod: &Pod,
    plan: &Plan,
    configs: &ImageConfigs,
) -> Result<Decision, MutationError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(skipped("the pod has no spec"));
    };
    let mut patch = Vec::with_capacity(plan.containers.len() * 3 + 3);
    for p in &plan.containers {
        let c = container(spec, &p.who);
        let run_image = p.run_image.as_deref();
        let argv = command::original_argv(
            &p.who,
            c,
            run_image.unwrap_or_default(),
            run_image.and_then(|i| configs.0.get(i)),
        )?;
        container_ops(&mut patch, plan, &p.who, c, argv, run_image);
    }
    let additions = plan.strategy.pod_additions();
    if !additions.volumes.is_empty() {
        match &spec.volumes {
            None => patch.push(add(
                PointerBuf::from_tokens(["spec", "volumes"]),
                to_json(&additions.volumes),
            )),
            Some(existing) => {
                for (i, v) in additions.volumes.iter().enumerate() {
                    let mut at = PointerBuf::from_tokens(["spec", "volumes"]);
                    at.push_back(existing.len() + i);
                    patch.push(add(at, to_json(v)));
                }
            }
        }
    }
    let mode = Value::String(plan.mode.to_string());
    patch.push(metadata_entry(
        "annotations",
        pod.metadata.annotations.is_some(),
        ANNOTATION_INJECTED,
        mode.clone(),
    ));
    // The same mark as a label (the mode names are valid label values), so that
    // secrets-init-controller can watch only injected pods, by label selector.
    patch.push(metadata_entry(
        "labels",
        pod.metadata.labels.is_some(),
        LABEL_INJECTED,
        mode,
    ));
    if let Some(init) = additions.init_container {
        // Inserting is a separate `add .../initContainers/0` op (applied last), so the patch
        // never rewrites the user's init containers just because their indexes shifted.
        let value = to_json(&init);
        patch.push(match spec.init_containers {
            Some(_) => add(
                PointerBuf::from_tokens(["spec", "initContainers", "0"]),
                value,
            ),
            None => add(
                PointerBuf::from_tokens(["spec", "initContainers"]),
                Value::Array(vec![value]),
            ),
        });
    }
    Ok(Decision::Mutated {
        mode: plan.mode,
        patch: json_patch::Patch(patch),
        warnings: plan.warnings.clone(),
    })
}

/// The patch operations for one mutated container, written directly (the container is
/// neither copied nor serialized): its command replaced by the wrapped one, its args removed,
/// its exec probes wrapped (with `mutate-probes`), and the mode's mount or image. An array
/// that changes is replaced whole; a mount is appended. (Cloning the container and diffing
/// its serialized fields before and after cost most of the mutation: BENCHMARKS.md.)
fn container_ops(
    patch: &mut Vec<PatchOperation>,
    plan: &Plan,
    who: &Selected,
    c: &Container,
    argv: Vec<String>,
    run_image: Option<&str>,
) {
    let list = match who.kind {
        ContainerKind::Init => "initContainers",
        ContainerKind::Main => "containers",
    };
    let at = |field: &str| {
        let mut p = PointerBuf::from_tokens(["spec", list]);
        p.push_back(who.index);
        p.push_back(field);
        p
    };
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    patch.push(set(
        at("command"),
        c.command.is_some(),
        strings(plan.flags.wrap(argv, false)),
    ));
    if c.args.is_some() {
        patch.push(PatchOperation::Remove(RemoveOperation { path: at("args") }));
    }
    if plan.mutate_probes {
        let probes = [
            ("livenessProbe", &c.liveness_probe),
            ("readinessProbe", &c.readiness_probe),
            ("startupProbe", &c.startup_probe),
        ];
        for (field, probe) in probes {
            let Some(cmd) = probe
                .as_ref()
                .and_then(|p| p.exec.as_ref())
                .and_then(|e| e.command.as_ref())
                .filter(|c| !c.is_empty())
            else {
                continue;
            };
            let mut path = at(field);
            path.push_back("exec");
            path.push_back("command");
            let argv = cmd.iter().map(|s| command::escape_spec(s)).collect();
            patch.push(PatchOperation::Replace(ReplaceOperation {
                path,
                value: strings(plan.flags.wrap(argv, true)),
            }));
        }
    }
    let change = plan.strategy.container_change(run_image);
    if let Some(image) = change.image {
        patch.push(set(at("image"), c.image.is_some(), Value::String(image)));
    }
    if let Some(mount) = change.mount {
        patch.push(match &c.volume_mounts {
            Some(mounts) => {
                let mut path = at("volumeMounts");
                path.push_back(mounts.len());
                add(path, to_json(&mount))
            }
            None => add(at("volumeMounts"), Value::Array(vec![to_json(&mount)])),
        });
    }
}

/// `add` of `key: value` to the map `metadata.<map>`: the whole map when the pod has none, else
/// the one entry (`/` in the key escaped by the pointer, `secretsinit.io~1injected`; an entry
/// already there is replaced, as `add` does on an object).
fn metadata_entry(map: &str, exists: bool, key: &str, value: Value) -> PatchOperation {
    if exists {
        add(PointerBuf::from_tokens(["metadata", map, key]), value)
    } else {
        add(
            PointerBuf::from_tokens(["metadata", map]),
            Value::Object([(key.to_owned(), value)].into_iter().collect()),
        )
    }
}

/// `replace` a field that is there, `add` one that is not.
fn set(path: PointerBuf, present: bool, value: Value) -> PatchOperation {
    if present {
        PatchOperation::Replace(ReplaceOperation { path, value })
    } else {
        add(path, value)
    }
}

/// k8s-openapi types serialize to JSON without failing (strings, numbers, maps with string
/// keys); `Null` is never reached.
fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    struct NoImages;
    impl ImageConfigSource for NoImages {
        async fn image_config(
            &self,
            image: &str,
            _: &Platform,
        ) -> Result<ImageConfig, ImageConfigError> {
            Err(ImageConfigError::NotFound {
                image: image.to_owned(),
            })
        }
    }

    #[test]
    fn future_is_send() {
        let pod = Pod::default();
        let config = MutationConfig::default();
        assert_send(mutate_pod(&pod, &config, &NoImages));
    }

    #[test]
    fn platforms() {
        use k8s_openapi::api::core::v1::PodOS;
        let spec = |selector: &[(&str, &str)], os: Option<&str>| PodSpec {
            node_selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            os: os.map(|o| PodOS { name: o.into() }),
            ..Default::default()
        };
        let cases = [
            (spec(&[], None), "linux/amd64"),
            (spec(&[(NODE_SELECTOR_ARCH, "arm64")], None), "linux/arm64"),
            (
                spec(
                    &[(NODE_SELECTOR_OS, "linux"), (NODE_SELECTOR_ARCH, "arm64")],
                    None,
                ),
                "linux/arm64",
            ),
            (spec(&[], Some("windows")), "windows/amd64"),
            (
                spec(&[(NODE_SELECTOR_OS, "linux")], Some("windows")),
                "linux/amd64",
            ),
            (
                spec(&[("topology.kubernetes.io/zone", "a")], None),
                "linux/amd64",
            ),
        ];
        for (s, want) in cases {
            assert_eq!(platform_of(&s).to_string(), want, "{:?}", s.node_selector);
        }
    }

    /// A pod with a command (no image config is read), with these labels and extra annotations.
    fn command_pod(labels: Option<&[(&str, &str)]>, annotations: &[(&str, &str)]) -> Pod {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p",
                "labels": labels.map(map),
                "annotations": map(&[&[(ANNOTATION_INJECT, "true")], annotations].concat()),
            },
            "spec": {"containers": [{
                "name": "app", "image": "registry.example/app:1", "command": ["/app"],
                "env": [{"name": "A", "value": "awssm:prod/a"}],
            }]},
        }))
        .unwrap()
    }

    /// Every image (and image-swap variant) exists.
    struct AnyImage;
    impl ImageConfigSource for AnyImage {
        async fn image_config(
            &self,
            _: &str,
            _: &Platform,
        ) -> Result<ImageConfig, ImageConfigError> {
            Ok(ImageConfig::default())
        }
    }

    fn run(pod: &Pod, mode: ModeKind) -> Decision {
        let config = MutationConfig {
            default_mode: mode,
            ..MutationConfig::default()
        };
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(mutate_pod(pod, &config, &AnyImage))
            .unwrap()
    }

    #[test]
    fn the_injected_label_is_added_to_the_labels_or_as_them() {
        for mode in ModeKind::ALL {
            for labels in [None, Some(&[][..]), Some(&[("app", "x")][..])] {
                let pod = command_pod(labels, &[]);
                let Decision::Mutated { patch, .. } = run(&pod, mode) else {
                    panic!("{mode}: not mutated");
                };
                let ops = serde_json::to_value(&patch).unwrap();
                let label_ops: Vec<&Value> = ops
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|op| op["path"].as_str().unwrap().starts_with("/metadata/labels"))
                    .collect();
                let want = match labels {
                    None => serde_json::json!({"op": "add", "path": "/metadata/labels",
                        "value": {"secretsinit.io/injected": mode.as_str()}}),
                    Some(_) => serde_json::json!({"op": "add",
                        "path": "/metadata/labels/secretsinit.io~1injected",
                        "value": mode.as_str()}),
                };
                assert_eq!(label_ops, [&want], "{mode}, labels {labels:?}");
                let mut doc = serde_json::to_value(&pod).unwrap();
                json_patch::patch(&mut doc, &patch).unwrap();
                let mut want_labels: BTreeMap<String, String> = labels
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                want_labels.insert(LABEL_INJECTED.to_owned(), mode.to_string());
                assert_eq!(
                    doc["metadata"]["labels"],
                    serde_json::to_value(want_labels).unwrap()
                );
            }
        }
    }

    /// Kubernetes' label value rule: at most 63 characters, alphanumerics, `-`, `_`, `.`,
    /// beginning and ending with an alphanumeric.
    #[test]
    fn every_mode_name_is_a_valid_label_value() {
        for mode in ModeKind::ALL {
            let v = mode.as_str();
            let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
            assert!(
                v.len() <= 63
                    && alnum(v.chars().next())
                    && alnum(v.chars().last())
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "{v}"
            );
        }
    }

    #[test]
    fn the_controllers_annotations_draw_no_warning() {
        let pod = command_pod(
            Some(&[("app", "x")]),
            &[
                (ANNOTATION_RELOAD, "true"),
                (ANNOTATION_RESTARTED_AT, "2025-01-02T03:04:05Z"),
                (ANNOTATION_RESTART_REASON, "awssm:prod/a AWSCURRENT=v2"),
            ],
        );
        match run(&pod, ModeKind::InitContainer) {
            Decision::Mutated { warnings, .. } => assert!(warnings.is_empty(), "{warnings:?}"),
            other => panic!("not mutated: {other:?}"),
        }
    }

    #[test]
    fn unique_names() {
        let taken: BTreeSet<&str> = ["a", "a-1", "b-1"].into();
        assert_eq!(unique_name("a", &taken), "a-2");
        assert_eq!(unique_name("b", &taken), "b");
    }
}
