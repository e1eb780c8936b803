//! The controller's Prometheus metrics (names and labels: controller/README.md). Every label
//! set is bounded: results, reasons and APIs are fixed lists, `code` is one of
//! [`crate::failures::CODES`], `namespace` is bounded by the cluster's namespaces; no pod,
//! workload or secret name is ever a label.

use prometheus::{
    Encoder as _, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    restarts: IntCounterVec,
    held: IntCounterVec,
    detection_calls: IntCounterVec,
    pub last_successful_poll: IntGauge,
    pub poll_rounds: IntCounter,
    pub watched_ids: IntGaugeVec,
    pub unwatched: IntGaugeVec,
    pub malformed: IntCounter,
    pub leader: IntGauge,
    pub resolution_failures: IntCounterVec,
    pub pods_failing: IntGaugeVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(m.clone())).expect("registered once");
    m
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // The names are fixed and valid: `expect` here fails only on a typo, which the unit test
    // below catches.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let r = Registry::new();
        let restarts = counter_vec(
            &r,
            "secrets_init_controller_restarts_total",
            "Workload restarts caused by a changed secret or parameter, by result.",
            &["result"],
        );
        let held = counter_vec(
            &r,
            "secrets_init_controller_restarts_held_total",
            "Restarts held back (applied later), by reason.",
            &["reason"],
        );
        let detection_calls = counter_vec(
            &r,
            "secrets_init_controller_detection_calls_total",
            "AWS metadata calls made to detect changes, by API and result.",
            &["api", "result"],
        );
        let last_successful_poll = IntGauge::new(
            "secrets_init_controller_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll round in which every call succeeded.",
        )
        .expect("valid metric");
        r.register(Box::new(last_successful_poll.clone()))
            .expect("registered once");
        let poll_rounds = IntCounter::new(
            "secrets_init_controller_poll_rounds_total",
            "Poll rounds run by the leader (calls per round = detection calls / rounds).",
        )
        .expect("valid metric");
        r.register(Box::new(poll_rounds.clone()))
            .expect("registered once");
        let watched_ids = gauge_vec(
            &r,
            "secrets_init_controller_watched_ids",
            "Distinct ids (per region and stage) watched for changes, by store.",
            &["source"],
        );
        let unwatched = gauge_vec(
            &r,
            "secrets_init_controller_unwatched_references",
            "References the controller does not watch, by reason.",
            &["reason"],
        );
        let malformed = IntCounter::new(
            "secrets_init_controller_malformed_placeholders_total",
            "Malformed placeholders seen in watched templates (once per workload generation).",
        )
        .expect("valid metric");
        r.register(Box::new(malformed.clone()))
            .expect("registered once");
        let leader = IntGauge::new(
            "secrets_init_controller_leader",
            "1 while this replica holds the leader Lease.",
        )
        .expect("valid metric");
        r.register(Box::new(leader.clone()))
            .expect("registered once");
        let resolution_failures = counter_vec(
            &r,
            "secrets_init_resolution_failures_total",
            "Container starts in injected pods where secrets-init could not resolve the secrets, by the code of the first problem.",
            &["namespace", "code"],
        );
        let pods_failing = gauge_vec(
            &r,
            "secrets_init_pods_failing",
            "Injected pods with a container whose last start failed in secrets-init and that is not running now.",
            &["namespace"],
        );
        for result in ["restarted", "dry_run", "error"] {
            restarts.with_label_values(&[result]);
        }
        for reason in ["cooldown", "rate_limit", "paused"] {
            held.with_label_values(&[reason]);
        }
        for source in ["awssm", "awsssm"] {
            watched_ids.with_label_values(&[source]);
        }
        Self {
            registry: r,
            restarts,
            held,
            detection_calls,
            last_successful_poll,
            poll_rounds,
            watched_ids,
            unwatched,
            malformed,
            leader,
            resolution_failures,
            pods_failing,
        }
    }

    pub fn restart(&self, result: &str) {
        self.restarts.with_label_values(&[result]).inc();
    }

    pub fn held(&self, reason: &str) {
        self.held.with_label_values(&[reason]).inc();
    }

    pub fn detection_call(&self, api: &str, ok: bool) {
        self.detection_calls
            .with_label_values(&[api, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec does not fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_with_its_documented_name() {
        let m = Metrics::new();
        m.detection_call("ListSecrets", true);
        m.resolution_failures
            .with_label_values(&["default", "AccessDeniedException"])
            .inc();
        m.pods_failing.with_label_values(&["default"]).set(1);
        m.unwatched.with_label_values(&["pinned"]).set(1);
        let text = m.render();
        for name in [
            "secrets_init_controller_restarts_total{result=\"restarted\"} 0",
            "secrets_init_controller_restarts_held_total{reason=\"cooldown\"} 0",
            "secrets_init_controller_detection_calls_total{api=\"ListSecrets\",result=\"ok\"} 1",
            "secrets_init_controller_last_successful_poll_timestamp_seconds 0",
            "secrets_init_controller_poll_rounds_total 0",
            "secrets_init_controller_watched_ids{source=\"awssm\"} 0",
            "secrets_init_controller_unwatched_references{reason=\"pinned\"} 1",
            "secrets_init_controller_malformed_placeholders_total 0",
            "secrets_init_controller_leader 0",
            "secrets_init_resolution_failures_total{code=\"AccessDeniedException\",namespace=\"default\"} 1",
            "secrets_init_pods_failing{namespace=\"default\"} 1",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
