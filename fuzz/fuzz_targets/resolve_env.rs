//! From a container's environment to the program's (`resolve::parse_env` + `resolve::render`)
//! with a synthetic set of fetched secrets: every placeholder variable ends up either with a
//! value or with a problem, other variables pass through untouched and in order,
//! `SECRETS_INIT_*` never reaches the program, and no problem ever carries secret text.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use placeholder::FetchKey;
use secrets_init::fetch::{FetchFailure, FetchResult, SecretText};
use secrets_init::problem::Code;
use secrets_init::resolve::{OWN_PREFIX, parse_env, render};

/// Every secret value the fuzzer hands out contains this; logs must never show it.
const MARK: &str = "s3cr3t";

#[derive(Debug, Arbitrary)]
enum Piece {
    Text(String),
    Whole(String),
    Embedded(String),
    WholeParameter(String),
    EmbeddedParameter(String),
    Escape,
    Dollar,
}

#[derive(Debug, Arbitrary)]
enum Value {
    Raw(Vec<u8>),
    Pieces(Vec<Piece>),
}

#[derive(Debug, Arbitrary)]
enum Outcome {
    Object(Vec<String>),
    Text,
    Nul,
    Missing,
    Transient,
    NotFetched,
}

#[derive(Debug, Arbitrary)]
struct Input {
    env: Vec<(String, Value)>,
    outcomes: Vec<Outcome>,
    ignore_missing: bool,
}

fn value_bytes(v: Value) -> Vec<u8> {
    match v {
        Value::Raw(b) => b,
        Value::Pieces(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => s.push_str(&t),
                    Piece::Whole(r) => {
                        s.push_str("awssm:");
                        s.push_str(&r);
                    }
                    Piece::Embedded(r) => {
                        s.push_str("${awssm:");
                        s.push_str(&r);
                        s.push('}');
                    }
                    Piece::WholeParameter(r) => {
                        s.push_str("awsssm:");
                        s.push_str(&r);
                    }
                    Piece::EmbeddedParameter(r) => {
                        s.push_str("${awsssm:");
                        s.push_str(&r);
                        s.push('}');
                    }
                    Piece::Escape => s.push_str("$${"),
                    Piece::Dollar => s.push('$'),
                }
            }
            s.into_bytes()
        }
    }
}

fn outcome(o: &Outcome, n: usize) -> Option<FetchResult> {
    Some(match o {
        Outcome::Object(keys) => {
            let body: Vec<String> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        serde_json::json!({"v": format!("{MARK}-{n}-{i}"), "n": [i, null, true]})
                    )
                })
                .collect();
            Ok(SecretText::new(format!("{{{}}}", body.join(","))))
        }
        Outcome::Text => Ok(SecretText::new(format!("{MARK}-{n}"))),
        Outcome::Nul => Ok(SecretText::new(format!("{MARK}\0{n}"))),
        Outcome::Missing => Err(FetchFailure::new(
            Code::ResourceNotFound,
            "Secrets Manager can't find the specified secret.",
        )),
        Outcome::Transient => Err(FetchFailure::new(
            Code::from_aws("ThrottlingException"),
            "Rate exceeded",
        )),
        Outcome::NotFetched => return None,
    })
}

fuzz_target!(|input: Input| {
    let mut seen = BTreeSet::new();
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for (name, value) in input.env {
        let value = value_bytes(value);
        // Names are unique in a real environment; the secret marker belongs to values only.
        if name.is_empty() || name.contains(['=', '\0']) || !seen.insert(name.clone()) {
            continue;
        }
        if name.contains(MARK) || String::from_utf8_lossy(&value).contains(MARK) {
            return;
        }
        env.push((OsString::from(name), OsString::from_vec(value)));
    }
    if input
        .outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Object(keys) if keys.iter().any(|k| k.contains(MARK))))
    {
        return;
    }

    let parsed = parse_env(env.clone());
    for p in &parsed.malformed {
        assert!(!p.to_string().is_empty());
        assert!(!parsed.templates.contains_key(&p.variable));
    }
    let keys: BTreeSet<FetchKey> = parsed
        .templates
        .values()
        .flat_map(|t| t.refs().map(|r| r.fetch.clone()))
        .collect();
    let mut fetched = BTreeMap::new();
    if !input.outcomes.is_empty() {
        for (n, key) in keys.into_iter().enumerate() {
            if let Some(result) = outcome(&input.outcomes[n % input.outcomes.len()], n) {
                fetched.insert(key, result);
            }
        }
    }
    let templates: BTreeSet<String> = parsed.templates.keys().cloned().collect();
    let resolved = render(parsed, HashMap::new(), input.ignore_missing, &fetched);

    if !input.ignore_missing {
        assert!(resolved.ignored.is_empty());
    }
    for p in resolved.problems.iter().chain(&resolved.ignored) {
        let text = p.to_string();
        assert!(!text.contains(MARK), "secret text in a problem: {text}");
        assert!(
            templates.contains(&p.variable),
            "problem for a plain variable"
        );
    }
    let failed: BTreeSet<&str> = resolved
        .problems
        .iter()
        .map(|p| p.variable.as_str())
        .collect();
    let out: BTreeMap<String, &OsString> = resolved
        .env
        .iter()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v))
        .collect();
    assert_eq!(out.len(), resolved.env.len(), "a variable appears twice");
    for name in &templates {
        assert_ne!(
            out.contains_key(name),
            failed.contains(name.as_str()),
            "{name}: must have either a value or a problem"
        );
        if let Some(v) = out.get(name) {
            assert!(!v.as_encoded_bytes().contains(&0), "{name}: NUL in value");
        }
    }
    // Everything that is not a placeholder passes through unchanged, in order.
    let passed: Vec<&(OsString, OsString)> = env
        .iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            !k.starts_with(OWN_PREFIX) && !templates.contains(k.as_ref())
        })
        .collect();
    let kept: Vec<&(OsString, OsString)> = resolved
        .env
        .iter()
        .filter(|(k, _)| !templates.contains(k.to_string_lossy().as_ref()))
        .collect();
    assert_eq!(passed, kept);
    assert!(
        resolved
            .env
            .iter()
            .all(|(k, _)| !k.to_string_lossy().starts_with(OWN_PREFIX))
    );
});
