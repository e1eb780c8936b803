//! The fleet's resolution failures, read from injected pods' container statuses.
//!
//! secrets-init writes its failure summary to the termination log (`secrets-init:
//! <headline>` and one `VARIABLE: [reference: ]CODE: message` line per problem), and the
//! kubelet copies it into `state.terminated.message` / `lastState.terminated.message`. Each
//! such termination is counted once, keyed by pod UID, container and the termination's
//! identity (`containerID`, else `finishedAt` and `restartCount`), however many watch events
//! repeat the same status. The code is the first problem line's, mapped onto a bounded set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

/// Codes the counter is labelled with: secrets-init's own names, `Throttling` for every
/// throttling spelling, `ConfigurationError` for an exit 2 without a problem line, `Other`.
pub fn codes() -> &'static BTreeSet<&'static str> {
    static CODES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut set: BTreeSet<&'static str> = secrets_init::problem::NAMED
            .iter()
            .map(secrets_init::problem::Code::as_str)
            .collect();
        set.extend([THROTTLING, CONFIGURATION, OTHER]);
        set
    })
}

const THROTTLING: &str = "Throttling";
const CONFIGURATION: &str = "ConfigurationError";
const OTHER: &str = "Other";
const PREFIX: &str = "secrets-init:";

/// The code a termination is counted under, or `None` when secrets-init did not end it
/// (another exit code, or a message that is not secrets-init's summary).
pub fn failure_code(terminated: &ContainerStateTerminated) -> Option<&'static str> {
    if !matches!(terminated.exit_code, 1 | 2) {
        return None;
    }
    let message = terminated.message.as_deref()?;
    let mut lines = message.lines();
    let headline = lines.next()?;
    if !headline.starts_with(PREFIX) {
        return None;
    }
    for line in lines {
        if let Some(code) = line_code(line) {
            return Some(code);
        }
    }
    Some(match terminated.exit_code {
        2 => CONFIGURATION,
        _ if headline.contains("timed out") || headline.contains("timeout") => "Timeout",
        _ => OTHER,
    })
}

/// `VARIABLE: [reference: ]CODE: message`: the code is the first field after the variable
/// that is a bare word (a reference holds `:`, a message has spaces).
fn line_code(line: &str) -> Option<&'static str> {
    let mut fields = line.split(": ");
    fields.next()?;
    let word = fields
        .take(2)
        .find(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric()))?;
    if word.contains("Throttl")
        || word == "TooManyRequestsException"
        || word == "RequestLimitExceeded"
    {
        return Some(THROTTLING);
    }
    Some(codes().get(word).copied().unwrap_or(OTHER))
}

/// One counted termination: which container of which pod, and which termination.
type TerminationId = (String, String, String);

/// What the pod watch has seen. Pure: the caller feeds it pods and deletions and applies
/// what it returns to the metrics.
#[derive(Debug, Default)]
pub struct Failures {
    /// Terminations already counted, per pod UID.
    counted: HashMap<String, BTreeSet<TerminationId>>,
    /// Pods failing now: UID → namespace.
    failing: HashMap<String, String>,
}

impl Failures {
    /// Reads one pod; returns the new failures to count as (namespace, code).
    pub fn pod(&mut self, pod: &Pod) -> Vec<(String, &'static str)> {
        let (Some(uid), Some(namespace)) = (&pod.metadata.uid, &pod.metadata.namespace) else {
            return Vec::new();
        };
        let Some(status) = &pod.status else {
            return Vec::new();
        };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        let seen = self.counted.entry(uid.clone()).or_default();
        // The terminations the status shows now (at most two per container); what was
        // counted and no longer shows can never show again, so only these are kept.
        let mut shown = BTreeSet::new();
        let mut new = Vec::new();
        let mut failing_now = false;
        for cs in statuses {
            let mut container_failing = false;
            for terminated in terminations(cs) {
                let Some(code) = failure_code(terminated) else {
                    continue;
                };
                container_failing = true;
                let id = (
                    cs.name.clone(),
                    terminated.container_id.clone().unwrap_or_default(),
                    terminated
                        .finished_at
                        .as_ref()
                        .map(|t| t.0.to_string())
                        .unwrap_or_else(|| cs.restart_count.to_string()),
                );
                if !seen.contains(&id) {
                    new.push((namespace.clone(), code));
                }
                shown.insert(id);
            }
            let running = cs.state.as_ref().is_some_and(|s| s.running.is_some());
            if container_failing && !running {
                failing_now = true;
            }
        }
        *seen = shown;
        if failing_now {
            self.failing.insert(uid.clone(), namespace.clone());
        } else {
            self.failing.remove(uid);
        }
        new
    }

    pub fn deleted(&mut self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            self.counted.remove(uid);
            self.failing.remove(uid);
        }
    }

    /// After a relist: forgets pods that are gone (`present` UIDs remain).
    pub fn retain(&mut self, present: &BTreeSet<String>) {
        self.counted.retain(|uid, _| present.contains(uid));
        self.failing.retain(|uid, _| present.contains(uid));
    }

    /// Failing pods per namespace.
    pub fn failing_by_namespace(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for ns in self.failing.values() {
            *out.entry(ns.clone()).or_insert(0) += 1;
        }
        out
    }
}

fn terminations(cs: &ContainerStatus) -> impl Iterator<Item = &ContainerStateTerminated> {
    let now = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    now.into_iter().chain(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terminated(code: i32, message: &str) -> ContainerStateTerminated {
        serde_json::from_value(json!({"exitCode": code, "message": message})).expect("state")
    }

    #[test]
    fn codes_come_from_the_first_problem_line() {
        let t = terminated(
            1,
            "secrets-init: 2 placeholders could not be resolved\nDB: awssm:arn:aws:secretsmanager:us-east-1:1:secret:x: AccessDeniedException: User: arn:aws:sts::1:assumed-role/r is not authorized\nK: awssm:x#k: KeyNotFound: no key k\n",
        );
        assert_eq!(failure_code(&t), Some("AccessDeniedException"));
        let t = terminated(
            1,
            "secrets-init: x\nV: awssm:a: ThrottlingException: Rate exceeded\n",
        );
        assert_eq!(failure_code(&t), Some("Throttling"));
        let t = terminated(1, "secrets-init: x\nV: awssm:a: SomethingNewException: m\n");
        assert_eq!(failure_code(&t), Some("Other"));
        let t = terminated(1, "secrets-init: x\nV: NoRegion: no region\n");
        assert_eq!(failure_code(&t), Some("NoRegion"));
        let t = terminated(2, "secrets-init: SSL_CERT_FILE=/x cannot be read\n");
        assert_eq!(failure_code(&t), Some("ConfigurationError"));
        let t = terminated(1, "secrets-init: resolution timed out after 30s\n");
        assert_eq!(failure_code(&t), Some("Timeout"));
    }

    #[test]
    fn other_exits_and_messages_are_not_secrets_inits() {
        assert_eq!(failure_code(&terminated(137, "secrets-init: x")), None);
        assert_eq!(failure_code(&terminated(1, "panic: app crashed")), None);
        assert_eq!(failure_code(&terminated(0, "secrets-init: x")), None);
        let mut t = terminated(1, "x");
        t.message = None;
        assert_eq!(failure_code(&t), None);
    }

    fn pod(restarts: i32, finished: &str, running: bool) -> Pod {
        let state = if running {
            json!({"running": {"startedAt": "2026-12-06T10:00:00Z"}})
        } else {
            json!({"waiting": {"reason": "CrashLoopBackOff"}})
        };
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "team-a", "uid": "u1"},
            "status": {"containerStatuses": [{
                "name": "app", "image": "a", "imageID": "", "ready": false,
                "restartCount": restarts, "state": state,
                "lastState": {"terminated": {
                    "exitCode": 1, "finishedAt": finished, "containerID": format!("containerd://{restarts}"),
                    "message": "secrets-init: 1 placeholder could not be resolved\nDB: awssm:prod/db: AccessDeniedException: denied\n"
                }}
            }]}
        }))
        .expect("pod")
    }

    #[test]
    fn each_restart_counts_once_and_the_gauge_follows_the_state() {
        let mut f = Failures::default();
        let first = pod(1, "2026-12-06T10:00:01Z", false);
        assert_eq!(
            f.pod(&first),
            [("team-a".to_owned(), "AccessDeniedException")]
        );
        // the same status again (a resync, an unrelated update): not counted again
        assert!(f.pod(&first).is_empty());
        assert_eq!(
            f.failing_by_namespace(),
            BTreeMap::from([("team-a".to_owned(), 1)])
        );
        let second = pod(2, "2026-12-06T10:00:21Z", false);
        assert_eq!(f.pod(&second).len(), 1);
        // fixed: the container runs now; its last termination stays in lastState
        let fixed = pod(2, "2026-12-06T10:00:21Z", true);
        assert!(f.pod(&fixed).is_empty());
        assert!(f.failing_by_namespace().is_empty());
        f.deleted(&fixed);
        assert!(f.counted.is_empty());
    }
}
