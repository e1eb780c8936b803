//! Golden tests: every folder in tests/golden is a case.
//!
//! - `input.yaml`: the pod the API server sends (after defaulting);
//! - `images.yaml` (optional): the fake registry, see `common::FakeImage`;
//! - `config.yaml` (optional): fields of `MutationConfig` to change from `common::base_config`.
//!
//! For each mode (set as the cluster default; a pod annotation may override it) the outcome
//! is one of `expected.<mode>.yaml` (the patched pod: the returned JSON patch applied to
//! input.yaml, with `warnings.<mode>.txt` when the answer carries warnings),
//! `skipped.<mode>.txt` (reason and warnings) or `error.<mode>.txt` (the denial message),
//! plus `lookups.<mode>.txt` when the image source was asked anything.
//!
//! `UPDATE_GOLDEN=1 cargo test -p mutation-modes --test it golden` rewrites those files and
//! then fails, naming them (an update compares nothing). Review them by eye: they are the
//! specification.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{FakeImage, FakeImages, base_config, golden_dir, read_yaml};
use k8s_openapi::api::core::v1::Pod;
use mutation_modes::{
    ANNOTATION_INJECTED, Decision, LABEL_INJECTED, ModeKind, MutationConfig, SparsePod, mutate_pod,
};
use serde_json::Value;

fn case_config(dir: &Path, mode: ModeKind) -> MutationConfig {
    let mut config = serde_json::to_value(base_config()).unwrap();
    let path = dir.join("config.yaml");
    if path.exists() {
        let overrides: serde_json::Map<String, Value> = read_yaml(&path);
        for (k, v) in overrides {
            config[k] = v;
        }
    }
    let mut config: MutationConfig =
        serde_json::from_value(config).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config.default_mode = mode;
    config
}

/// The outcome files of one case and mode, rendered.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    files: BTreeMap<String, String>,
}

const KINDS: [&str; 5] = ["expected", "warnings", "skipped", "error", "lookups"];

fn file_name(kind: &str, mode: ModeKind) -> String {
    let ext = if kind == "expected" { "yaml" } else { "txt" };
    format!("{kind}.{mode}.{ext}")
}

/// Runs one case in one mode; returns the rendered outcome and the patched pod (if mutated).
///
/// The pod is decoded as the webhook decodes it ([`SparsePod`]: only the fields the mutation
/// reads), and again whole as a `k8s_openapi` Pod: both must give the same outcome, or the
/// mutation reads a field the sparse decoder leaves out.
async fn run(dir: &Path, mode: ModeKind) -> (Outcome, Option<Value>) {
    let input: Value = read_yaml(&dir.join("input.yaml"));
    let sparse: SparsePod = serde_json::from_value(input.clone())
        .unwrap_or_else(|e| panic!("{}: input.yaml is not a Pod: {e}", dir.display()));
    let whole: Pod = serde_json::from_value(input.clone())
        .unwrap_or_else(|e| panic!("{}: input.yaml is not a Pod: {e}", dir.display()));
    let got = run_pod(dir, mode, &input, &sparse.0).await;
    let from_whole = run_pod(dir, mode, &input, &whole).await;
    assert_eq!(
        got,
        from_whole,
        "{} ({mode}): the sparse decode and the whole Pod give different outcomes",
        dir.display()
    );
    got
}

async fn run_pod(dir: &Path, mode: ModeKind, input: &Value, pod: &Pod) -> (Outcome, Option<Value>) {
    let table: BTreeMap<String, FakeImage> = if dir.join("images.yaml").exists() {
        read_yaml(&dir.join("images.yaml"))
    } else {
        BTreeMap::new()
    };
    let images = FakeImages::new(table);
    let config = case_config(dir, mode);
    let mut out = Outcome::default();
    let mut patched = None;
    match mutate_pod(pod, &config, &images).await {
        Ok(Decision::Mutated {
            mode: used,
            patch,
            warnings,
        }) => {
            if !warnings.is_empty() {
                let text: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
                out.files.insert(file_name("warnings", mode), text);
            }
            check_patch_shape(dir, used, &patch);
            let mut doc = input.clone();
            json_patch::patch(&mut doc, &patch).unwrap_or_else(|e| {
                panic!(
                    "{} ({mode}): the patch does not apply: {e}\n{patch:?}",
                    dir.display()
                )
            });
            assert_eq!(
                doc["metadata"]["annotations"][ANNOTATION_INJECTED],
                Value::String(used.to_string()),
                "{}",
                dir.display()
            );
            assert_eq!(
                doc["metadata"]["labels"][LABEL_INJECTED],
                Value::String(used.to_string()),
                "{}",
                dir.display()
            );
            out.files.insert(
                file_name("expected", mode),
                serde_yaml_ng::to_string(&doc).unwrap(),
            );
            patched = Some(doc);
        }
        Ok(Decision::Skipped { reason, warnings }) => {
            let mut text = format!("reason: {reason}\n");
            for w in warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            out.files.insert(file_name("skipped", mode), text);
        }
        Err(e) => {
            out.files.insert(file_name("error", mode), format!("{e}\n"));
        }
    }
    let calls = images.calls();
    if !calls.is_empty() {
        out.files
            .insert(file_name("lookups", mode), calls.join("\n") + "\n");
    }
    (out, patched)
}

/// The patch edits the user's containers in place (never replaces or removes one whole, which
/// would drop fields this crate does not know), escapes `/` in the annotation and label keys,
/// and inserts the init container with one final `add`.
fn check_patch_shape(dir: &Path, mode: ModeKind, patch: &json_patch::Patch) {
    use json_patch::PatchOperation as Op;
    let paths: Vec<(String, &str)> = patch
        .0
        .iter()
        .map(|op| {
            let kind = match op {
                Op::Add(_) => "add",
                Op::Remove(_) => "remove",
                Op::Replace(_) => "replace",
                _ => "other",
            };
            (op.path().to_string(), kind)
        })
        .collect();
    let whole_container = |p: &str| {
        ["/spec/containers/", "/spec/initContainers/"]
            .iter()
            .any(|prefix| {
                p.strip_prefix(prefix)
                    .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    for (path, kind) in &paths {
        assert!(
            *kind != "other",
            "{}: unexpected op at {path}",
            dir.display()
        );
        let ours = *kind == "add" && path == "/spec/initContainers/0";
        assert!(
            !whole_container(path) || ours,
            "{}: the patch {kind}s a whole container at {path}",
            dir.display()
        );
    }
    assert!(
        paths
            .iter()
            .any(|(p, k)| p == "/metadata/annotations/secretsinit.io~1injected" && *k == "add"),
        "{}: no add of the injected annotation: {paths:?}",
        dir.display()
    );
    assert!(
        paths
            .iter()
            .any(|(p, k)| (p == "/metadata/labels/secretsinit.io~1injected"
                || p == "/metadata/labels")
                && *k == "add"),
        "{}: no add of the injected label: {paths:?}",
        dir.display()
    );
    let last = paths.last().map(|(p, _)| p.as_str()).unwrap_or_default();
    let inserts = last == "/spec/initContainers/0" || last == "/spec/initContainers";
    assert_eq!(
        inserts,
        mode == ModeKind::InitContainer,
        "{}: last op {last}",
        dir.display()
    );
}

fn cases() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[tokio::test]
async fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let dirs = cases();
    assert!(
        dirs.len() >= 30,
        "expected the golden cases in {}",
        golden_dir().display()
    );
    let mut failures = Vec::new();
    let mut rewritten = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let known: Vec<String> = ["input.yaml", "images.yaml", "config.yaml"]
            .map(String::from)
            .into_iter()
            .chain(
                KINDS
                    .iter()
                    .flat_map(|k| ModeKind::ALL.map(|m| file_name(k, m))),
            )
            .collect();
        for f in std::fs::read_dir(dir).unwrap() {
            let f = f.unwrap().file_name().to_string_lossy().into_owned();
            if !known.contains(&f) {
                failures.push(format!("{name}/{f}: not a golden file name (typo?)"));
            }
        }
        for mode in ModeKind::ALL {
            let (outcome, patched) = run(dir, mode).await;
            for kind in KINDS {
                let file = file_name(kind, mode);
                let path = dir.join(&file);
                let want = outcome.files.get(&file);
                let have = std::fs::read_to_string(&path).ok();
                if update {
                    if have.as_ref() != want {
                        match want {
                            Some(text) => std::fs::write(&path, text).unwrap(),
                            None => std::fs::remove_file(&path).unwrap(),
                        }
                        rewritten.push(format!("{name}/{file}"));
                    }
                    continue;
                }
                let same = match (kind, &have, want) {
                    ("expected", Some(h), Some(w)) => {
                        serde_yaml_ng::from_str::<Value>(h).ok()
                            == serde_yaml_ng::from_str::<Value>(w).ok()
                    }
                    (_, h, w) => h.as_ref() == w,
                };
                if !same {
                    failures.push(format!(
                        "{name}/{file}: want\n{}\ngot\n{}",
                        have.as_deref().unwrap_or("(no file)"),
                        want.map_or("(no file)", String::as_str)
                    ));
                }
            }
            // Injected containers satisfy Pod Security Admission "restricted".
            if let Some(doc) = &patched {
                let before = input_container_names(dir);
                for c in doc["spec"]["initContainers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if !before.contains(&c["name"])
                        && let Err(e) = check_restricted(c)
                    {
                        failures.push(format!("{name} ({mode}): injected {}: {e}", c["name"]));
                    }
                }
            }
            // Reinvocation is a no-op: the patched pod is skipped in every mode.
            if let Some(doc) = patched {
                let pod: Pod = serde_json::from_value(doc).unwrap();
                for again in ModeKind::ALL {
                    let config = case_config(dir, again);
                    let images = FakeImages::default();
                    match mutate_pod(&pod, &config, &images).await {
                        Ok(Decision::Skipped { reason, .. }) => {
                            assert!(reason.contains("already injected"), "{name}: {reason}")
                        }
                        other => failures.push(format!(
                            "{name} ({mode} then {again}): not skipped: {other:?}"
                        )),
                    }
                    assert!(images.calls().is_empty(), "{name}: looked up images again");
                }
            }
        }
    }
    // An update compares nothing, so it never passes: review the diff, then run again.
    assert!(
        !update,
        "UPDATE_GOLDEN=1 rewrote {} golden files (review `git diff`, then run without it): {}",
        rewritten.len(),
        rewritten.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} golden mismatches (UPDATE_GOLDEN=1 rewrites; review the diff):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Names of the containers and init containers of the case's input pod.
fn input_container_names(dir: &Path) -> Vec<Value> {
    let input: Value = read_yaml(&dir.join("input.yaml"));
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| input["spec"][k].as_array().cloned().unwrap_or_default())
        .map(|c| c["name"].clone())
        .collect()
}

/// The container-level rules of the Pod Security Standards "restricted" profile (v1.35), for a
/// container whose pod sets no security context.
fn check_restricted(c: &Value) -> Result<(), String> {
    let sc = &c["securityContext"];
    let rules: [(&str, bool); 8] = [
        (
            "privileged must not be true",
            sc["privileged"] != Value::Bool(true),
        ),
        (
            "allowPrivilegeEscalation must be false",
            sc["allowPrivilegeEscalation"] == Value::Bool(false),
        ),
        (
            "runAsNonRoot must be true",
            sc["runAsNonRoot"] == Value::Bool(true),
        ),
        (
            // PSA restricted forbids 0; unset is allowed (the platform assigns one).
            "runAsUser must not be 0",
            sc["runAsUser"].as_i64() != Some(0),
        ),
        (
            "capabilities must drop ALL",
            sc["capabilities"]["drop"]
                .as_array()
                .is_some_and(|d| d.contains(&Value::from("ALL"))),
        ),
        (
            "capabilities may add only NET_BIND_SERVICE",
            sc["capabilities"]["add"]
                .as_array()
                .is_none_or(|a| a.iter().all(|x| x == "NET_BIND_SERVICE")),
        ),
        (
            "seccompProfile must be RuntimeDefault or Localhost",
            ["RuntimeDefault", "Localhost"]
                .map(Value::from)
                .contains(&sc["seccompProfile"]["type"]),
        ),
        (
            "no host ports",
            c["ports"]
                .as_array()
                .is_none_or(|p| p.iter().all(|p| p["hostPort"].is_null())),
        ),
    ];
    let broken: Vec<&str> = rules
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(r, _)| *r)
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("; "))
    }
}

#[test]
fn restricted_check_is_not_a_rubber_stamp() {
    let c: Value = serde_json::json!({"name": "x", "securityContext": {"runAsUser": 0}});
    let e = check_restricted(&c).unwrap_err();
    assert!(
        e.contains("runAsUser") && e.contains("drop ALL") && e.contains("seccomp"),
        "{e}"
    );
}

/// Every expected pod reads back into k8s-openapi's Pod and serialises to the same document:
/// no unknown or misspelt fields, no values of the wrong type.
#[test]
fn expected_pods_round_trip_through_k8s_openapi() {
    let mut checked = 0;
    for dir in cases() {
        for mode in ModeKind::ALL {
            let path = dir.join(file_name("expected", mode));
            if !path.exists() {
                continue;
            }
            let doc: Value = read_yaml(&path);
            let pod: Pod = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                serde_json::to_value(&pod).unwrap(),
                doc,
                "{}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} expected pods");
}
