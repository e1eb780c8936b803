//! `--env-from` (contract §3): many variables from one JSON-object secret or one Parameter
//! Store path. Pure, given what was fetched.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;

use zeroize::Zeroize;

use placeholder::{EnvFrom, FetchKey, Source};

use crate::extract::object_entries;
use crate::fetch::{FetchFailure, Fetched, Wanted};
use crate::problem::{Code, Problem};
use crate::program_env::{OWN_PREFIX, Resolved};

/// What problem lines about an `--env-from` reference name instead of a variable.
pub const LABEL: &str = "--env-from";

/// The fetch key of a secret reference.
fn secret_key(id: &str, version: &placeholder::Version) -> FetchKey {
    FetchKey {
        source: Source::SecretsManager,
        id: id.to_owned(),
        version: version.clone(),
    }
}

/// Adds what `refs` need to `wanted`: secrets go with the placeholders' keys (one fetch for a
/// secret both imported and referenced), paths on their own.
pub fn want(refs: &[EnvFrom], wanted: &mut Wanted) {
    for r in refs {
        match r {
            EnvFrom::Secret { id, version } => {
                wanted.keys.insert(secret_key(id, version));
            }
            EnvFrom::ParameterPath { path } => {
                wanted.paths.insert(path.clone());
            }
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell, and so most programs, can read as a variable.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Imports the variables of `refs` from `fetched` into `resolved`, after the container's own:
/// a name the container sets (`container`) is never imported, and between two references the
/// later wins. Names that are not variable names, or that carry secrets-init's own prefix, are
/// skipped with a warning naming them (never a value). A secret that is not a JSON object, or a
/// path with nothing under it, is a problem whatever `--ignore-missing` says (the reference is
/// wrong, not the data missing); a secret or path that does not exist or is denied is ignored
/// under `--ignore-missing`.
pub fn import(
    refs: &[EnvFrom],
    fetched: &Fetched,
    ignore_missing: bool,
    container: &HashSet<String>,
    resolved: &mut Resolved,
) {
    let mut imported: Vec<(String, String)> = Vec::new();
    for r in refs {
        let reference = r.to_string();
        let problem = |code: Code, message: String| Problem {
            variable: LABEL.to_owned(),
            reference: Some(reference.clone()),
            code,
            message,
        };
        let failed = |failure: &FetchFailure, resolved: &mut Resolved| {
            let p = problem(failure.code.clone(), failure.message.clone());
            if failure.code.is_missing() && ignore_missing {
                resolved.ignored.push(p);
            } else {
                resolved.problems.push(p);
            }
        };
        let variables: Vec<(String, String)> = match r {
            EnvFrom::Secret { id, version } => match fetched.values.get(&secret_key(id, version)) {
                Some(Ok(text)) => match object_entries(text.expose()) {
                    Some(entries) => entries,
                    None => {
                        resolved.problems.push(problem(
                            Code::SecretNotJsonObject,
                            "the secret is not a JSON object, so it has no keys to import; read it whole with a placeholder (awssm:<secret-id>) in one variable instead".to_owned(),
                        ));
                        continue;
                    }
                },
                Some(Err(failure)) => {
                    failed(failure, resolved);
                    continue;
                }
                None => {
                    resolved.problems.push(problem(
                        Code::NotFetched,
                        "the secret was not fetched".to_owned(),
                    ));
                    continue;
                }
            },
            EnvFrom::ParameterPath { path } => match fetched.paths.get(path) {
                Some(Ok(parameters)) if parameters.is_empty() => {
                    resolved.problems.push(problem(
                        Code::NoParametersUnderPath,
                        format!(
                            "Parameter Store has no parameter directly under `{path}` in this account and region (sub-paths are not read)"
                        ),
                    ));
                    continue;
                }
                Some(Ok(parameters)) => parameters
                    .iter()
                    .map(|(name, value)| {
                        let last = name.rsplit('/').next().unwrap_or(name);
                        (last.to_owned(), value.expose().to_owned())
                    })
                    .collect(),
                Some(Err(failure)) => {
                    failed(failure, resolved);
                    continue;
                }
                None => {
                    resolved.problems.push(problem(
                        Code::NotFetched,
                        "the path was not read".to_owned(),
                    ));
                    continue;
                }
            },
        };
        for (name, mut value) in variables {
            let skip = if !is_variable_name(&name) {
                Some("is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            } else if name.starts_with(OWN_PREFIX) {
                Some("has secrets-init's own prefix SECRETS_INIT_")
            } else {
                None
            };
            if let Some(why) = skip {
                tracing::warn!(
                    reference = %reference,
                    name = %name.escape_debug(),
                    "{LABEL} {reference}: `{}` {why}; skipped",
                    name.escape_debug()
                );
                value.zeroize();
                continue;
            }
            if value.contains('\0') {
                resolved.problems.push(Problem {
                    variable: name,
                    reference: Some(reference.clone()),
                    code: Code::ValueContainsNul,
                    message: "the imported value contains a NUL byte, which an environment variable cannot hold".into(),
                });
                value.zeroize();
                continue;
            }
            imported.push((name, value));
        }
    }
    append(imported, container, resolved);
}

/// Appends imported variables to the program's environment: the container's own names win,
/// and for a name imported twice the later value wins. Values not used are wiped.
pub fn append(
    imported: Vec<(String, String)>,
    container: &HashSet<String>,
    resolved: &mut Resolved,
) {
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut shadowed = BTreeSet::new();
    for (name, mut value) in imported {
        if container.contains(&name) {
            shadowed.insert(name);
            value.zeroize();
            continue;
        }
        match position.get(&name) {
            Some(&i) => {
                let (_, old) = &mut kept[i];
                old.zeroize();
                *old = value;
            }
            None => {
                position.insert(name.clone(), kept.len());
                kept.push((name, value));
            }
        }
    }
    if !shadowed.is_empty() {
        tracing::debug!(
            "{} set in the container's environment, which wins over {LABEL}",
            shadowed.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    resolved.env.extend(
        kept.into_iter()
            .map(|(name, value)| (OsString::from(name), OsString::from(value))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::SecretText;
    use placeholder::{Version, parse_env_from};

    fn refs(texts: &[&str]) -> Vec<EnvFrom> {
        texts.iter().map(|t| parse_env_from(t).unwrap()).collect()
    }

    fn env(resolved: &Resolved) -> Vec<(String, String)> {
        resolved
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn names() {
        for ok in ["A", "_", "a_1", "DATABASE_URL", "_x9"] {
            assert!(is_variable_name(ok), "{ok}");
        }
        for bad in ["", "1A", "a-b", "a.b", "a b", "é", "A=B", "a\n"] {
            assert!(!is_variable_name(bad), "{bad}");
        }
    }

    #[test]
    fn precedence_and_name_rules() {
        let r = refs(&["awssm:one", "awsssm:/p/", "awssm:two##AWSPREVIOUS"]);
        let mut fetched = Fetched::default();
        fetched.values.insert(
            secret_key("one", &Version::Current),
            Ok(SecretText::new(
                r#"{"A":"one-a","B":"one-b","KEPT":"one-kept","bad-name":"x","SECRETS_INIT_X":"y"}"#.into(),
            )),
        );
        fetched.paths.insert(
            "/p/".into(),
            Ok(vec![
                ("/p/B".into(), SecretText::new("path-b".into())),
                ("/p/C".into(), SecretText::new("path-c".into())),
                ("/p/db-url".into(), SecretText::new("x".into())),
            ]),
        );
        fetched.values.insert(
            secret_key("two", &Version::Stage("AWSPREVIOUS".into())),
            Ok(SecretText::new(r#"{"C":"two-c","N":1.50}"#.into())),
        );
        let container: HashSet<String> = ["KEPT".to_owned()].into();
        let mut resolved = Resolved::default();
        import(&r, &fetched, false, &container, &mut resolved);
        assert!(resolved.problems.is_empty(), "{:?}", resolved.problems);
        assert_eq!(
            env(&resolved),
            [
                ("A".to_owned(), "one-a".to_owned()),
                ("B".to_owned(), "path-b".to_owned()),
                ("C".to_owned(), "two-c".to_owned()),
                ("N".to_owned(), "1.50".to_owned()),
            ]
        );
    }

    #[test]
    fn problems() {
        let r = refs(&[
            "awssm:text",
            "awsssm:/empty/",
            "awssm:absent",
            "awsssm:/denied/",
            "awssm:nul",
            "awsssm:/throttled/",
        ]);
        let mut fetched = Fetched::default();
        fetched.values.insert(
            secret_key("text", &Version::Current),
            Ok(SecretText::new("plain-V4lue".into())),
        );
        fetched.paths.insert("/empty/".into(), Ok(Vec::new()));
        fetched.values.insert(
            secret_key("absent", &Version::Current),
            Err(FetchFailure::new(Code::ResourceNotFound, "no such secret")),
        );
        fetched.paths.insert(
            "/denied/".into(),
            Err(FetchFailure::new(Code::AccessDenied, "denied")),
        );
        fetched.values.insert(
            secret_key("nul", &Version::Current),
            Ok(SecretText::new(r#"{"K":"a\u0000b"}"#.into())),
        );
        fetched.paths.insert(
            "/throttled/".into(),
            Err(FetchFailure::new(
                Code::from_aws("ThrottlingException"),
                "slow down",
            )),
        );
        for ignore_missing in [false, true] {
            let mut resolved = Resolved::default();
            import(&r, &fetched, ignore_missing, &HashSet::new(), &mut resolved);
            let lines: Vec<String> = resolved.problems.iter().map(|p| p.to_string()).collect();
            let ignored: Vec<String> = resolved.ignored.iter().map(|p| p.to_string()).collect();
            let mut want = vec![
                "--env-from: awssm:text: SecretNotJsonObject: the secret is not a JSON object, so it has no keys to import; read it whole with a placeholder (awssm:<secret-id>) in one variable instead".to_owned(),
                "--env-from: awsssm:/empty/: NoParametersUnderPath: Parameter Store has no parameter directly under `/empty/` in this account and region (sub-paths are not read)".to_owned(),
            ];
            let missing = vec![
                "--env-from: awssm:absent: ResourceNotFoundException: no such secret".to_owned(),
                "--env-from: awsssm:/denied/: AccessDeniedException: denied".to_owned(),
            ];
            if ignore_missing {
                assert_eq!(ignored, missing);
            } else {
                assert!(ignored.is_empty());
                want.extend(missing);
            }
            want.push("K: awssm:nul: ValueContainsNul: the imported value contains a NUL byte, which an environment variable cannot hold".to_owned());
            want.push("--env-from: awsssm:/throttled/: ThrottlingException: slow down".to_owned());
            let mut sorted_lines = lines.clone();
            sorted_lines.sort();
            want.sort();
            assert_eq!(sorted_lines, want, "ignore_missing={ignore_missing}");
            assert!(!lines.concat().contains("V4lue"));
            assert!(resolved.env.is_empty());
        }
    }

    #[test]
    fn wanted() {
        let mut w = Wanted::default();
        want(
            &refs(&["awssm:a", "awssm:a", "awsssm:/p/", "awssm:b##v1"]),
            &mut w,
        );
        assert_eq!(w.keys.len(), 2);
        assert_eq!(w.paths.len(), 1);
    }
}
