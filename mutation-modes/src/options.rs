//! Per-pod options from `secretsinit.io/*` annotations (contract §4).

use std::collections::{BTreeMap, HashSet};

use crate::bounded::{clip, quoted};
use crate::error::MutationError;
use crate::image::parse_reference;
use crate::modes::ModeKind;

/// `secretsinit.io/inject`: `"true"` mutates the pod, `"skip"` (or absent) leaves it alone.
pub const ANNOTATION_INJECT: &str = "secretsinit.io/inject";
/// `secretsinit.io/ignore-missing-secrets`: `"true"` passes `--ignore-missing`.
pub const ANNOTATION_IGNORE_MISSING: &str = "secretsinit.io/ignore-missing-secrets";
/// `secretsinit.io/mutate-probes`: `"true"` wraps exec probes.
pub const ANNOTATION_MUTATE_PROBES: &str = "secretsinit.io/mutate-probes";
/// `secretsinit.io/aws-region`: passed as `--region`.
pub const ANNOTATION_AWS_REGION: &str = "secretsinit.io/aws-region";
/// `secretsinit.io/secret-init-image`: overrides the secrets-init image for this pod.
pub const ANNOTATION_SECRETS_INIT_IMAGE: &str = "secretsinit.io/secret-init-image";
/// `secretsinit.io/mutation-mode`: overrides the cluster's default mode for this pod.
pub const ANNOTATION_MUTATION_MODE: &str = "secretsinit.io/mutation-mode";
/// `secretsinit.io/containers`: comma list of the containers to mutate.
pub const ANNOTATION_CONTAINERS: &str = "secretsinit.io/containers";
/// `secretsinit.io/injected`: set by the webhook to the mode it used; present = already mutated.
pub const ANNOTATION_INJECTED: &str = "secretsinit.io/injected";

/// The annotation prefix this webhook owns.
pub const ANNOTATION_PREFIX: &str = "secretsinit.io/";

/// Every annotation under [`ANNOTATION_PREFIX`] this webhook knows.
pub const KNOWN_ANNOTATIONS: [&str; 8] = [
    ANNOTATION_INJECT,
    ANNOTATION_IGNORE_MISSING,
    ANNOTATION_MUTATE_PROBES,
    ANNOTATION_AWS_REGION,
    ANNOTATION_SECRETS_INIT_IMAGE,
    ANNOTATION_MUTATION_MODE,
    ANNOTATION_CONTAINERS,
    ANNOTATION_INJECTED,
];

/// The value of `secretsinit.io/inject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// `"true"`
    True,
    /// `"skip"`
    Skip,
    /// no annotation
    Absent,
}

impl Inject {
    /// Reads `secretsinit.io/inject`. Values are exact (`"True"` is denied, like any other
    /// value outside the list), so a typo never silently disables or enables injection.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, MutationError> {
        match annotations.and_then(|a| a.get(ANNOTATION_INJECT)) {
            None => Ok(Self::Absent),
            Some(v) if v == "true" => Ok(Self::True),
            Some(v) if v == "skip" => Ok(Self::Skip),
            Some(v) => Err(invalid(
                ANNOTATION_INJECT,
                v,
                "\"true\", \"skip\" (or remove the annotation)",
            )),
        }
    }
}

/// Everything the annotations say about how to mutate one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOptions {
    pub ignore_missing: bool,
    pub mutate_probes: bool,
    pub region: Option<String>,
    pub secrets_init_image: Option<String>,
    pub mode: Option<ModeKind>,
    /// `secretsinit.io/containers`, trimmed, empty items dropped, duplicates removed, in order.
    pub containers: Option<Vec<String>>,
}

impl PodOptions {
    /// Parses and validates every `secretsinit.io/*` annotation. An unknown annotation under
    /// the prefix, or an invalid value, is an error that lists the valid choices.
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, MutationError> {
        let empty = BTreeMap::new();
        let a = annotations.unwrap_or(&empty);
        for key in a.keys() {
            if key.starts_with(ANNOTATION_PREFIX) && !KNOWN_ANNOTATIONS.contains(&key.as_str()) {
                return Err(MutationError::UnknownAnnotation {
                    annotation: clip(key, crate::bounded::VALUE_BYTES),
                    known: KNOWN_ANNOTATIONS.join(", "),
                });
            }
        }
        Ok(Self {
            ignore_missing: boolean(a, ANNOTATION_IGNORE_MISSING)?,
            mutate_probes: boolean(a, ANNOTATION_MUTATE_PROBES)?,
            region: a
                .get(ANNOTATION_AWS_REGION)
                .map(|v| region(ANNOTATION_AWS_REGION, v))
                .transpose()?,
            secrets_init_image: a
                .get(ANNOTATION_SECRETS_INIT_IMAGE)
                .map(|v| image_reference(&format!("annotation {ANNOTATION_SECRETS_INIT_IMAGE}"), v))
                .transpose()?,
            mode: a
                .get(ANNOTATION_MUTATION_MODE)
                .map(|v| {
                    v.parse::<ModeKind>().map_err(|_| {
                        invalid(ANNOTATION_MUTATION_MODE, v, &ModeKind::valid_values())
                    })
                })
                .transpose()?,
            containers: a
                .get(ANNOTATION_CONTAINERS)
                .map(|v| container_list(v))
                .transpose()?,
        })
    }
}

fn invalid(annotation: &str, value: &str, valid: &str) -> MutationError {
    MutationError::InvalidAnnotation {
        annotation: annotation.to_owned(),
        value: quoted(value),
        valid: valid.to_owned(),
    }
}

/// `"true"` / `"false"`, exactly; absent = false.
fn boolean(a: &BTreeMap<String, String>, key: &str) -> Result<bool, MutationError> {
    match a.get(key).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(invalid(
            key,
            v,
            "\"true\", \"false\" (or remove the annotation)",
        )),
    }
}

/// A region name as AWS spells them (`us-east-1`, `us-gov-west-1`, `cn-north-1`): lower-case
/// letters, digits and single hyphens. Anything else (spaces, `$`, upper case) is denied, so the
/// value can be passed on the command line as is.
pub(crate) fn region(annotation: &str, v: &str) -> Result<String, MutationError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            annotation,
            v,
            "an AWS region name such as \"us-east-1\" (lower-case letters, digits and hyphens)",
        ))
    }
}

/// Validates an image reference with the OCI distribution grammar; returns it as written.
pub(crate) fn image_reference(what: &str, v: &str) -> Result<String, MutationError> {
    parse_reference(v)
        .map(|_| v.to_owned())
        .map_err(|reason| MutationError::InvalidImage {
            what: what.to_owned(),
            image: quoted(v),
            reason,
        })
}

fn container_list(v: &str) -> Result<Vec<String>, MutationError> {
    let mut seen = HashSet::new();
    let names: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty() && seen.insert(*n))
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(invalid(
            ANNOTATION_CONTAINERS,
            v,
            "a comma-separated list of the pod's container and init container names (or remove the annotation to select containers that use placeholders)",
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn inject_values() {
        let cases: &[(Option<&str>, Result<Inject, &str>)] = &[
            (None, Ok(Inject::Absent)),
            (Some("true"), Ok(Inject::True)),
            (Some("skip"), Ok(Inject::Skip)),
            (Some("True"), Err("\"true\", \"skip\"")),
            (Some("yes"), Err("\"true\", \"skip\"")),
            (Some(""), Err("\"true\", \"skip\"")),
            (Some("false"), Err("\"true\", \"skip\"")),
        ];
        for (value, want) in cases {
            let a = value.map(|v| ann(&[(ANNOTATION_INJECT, v)]));
            let got = Inject::from_annotations(a.as_ref());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w, "{value:?}"),
                (Err(e), Err(w)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(w), "{value:?}: {msg}");
                    assert!(msg.contains(ANNOTATION_INJECT), "{msg}");
                }
                (g, w) => panic!("{value:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn booleans() {
        for key in [ANNOTATION_IGNORE_MISSING, ANNOTATION_MUTATE_PROBES] {
            for (value, want) in [("true", Some(true)), ("false", Some(false))] {
                let o = PodOptions::from_annotations(Some(&ann(&[(key, value)]))).unwrap();
                let got = if key == ANNOTATION_IGNORE_MISSING {
                    o.ignore_missing
                } else {
                    o.mutate_probes
                };
                assert_eq!(Some(got), want, "{key}={value}");
            }
            for bad in ["yes", "1", "TRUE", "", " true"] {
                let e = PodOptions::from_annotations(Some(&ann(&[(key, bad)]))).unwrap_err();
                let msg = e.to_string();
                assert!(
                    msg.contains(key) && msg.contains("\"true\", \"false\""),
                    "{msg}"
                );
            }
        }
        let o = PodOptions::from_annotations(None).unwrap();
        assert!(!o.ignore_missing && !o.mutate_probes);
    }

    #[test]
    fn modes() {
        for (v, want) in [
            ("init-container", ModeKind::InitContainer),
            ("shared-volume", ModeKind::SharedVolume),
            ("image-swap", ModeKind::ImageSwap),
        ] {
            let o =
                PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_MUTATION_MODE, v)]))).unwrap();
            assert_eq!(o.mode, Some(want));
        }
        let msg =
            PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_MUTATION_MODE, "sidecar")])))
                .unwrap_err()
                .to_string();
        assert!(
            msg.contains("\"sidecar\"")
                && msg.contains("init-container")
                && msg.contains("shared-volume")
                && msg.contains("image-swap"),
            "{msg}"
        );
    }

    #[test]
    fn regions() {
        for ok in ["us-east-1", "us-gov-west-1", "cn-north-1", "eu-isoe-west-1"] {
            let o = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_AWS_REGION, ok)])));
            assert_eq!(o.unwrap().region.as_deref(), Some(ok));
        }
        for bad in [
            "",
            "US-EAST-1",
            "us east 1",
            "us-east-1$(X)",
            "-us",
            "us--east",
        ] {
            let e = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_AWS_REGION, bad)])));
            assert!(
                e.unwrap_err().to_string().contains(ANNOTATION_AWS_REGION),
                "{bad}"
            );
        }
    }

    #[test]
    fn containers_list() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("app", Some(&["app"])),
            (" app , worker ", Some(&["app", "worker"])),
            ("app,,worker,", Some(&["app", "worker"])),
            ("app,app", Some(&["app"])),
            ("", None),
            (" , ", None),
        ];
        for (v, want) in cases {
            let got = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_CONTAINERS, v)])));
            match want {
                Some(w) => assert_eq!(
                    got.unwrap().containers.unwrap(),
                    w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                    "{v:?}"
                ),
                None => assert!(
                    got.unwrap_err().to_string().contains(ANNOTATION_CONTAINERS),
                    "{v:?}"
                ),
            }
        }
    }

    #[test]
    fn image_override() {
        let o = PodOptions::from_annotations(Some(&ann(&[(
            ANNOTATION_SECRETS_INIT_IMAGE,
            "registry.example/secrets-init:1",
        )])))
        .unwrap();
        assert_eq!(
            o.secrets_init_image.as_deref(),
            Some("registry.example/secrets-init:1")
        );
        let e = PodOptions::from_annotations(Some(&ann(&[(
            ANNOTATION_SECRETS_INIT_IMAGE,
            "Not A Ref",
        )])))
        .unwrap_err();
        assert!(e.to_string().contains("not a valid image reference"), "{e}");
    }

    #[test]
    fn unknown_annotation_under_prefix() {
        let e =
            PodOptions::from_annotations(Some(&ann(&[("secretsinit.io/ignore-missing", "true")])))
                .unwrap_err()
                .to_string();
        assert!(
            e.contains("secretsinit.io/ignore-missing;") && e.contains(ANNOTATION_IGNORE_MISSING),
            "{e}"
        );
        // Other prefixes are none of our business.
        assert!(PodOptions::from_annotations(Some(&ann(&[("example.com/x", "y")]))).is_ok());
    }
}
