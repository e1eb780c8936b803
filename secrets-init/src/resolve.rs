//! From the container's environment to the program's: parse placeholders, plan the
//! fetches, render values, collect problems. Pure except for the fetch function passed in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;

use zeroize::{Zeroize, Zeroizing};

use placeholder::{EnvFrom, FetchKey, Source, Template, parse_value, uses_legacy_form};

use crate::env_from;
use crate::extract::extract;
use crate::fetch::{FetchFailure, FetchResult, Fetched, Wanted};
use crate::problem::{Code, Problem};
use crate::program_env::Names;
pub use crate::program_env::{OWN_PREFIX, Resolved, wipe};

/// The container's environment, split into what is kept as is and what needs resolving.
/// `Debug` shows variable names only: the app's own variables may hold its secrets.
#[derive(Default)]
pub struct Parsed {
    /// The program's environment in order; `None` marks a variable still to be resolved.
    pub entries: Vec<(OsString, Option<OsString>)>,
    pub templates: BTreeMap<String, Template>,
    /// Malformed placeholders (exit 2).
    pub malformed: Vec<Problem>,
    /// Variables written in the legacy `awssm://` form (for a migration hint).
    pub legacy: Vec<String>,
}

/// Splits the environment; `SECRETS_INIT_*` variables are dropped.
pub fn parse_env(env: impl IntoIterator<Item = (OsString, OsString)>) -> Parsed {
    let mut parsed = Parsed::default();
    for (name, value) in env {
        let name_text = name.to_string_lossy().into_owned();
        if name_text.starts_with(OWN_PREFIX) {
            continue;
        }
        let Some(text) = value.to_str() else {
            let bytes = value.as_encoded_bytes();
            if Source::ALL
                .iter()
                .any(|s| contains(bytes, s.prefix().as_bytes()))
            {
                parsed.malformed.push(Problem {
                    variable: name_text,
                    reference: None,
                    code: Code::MalformedPlaceholder,
                    message: "the value is not valid UTF-8, so its placeholder cannot be read"
                        .into(),
                });
            }
            parsed.entries.push((name, Some(value)));
            continue;
        };
        match parse_value(text) {
            Ok(None) => parsed.entries.push((name, Some(value))),
            Ok(Some(template)) => {
                if uses_legacy_form(text) {
                    parsed.legacy.push(name_text.clone());
                }
                parsed.templates.insert(name_text, template);
                parsed.entries.push((name, None));
            }
            Err(err) => {
                parsed.malformed.push(Problem {
                    variable: name_text,
                    reference: None,
                    code: Code::MalformedPlaceholder,
                    message: err.to_string(),
                });
                parsed.entries.push((name, Some(value)));
            }
        }
    }
    parsed
}

impl Parsed {
    /// The names of the container's variables (those that reach the program, placeholders
    /// included): `--env-from` never overrides them.
    pub fn names(&self) -> HashSet<String> {
        self.entries
            .iter()
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect()
    }
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("entries", &Names(&self.entries))
            .field("templates", &self.templates)
            .field("malformed", &self.malformed)
            .field("legacy", &self.legacy)
            .finish()
    }
}

/// The names of an environment, for `Debug`; values are never shown.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What has to be fetched: every reference of the templates not `prefilled` (`--probe`), and
/// what `env_from` imports. Each distinct (secret id, version), (parameter, version) and path
/// once.
pub fn wanted(
    parsed: &Parsed,
    prefilled: &HashMap<String, String>,
    env_from: &[EnvFrom],
) -> Wanted {
    let mut wanted = Wanted {
        keys: parsed
            .templates
            .iter()
            .filter(|(name, _)| !prefilled.contains_key(*name))
            .flat_map(|(_, t)| t.refs().map(|r| r.fetch.clone()))
            .collect(),
        ..Wanted::default()
    };
    env_from::want(env_from, &mut wanted);
    wanted
}

/// The program's environment from what was fetched: the templates rendered, then the
/// variables `env_from` imports (which never override the container's own). Pure.
pub fn finish(
    parsed: Parsed,
    prefilled: HashMap<String, String>,
    env_from: &[EnvFrom],
    ignore_missing: bool,
    fetched: &Fetched,
) -> Resolved {
    let container = parsed.names();
    let mut resolved = render(parsed, prefilled, ignore_missing, &fetched.values);
    env_from::import(env_from, fetched, ignore_missing, &container, &mut resolved);
    resolved
}

/// Renders values from fetched secrets. Pure.
pub fn render(
    parsed: Parsed,
    mut prefilled: HashMap<String, String>,
    ignore_missing: bool,
    fetched: &BTreeMap<FetchKey, FetchResult>,
) -> Resolved {
    let mut out = Resolved::default();
    let mut values: HashMap<String, String> = HashMap::new();
    for (name, template) in &parsed.templates {
        if let Some(value) = prefilled.remove(name) {
            values.insert(name.clone(), value);
            continue;
        }
        let mut failed = false;
        let mut pieces: Zeroizing<Vec<String>> = Zeroizing::new(Vec::new());
        for reference in template.refs() {
            let outcome: Result<String, (Code, String)> = match fetched.get(&reference.fetch) {
                Some(Ok(text)) => {
                    extract(text.expose(), &reference.key).map_err(|e| (e.code(), e.to_string()))
                }
                Some(Err(FetchFailure { code, message })) => Err((code.clone(), message.clone())),
                None => Err((Code::NotFetched, "the secret was not fetched".into())),
            };
            match outcome {
                Ok(v) => pieces.push(v),
                Err((code, message)) => {
                    let missing = code.is_missing();
                    let problem = Problem {
                        variable: name.clone(),
                        reference: Some(reference.to_string()),
                        code,
                        message,
                    };
                    if missing && ignore_missing {
                        out.ignored.push(problem);
                        pieces.push(String::new());
                    } else {
                        out.problems.push(problem);
                        failed = true;
                    }
                }
            }
        }
        if failed {
            continue;
        }
        let mut value = Zeroizing::new(template.render(&pieces));
        if value.contains('\0') {
            out.problems.push(Problem {
                variable: name.clone(),
                reference: None,
                code: Code::ValueContainsNul,
                message: "the resolved value contains a NUL byte, which an environment variable cannot hold".into(),
            });
            continue;
        }
        values.insert(name.clone(), std::mem::take(&mut *value));
    }
    for (name, value) in parsed.entries {
        match value {
            Some(v) => out.env.push((name, v)),
            None => {
                let key = name.to_string_lossy().into_owned();
                if let Some(v) = values.remove(&key) {
                    out.env.push((name, OsString::from(v)));
                }
            }
        }
    }
    // Values of variables that are not in `entries` (none, unless a name repeats).
    for (_, mut v) in values.into_iter().chain(prefilled) {
        v.zeroize();
    }
    out
}
