//! Fetching from SSM Parameter Store (contract §3, "Fetching").
//!
//! Its default throughput is a shared 40 requests/s per account and region, so every distinct
//! (parameter, version/label) goes into `GetParameters` calls of up to 10 names (`name:3` /
//! `name:label` selectors): n parameters cost ⌈n/10⌉ calls. SecureString values are
//! decrypted. `--env-from` paths use `GetParametersByPath` (one level, paginated).

use std::collections::{BTreeSet, HashMap};

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::Parameter;
use futures::StreamExt;

use placeholder::{FetchKey, Version};

use crate::problem::Code;
use crate::secret::{FetchFailure, FetchResult, MAX_IN_FLIGHT, SecretText};

/// At most this many names per `GetParameters` call (the API's limit for `Names`).
pub const GET_PARAMETERS_SIZE: usize = 10;
/// `GetParametersByPath`'s largest page (the API's limit for `MaxResults`).
const BY_PATH_PAGE: i32 = 10;

/// The parameters directly under a path: (full name, value) in the order AWS listed them.
pub type PathResult = Result<Vec<(String, SecretText)>, FetchFailure>;

/// Parameter Store's name for a Secrets Manager secret (contract §2).
const SECRETS_MANAGER_REFERENCE: &str = "/aws/reference/secretsmanager/";

/// The name a parameter is stored under, for matching answers to requests: the name itself,
/// or the one in a parameter ARN (`arn:…:parameter/prod/db` names `/prod/db`,
/// `arn:…:parameter/db` names `db`). Parameter Store treats `/db` and `db` as one name, so the
/// leading `/` of a one-level name is dropped. A Secrets Manager reference is known by its
/// secret id: AWS answers with the reference's name, moto with the secret's.
fn stored_name(id: &str) -> String {
    if let Some(secret) = id.strip_prefix(SECRETS_MANAGER_REFERENCE) {
        return secret.to_owned();
    }
    let name = match id.split_once(":parameter/") {
        Some((arn, rest)) if arn.starts_with("arn:") => format!("/{rest}"),
        _ => id.to_owned(),
    };
    let bare = name.trim_start_matches('/');
    if bare.contains('/') {
        name
    } else {
        bare.to_owned()
    }
}

/// What `GetParameters` is asked for one key: the name (or ARN) with its selector.
fn request_name(key: &FetchKey) -> String {
    match &key.version {
        Version::Current => key.id.clone(),
        version => format!("{}:{}", key.id, version.text().unwrap_or_default()),
    }
}

/// Splits the keys of one region into `GetParameters` calls of at most 10. A call never asks
/// for one parameter twice (say `/db:1` and `/db:live`): answers are matched to requests by
/// name, because an answer's `Selector` is not always there (moto leaves it out), and the
/// value of a label cannot be told from the answer otherwise. With distinct names this gives
/// ⌈n/10⌉ calls.
///
/// Each key goes into the first call with room that does not hold its name. The calls before
/// the last one a name went into are all full or hold that name (a call only fills up), so that
/// is the first call with room after it: one ordered-set look-up per key, not a scan of every
/// call.
pub fn plan_calls(keys: Vec<FetchKey>) -> Vec<Vec<FetchKey>> {
    let mut calls: Vec<Vec<FetchKey>> = Vec::new();
    // The calls with room left, by index.
    let mut open: BTreeSet<usize> = BTreeSet::new();
    // The last call each name went into.
    let mut last: HashMap<String, usize> = HashMap::new();
    for key in keys {
        let name = stored_name(&key.id);
        let after = last.get(&name).map_or(0, |&i| i + 1);
        let i = match open.range(after..).next() {
            Some(&i) => i,
            None => {
                calls.push(Vec::new());
                open.insert(calls.len() - 1);
                calls.len() - 1
            }
        };
        let call = &mut calls[i];
        call.push(key);
        if call.len() == GET_PARAMETERS_SIZE {
            open.remove(&i);
        }
        last.insert(name, i);
    }
    calls
}

/// One `GetParameters` call for up to 10 keys (all of one region, no name twice). A call that
/// fails as a whole for a reason that concerns the names (one of them denied, a KMS key that
/// cannot be used) is asked again name by name, so that one bad parameter does not take the
/// other nine with it; a transient failure (throttling, network) is not: more calls would not
/// help.
pub async fn get_parameters(client: Client, keys: Vec<FetchKey>) -> Vec<(FetchKey, FetchResult)> {
    let failure = match call(&client, &keys).await {
        Ok(results) => return results,
        Err(failure) => failure,
    };
    if keys.len() == 1 || failure.code.is_transient() {
        return keys
            .into_iter()
            .map(|k| (k, Err(failure.clone())))
            .collect();
    }
    tracing::debug!(
        code = %failure.code,
        parameters = keys.len(),
        "GetParameters failed as a whole ({failure}); asking for these {} parameters one by one",
        keys.len()
    );
    futures::stream::iter(keys)
        .map(|key| {
            let client = &client;
            async move {
                match call(client, std::slice::from_ref(&key)).await {
                    Ok(results) => results,
                    Err(failure) => vec![(key, Err(failure))],
                }
            }
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

/// One `GetParameters` call; `Err` when the call as a whole failed.
async fn call(
    client: &Client,
    keys: &[FetchKey],
) -> Result<Vec<(FetchKey, FetchResult)>, FetchFailure> {
    let names: Vec<String> = keys.iter().map(request_name).collect();
    let out = client
        .get_parameters()
        .set_names(Some(names.clone()))
        .with_decryption(true)
        .send()
        .await
        .map_err(|err| FetchFailure::from_sdk(&err))?;
    Ok(keys
        .iter()
        .zip(names)
        .map(|(key, name)| {
            let result = if out.invalid_parameters().contains(&name) {
                Err(not_found(key))
            } else {
                match out.parameters().iter().find(|p| answers(key, p)) {
                    Some(p) => value_of(p),
                    None => Err(FetchFailure::new(
                        Code::UnknownError,
                        "Parameter Store's answer names this parameter neither among its parameters nor as invalid",
                    )),
                }
            };
            (key.clone(), result)
        })
        .collect())
}

/// Whether a parameter in an answer is the one `key` asked for: the same name (or ARN), and
/// for a version number that version (a label cannot be checked: the answer does not list
/// labels, which is why a call never asks for one name twice).
fn answers(key: &FetchKey, parameter: &Parameter) -> bool {
    let same_name = parameter.arn() == Some(key.id.as_str())
        || parameter
            .name()
            .is_some_and(|n| n == key.id || stored_name(n) == stored_name(&key.id));
    let same_version = match key.version {
        Version::Number(n) => u64::try_from(parameter.version()).is_ok_and(|v| v == n),
        _ => true,
    };
    same_name && same_version
}

fn value_of(parameter: &Parameter) -> FetchResult {
    parameter
        .value()
        .map(|v| SecretText::new(v.to_owned()))
        .ok_or_else(|| {
            FetchFailure::new(
                Code::UnknownError,
                "Parameter Store answered without a value",
            )
        })
}

fn not_found(key: &FetchKey) -> FetchFailure {
    let what = match &key.version {
        Version::Number(n) => format!(" (or it has no version {n})"),
        Version::Label(l) => format!(" (or no version of it has the label `{l}`)"),
        _ => String::new(),
    };
    FetchFailure::new(
        Code::ParameterNotFound,
        format!(
            "Parameter Store has no parameter `{}`{what} in this account and region",
            key.id
        ),
    )
}

/// Every parameter directly under `path` (not recursive), decrypted, all pages.
pub async fn get_parameters_by_path(client: Client, path: String) -> (String, PathResult) {
    let mut found = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let response = client
            .get_parameters_by_path()
            .path(&path)
            .recursive(false)
            .with_decryption(true)
            .max_results(BY_PATH_PAGE)
            .set_next_token(next_token.take())
            .send()
            .await;
        let out = match response {
            Ok(out) => out,
            Err(err) => return (path, Err(FetchFailure::from_sdk(&err))),
        };
        for p in out.parameters() {
            if let (Some(name), Ok(value)) = (p.name(), value_of(p)) {
                found.push((name.to_owned(), value));
            }
        }
        match out.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    (path, Ok(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use placeholder::Source;
    use std::collections::HashSet;

    fn key(id: &str, version: Version) -> FetchKey {
        FetchKey {
            source: Source::ParameterStore,
            id: id.into(),
            version,
        }
    }

    #[test]
    fn stored_names() {
        for (id, want) in [
            ("/prod/db", "/prod/db"),
            ("prod-db", "prod-db"),
            ("/prod-db", "prod-db"),
            ("arn:aws:ssm:eu-west-1:1:parameter/prod/db", "/prod/db"),
            ("arn:aws:ssm:eu-west-1:1:parameter/prod-db", "prod-db"),
            ("arn:aws-cn:ssm:cn-north-1:1:parameter/a/b/c", "/a/b/c"),
            ("/aws/reference/secretsmanager/prod/db", "prod/db"),
        ] {
            assert_eq!(stored_name(id), want, "{id}");
        }
    }

    #[test]
    fn request_names_carry_the_selector() {
        assert_eq!(request_name(&key("/db", Version::Current)), "/db");
        assert_eq!(request_name(&key("/db", Version::Number(3))), "/db:3");
        assert_eq!(
            request_name(&key("/db", Version::Label("live".into()))),
            "/db:live"
        );
    }

    #[test]
    fn calls_hold_ten_names_and_never_one_name_twice() {
        for (n, calls) in [(1, 1), (10, 1), (11, 2), (35, 4)] {
            let keys = (0..n)
                .map(|i| key(&format!("/p/{i}"), Version::Current))
                .collect();
            assert_eq!(plan_calls(keys).len(), calls, "{n} parameters");
        }
        let keys = vec![
            key("/db", Version::Current),
            key("/db", Version::Number(1)),
            key("/db", Version::Label("live".into())),
            key("arn:aws:ssm:us-east-1:1:parameter/db", Version::Number(2)),
            key("/other", Version::Current),
        ];
        let calls = plan_calls(keys);
        assert_eq!(calls.len(), 4, "{calls:?}");
        for call in &calls {
            let names: HashSet<String> = call.iter().map(|k| stored_name(&k.id)).collect();
            assert_eq!(names.len(), call.len(), "{call:?}");
        }
    }

    /// The first-fit scan `plan_calls` stands for: every call looked at for every key.
    fn plan_calls_by_scan(keys: Vec<FetchKey>) -> Vec<Vec<FetchKey>> {
        let mut calls: Vec<(HashSet<String>, Vec<FetchKey>)> = Vec::new();
        for key in keys {
            let name = stored_name(&key.id);
            let slot = calls
                .iter_mut()
                .find(|(names, chunk)| chunk.len() < GET_PARAMETERS_SIZE && !names.contains(&name));
            match slot {
                Some((names, chunk)) => {
                    names.insert(name);
                    chunk.push(key);
                }
                None => calls.push((HashSet::from([name]), vec![key])),
            }
        }
        calls.into_iter().map(|(_, chunk)| chunk).collect()
    }

    #[test]
    fn calls_are_planned_as_the_first_fit_scan_would_in_linear_time() {
        // Names repeated with different versions, in a scrambled order.
        let keys: Vec<FetchKey> = (0..2_000u64)
            .map(|i| {
                let mixed = i.wrapping_mul(2_654_435_761) % 997;
                key(&format!("/p/{}", mixed % 37), Version::Number(mixed))
            })
            .collect();
        assert_eq!(plan_calls(keys.clone()), plan_calls_by_scan(keys));
        // Many distinct names: ⌈n/10⌉ calls, without a scan of every call per key.
        let keys = (0..200_000)
            .map(|i| key(&format!("/p/{i}"), Version::Current))
            .collect();
        assert_eq!(plan_calls(keys).len(), 20_000);
    }

    #[test]
    fn answers_are_matched_by_name_and_version() {
        let p = Parameter::builder()
            .name("/prod/db")
            .version(3)
            .arn("arn:aws:ssm:eu-west-1:1:parameter/prod/db")
            .build();
        assert!(answers(&key("/prod/db", Version::Current), &p));
        assert!(answers(&key("/prod/db", Version::Number(3)), &p));
        assert!(!answers(&key("/prod/db", Version::Number(2)), &p));
        assert!(answers(&key("/prod/db", Version::Label("live".into())), &p));
        assert!(answers(
            &key(
                "arn:aws:ssm:eu-west-1:1:parameter/prod/db",
                Version::Current
            ),
            &p
        ));
        assert!(!answers(&key("/prod/other", Version::Current), &p));
        let one_level = Parameter::builder().name("db").version(1).build();
        assert!(answers(&key("/db", Version::Current), &one_level));
        let reference = key("/aws/reference/secretsmanager/prod/db", Version::Current);
        for name in ["/aws/reference/secretsmanager/prod/db", "prod/db"] {
            let p = Parameter::builder().name(name).version(0).build();
            assert!(answers(&reference, &p), "{name}");
        }
    }
}
