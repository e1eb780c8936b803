//! Property tests: `$` escaping undoes Kubernetes' expansion exactly, and mutation is
//! idempotent and its patch always applies, for arbitrary pod shapes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutation_modes::command::{escape_image, escape_spec};
use mutation_modes::{
    ANNOTATION_INJECT, Decision, ImageConfig, ImageConfigError, ImageConfigSource, ModeKind,
    MutationConfig, Platform, SECRETS_INIT_BIN, mutate_pod,
};
use proptest::prelude::*;

/// Kubernetes' `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion):
/// `$$` → `$`; `$(NAME)` → the value when NAME is defined, else left as written; an unclosed
/// `$(` and any other `$x` are kept as is.
fn k8s_expand(input: &str, env: &BTreeMap<String, String>) -> String {
    let b = input.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut checkpoint = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&input[checkpoint..i]);
            let rest = &input[i + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match env.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&format!("$({name})")),
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let c = rest.chars().next().unwrap();
                    out.push('$');
                    out.push(c);
                    c.len_utf8()
                }
            };
            i += 1 + advance;
            checkpoint = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&input[checkpoint..]);
    out
}

fn env_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[A-C]", "[a-z$()]{0,4}", 0..3)
}

proptest! {
    #[test]
    fn expansion_reference_is_sane(name in "[A-C]", value in "[a-z]{0,4}") {
        let env: BTreeMap<_, _> = [(name.clone(), value.clone())].into();
        prop_assert_eq!(k8s_expand(&format!("x$({name})y"), &env), format!("x{value}y"));
        prop_assert_eq!(k8s_expand("$$(A)", &env), "$(A)");
    }

    /// Pod-spec text: Kubernetes hands secrets-init exactly the text as written.
    #[test]
    fn spec_escape_survives_kubernetes(s in "[a-zA-Z$() ]{0,24}", env in env_strategy()) {
        prop_assert_eq!(k8s_expand(&escape_spec(&s), &env), s);
    }

    /// Image-config text: after Kubernetes' expansion and secrets-init's own (the same rules),
    /// the program gets the image's text unchanged.
    #[test]
    fn image_escape_survives_both_expansions(s in "[a-zA-Z$() ]{0,24}", env in env_strategy()) {
        let once = k8s_expand(&escape_image(&s), &env);
        prop_assert_eq!(k8s_expand(&once, &env), s);
    }
}

struct AnyImage;

impl ImageConfigSource for AnyImage {
    async fn image_config(&self, _: &str, _: &Platform) -> Result<ImageConfig, ImageConfigError> {
        Ok(ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["cmd".into()]),
        })
    }
}

fn container_strategy() -> impl Strategy<Value = (bool, bool, bool, u8)> {
    // (command set, args set, has placeholder, image index)
    (any::<bool>(), any::<bool>(), any::<bool>(), 0u8..4)
}

fn make(name: String, (command, args, placeholder, img): (bool, bool, bool, u8)) -> Container {
    Container {
        name,
        image: Some(format!("registry.example/img{img}:1")),
        command: command.then(|| vec!["/bin/app".into(), "$(X)".into()]),
        args: args.then(|| vec!["--price=$5".into()]),
        env: Some(vec![EnvVar {
            name: "X".into(),
            value: Some(if placeholder {
                "awssm:s#k".into()
            } else {
                "plain".into()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn pod_strategy() -> impl Strategy<Value = (Pod, ModeKind)> {
    (
        prop::collection::vec(container_strategy(), 1..6),
        prop::collection::vec(container_strategy(), 0..3),
        prop::sample::select(ModeKind::ALL.to_vec()),
    )
        .prop_map(|(main, init, mode)| {
            let pod = Pod {
                metadata: ObjectMeta {
                    name: Some("p".into()),
                    annotations: Some([(ANNOTATION_INJECT.to_owned(), "true".to_owned())].into()),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    containers: main
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| make(format!("c{i}"), c))
                        .collect(),
                    init_containers: (!init.is_empty()).then(|| {
                        init.into_iter()
                            .enumerate()
                            .map(|(i, c)| make(format!("i{i}"), c))
                            .collect()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            (pod, mode)
        })
}

fn run(pod: &Pod, config: &MutationConfig) -> Result<Decision, mutation_modes::MutationError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(mutate_pod(pod, config, &AnyImage))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The patch applies, rewrites exactly the containers with placeholders, and mutating the
    /// result again is a no-op.
    #[test]
    fn mutation_is_idempotent((pod, mode) in pod_strategy()) {
        let config = MutationConfig { default_mode: mode, ..MutationConfig::default() };
        let spec = pod.spec.as_ref().unwrap();
        let with_placeholder = spec.containers.iter().chain(spec.init_containers.iter().flatten())
            .filter(|c| c.env.as_ref().unwrap()[0].value.as_deref() != Some("plain"))
            .count();
        match run(&pod, &config).unwrap() {
            Decision::Skipped { warnings, .. } => {
                prop_assert_eq!(with_placeholder, 0);
                prop_assert_eq!(warnings.len(), 1);
            }
            Decision::Mutated { patch, mode: used, .. } => {
                prop_assert_eq!(used, mode);
                let mut doc = serde_json::to_value(&pod).unwrap();
                json_patch::patch(&mut doc, &patch).unwrap();
                let mutated: Pod = serde_json::from_value(doc).unwrap();
                let mspec = mutated.spec.as_ref().unwrap();
                let rewritten = mspec.containers.iter().chain(mspec.init_containers.iter().flatten())
                    .filter(|c| c.command.as_ref().is_some_and(|c| c[0] == SECRETS_INIT_BIN))
                    .count();
                prop_assert_eq!(rewritten, with_placeholder);
                match run(&mutated, &config).unwrap() {
                    Decision::Skipped { reason, .. } => prop_assert!(reason.contains("already injected")),
                    other => prop_assert!(false, "mutated twice: {:?}", other),
                }
            }
        }
    }
}
