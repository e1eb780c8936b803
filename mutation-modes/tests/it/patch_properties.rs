//! Property: the JSON patch applied to the input pod gives exactly the mutated pod the
//! contract describes (§4–§5), for arbitrary pods, annotations and modes — built here
//! independently of the library — and mutating that pod again is a no-op. The injected init
//! container too is written out here from the contract and the configuration, field by field.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, ExecAction, ImageVolumeSource, Pod,
    PodSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutation_modes::{
    ANNOTATION_AWS_REGION, ANNOTATION_CONTAINERS, ANNOTATION_IGNORE_MISSING, ANNOTATION_INJECT,
    ANNOTATION_INJECTED, ANNOTATION_MUTATE_PROBES, Decision, ImageConfig, ImageConfigError,
    ImageConfigSource, LABEL_INJECTED, ModeKind, MutationConfig, Platform, RunAsUser, mutate_pod,
};
use proptest::prelude::*;

const BIN: &str = "/secrets-init/bin/secrets-init";
/// secrets-init images the webhook may be configured with, and the pull policy Kubernetes
/// gives each (tag `latest`, or no tag and no digest: `Always`; anything else: `IfNotPresent`).
const SECRETS_INIT_IMAGES: [(&str, &str); 5] = [
    ("registry.example/secrets-init:1.0", "IfNotPresent"),
    ("registry.example/secrets-init:latest", "Always"),
    ("registry.example:5000/secrets-init", "Always"),
    ("registry.example:5000/team/secrets-init:v2", "IfNotPresent"),
    (
        "registry.example/secrets-init@sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
        "IfNotPresent",
    ),
];
const ENTRYPOINT: [&str; 2] = ["/entry", "$(HOME)"];
const CMD: [&str; 2] = ["run", "$x"];

/// Every image (and every image-swap variant) exists with the same config.
struct Images;

impl ImageConfigSource for Images {
    async fn image_config(&self, _: &str, _: &Platform) -> Result<ImageConfig, ImageConfigError> {
        Ok(ImageConfig {
            entrypoint: Some(ENTRYPOINT.map(str::to_owned).to_vec()),
            cmd: Some(CMD.map(str::to_owned).to_vec()),
        })
    }
}

#[derive(Debug, Clone)]
struct Shape {
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    placeholder: bool,
    probe: bool,
    image: u8,
}

fn shape() -> impl Strategy<Value = Shape> {
    let words = prop::collection::vec("[a-z$()/-]{0,6}", 1..3);
    (
        prop::option::of(words.clone()),
        prop::option::of(words),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(|(command, args, placeholder, probe, image)| Shape {
            command,
            args,
            placeholder,
            probe,
            image,
        })
}

/// The webhook's settings for the injected init container (contract §5, §6).
#[derive(Debug, Clone)]
struct Settings {
    /// Index into [`SECRETS_INIT_IMAGES`].
    image: usize,
    cpu: &'static str,
    memory: &'static str,
    /// `None`: not configured (the contract's default, 65532, applies).
    run_as_user: Option<RunAsUser>,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        0..SECRETS_INIT_IMAGES.len(),
        prop::sample::select(vec!["50m", "100m", "1", "250m"]),
        prop::sample::select(vec!["64Mi", "32Mi", "128M", "1Gi"]),
        prop::sample::select(vec![
            None,
            Some(RunAsUser::Id(65532)),
            Some(RunAsUser::Id(1000)),
            Some(RunAsUser::Unset),
        ]),
    )
        .prop_map(|(image, cpu, memory, run_as_user)| Settings {
            image,
            cpu,
            memory,
            run_as_user,
        })
}

impl Settings {
    fn image(&self) -> &'static str {
        SECRETS_INIT_IMAGES[self.image].0
    }

    fn config(&self, mode: ModeKind) -> MutationConfig {
        let mut config = MutationConfig {
            default_mode: mode,
            secrets_init_image: self.image().into(),
            init_container_cpu: Quantity(self.cpu.into()),
            init_container_memory: Quantity(self.memory.into()),
            ..MutationConfig::default()
        };
        if let Some(user) = self.run_as_user {
            config.run_as_user = user;
        }
        config
    }
}

#[derive(Debug, Clone)]
struct Case {
    main: Vec<Shape>,
    init: Vec<Shape>,
    mode: ModeKind,
    ignore_missing: bool,
    mutate_probes: bool,
    region: Option<&'static str>,
    /// Indexes (into main ++ init) named in the containers annotation.
    named: Option<BTreeSet<usize>>,
    /// The pod already uses the names the mutation would pick first.
    names_taken: bool,
    /// The pod has labels (else none: the patch adds the map).
    labeled: bool,
    settings: Settings,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(shape(), 1..4),
        prop::collection::vec(shape(), 0..3),
        prop::sample::select(ModeKind::ALL.to_vec()),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["eu-west-1", "us-east-2"])),
        prop::option::of(prop::collection::btree_set(0usize..7, 1..3)),
        any::<bool>(),
        any::<bool>(),
        settings(),
    )
        .prop_map(
            |(
                main,
                init,
                mode,
                ignore_missing,
                mutate_probes,
                region,
                named,
                names_taken,
                labeled,
                settings,
            )| {
                let total = main.len() + init.len();
                let named =
                    named.map(|n| n.into_iter().map(|i| i % total).collect::<BTreeSet<_>>());
                Case {
                    main,
                    init,
                    mode,
                    ignore_missing,
                    mutate_probes,
                    region,
                    named,
                    names_taken,
                    labeled,
                    settings,
                }
            },
        )
}

fn name(kind: &str, i: usize) -> String {
    format!("{kind}{i}")
}

fn container(name: String, s: &Shape) -> Container {
    Container {
        name,
        image: Some(format!("registry.example/img{}:1", s.image)),
        command: s.command.clone(),
        args: s.args.clone(),
        env: Some(vec![EnvVar {
            name: "X".into(),
            value: Some(if s.placeholder { "awssm:s#k" } else { "plain" }.into()),
            ..Default::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            ..Default::default()
        }]),
        liveness_probe: s.probe.then(|| Probe {
            exec: Some(ExecAction {
                command: Some(vec!["check".into(), "$(X)".into()]),
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(c: &Case) -> Pod {
    let mut annotations = BTreeMap::from([(ANNOTATION_INJECT.to_owned(), "true".to_owned())]);
    if c.ignore_missing {
        annotations.insert(ANNOTATION_IGNORE_MISSING.into(), "true".into());
    }
    if c.mutate_probes {
        annotations.insert(ANNOTATION_MUTATE_PROBES.into(), "true".into());
    }
    if let Some(r) = c.region {
        annotations.insert(ANNOTATION_AWS_REGION.into(), r.into());
    }
    let names = all_names(c);
    if let Some(named) = &c.named {
        let list: Vec<&str> = named.iter().map(|&i| names[i].as_str()).collect();
        annotations.insert(ANNOTATION_CONTAINERS.into(), list.join(" , "));
    }
    let mut volumes = vec![Volume {
        name: "data".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    if c.names_taken {
        volumes.push(Volume {
            name: "secrets-init-bin".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            labels: c
                .labeled
                .then(|| BTreeMap::from([("app".to_owned(), "x".to_owned())])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: c
                .main
                .iter()
                .enumerate()
                .map(|(i, s)| container(names[i].clone(), s))
                .collect(),
            init_containers: (!c.init.is_empty()).then(|| {
                c.init
                    .iter()
                    .enumerate()
                    .map(|(i, s)| container(names[c.main.len() + i].clone(), s))
                    .collect()
            }),
            volumes: Some(volumes),
            service_account_name: Some("sa".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Container names, main then init; with `names_taken` the first main container is called
/// `secrets-init`, the name the injected init container would take first.
fn all_names(c: &Case) -> Vec<String> {
    let mut names: Vec<String> = (0..c.main.len())
        .map(|i| name("c", i))
        .chain((0..c.init.len()).map(|i| name("i", i)))
        .collect();
    if c.names_taken {
        names[0] = "secrets-init".into();
    }
    names
}

fn some(v: &Option<Vec<String>>) -> Option<&Vec<String>> {
    v.as_ref().filter(|v| !v.is_empty())
}

/// Kubernetes' rule for the program, escaped as the contract says: pod-spec text `$` → `$$`,
/// image-config text `$` → `$$$$`.
fn expected_argv(s: &Shape) -> Vec<String> {
    let spec = |v: &Vec<String>| v.iter().map(|a| a.replace('$', "$$")).collect::<Vec<_>>();
    let image = |v: &[&str]| v.iter().map(|a| a.replace('$', "$$$$")).collect::<Vec<_>>();
    match (some(&s.command), some(&s.args)) {
        (Some(cmd), args) => [spec(cmd), args.map(spec).unwrap_or_default()].concat(),
        (None, Some(args)) => [image(&ENTRYPOINT), spec(args)].concat(),
        (None, None) => [image(&ENTRYPOINT), image(&CMD)].concat(),
    }
}

fn flags(c: &Case, probe: bool) -> Vec<String> {
    let mut f = vec![BIN.to_owned()];
    if let Some(r) = c.region {
        f.extend(["--region".to_owned(), r.to_owned()]);
    }
    if c.ignore_missing {
        f.push("--ignore-missing".into());
    }
    f.push("--expand-args".into());
    if probe {
        f.push("--probe".into());
    }
    f.push("--".into());
    f
}

/// The container as the contract says it must come out.
fn expected_container(c: &Case, original: &Container, s: &Shape, volume: &str) -> Container {
    let mut out = original.clone();
    out.command = Some([flags(c, false), expected_argv(s)].concat());
    out.args = None;
    if let Some(exec) = out
        .liveness_probe
        .as_mut()
        .and_then(|p| p.exec.as_mut())
        .filter(|_| c.mutate_probes)
    {
        let cmd = exec.command.as_ref().unwrap();
        let escaped: Vec<String> = cmd.iter().map(|a| a.replace('$', "$$")).collect();
        exec.command = Some([flags(c, true), escaped].concat());
    }
    match c.mode {
        ModeKind::InitContainer | ModeKind::SharedVolume => {
            out.volume_mounts
                .get_or_insert_with(Vec::new)
                .push(VolumeMount {
                    name: volume.to_owned(),
                    mount_path: "/secrets-init/bin".into(),
                    read_only: Some(true),
                    ..Default::default()
                });
        }
        ModeKind::ImageSwap => {
            out.image = Some(format!("registry.example/img{}:1-secrets-init", s.image));
        }
    }
    out
}

/// The init container `init-container` mode injects, as contract §5 describes it, for these
/// settings: the secrets-init image (pulled as Kubernetes would by default) runs
/// `/secrets-init install /secrets-init-bin` into the memory-backed emptyDir mounted
/// (writable) there, with requests = limits from the configuration, and a security context
/// that passes Pod Security Admission `restricted`, running as the configured user (65532
/// unless configured; `none` leaves runAsUser/runAsGroup out).
fn expected_init_container(s: &Settings, name: &str, volume: &str) -> Container {
    let (image, pull_policy) = SECRETS_INIT_IMAGES[s.image];
    let user = match s.run_as_user {
        None => Some(65532),
        Some(RunAsUser::Id(id)) => Some(id),
        Some(RunAsUser::Unset) => None,
    };
    let amounts = BTreeMap::from([
        ("cpu".to_owned(), Quantity(s.cpu.into())),
        ("memory".to_owned(), Quantity(s.memory.into())),
    ]);
    Container {
        name: name.into(),
        image: Some(image.into()),
        image_pull_policy: Some(pull_policy.into()),
        command: Some(vec![
            "/secrets-init".into(),
            "install".into(),
            "/secrets-init-bin".into(),
        ]),
        volume_mounts: Some(vec![VolumeMount {
            name: volume.into(),
            mount_path: "/secrets-init-bin".into(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(amounts.clone()),
            limits: Some(amounts),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            // What PSA `restricted` requires of every container.
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            run_as_user: user,
            run_as_group: user,
            // Not in the contract: the project's extra hardening, pinned so that a change to
            // it is deliberate (the installer writes only to its volume).
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        // Not in the contract either: an install failure shows its log in the pod status.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

fn run(pod: &Pod, config: &MutationConfig) -> Decision {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(mutate_pod(pod, config, &Images))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn patch_gives_exactly_the_mutated_pod(c in case()) {
        let config = c.settings.config(c.mode);
        let input = pod(&c);
        let shapes: Vec<&Shape> = c.main.iter().chain(&c.init).collect();
        let selected: Vec<bool> = match &c.named {
            Some(named) => (0..shapes.len()).map(|i| named.contains(&i)).collect(),
            None => shapes.iter().map(|s| s.placeholder).collect(),
        };

        let decision = run(&input, &config);
        let Decision::Mutated { patch, mode, .. } = decision else {
            prop_assert!(!selected.contains(&true), "skipped with containers to mutate: {decision:?}");
            return Ok(());
        };
        prop_assert_eq!(mode, c.mode);
        let mut doc = serde_json::to_value(&input).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let patched: Pod = serde_json::from_value(doc).unwrap();

        // The expected pod, built from the contract.
        let volume = if c.names_taken { "secrets-init-bin-1" } else { "secrets-init-bin" };
        let mut want = input.clone();
        want.metadata.annotations.as_mut().unwrap()
            .insert(ANNOTATION_INJECTED.into(), c.mode.to_string());
        want.metadata.labels.get_or_insert_with(BTreeMap::new)
            .insert(LABEL_INJECTED.into(), c.mode.to_string());
        let spec = want.spec.as_mut().unwrap();
        let in_spec = input.spec.as_ref().unwrap();
        for (i, sel) in selected.iter().enumerate() {
            if !sel {
                continue;
            }
            let (slot, original) = if i < c.main.len() {
                (&mut spec.containers[i], &in_spec.containers[i])
            } else {
                let j = i - c.main.len();
                (
                    &mut spec.init_containers.as_mut().unwrap()[j],
                    &in_spec.init_containers.as_ref().unwrap()[j],
                )
            };
            *slot = expected_container(&c, original, shapes[i], volume);
        }
        match c.mode {
            ModeKind::InitContainer => {
                spec.volumes.as_mut().unwrap().push(Volume {
                    name: volume.into(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        medium: Some("Memory".into()),
                        // Not in the contract: room for one static binary, pinned likewise.
                        size_limit: Some(Quantity("64Mi".into())),
                    }),
                    ..Default::default()
                });
                let init_name = if c.names_taken { "secrets-init-1" } else { "secrets-init" };
                spec.init_containers
                    .get_or_insert_with(Vec::new)
                    .insert(0, expected_init_container(&c.settings, init_name, volume));
            }
            ModeKind::SharedVolume => {
                spec.volumes.as_mut().unwrap().push(Volume {
                    name: volume.into(),
                    image: Some(ImageVolumeSource {
                        reference: Some(c.settings.image().into()),
                        pull_policy: Some(SECRETS_INIT_IMAGES[c.settings.image].1.into()),
                    }),
                    ..Default::default()
                });
            }
            ModeKind::ImageSwap => {}
        }
        prop_assert_eq!(
            serde_json::to_value(&patched).unwrap(),
            serde_json::to_value(&want).unwrap()
        );

        // Reinvocation is a no-op.
        match run(&patched, &config) {
            Decision::Skipped { reason, .. } => prop_assert!(reason.contains("already injected"), "{}", reason),
            other => prop_assert!(false, "mutated twice: {:?}", other),
        }
    }
}
