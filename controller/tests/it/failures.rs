//! Fleet failures: secrets-init's termination messages in injected pods' statuses, counted
//! once per termination.

use serde_json::{Value, json};

use crate::support::World;

const FAILURES: &str = "secrets_init_resolution_failures_total";
const FAILING: &str = "secrets_init_pods_failing";
const MESSAGE: &str = "secrets-init: 1 placeholder could not be resolved\nDB: awssm:prod/db: AccessDeniedException: User is not authorized\n";

/// A pod of `ns` whose container last ended in secrets-init's failure (termination `n`,
/// finished at second `n`), `labels` as given, waiting in CrashLoopBackOff or running.
fn pod(ns: &str, name: &str, labels: Value, n: u32, running: bool) -> Value {
    let state = if running {
        json!({"running": {"startedAt": "2026-12-06T10:05:00Z"}})
    } else {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{ns}-{name}"), "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "app", "image": "registry.example/app:1", "imageID": "", "ready": running,
            "restartCount": n, "state": state,
            "lastState": {"terminated": {
                "exitCode": 1, "reason": "Error",
                "startedAt": format!("2026-12-06T10:00:{:02}Z", n.saturating_sub(1)),
                "finishedAt": format!("2026-12-06T10:00:{n:02}Z"),
                "containerID": format!("containerd://c{n}"),
                "message": MESSAGE
            }}
        }]}
    })
}

fn injected() -> Value {
    json!({"secretsinit.io/injected": "init-container", "app": "web"})
}

#[test]
fn each_failed_start_of_an_injected_pod_counts_once() {
    let world = World::start();
    let c = world.controller("c1", &[]);
    wait_ready(&c);
    let team_a = [("namespace", "team-a"), ("code", "AccessDeniedException")];
    // Pods the watch sees after the one under test: once a marker's failure is counted, every
    // event before it (same watch, in order) has been handled.
    let mut markers = 0;
    let mut mark = || {
        markers += 1;
        let ns = format!("marker-{markers}");
        world.api.put_objects(&pod(&ns, "m", injected(), 1, false));
        c.wait_metric(
            FAILURES,
            &[
                ("namespace", ns.as_str()),
                ("code", "AccessDeniedException"),
            ],
            1.0,
        );
    };

    world
        .api
        .put_objects(&pod("team-a", "web-1", injected(), 1, false));
    c.wait_metric(FAILURES, &team_a, 1.0);
    c.wait_metric(FAILING, &[("namespace", "team-a")], 1.0);

    // The same status again (only a label changed): not counted again.
    let mut relabelled = injected();
    relabelled["tier"] = json!("frontend");
    world
        .api
        .put_objects(&pod("team-a", "web-1", relabelled.clone(), 1, false));
    mark();
    assert_eq!(
        c.metrics().value(FAILURES, &team_a),
        1.0,
        "the same termination seen twice"
    );
    assert_eq!(c.metrics().value(FAILING, &[("namespace", "team-a")]), 1.0);

    // The next failed start (restartCount 2, a new finishedAt and containerID): counted.
    world
        .api
        .put_objects(&pod("team-a", "web-1", relabelled.clone(), 2, false));
    c.wait_metric(FAILURES, &team_a, 2.0);
    mark();
    assert_eq!(c.metrics().value(FAILURES, &team_a), 2.0);

    // Running now (the last termination stays in lastState): not failing, not counted again.
    world
        .api
        .put_objects(&pod("team-a", "web-1", relabelled, 2, true));
    c.wait_metric(FAILING, &[("namespace", "team-a")], 0.0);
    mark();
    assert_eq!(c.metrics().value(FAILURES, &team_a), 2.0);

    // A pod without the label is not the controller's to count.
    world
        .api
        .put_objects(&pod("team-c", "plain", json!({"app": "other"}), 1, false));
    mark();
    let m = c.metrics();
    assert_eq!(
        m.get(
            FAILURES,
            &[("namespace", "team-c"), ("code", "AccessDeniedException")]
        ),
        None,
        "{m:?}"
    );
    assert_eq!(m.get(FAILING, &[("namespace", "team-c")]), None);
    // and the watch asked only for injected pods
    let selectors: Vec<String> = world
        .api
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == "/api/v1/pods")
        .map(|r| r["query"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !selectors.is_empty()
            && selectors
                .iter()
                .all(|q| q.contains("labelSelector=secretsinit.io%2Finjected")),
        "{selectors:?}"
    );
}

/// Until /readyz says the caches have synced.
fn wait_ready(c: &crate::support::Controller) {
    let url = c.metrics_url.replace("/metrics", "/readyz");
    crate::support::wait_for(
        "the controller to be ready",
        crate::support::PATIENCE,
        || {
            crate::support::http("GET", &url, &[], None)
                .ok()
                .filter(|r| r.status == 200)
                .map(drop)
        },
    );
}
