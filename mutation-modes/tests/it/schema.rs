//! Every patched pod the golden tests expect is a valid Pod for the Kubernetes API schema
//! (kubernetes-validate, strict: unknown fields are errors).

use crate::common::{golden_dir, validate_files};

#[test]
fn expected_pods_validate_against_the_kubernetes_schema() {
    let mut files: Vec<_> = std::fs::read_dir(golden_dir())
        .expect("tests/golden")
        .flat_map(|case| std::fs::read_dir(case.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("expected.") && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 50,
        "only {} expected pods found",
        files.len()
    );
    // Validate the documents as JSON (what the webhook actually produces): the fixtures are
    // YAML 1.2, while the validator reads YAML 1.1, where an unquoted annotation such as
    // `2026-11-01T10:00:00Z` would turn into a timestamp.
    let dir = tempfile::tempdir().unwrap();
    let json_files: Vec<_> = files
        .iter()
        .map(|f| {
            let case = f.parent().unwrap().file_name().unwrap().to_string_lossy();
            let stem = f.file_stem().unwrap().to_string_lossy();
            let out = dir.path().join(format!("{case}.{stem}.json"));
            let doc: serde_json::Value = crate::common::read_yaml(f);
            std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
            out
        })
        .collect();
    if let Err(e) = validate_files(&json_files) {
        panic!("{e}");
    }
}

/// The validator is not a rubber stamp: a pod with an unknown container field, and one with
/// an image volume missing its required shape, are rejected.
#[test]
fn validator_rejects_invalid_pods() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - {name: a, image: a, commnd: [x]}\n",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - {name: a, image: a}\n  volumes:\n  - {name: v, image: {reference: [1]}}\n",
    ];
    for (i, text) in bad.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        assert!(validate_files(&[path]).is_err(), "accepted:\n{text}");
    }
}
