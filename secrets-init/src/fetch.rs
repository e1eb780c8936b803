//! Fetching from AWS (contract §3, "Fetching"): Secrets Manager here, Parameter Store in
//! [`crate::parameters`]; every call of both runs concurrently (at most 16 at once).
//!
//! Each distinct (secret id, version) is fetched once. Per region, two or more distinct
//! current-version ids go through `BatchGetSecretValue` in chunks of 20; a single one and
//! every versioned reference through `GetSecretValue`. A batch call that fails as a whole
//! (throttled, denied, anything) is not retried: its ids are fetched at once with
//! `GetSecretValue`, which many IAM policies allow on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_secretsmanager::Client;
use aws_smithy_types::retry::RetryConfig;
use futures::StreamExt;
use futures::future::BoxFuture;
use zeroize::Zeroizing;

use placeholder::{FetchKey, Source, Version};

use crate::parameters::{self, PathResult};
use crate::problem::Code;
pub use crate::secret::{FetchFailure, FetchResult, MAX_IN_FLIGHT, SecretText};

/// At most this many ids per `BatchGetSecretValue` call (the API's limit for `SecretIdList`).
pub const BATCH_SIZE: usize = 20;
/// The command line's say in how [`Fetcher`] calls Secrets Manager.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Use `BatchGetSecretValue` for two or more current-version ids (`--no-batch` turns it off).
    pub batch: bool,
}

/// What a run needs from AWS: placeholder values (and `--env-from` secrets) by key, and
/// `--env-from` Parameter Store paths.
#[derive(Debug, Default)]
pub struct Wanted {
    pub keys: BTreeSet<FetchKey>,
    pub paths: BTreeSet<String>,
}

impl Wanted {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.paths.is_empty()
    }
}

/// What AWS answered: an entry for every key and path of the [`Wanted`].
#[derive(Debug, Default)]
pub struct Fetched {
    pub values: BTreeMap<FetchKey, FetchResult>,
    pub paths: BTreeMap<String, PathResult>,
}

/// The answer to one API call (or one call and its fallbacks).
enum Answer {
    Values(Vec<(FetchKey, FetchResult)>),
    Path(String, PathResult),
}

/// AWS clients, per service and region, sharing one SDK config.
#[derive(Debug)]
pub struct Fetcher {
    sdk: aws_config::SdkConfig,
    options: FetchOptions,
}

impl Fetcher {
    pub fn new(sdk: aws_config::SdkConfig, options: FetchOptions) -> Self {
        Self { sdk, options }
    }

    fn secrets_client(&self, region: &str) -> Client {
        let config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_owned()));
        Client::from_conf(config.build())
    }

    fn parameters_client(&self, region: &str) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_owned()));
        aws_sdk_ssm::Client::from_conf(config.build())
    }

    /// Fetches every key and path once; the answer has an entry for each.
    pub async fn fetch_all(&self, wanted: &Wanted) -> Fetched {
        let default_region = self.sdk.region().map(|r| r.as_ref().to_owned());
        let mut fetched = Fetched::default();
        let no_region = |what: &str| {
            FetchFailure::new(
                Code::NoRegion,
                format!(
                    "no AWS region is known: pass --region (pod annotation secretsinit.io/aws-region), set AWS_REGION{what}"
                ),
            )
        };
        // Per region: Secrets Manager's current and versioned keys, Parameter Store's keys.
        let mut secrets: BTreeMap<String, (Vec<FetchKey>, Vec<FetchKey>)> = BTreeMap::new();
        let mut params: BTreeMap<String, Vec<FetchKey>> = BTreeMap::new();
        for key in &wanted.keys {
            let region = key
                .arn_region()
                .map(str::to_owned)
                .or_else(|| default_region.clone());
            let Some(region) = region else {
                fetched
                    .values
                    .insert(key.clone(), Err(no_region(", or use the full ARN")));
                continue;
            };
            match key.source {
                Source::SecretsManager => {
                    let (current, versioned) = secrets.entry(region).or_default();
                    match key.version {
                        Version::Current => current.push(key.clone()),
                        _ => versioned.push(key.clone()),
                    }
                }
                Source::ParameterStore => params.entry(region).or_default().push(key.clone()),
            }
        }

        let mut calls: Vec<BoxFuture<'static, Answer>> = Vec::new();
        let values =
            |f: BoxFuture<'static, Vec<(FetchKey, FetchResult)>>| -> BoxFuture<'static, Answer> {
                Box::pin(async move { Answer::Values(f.await) })
            };
        for (region, (current, versioned)) in secrets {
            let client = self.secrets_client(&region);
            if self.options.batch && current.len() >= 2 {
                for chunk in current.chunks(BATCH_SIZE) {
                    calls.push(values(Box::pin(batch_get(client.clone(), chunk.to_vec()))));
                }
            } else {
                for key in current {
                    calls.push(values(Box::pin(single(client.clone(), key))));
                }
            }
            for key in versioned {
                calls.push(values(Box::pin(single(client.clone(), key))));
            }
        }
        for (region, keys) in params {
            let client = self.parameters_client(&region);
            for chunk in parameters::plan_calls(keys) {
                calls.push(values(Box::pin(parameters::get_parameters(
                    client.clone(),
                    chunk,
                ))));
            }
        }
        // A path has no ARN form (GetParametersByPath reads the caller's own account).
        for path in &wanted.paths {
            let Some(region) = &default_region else {
                fetched.paths.insert(path.clone(), Err(no_region("")));
                continue;
            };
            let client = self.parameters_client(region);
            let path = path.clone();
            calls.push(Box::pin(async move {
                let (path, result) = parameters::get_parameters_by_path(client, path).await;
                Answer::Path(path, result)
            }));
        }

        let mut stream = futures::stream::iter(calls).buffer_unordered(MAX_IN_FLIGHT);
        while let Some(answer) = stream.next().await {
            match answer {
                Answer::Values(v) => fetched.values.extend(v),
                Answer::Path(path, result) => {
                    fetched.paths.insert(path, result);
                }
            }
        }
        fetched
    }
}

async fn single(client: Client, key: FetchKey) -> Vec<(FetchKey, FetchResult)> {
    let result = get_secret_value(&client, &key).await;
    vec![(key, result)]
}

async fn get_secret_value(client: &Client, key: &FetchKey) -> FetchResult {
    let mut request = client.get_secret_value().secret_id(&key.id);
    request = match &key.version {
        Version::Current => request,
        Version::Stage(stage) => request.version_stage(stage),
        Version::Id(id) => request.version_id(id),
        // The grammar gives these to Parameter Store references only.
        Version::Number(_) | Version::Label(_) => {
            return Err(FetchFailure::new(
                Code::NotFetched,
                "a Parameter Store version on a Secrets Manager reference",
            ));
        }
    };
    match request.send().await {
        Ok(out) => secret_text(out.secret_string(), out.secret_binary()),
        Err(err) => Err(FetchFailure::from_sdk(&err)),
    }
}

async fn batch_get(client: Client, keys: Vec<FetchKey>) -> Vec<(FetchKey, FetchResult)> {
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    let mut found: HashMap<String, FetchResult> = HashMap::new();
    let mut next_token: Option<String> = None;
    loop {
        let response = client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .set_next_token(next_token.take())
            .customize()
            .config_override(
                aws_sdk_secretsmanager::config::Builder::default()
                    .retry_config(RetryConfig::disabled()),
            )
            .send()
            .await;
        let out = match response {
            Ok(out) => out,
            Err(err) => {
                let failure = FetchFailure::from_sdk(&err);
                tracing::debug!(
                    code = %failure.code,
                    secrets = ids.len(),
                    "BatchGetSecretValue failed as a whole ({failure}); fetching these {} secrets with GetSecretValue instead",
                    ids.len()
                );
                return fetch_each(&client, keys).await;
            }
        };
        for entry in out.secret_values() {
            let result = secret_text(entry.secret_string(), entry.secret_binary());
            // The response names each secret by name and ARN; a request may have used either.
            for id in [entry.name(), entry.arn()].into_iter().flatten() {
                if ids.iter().any(|wanted| wanted == id) {
                    found.insert(id.to_owned(), result.clone());
                }
            }
        }
        for error in out.errors() {
            if let Some(id) = error.secret_id() {
                found.insert(
                    id.to_owned(),
                    Err(FetchFailure::new(
                        error
                            .error_code()
                            .map_or(Code::UnknownError, Code::from_aws),
                        error.message().unwrap_or("no message from AWS"),
                    )),
                );
            }
        }
        match out.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    // Ids the response did not name (a partial ARN, say) are fetched one by one.
    let (answered, unanswered): (Vec<_>, Vec<_>) =
        keys.into_iter().partition(|k| found.contains_key(&k.id));
    let mut results: Vec<(FetchKey, FetchResult)> = answered
        .into_iter()
        .map(|k| {
            let result = found.get(&k.id).cloned().unwrap_or_else(|| {
                Err(FetchFailure::new(
                    Code::UnknownError,
                    "missing from response",
                ))
            });
            (k, result)
        })
        .collect();
    if !unanswered.is_empty() {
        tracing::debug!(
            secrets = unanswered.len(),
            "BatchGetSecretValue did not name these ids in its answer; fetching them with GetSecretValue"
        );
        results.extend(fetch_each(&client, unanswered).await);
    }
    results
}

async fn fetch_each(client: &Client, keys: Vec<FetchKey>) -> Vec<(FetchKey, FetchResult)> {
    futures::stream::iter(keys)
        .map(|key| async move {
            let result = get_secret_value(client, &key).await;
            (key, result)
        })
        .buffer_unordered(MAX_IN_FLIGHT)
        .collect()
        .await
}

/// SecretString as is; SecretBinary when it is UTF-8 text without NUL.
fn secret_text(string: Option<&str>, binary: Option<&aws_smithy_types::Blob>) -> FetchResult {
    if let Some(s) = string {
        return Ok(SecretText::new(s.to_owned()));
    }
    if let Some(blob) = binary {
        let bytes = Zeroizing::new(blob.as_ref().to_vec());
        return match std::str::from_utf8(&bytes) {
            Ok(text) if !text.contains('\0') => Ok(SecretText::new(text.to_owned())),
            Ok(_) => Err(binary_failure("contains a NUL byte")),
            Err(_) => Err(binary_failure("is not valid UTF-8")),
        };
    }
    Err(FetchFailure::new(
        Code::EmptySecret,
        "the secret version has neither SecretString nor SecretBinary",
    ))
}

fn binary_failure(why: &str) -> FetchFailure {
    FetchFailure::new(
        Code::SecretBinaryNotText,
        format!(
            "the secret is stored as SecretBinary that {why}; only text can go into an environment variable (store it as SecretString, e.g. base64-encoded)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::Blob;

    #[test]
    fn binary_secrets() {
        let text = secret_text(None, Some(&Blob::new(br#"{"k":"v"}"#.to_vec()))).unwrap();
        assert_eq!(text.expose(), r#"{"k":"v"}"#);
        let err = secret_text(None, Some(&Blob::new(vec![0xff, 0xfe]))).unwrap_err();
        assert_eq!(err.code, Code::SecretBinaryNotText);
        assert!(err.message.contains("not valid UTF-8"));
        assert!(!err.code.is_missing());
        let err = secret_text(None, Some(&Blob::new(b"a\0b".to_vec()))).unwrap_err();
        assert!(err.message.contains("NUL"));
        assert_eq!(secret_text(Some("s"), None).unwrap().expose(), "s");
        assert_eq!(secret_text(None, None).unwrap_err().code, Code::EmptySecret);
    }

    #[test]
    fn secret_text_debug_is_redacted() {
        let s = SecretText::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "SecretText(<redacted>)");
    }
}
