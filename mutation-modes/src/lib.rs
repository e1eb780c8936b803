//! Pure pod mutation for secrets-init (contract §4–§5): a Pod in, a JSON patch (or a
//! denial message) out. The only I/O is reading image configs, behind [`ImageConfigSource`].
//!
//! - [`options`]: pod options from `secretsinit.io/*` annotations;
//! - [`select`]: which containers are mutated;
//! - [`command`]: the original program (as Kubernetes works it out) and `$` escaping;
//! - [`modes`]: the [`MutationMode`] strategies `init-container`, `shared-volume`, `image-swap`;
//! - [`mutate_pod`]: all of it together.
//!
//! Behaviour choices are documented in the crate's README.md.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Probe};

pub mod command;
pub mod error;
pub mod image;
pub mod modes;
pub mod options;
pub mod select;

pub use command::{Flags, SECRETS_INIT_BIN};
pub use error::MutationError;
pub use image::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
pub use modes::image_swap::{DEFAULT_TEMPLATE, validate_template};
pub use modes::{BIN_MOUNT_PATH, ImageSwap, InitContainer, ModeKind, MutationMode, SharedVolume};
pub use options::*;
pub use select::{ContainerKind, Selected};

/// Base name of the volume that carries the binary (`-1`, `-2`, ... appended when taken).
pub const VOLUME_NAME: &str = "secrets-init-bin";
/// Base name of the injected init container (`-1`, `-2`, ... appended when taken).
pub const INIT_CONTAINER_NAME: &str = "secrets-init";
/// Node selector keys that choose the image platform.
pub const NODE_SELECTOR_ARCH: &str = "kubernetes.io/arch";
pub const NODE_SELECTOR_OS: &str = "kubernetes.io/os";

/// The cluster-wide defaults (from the webhook's configuration).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct MutationConfig {
    pub default_mode: ModeKind,
    pub secrets_init_image: String,
    pub default_region: Option<String>,
    pub image_swap_template: String,
}

impl Default for MutationConfig {
    fn default() -> Self {
        Self {
            default_mode: ModeKind::InitContainer,
            secrets_init_image: format!(
                "ghcr.io/secrets-init/secrets-init:{}",
                env!("CARGO_PKG_VERSION")
            ),
            default_region: None,
            image_swap_template: DEFAULT_TEMPLATE.to_owned(),
        }
    }
}

impl MutationConfig {
    /// Checks the configuration once, at webhook startup, so that a bad setting is reported
    /// there rather than as a denial of every pod.
    pub fn validate(&self) -> Result<(), MutationError> {
        options::image_reference(
            "the secrets-init image (--secrets-init-image)",
            &self.secrets_init_image,
        )?;
        if let Some(r) = &self.default_region {
            options::region("--aws-region", r)?;
        }
        validate_template(&self.image_swap_template)
    }
}

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
                path: m.mount_path.clone(),
            });
        }
    }
    Ok(())
}

fn wrap_probe(probe: Option<&mut Probe>, flags: &Flags) {
    let Some(exec) = probe.and_then(|p| p.exec.as_mut()) else {
        return;
    };
    if let Some(cmd) = exec.command.as_mut().filter(|c| !c.is_empty()) {
        let argv = cmd.iter().map(|s| command::escape_spec(s)).collect();
        *cmd = flags.wrap(argv, true);
    }
}

/// One selected container and the image whose config decides its program.
struct Plan {
    who: Selected,
    /// The image as written in the pod (for messages).
    image: Option<String>,
    /// The image the mutated container runs (image-swap: the variant).
    run_image: Option<String>,
    look_up: bool,
    /// The pod spec does not give the program (the image config decides it).
    needs_program: bool,
}

/// Decides what to do with `pod` and, when it is mutated, returns the JSON patch.
///
/// Image configs are read (concurrently, once per distinct image) only for containers whose
/// program the pod spec does not give, and in image-swap mode for every variant (to check it
/// exists).
pub async fn mutate_pod<S: ImageConfigSource>(
    pod: &Pod,
    config: &MutationConfig,
    images: &S,
) -> Result<Decision, MutationError> {
    let annotations = pod.metadata.annotations.as_ref();
    match Inject::from_annotations(annotations)? {
        Inject::Absent => return Ok(skipped(format!("no {ANNOTATION_INJECT} annotation"))),
        Inject::Skip => return Ok(skipped(format!("{ANNOTATION_INJECT} is \"skip\""))),
        Inject::True => {}
    }
    if let Some(mode) = annotations.and_then(|a| a.get(ANNOTATION_INJECTED)) {
        return Ok(skipped(format!(
            "already injected ({ANNOTATION_INJECTED}: {mode:?})"
        )));
    }
    let opts = PodOptions::from_annotations(annotations)?;
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(Decision::Skipped {
            reason: "the pod has no spec".to_owned(),
            warnings: vec!["secrets-init: the pod has no spec; nothing was injected".to_owned()],
        });
    };

    let selected = select::select(spec, opts.containers.as_deref())?;
    if selected.is_empty() {
        return Ok(Decision::Skipped {
            reason: "no container could see a placeholder".to_owned(),
            warnings: vec![format!(
                "secrets-init: the pod has {ANNOTATION_INJECT}: \"true\" but none of its containers or init containers could see a placeholder (an env value with awssm: or ${{awssm:, envFrom, or valueFrom with configMapKeyRef/secretKeyRef), so it was admitted unchanged; to mutate containers anyway, name them in {ANNOTATION_CONTAINERS}"
            )],
        });
    }

    let platform = platform_of(spec);
    if platform.os != "linux" {
        return Err(MutationError::UnsupportedOs { os: platform.os });
    }
    let mode_kind = opts.mode.unwrap_or(config.default_mode);
    let image = opts
        .secrets_init_image
        .clone()
        .unwrap_or_else(|| config.secrets_init_image.clone());
    let volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
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
    let strategy: Box<dyn MutationMode> = match mode_kind {
        ModeKind::InitContainer => Box::new(InitContainer {
            image,
            volume: unique_name(VOLUME_NAME, &volumes),
            container_name: unique_name(INIT_CONTAINER_NAME, &containers),
        }),
        ModeKind::SharedVolume => Box::new(SharedVolume {
            image,
            volume: unique_name(VOLUME_NAME, &volumes),
        }),
        ModeKind::ImageSwap => Box::new(ImageSwap {
            template: config.image_swap_template.clone(),
        }),
    };

    let mut plans = Vec::with_capacity(selected.len());
    for who in selected {
        let c = container(spec, &who);
        check_mount_paths(&who, c)?;
        let run_image = strategy.run_image(&who, c)?;
        let needs_program = command::needs_image_config(c);
        let look_up = strategy.always_look_up() || needs_program;
        if look_up && run_image.is_none() {
            return Err(MutationError::NoImage {
                container: who.to_string(),
                why: "the pod sets no command, so the program must be read from the image config; set image (or command)".to_owned(),
            });
        }
        plans.push(Plan {
            image: c.image.clone(),
            who,
            run_image,
            look_up,
            needs_program,
        });
    }

    // One lookup per distinct image, all at once.
    let mut wanted: BTreeMap<&str, Vec<&Plan>> = BTreeMap::new();
    for p in plans.iter().filter(|p| p.look_up) {
        if let Some(img) = p.run_image.as_deref() {
            wanted.entry(img).or_default().push(p);
        }
    }
    let platform = &platform;
    let found: BTreeMap<&str, ImageConfig> =
        try_join_all(wanted.iter().map(|(img, users)| async move {
            match images.image_config(img, platform).await {
                Ok(cfg) => Ok((*img, cfg)),
                Err(ImageConfigError::NotFound { .. }) if mode_kind == ModeKind::ImageSwap => {
                    Err(MutationError::VariantMissing {
                        container: users[0].who.to_string(),
                        image: users[0].image.clone().unwrap_or_default(),
                        variant: (*img).to_owned(),
                    })
                }
                Err(source) => Err(MutationError::ImageConfig {
                    doing: if users.iter().any(|p| p.needs_program) {
                        "work out the program of"
                    } else {
                        "check the image-swap variant of"
                    }
                    .to_owned(),
                    containers: users
                        .iter()
                        .map(|p| p.who.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    source,
                }),
            }
        }))
        .await?
        .into_iter()
        .collect();

    let flags = Flags {
        region: opts
            .region
            .clone()
            .or_else(|| config.default_region.clone()),
        ignore_missing: opts.ignore_missing,
    };
    // Only what changes is copied and diffed (the selected containers, the annotations, the
    // volumes), not the whole pod: cloning and serializing a full pod twice to diff it cost
    // most of the admission (BENCHMARKS.md, "Mutation core").
    let mut patch = Vec::new();
    for p in &plans {
        let original = container(spec, &p.who);
        let run_image = p.run_image.as_deref();
        let argv = command::original_argv(
            &p.who,
            original,
            run_image.unwrap_or_default(),
            run_image.and_then(|i| found.get(i)),
        )?;
        let mut c = original.clone();
        c.command = Some(flags.wrap(argv, false));
        c.args = None;
        if opts.mutate_probes {
            wrap_probe(c.liveness_probe.as_mut(), &flags);
            wrap_probe(c.readiness_probe.as_mut(), &flags);
            wrap_probe(c.startup_probe.as_mut(), &flags);
        }
        strategy.mutate_container(&mut c, run_image);
        let list = match p.who.kind {
            ContainerKind::Init => "initContainers",
            ContainerKind::Main => "containers",
        };
        diff_at(
            &mut patch,
            &format!("/spec/{list}/{}", p.who.index),
            &Touched::of(original),
            &Touched::of(&c),
        );
    }
    let additions = strategy.pod_additions();
    if !additions.volumes.is_empty() {
        let mut volumes = spec.volumes.clone().unwrap_or_default();
        volumes.extend(additions.volumes);
        diff_at(&mut patch, "/spec/volumes", &spec.volumes, &Some(volumes));
    }
    let mut annotations = annotations.cloned().unwrap_or_default();
    annotations.insert(ANNOTATION_INJECTED.to_owned(), mode_kind.to_string());
    diff_at(
        &mut patch,
        "/metadata/annotations",
        &pod.metadata.annotations,
        &Some(annotations),
    );
    if let Some(init) = additions.init_container {
        add_init_container(&mut patch, spec, init);
    }
    Ok(Decision::Mutated {
        mode: mode_kind,
        patch: json_patch::Patch(patch),
        warnings: Vec::new(),
    })
}

/// The fields of a container that a mutation may change (command, args, probes here; image
/// and volume mounts in the modes). Only these are serialized and diffed: the rest (env,
/// resources, ports, ...) is equal on both sides by construction. A new field changed by a
/// mode must be added here; the golden tests, which apply the patch, catch a forgotten one.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Touched<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    args: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume_mounts: Option<&'a Vec<k8s_openapi::api::core::v1::VolumeMount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    liveness_probe: Option<&'a Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readiness_probe: Option<&'a Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    startup_probe: Option<&'a Probe>,
}

impl<'a> Touched<'a> {
    fn of(c: &'a Container) -> Self {
        Self {
            command: c.command.as_ref(),
            args: c.args.as_ref(),
            image: c.image.as_ref(),
            volume_mounts: c.volume_mounts.as_ref(),
            liveness_probe: c.liveness_probe.as_ref(),
            readiness_probe: c.readiness_probe.as_ref(),
            startup_probe: c.startup_probe.as_ref(),
        }
    }
}

fn pointer(path: &str) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::parse(path).unwrap_or_default()
}

/// The JSON patch that turns `before` into `after`, both located at `at` in the pod: `add`
/// of the whole value where there was none, else the diff of the two below `at`.
fn diff_at<T: serde::Serialize>(
    patch: &mut Vec<json_patch::PatchOperation>,
    at: &str,
    before: &T,
    after: &T,
) {
    use json_patch::PatchOperation as Op;
    let to_json = |v: &T| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    let (before, after) = (to_json(before), to_json(after));
    if before.is_null() {
        if !after.is_null() {
            patch.push(Op::Add(json_patch::AddOperation {
                path: pointer(at),
                value: after,
            }));
        }
        return;
    }
    let at = pointer(at);
    for mut op in json_patch::diff(&before, &after).0 {
        match &mut op {
            Op::Add(o) => o.path = at.concat(&o.path),
            Op::Remove(o) => o.path = at.concat(&o.path),
            Op::Replace(o) => o.path = at.concat(&o.path),
            Op::Move(o) => {
                o.path = at.concat(&o.path);
                o.from = at.concat(&o.from);
            }
            Op::Copy(o) => {
                o.path = at.concat(&o.path);
                o.from = at.concat(&o.from);
            }
            Op::Test(o) => o.path = at.concat(&o.path),
        }
        patch.push(op);
    }
}

/// The init container, inserted first. Inserting is a separate `add .../initContainers/0` op
/// (applied last), so the patch never rewrites the user's init containers just because their
/// indexes shifted.
fn add_init_container(
    patch: &mut Vec<json_patch::PatchOperation>,
    spec: &PodSpec,
    init: Container,
) {
    let init = serde_json::to_value(init).unwrap_or(serde_json::Value::Null);
    let (path, value) = if spec.init_containers.is_some() {
        ("/spec/initContainers/0", init)
    } else {
        ("/spec/initContainers", serde_json::Value::Array(vec![init]))
    };
    patch.push(json_patch::PatchOperation::Add(json_patch::AddOperation {
        path: pointer(path),
        value,
    }));
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

    #[test]
    fn unique_names() {
        let taken: BTreeSet<&str> = ["a", "a-1", "b-1"].into();
        assert_eq!(unique_name("a", &taken), "a-2");
        assert_eq!(unique_name("b", &taken), "b");
    }

    #[test]
    fn config_validation() {
        assert!(MutationConfig::default().validate().is_ok());
        let bad = MutationConfig {
            image_swap_template: "{registry}/{repository}".into(),
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let bad = MutationConfig {
            default_region: Some("US EAST".into()),
            ..Default::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("--aws-region")
        );
    }
}
