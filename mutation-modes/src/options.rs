//! Per-pod options from `secretsinit.io/*` annotations (contract §4).

use std::collections::{BTreeMap, HashSet};

use crate::bounded::{VALUE_BYTES, clip, quoted, quoted_list};
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
/// `secretsinit.io/secrets-init-image`: overrides the secrets-init image for this pod.
pub const ANNOTATION_SECRETS_INIT_IMAGE: &str = "secretsinit.io/secrets-init-image";
/// The older spelling of [`ANNOTATION_SECRETS_INIT_IMAGE`], still read.
pub const ANNOTATION_SECRETS_INIT_IMAGE_OLD: &str = "secretsinit.io/secret-init-image";
/// `secretsinit.io/env-from`: comma list of references, each passed as `--env-from`.
pub const ANNOTATION_ENV_FROM: &str = "secretsinit.io/env-from";
/// `secretsinit.io/aws-role-arn`: passed as `--role-arn`.
pub const ANNOTATION_ROLE_ARN: &str = "secretsinit.io/aws-role-arn";
/// `secretsinit.io/aws-role-external-id`: passed as `--role-external-id` (with a role ARN).
pub const ANNOTATION_ROLE_EXTERNAL_ID: &str = "secretsinit.io/aws-role-external-id";
/// `secretsinit.io/mutation-mode`: overrides the cluster's default mode for this pod.
pub const ANNOTATION_MUTATION_MODE: &str = "secretsinit.io/mutation-mode";
/// `secretsinit.io/containers`: comma list of the containers to mutate.
pub const ANNOTATION_CONTAINERS: &str = "secretsinit.io/containers";
/// `secretsinit.io/injected`: set by the webhook to the mode it used; present = already mutated.
pub const ANNOTATION_INJECTED: &str = "secretsinit.io/injected";
/// `secretsinit.io/reload`: read by secrets-init-controller (`"true"` restarts the workload when
/// a referenced secret rotates, `"paused"` holds restarts); known here so it draws no warning.
pub const ANNOTATION_RELOAD: &str = "secretsinit.io/reload";
/// `secretsinit.io/restartedAt`: written by the controller on a workload's pod template when it
/// restarts it, so its pods carry it; known here so it draws no warning.
pub const ANNOTATION_RESTARTED_AT: &str = "secretsinit.io/restartedAt";
/// `secretsinit.io/restart-reason`: written by the controller on a workload's pod template (which
/// id changed), so its pods carry it; known here so it draws no warning.
pub const ANNOTATION_RESTART_REASON: &str = "secretsinit.io/restart-reason";
/// `secretsinit.io/injected` as a label, value = the mode: put on every pod the webhook mutates,
/// so the controller can watch only injected pods with a label selector.
pub const LABEL_INJECTED: &str = "secretsinit.io/injected";

/// The annotation prefix this webhook owns.
pub const ANNOTATION_PREFIX: &str = "secretsinit.io/";

/// Every annotation under [`ANNOTATION_PREFIX`] this webhook knows. The controller's three
/// ([`ANNOTATION_RELOAD`], [`ANNOTATION_RESTARTED_AT`], [`ANNOTATION_RESTART_REASON`]) are
/// known but not read: any value is accepted at admission (the controller owns them, and the
/// webhook must not deny a pod over a value only the controller reads).
pub const KNOWN_ANNOTATIONS: [&str; 15] = [
    ANNOTATION_INJECT,
    ANNOTATION_IGNORE_MISSING,
    ANNOTATION_MUTATE_PROBES,
    ANNOTATION_AWS_REGION,
    ANNOTATION_SECRETS_INIT_IMAGE,
    ANNOTATION_SECRETS_INIT_IMAGE_OLD,
    ANNOTATION_ENV_FROM,
    ANNOTATION_ROLE_ARN,
    ANNOTATION_ROLE_EXTERNAL_ID,
    ANNOTATION_MUTATION_MODE,
    ANNOTATION_CONTAINERS,
    ANNOTATION_INJECTED,
    ANNOTATION_RELOAD,
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_RESTART_REASON,
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
    /// `secretsinit.io/env-from`, each reference checked and in its canonical spelling.
    pub env_from: Vec<String>,
    pub role_arn: Option<String>,
    pub role_external_id: Option<String>,
    /// For the AdmissionResponse: annotations under the prefix this webhook does not know.
    pub warnings: Vec<String>,
}

impl PodOptions {
    /// Parses and validates every `secretsinit.io/*` annotation. An invalid value is an error
    /// that lists the valid choices; an annotation under the prefix that this webhook does not
    /// know is a warning (a pod written for a newer webhook must still start after a
    /// rollback).
    pub fn from_annotations(
        annotations: Option<&BTreeMap<String, String>>,
    ) -> Result<Self, MutationError> {
        let empty = BTreeMap::new();
        let a = annotations.unwrap_or(&empty);
        let mut warnings = Vec::new();
        let unknown: Vec<&str> = a
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with(ANNOTATION_PREFIX) && !KNOWN_ANNOTATIONS.contains(k))
            .collect();
        if !unknown.is_empty() {
            warnings.push(format!(
                "secrets-init: ignored unknown annotation {} (a typo, or for a newer webhook)",
                quoted_list(unknown.iter().copied())
            ));
        }
        let image = match (
            a.get(ANNOTATION_SECRETS_INIT_IMAGE),
            a.get(ANNOTATION_SECRETS_INIT_IMAGE_OLD),
        ) {
            (Some(new), Some(old)) if new != old => {
                warnings.push(format!(
                    "secrets-init: both {ANNOTATION_SECRETS_INIT_IMAGE} and the older \
                     {ANNOTATION_SECRETS_INIT_IMAGE_OLD} are set; the first is used"
                ));
                Some((ANNOTATION_SECRETS_INIT_IMAGE, new))
            }
            (Some(new), _) => Some((ANNOTATION_SECRETS_INIT_IMAGE, new)),
            (None, Some(old)) => Some((ANNOTATION_SECRETS_INIT_IMAGE_OLD, old)),
            (None, None) => None,
        };
        let role_arn = a
            .get(ANNOTATION_ROLE_ARN)
            .map(|v| role_arn(v))
            .transpose()?;
        let role_external_id = a
            .get(ANNOTATION_ROLE_EXTERNAL_ID)
            .map(|v| external_id(v, role_arn.is_some()))
            .transpose()?;
        Ok(Self {
            ignore_missing: boolean(a, ANNOTATION_IGNORE_MISSING)?,
            mutate_probes: boolean(a, ANNOTATION_MUTATE_PROBES)?,
            region: a
                .get(ANNOTATION_AWS_REGION)
                .map(|v| region(ANNOTATION_AWS_REGION, v))
                .transpose()?,
            secrets_init_image: image
                .map(|(key, v)| image_reference(&format!("annotation {key}"), v))
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
            env_from: a
                .get(ANNOTATION_ENV_FROM)
                .map(|v| env_from_list(v))
                .transpose()?
                .unwrap_or_default(),
            role_arn,
            role_external_id,
            warnings,
        })
    }
}

/// The AWS partitions IAM role ARNs are written in.
const PARTITIONS: [&str; 8] = [
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/[<path>/]<name>`, with IAM's
/// characters for paths and names (letters, digits, `+=,.@_-`). Checked here so that a typo is
/// denied at `kubectl apply` rather than found by STS when the container starts.
fn role_arn(v: &str) -> Result<String, MutationError> {
    let fields: Vec<&str> = v.splitn(6, ':').collect();
    let ok = match fields.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            PARTITIONS.contains(partition)
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|rest| {
                    let name = rest.rsplit('/').next().unwrap_or_default();
                    !name.is_empty()
                        && name.len() <= 64
                        && rest.len() <= 512 + 64
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
                })
        }
        _ => false,
    };
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            ANNOTATION_ROLE_ARN,
            v,
            "an IAM role ARN, arn:<partition>:iam::<12-digit account id>:role/[<path>/]<name> \
             (e.g. arn:aws:iam::123456789012:role/app-secrets-reader)",
        ))
    }
}

/// An STS external id: 2 to 1224 of letters, digits and `+=,.@:/-_`, and only with a role.
fn external_id(v: &str, with_role: bool) -> Result<String, MutationError> {
    if !with_role {
        return Err(invalid(
            ANNOTATION_ROLE_EXTERNAL_ID,
            v,
            &format!(
                "an external id, and only together with {ANNOTATION_ROLE_ARN} (it is passed when that role is assumed)"
            ),
        ));
    }
    let ok = (2..=1224).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(invalid(
            ANNOTATION_ROLE_EXTERNAL_ID,
            v,
            "2 to 1224 characters: letters, digits and + = , . @ : / - _",
        ))
    }
}

/// `secretsinit.io/env-from`: comma-separated references, each checked with the grammar
/// secrets-init reads them with, in their canonical spelling.
fn env_from_list(v: &str) -> Result<Vec<String>, MutationError> {
    let refs: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    if refs.is_empty() {
        return Err(invalid(ANNOTATION_ENV_FROM, v, ENV_FROM_FORMS));
    }
    refs.into_iter()
        .map(|r| {
            placeholder::parse_env_from(r)
                .map(|parsed| parsed.to_string())
                .map_err(|e| {
                    // The error's own text repeats the reference whole (and the forms); only
                    // its reason is kept, bounded: the reference is shown, quoted, as `value`.
                    let reason = match e {
                        placeholder::ParseError::EnvFrom { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    MutationError::InvalidAnnotation {
                        annotation: ANNOTATION_ENV_FROM.to_owned(),
                        value: quoted(r),
                        valid: format!("{ENV_FROM_FORMS} ({})", clip(&reason, VALUE_BYTES * 2)),
                    }
                })
        })
        .collect()
}

const ENV_FROM_FORMS: &str = "a comma-separated list of awssm:<secret-id>[##<version>] (every key of a JSON secret) and awsssm:/<path>/ (every parameter under the path)";

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
    fn unknown_annotations_under_the_prefix_are_warnings() {
        let o = PodOptions::from_annotations(Some(&ann(&[
            ("secretsinit.io/ignore-missing", "true"),
            ("secretsinit.io/from-the-future", "x"),
            ("example.com/x", "y"),
        ])))
        .unwrap();
        assert_eq!(
            o.warnings,
            [
                "secrets-init: ignored unknown annotation \"secretsinit.io/from-the-future\", \"secretsinit.io/ignore-missing\" (a typo, or for a newer webhook)"
            ]
        );
        assert!(!o.ignore_missing, "the misspelling does nothing");
        let o = PodOptions::from_annotations(Some(&ann(&[("example.com/x", "y")]))).unwrap();
        assert!(
            o.warnings.is_empty(),
            "other prefixes are none of our business"
        );
    }

    #[test]
    fn the_controllers_annotations_are_known_and_any_value_is_accepted() {
        let o = PodOptions::from_annotations(Some(&ann(&[
            (ANNOTATION_INJECT, "true"),
            (ANNOTATION_RELOAD, "true"),
            (ANNOTATION_RESTARTED_AT, "2025-01-02T03:04:05Z"),
            (
                ANNOTATION_RESTART_REASON,
                "awssm:prod/db AWSCURRENT=0b6a5a34-ffb1-4f5a-9c1e-000000000000",
            ),
        ])))
        .unwrap();
        assert!(o.warnings.is_empty(), "{:?}", o.warnings);
        // The controller's annotation, not the webhook's: no value is denied at admission.
        for value in ["paused", "false", "", "True", "anything at all"] {
            let o = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_RELOAD, value)])));
            assert!(o.unwrap().warnings.is_empty(), "{value:?}");
        }
    }

    #[test]
    fn both_spellings_of_the_image_annotation() {
        let old = PodOptions::from_annotations(Some(&ann(&[(
            ANNOTATION_SECRETS_INIT_IMAGE_OLD,
            "registry.example/old:1",
        )])))
        .unwrap();
        assert_eq!(
            old.secrets_init_image.as_deref(),
            Some("registry.example/old:1")
        );
        assert!(old.warnings.is_empty());
        let both = PodOptions::from_annotations(Some(&ann(&[
            (ANNOTATION_SECRETS_INIT_IMAGE_OLD, "registry.example/old:1"),
            (ANNOTATION_SECRETS_INIT_IMAGE, "registry.example/new:2"),
        ])))
        .unwrap();
        assert_eq!(
            both.secrets_init_image.as_deref(),
            Some("registry.example/new:2")
        );
        assert_eq!(both.warnings.len(), 1, "{:?}", both.warnings);
        let e = PodOptions::from_annotations(Some(&ann(&[(
            ANNOTATION_SECRETS_INIT_IMAGE_OLD,
            "Not A Ref",
        )])))
        .unwrap_err()
        .to_string();
        assert!(e.contains(ANNOTATION_SECRETS_INIT_IMAGE_OLD), "{e}");
    }

    #[test]
    fn role_arns() {
        for ok in [
            "arn:aws:iam::123456789012:role/reader",
            "arn:aws-cn:iam::123456789012:role/team/app/reader",
            "arn:aws-us-gov:iam::123456789012:role/a+b=c,d.e@f_g-h",
        ] {
            let o = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_ROLE_ARN, ok)])));
            assert_eq!(o.unwrap().role_arn.as_deref(), Some(ok));
        }
        for bad in [
            "",
            "reader",
            "arn:aws:iam::12345:role/reader",
            "arn:aws:iam:eu-west-1:123456789012:role/reader",
            "arn:aws:iam::123456789012:user/reader",
            "arn:aws:sts::123456789012:role/reader",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/with space",
            "arn:aws:iam::123456789012:role/$(HOME)",
            "arn:moon:iam::123456789012:role/reader",
        ] {
            let e = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_ROLE_ARN, bad)])))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(ANNOTATION_ROLE_ARN) && e.contains("arn:<partition>:iam::"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn external_ids() {
        let role = (ANNOTATION_ROLE_ARN, "arn:aws:iam::123456789012:role/reader");
        let o = PodOptions::from_annotations(Some(&ann(&[
            role,
            (ANNOTATION_ROLE_EXTERNAL_ID, "tenant-42:prod"),
        ])))
        .unwrap();
        assert_eq!(o.role_external_id.as_deref(), Some("tenant-42:prod"));
        let alone =
            PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_ROLE_EXTERNAL_ID, "x1")])))
                .unwrap_err()
                .to_string();
        assert!(alone.contains("only together with"), "{alone}");
        for bad in ["x", "has space", "dollar$"] {
            let e = PodOptions::from_annotations(Some(&ann(&[
                role,
                (ANNOTATION_ROLE_EXTERNAL_ID, bad),
            ])))
            .unwrap_err()
            .to_string();
            assert!(e.contains("2 to 1224"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_long_env_from_reference_is_echoed_bounded_with_its_reason() {
        let long = format!("awsssm:/{}", "a/".repeat(100_000) + "x");
        let e = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_ENV_FROM, &long)])))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 2048, "{} bytes", e.len());
        assert!(e.contains("must end with `/`"), "{e}");
        assert!(e.contains(&format!("({} bytes)", long.len())), "{e}");
    }

    #[test]
    fn env_from_references() {
        let o = PodOptions::from_annotations(Some(&ann(&[(
            ANNOTATION_ENV_FROM,
            " awssm:prod/app , awsssm:/prod/app/ ,awssm:prod/other##AWSPREVIOUS",
        )])))
        .unwrap();
        assert_eq!(o.env_from.len(), 3, "{:?}", o.env_from);
        assert_eq!(o.env_from[0], "awssm:prod/app");
        assert_eq!(o.env_from[1], "awsssm:/prod/app/");
        for bad in ["", " , ", "prod/app", "awsssm:/no/trailing/slash", "awssm:"] {
            let e = PodOptions::from_annotations(Some(&ann(&[(ANNOTATION_ENV_FROM, bad)])))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(ANNOTATION_ENV_FROM) && e.contains("awssm:<secret-id>[##<version>]"),
                "{bad:?}: {e}"
            );
        }
    }
}
