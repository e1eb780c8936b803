//! Change detection: one round of metadata calls for a set of watched ids, each distinct id
//! asked about once however many workloads share it. Only metadata APIs are called
//! (`ListSecrets`, `DescribeSecret`, `DescribeParameters`), which return no value: the
//! controller's IAM policy grants no `GetSecretValue`/`GetParameters`, so no secret can
//! reach it.
//!
//! Cost per round, for n distinct secret names, a secret ARNs and m parameters in one
//! region: ⌈n/10⌉ `ListSecrets` pages (more only when a name filter, which matches
//! prefixes, returns over 100 secrets), a `DescribeSecret` calls, ⌈m/10⌉
//! `DescribeParameters` calls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_ssm::types::ParameterStringFilter;
use futures::StreamExt as _;
use placeholder::Source;

use crate::metrics::Metrics;
use crate::refs::WatchKey;
use crate::track::Observation;

/// `ListSecrets` takes at most 10 values in one filter; `DescribeParameters` is given the
/// same number of names a call, so either store costs ⌈n/10⌉ calls for n names.
pub const NAMES_PER_CALL: usize = 10;
/// `ListSecrets` page size (the API's maximum).
const LIST_PAGE: i32 = 100;
/// `DescribeParameters` page size (the API's maximum).
const DESCRIBE_PAGE: i32 = 50;
/// Calls in flight at once, per round.
const CONCURRENCY: usize = 8;

/// The AWS clients, one per region, made on first use from one SDK configuration.
#[derive(Debug)]
pub struct Aws {
    sdk: aws_config::SdkConfig,
    secrets: Mutex<HashMap<String, aws_sdk_secretsmanager::Client>>,
    parameters: Mutex<HashMap<String, aws_sdk_ssm::Client>>,
}

impl Aws {
    pub fn new(sdk: aws_config::SdkConfig) -> Self {
        Self {
            sdk,
            secrets: Mutex::default(),
            parameters: Mutex::default(),
        }
    }

    /// The region of the SDK chain (`AWS_REGION`, profile), for ids with no other region.
    pub fn default_region(&self) -> Option<String> {
        self.sdk.region().map(|r| r.to_string())
    }

    fn secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        let mut clients = self.secrets.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk)
                    .region(aws_config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_secretsmanager::Client::from_conf(config)
            })
            .clone()
    }

    fn parameters(&self, region: &str) -> aws_sdk_ssm::Client {
        let mut clients = self.parameters.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_ssm::config::Builder::from(&self.sdk)
                    .region(aws_config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_ssm::Client::from_conf(config)
            })
            .clone()
    }
}

/// One unit of work of a round: a batch of names, or one id on its own.
enum Call {
    ListSecrets { region: String, names: Vec<String> },
    DescribeSecret { region: String, id: String },
    DescribeParameters { region: String, names: Vec<String> },
}

/// What a call learned: the version-to-stages map of each secret it found, or the latest
/// version of each parameter, and the ids it could not settle.
#[derive(Default)]
struct Learned {
    /// (region, id) → stage → version id.
    secrets: HashMap<(String, String), HashMap<String, String>>,
    /// (region, name) → version.
    parameters: HashMap<(String, String), i64>,
    /// (source, region, id) → why not.
    failed: HashMap<(Source, String, String), Observation>,
    /// Names a `ListSecrets` batch did not return: asked again one by one with `DescribeSecret`
    /// (the name may be a partial ARN, or the batch may have been denied).
    retry: Vec<(String, String)>,
}

/// Asks AWS about every key once and says what it saw of each.
pub async fn observe(
    aws: &Aws,
    metrics: &Metrics,
    keys: &BTreeSet<WatchKey>,
) -> BTreeMap<WatchKey, Observation> {
    let mut calls = Vec::new();
    let mut by_region: BTreeMap<(Source, &str), BTreeSet<&str>> = BTreeMap::new();
    for key in keys {
        by_region
            .entry((key.source, key.region.as_str()))
            .or_default()
            .insert(key.id.as_str());
    }
    for ((source, region), ids) in &by_region {
        match source {
            Source::SecretsManager => {
                let (arns, names): (Vec<&str>, Vec<&str>) =
                    ids.iter().partition(|id| id.starts_with("arn:"));
                for chunk in names.chunks(NAMES_PER_CALL) {
                    calls.push(Call::ListSecrets {
                        region: (*region).to_owned(),
                        names: chunk.iter().map(|s| (*s).to_owned()).collect(),
                    });
                }
                for arn in arns {
                    calls.push(Call::DescribeSecret {
                        region: (*region).to_owned(),
                        id: arn.to_owned(),
                    });
                }
            }
            Source::ParameterStore => {
                let names: Vec<String> = ids.iter().map(|id| parameter_name(id)).collect();
                let names: BTreeSet<String> = names.into_iter().collect();
                let names: Vec<String> = names.into_iter().collect();
                for chunk in names.chunks(NAMES_PER_CALL) {
                    calls.push(Call::DescribeParameters {
                        region: (*region).to_owned(),
                        names: chunk.to_vec(),
                    });
                }
            }
        }
    }
    let mut learned = run(aws, metrics, calls).await;
    // Names that a batch did not settle, one by one.
    let retry: Vec<Call> = std::mem::take(&mut learned.retry)
        .into_iter()
        .map(|(region, id)| Call::DescribeSecret { region, id })
        .collect();
    if !retry.is_empty() {
        let more = run(aws, metrics, retry).await;
        learned.secrets.extend(more.secrets);
        learned.failed.extend(more.failed);
    }

    let mut out = BTreeMap::new();
    for key in keys {
        let observation = match key.source {
            Source::SecretsManager => {
                match learned.secrets.get(&(key.region.clone(), key.id.clone())) {
                    Some(stages) => Observation::Version(
                        stages
                            .get(&key.stage)
                            .cloned()
                            .unwrap_or_else(|| "none".to_owned()),
                    ),
                    None => learned
                        .failed
                        .get(&(key.source, key.region.clone(), key.id.clone()))
                        .cloned()
                        .unwrap_or(Observation::NotFound),
                }
            }
            Source::ParameterStore => {
                let name = parameter_name(&key.id);
                match learned.parameters.get(&(key.region.clone(), name.clone())) {
                    Some(version) => Observation::Version(version.to_string()),
                    None => learned
                        .failed
                        .get(&(key.source, key.region.clone(), name))
                        .cloned()
                        .unwrap_or(Observation::NotFound),
                }
            }
        };
        out.insert(key.clone(), observation);
    }
    out
}

/// A parameter ARN's name (`arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db` →
/// `/prod/db`; `parameter/name` → `name`); a name as it is. `DescribeParameters` filters by
/// name only.
pub fn parameter_name(id: &str) -> String {
    if !id.starts_with("arn:") {
        return id.to_owned();
    }
    let resource = id.splitn(6, ':').nth(5).unwrap_or_default();
    let Some(name) = resource.strip_prefix("parameter") else {
        return id.to_owned();
    };
    if name.starts_with("//") {
        name[1..].to_owned()
    } else if let Some(rest) = name.strip_prefix('/') {
        // `parameter/prod/db` is `/prod/db`; `parameter/plain` is `plain`.
        if rest.contains('/') {
            name.to_owned()
        } else {
            rest.to_owned()
        }
    } else {
        name.to_owned()
    }
}

async fn run(aws: &Aws, metrics: &Metrics, calls: Vec<Call>) -> Learned {
    let results: Vec<Learned> = futures::stream::iter(calls)
        .map(|call| one(aws, metrics, call))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut all = Learned::default();
    for l in results {
        all.secrets.extend(l.secrets);
        all.parameters.extend(l.parameters);
        all.failed.extend(l.failed);
        all.retry.extend(l.retry);
    }
    all
}

/// What an AWS error means for the ids of the call.
fn classify(code: Option<&str>, action: &'static str) -> Observation {
    match code {
        Some("AccessDeniedException") | Some("AccessDenied") => {
            Observation::AccessDenied { action }
        }
        Some("ResourceNotFoundException") | Some("ParameterNotFound") => Observation::NotFound,
        _ => Observation::Failed,
    }
}

async fn one(aws: &Aws, metrics: &Metrics, call: Call) -> Learned {
    let mut learned = Learned::default();
    match call {
        Call::ListSecrets { region, names } => {
            let client = aws.secrets(&region);
            let mut wanted: BTreeSet<String> = names.iter().cloned().collect();
            let mut token = None;
            loop {
                let filter = Filter::builder()
                    .key(FilterNameStringType::Name)
                    .set_values(Some(names.clone()))
                    .build();
                let answer = client
                    .list_secrets()
                    .filters(filter)
                    .max_results(LIST_PAGE)
                    .set_next_token(token.take())
                    .send()
                    .await;
                match answer {
                    Ok(page) => {
                        metrics.detection_call("ListSecrets", true);
                        for entry in page.secret_list() {
                            let Some(name) = entry.name() else { continue };
                            // The name filter matches prefixes: only exact names count.
                            if wanted.remove(name) {
                                learned.secrets.insert(
                                    (region.clone(), name.to_owned()),
                                    stages(entry.secret_versions_to_stages()),
                                );
                            }
                        }
                        token = page.next_token().map(str::to_owned);
                        if token.is_none() || wanted.is_empty() {
                            break;
                        }
                    }
                    Err(e) => {
                        metrics.detection_call("ListSecrets", false);
                        let code = e.code().map(str::to_owned);
                        if let Observation::AccessDenied { .. } =
                            classify(code.as_deref(), "secretsmanager:ListSecrets")
                        {
                            tracing::warn!(
                                region = %region,
                                "ListSecrets was denied (grant secretsmanager:ListSecrets to batch the checks); asking DescribeSecret for each secret instead"
                            );
                        } else {
                            tracing::warn!(region = %region, code = code.as_deref().unwrap_or("-"), error = %error_text(&e), "ListSecrets failed; asking DescribeSecret for each secret instead");
                        }
                        break;
                    }
                }
            }
            learned
                .retry
                .extend(wanted.into_iter().map(|id| (region.clone(), id)));
        }
        Call::DescribeSecret { region, id } => {
            let client = aws.secrets(&region);
            match client.describe_secret().secret_id(&id).send().await {
                Ok(answer) => {
                    metrics.detection_call("DescribeSecret", true);
                    learned
                        .secrets
                        .insert((region, id), stages(answer.version_ids_to_stages()));
                }
                Err(e) => {
                    metrics.detection_call("DescribeSecret", false);
                    let observation = classify(e.code(), "secretsmanager:DescribeSecret");
                    if let Observation::Failed = observation {
                        tracing::warn!(region = %region, secret = %id, code = e.code().unwrap_or("-"), error = %error_text(&e), "DescribeSecret failed; asking again next interval");
                    }
                    learned
                        .failed
                        .insert((Source::SecretsManager, region, id), observation);
                }
            }
        }
        Call::DescribeParameters { region, names } => {
            let client = aws.parameters(&region);
            let filter = match ParameterStringFilter::builder()
                .key("Name")
                .option("Equals")
                .set_values(Some(names.clone()))
                .build()
            {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a DescribeParameters filter (a bug)");
                    for name in names {
                        learned.failed.insert(
                            (Source::ParameterStore, region.clone(), name),
                            Observation::Failed,
                        );
                    }
                    return learned;
                }
            };
            let mut token = None;
            loop {
                let answer = client
                    .describe_parameters()
                    .parameter_filters(filter.clone())
                    .max_results(DESCRIBE_PAGE)
                    .set_next_token(token.take())
                    .send()
                    .await;
                match answer {
                    Ok(page) => {
                        metrics.detection_call("DescribeParameters", true);
                        for p in page.parameters() {
                            if let Some(name) = p.name() {
                                learned
                                    .parameters
                                    .insert((region.clone(), name.to_owned()), p.version());
                            }
                        }
                        token = page.next_token().map(str::to_owned);
                        if token.is_none() {
                            break;
                        }
                    }
                    Err(e) => {
                        metrics.detection_call("DescribeParameters", false);
                        let observation = classify(e.code(), "ssm:DescribeParameters");
                        if let Observation::Failed = observation {
                            tracing::warn!(region = %region, code = e.code().unwrap_or("-"), error = %error_text(&e), "DescribeParameters failed; asking again next interval");
                        }
                        for name in &names {
                            learned.failed.insert(
                                (Source::ParameterStore, region.clone(), name.clone()),
                                observation.clone(),
                            );
                        }
                        break;
                    }
                }
            }
        }
    }
    learned
}

/// Stage → version id, from the API's version id → stages map.
fn stages(map: Option<&HashMap<String, Vec<String>>>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (version, stages) in map.into_iter().flatten() {
        for stage in stages {
            out.insert(stage.clone(), version.clone());
        }
    }
    out
}

/// An SDK error's whole chain on one line (its `Display` is only "service error").
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_arns_become_names() {
        assert_eq!(
            parameter_name("arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db"),
            "/prod/db"
        );
        assert_eq!(
            parameter_name("arn:aws:ssm:eu-west-1:123456789012:parameter/plain"),
            "plain"
        );
        assert_eq!(parameter_name("/prod/db"), "/prod/db");
        assert_eq!(parameter_name("plain"), "plain");
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            classify(
                Some("AccessDeniedException"),
                "secretsmanager:DescribeSecret"
            ),
            Observation::AccessDenied {
                action: "secretsmanager:DescribeSecret"
            }
        );
        assert_eq!(
            classify(Some("ResourceNotFoundException"), "x"),
            Observation::NotFound
        );
        assert_eq!(
            classify(Some("ThrottlingException"), "x"),
            Observation::Failed
        );
        assert_eq!(classify(None, "x"), Observation::Failed);
    }
}
