//! Change events from an SQS queue fed by an EventBridge rule: Secrets Manager API calls
//! recorded by CloudTrail (`PutSecretValue`, `UpdateSecretVersionStage`, `RotationSucceeded`)
//! and SSM's `Parameter Store Change`. An event only names an id; the poller then asks AWS
//! about that id with the usual metadata calls, so a forged or stale message can at worst
//! cause one extra check, never a restart by itself.

use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use placeholder::Source;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;

/// Long-poll wait (the API's maximum).
const WAIT_SECONDS: i32 = 20;

/// What an event names: which store and the id (a name or an ARN, as the event spells it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub source: Source,
    pub id: String,
}

/// The ids an EventBridge event (the SQS message body) names; empty for anything else.
pub fn named(body: &str) -> Vec<Named> {
    let Ok(event) = serde_json::from_str::<Value>(body) else {
        return Vec::new();
    };
    let detail = &event["detail"];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match event["source"].as_str() {
        Some("aws.secretsmanager") => {
            let id = text(&detail["requestParameters"]["secretId"])
                .or_else(|| text(&detail["additionalEventData"]["SecretId"]))
                .or_else(|| text(&detail["additionalEventData"]["secretId"]));
            let mut out: Vec<Named> = id
                .into_iter()
                .map(|id| Named {
                    source: Source::SecretsManager,
                    id,
                })
                .collect();
            if out.is_empty() {
                out.extend(
                    event["resources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| {
                            r.as_str().map(|id| Named {
                                source: Source::SecretsManager,
                                id: id.to_owned(),
                            })
                        }),
                );
            }
            out
        }
        Some("aws.ssm") => text(&detail["name"])
            .map(|id| Named {
                source: Source::ParameterStore,
                id,
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// A secret's name from an ARN (`...:secret:prod/db-AbCdEf` → `prod/db`: Secrets Manager
/// appends a dash and six random characters), or the name as it is.
pub fn secret_name(id: &str) -> &str {
    let Some(resource) = id
        .strip_prefix("arn:")
        .and_then(|_| id.splitn(7, ':').nth(6))
    else {
        return id;
    };
    match resource.rsplit_once('-') {
        Some((name, suffix))
            if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            name
        }
        _ => resource,
    }
}

/// Whether an event's id and a watched id are the same secret or parameter.
pub fn same(source: Source, event_id: &str, watched_id: &str) -> bool {
    if event_id == watched_id {
        return true;
    }
    match source {
        Source::SecretsManager => secret_name(event_id) == secret_name(watched_id),
        Source::ParameterStore => {
            crate::detect::parameter_name(event_id) == crate::detect::parameter_name(watched_id)
        }
    }
}

/// Receives while this replica leads; sends what each message names to `ids`; deletes each
/// message once handed over.
pub async fn run(
    client: aws_sdk_sqs::Client,
    queue_url: String,
    metrics: Metrics,
    ids: mpsc::Sender<Named>,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        if *stop.borrow() {
            return;
        }
        if !*leader.borrow() {
            tokio::select! {
                _ = leader.changed() => continue,
                _ = stop.changed() => return,
            }
        }
        let answer = tokio::select! {
            a = client
                .receive_message()
                .queue_url(&queue_url)
                .wait_time_seconds(WAIT_SECONDS)
                .max_number_of_messages(10)
                .send() => a,
            _ = stop.changed() => return,
        };
        match answer {
            Ok(out) => {
                failures = 0;
                metrics.detection_call("ReceiveMessage", true);
                for message in out.messages() {
                    for n in named(message.body().unwrap_or_default()) {
                        tracing::debug!(id = %n.id, "change event");
                        if ids.send(n).await.is_err() {
                            return;
                        }
                    }
                    if let Some(handle) = message.receipt_handle()
                        && let Err(e) = client
                            .delete_message()
                            .queue_url(&queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                    {
                        tracing::warn!(
                            code = e.code().unwrap_or("-"),
                            "could not delete an SQS message (it comes back after its visibility timeout; grant sqs:DeleteMessage)"
                        );
                    }
                }
            }
            Err(e) => {
                metrics.detection_call("ReceiveMessage", false);
                failures = failures.saturating_add(1);
                let wait = Duration::from_secs(u64::from(failures.min(6)) * 5);
                tracing::warn!(queue = %queue_url, code = e.code().unwrap_or("-"), retry_in_s = wait.as_secs(), "receiving change events failed (grant sqs:ReceiveMessage on the queue); polling continues");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_name_their_ids() {
        let put = json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
            "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": "prod/db"}}});
        assert_eq!(
            named(&put.to_string()),
            [Named {
                source: Source::SecretsManager,
                id: "prod/db".into()
            }]
        );
        let rotated = json!({"source": "aws.secretsmanager", "detail-type": "AWS Service Event via CloudTrail",
            "detail": {"eventName": "RotationSucceeded", "additionalEventData": {"SecretId": "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf"}}});
        assert_eq!(
            named(&rotated.to_string())[0].id,
            "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf"
        );
        let ssm = json!({"source": "aws.ssm", "detail-type": "Parameter Store Change",
            "detail": {"name": "/prod/url", "operation": "Update"}});
        assert_eq!(
            named(&ssm.to_string()),
            [Named {
                source: Source::ParameterStore,
                id: "/prod/url".into()
            }]
        );
        assert!(named("not json").is_empty());
        assert!(named(&json!({"source": "aws.ec2"}).to_string()).is_empty());
    }

    #[test]
    fn arns_and_names_match() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
        assert_eq!(secret_name(arn), "prod/db");
        assert!(same(Source::SecretsManager, arn, "prod/db"));
        assert!(!same(Source::SecretsManager, arn, "prod/db2"));
        assert!(same(
            Source::ParameterStore,
            "/prod/url",
            "arn:aws:ssm:us-east-1:1:parameter/prod/url"
        ));
    }
}
