//! Which containers get secrets-init (contract §4).

use std::collections::HashSet;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::bounded::{quoted, quoted_list};
use crate::error::MutationError;

/// `initContainers` or `containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerKind {
    Init,
    Main,
}

/// A selected container: where it is in the pod spec, and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selected {
    pub kind: ContainerKind,
    pub index: usize,
    pub name: String,
}

impl fmt::Display for Selected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ContainerKind::Init => write!(f, "init container {}", quoted(&self.name)),
            ContainerKind::Main => write!(f, "container {}", quoted(&self.name)),
        }
    }
}

/// The contract §2 rule, from the grammar secrets-init resolves with: a whole-value
/// placeholder starts with `awssm:`, an embedded one contains `${awssm:`.
pub use placeholder::is_placeholder;

/// True when the container could see a placeholder: an `env[].value` with a placeholder, any
/// `envFrom`, or any `env[].valueFrom` with `configMapKeyRef`/`secretKeyRef` (whose values the
/// webhook cannot see).
pub fn could_see_placeholder(c: &Container) -> bool {
    if c.env_from.as_ref().is_some_and(|v| !v.is_empty()) {
        return true;
    }
    c.env.iter().flatten().any(|e| {
        e.value.as_deref().is_some_and(is_placeholder)
            || e.value_from
                .as_ref()
                .is_some_and(|s| s.config_map_key_ref.is_some() || s.secret_key_ref.is_some())
    })
}

/// Selects the containers to mutate, init containers first, each list in pod order.
///
/// With `names` (from `secretsinit.io/containers`) exactly those are selected, placeholders or
/// not; a name the pod does not have is an error listing the pod's containers. Without it the
/// default rule ([`could_see_placeholder`]) applies, and with `env_from` (the pod imports
/// variables with `secretsinit.io/env-from`) every regular container is selected too (init
/// containers, sidecars among them, only by the default rule). Linear in the number of names
/// and containers (hash sets, no nested scans).
pub fn select(
    spec: &PodSpec,
    names: Option<&[String]>,
    env_from: bool,
) -> Result<Vec<Selected>, MutationError> {
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let all = init
        .iter()
        .enumerate()
        .map(|(i, c)| (ContainerKind::Init, i, c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (ContainerKind::Main, i, c)),
        );
    let wanted: Option<HashSet<&str>> = names.map(|n| n.iter().map(String::as_str).collect());
    if let Some(names) = names {
        let present: HashSet<&str> = init
            .iter()
            .chain(&spec.containers)
            .map(|c| c.name.as_str())
            .collect();
        let mut unknown = names
            .iter()
            .map(String::as_str)
            .filter(|n| !present.contains(n))
            .peekable();
        if unknown.peek().is_some() {
            let list = |cs: &[Container]| quoted_list(cs.iter().map(|c| c.name.as_str()));
            return Err(MutationError::UnknownContainer {
                unknown: quoted_list(unknown),
                containers: list(&spec.containers),
                init_containers: list(init),
            });
        }
    }
    Ok(all
        .filter(|(kind, _, c)| match &wanted {
            Some(wanted) => wanted.contains(c.name.as_str()),
            None => (env_from && *kind == ContainerKind::Main) || could_see_placeholder(c),
        })
        .map(|(kind, index, c)| Selected {
            kind,
            index,
            name: c.name.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector,
        SecretKeySelector,
    };

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn container(name: &str, env: Vec<EnvVar>) -> Container {
        Container {
            name: name.into(),
            env: Some(env),
            ..Default::default()
        }
    }

    #[test]
    fn placeholder_rule() {
        let cases = [
            ("awssm:db", true),
            ("awssm://db", true),
            ("awssm:arn:aws:secretsmanager:us-east-1:1:secret:x#k", true),
            ("postgres://${awssm:db#u}@h", true),
            ("$${awssm:db}", true),
            ("plain", false),
            ("", false),
            ("x awssm:db", false),
            ("AWSSM:db", false),
            ("${awssm", false),
        ];
        for (v, want) in cases {
            assert_eq!(is_placeholder(v), want, "{v:?}");
        }
    }

    #[test]
    fn default_rule() {
        let value_from = |s: EnvVarSource| EnvVar {
            name: "V".into(),
            value_from: Some(s),
            ..Default::default()
        };
        let cases: Vec<(Container, bool)> = vec![
            (container("a", vec![env("A", "awssm:x")]), true),
            (
                container("b", vec![env("A", "x"), env("B", "p${awssm:x}")]),
                true,
            ),
            (container("c", vec![env("A", "x")]), false),
            (container("d", vec![]), false),
            (
                Container {
                    name: "e".into(),
                    ..Default::default()
                },
                false,
            ),
            (
                Container {
                    name: "f".into(),
                    env_from: Some(vec![EnvFromSource::default()]),
                    ..Default::default()
                },
                true,
            ),
            (
                Container {
                    name: "g".into(),
                    env_from: Some(vec![]),
                    ..Default::default()
                },
                false,
            ),
            (
                container(
                    "h",
                    vec![value_from(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector::default()),
                        ..Default::default()
                    })],
                ),
                true,
            ),
            (
                container(
                    "i",
                    vec![value_from(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector::default()),
                        ..Default::default()
                    })],
                ),
                true,
            ),
            (
                container(
                    "j",
                    vec![value_from(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector::default()),
                        ..Default::default()
                    })],
                ),
                false,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(could_see_placeholder(&c), want, "{}", c.name);
        }
    }

    fn spec() -> PodSpec {
        PodSpec {
            init_containers: Some(vec![
                container("migrate", vec![env("DB", "awssm:db")]),
                container("wait", vec![]),
            ]),
            containers: vec![
                container("app", vec![env("A", "awssm:x")]),
                container("logs", vec![]),
            ],
            ..Default::default()
        }
    }

    fn names(s: &[Selected]) -> Vec<String> {
        s.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn selects_by_default_rule_init_first() {
        let s = select(&spec(), None, false).unwrap();
        assert_eq!(
            names(&s),
            ["init container \"migrate\"", "container \"app\""]
        );
        assert_eq!((s[0].kind, s[0].index), (ContainerKind::Init, 0));
        assert_eq!((s[1].kind, s[1].index), (ContainerKind::Main, 0));
    }

    #[test]
    fn env_from_selects_every_regular_container() {
        let s = select(&spec(), None, true).unwrap();
        assert_eq!(
            names(&s),
            [
                "init container \"migrate\"",
                "container \"app\"",
                "container \"logs\""
            ]
        );
        let want = ["wait".to_owned()];
        let s = select(&spec(), Some(&want), true).unwrap();
        assert_eq!(names(&s), ["init container \"wait\""], "containers wins");
    }

    #[test]
    fn selects_named_in_pod_order() {
        let want = ["logs".to_owned(), "wait".to_owned()];
        let s = select(&spec(), Some(&want), false).unwrap();
        assert_eq!(names(&s), ["init container \"wait\"", "container \"logs\""]);
    }

    #[test]
    fn unknown_name_lists_containers() {
        let want = ["app".to_owned(), "ap".to_owned()];
        let e = select(&spec(), Some(&want), false).unwrap_err().to_string();
        assert!(e.contains("names \"ap\" which"), "{e}");
        assert!(e.contains("containers are [\"app\", \"logs\"]"), "{e}");
        assert!(
            e.contains("init containers are [\"migrate\", \"wait\"]"),
            "{e}"
        );
    }
}
