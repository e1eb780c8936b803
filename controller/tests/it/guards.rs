//! What holds a restart back: the per-workload cool-down, the cluster-wide rate, `paused`,
//! and `--dry-run`.

use serde_json::json;

use crate::support::{
    PATIENCE, World, deployment, opted_in, path_of, random_hex, wait_for, workload,
};

const HELD: &str = "secrets_init_controller_restarts_held_total";
const RESTARTS: &str = "secrets_init_controller_restarts_total";

#[test]
fn a_second_rotation_inside_the_cooldown_is_held() {
    let world = World::start();
    let ns = "team-c";
    let secret = random_hex(16);
    world.moto.create_secret("c/a", &secret);
    world
        .api
        .put_objects(&deployment(ns, "d-a", &[("A", "awssm:c/a")]));
    let c = world.controller("c1", &["--cooldown", "1h"]);
    c.wait_rounds(2.0);
    let d_a = path_of("Deployment", ns, "d-a");
    world.moto.put_secret_value("c/a", &random_hex(16));
    wait_for("the first restart", PATIENCE, || {
        (world.api.patches(&d_a) >= 1).then_some(())
    });
    c.wait_rounds(1.0);
    world.moto.put_secret_value("c/a", &random_hex(16));
    c.wait_metric(HELD, &[("reason", "cooldown")], 1.0);
    c.wait_rounds(2.0);
    assert_eq!(
        world.api.patches(&d_a),
        1,
        "one restart for two rotations inside the cool-down"
    );
    let m = c.metrics();
    assert_eq!(
        m.value(HELD, &[("reason", "cooldown")]),
        1.0,
        "counted once per held restart"
    );
    assert_eq!(m.value(RESTARTS, &[("result", "restarted")]), 1.0);
    world.assert_no_values(&[&c], &[&secret]);
}

#[test]
fn the_cluster_wide_rate_holds_restarts_beyond_it() {
    let world = World::start();
    let ns = "team-r";
    world.moto.create_secret("r/a", &random_hex(16));
    let names = ["d-1", "d-2", "d-3"];
    let objects: Vec<_> = names
        .iter()
        .map(|n| deployment(ns, n, &[("A", "awssm:r/a")]))
        .collect();
    world.api.put_objects(&json!(objects));
    let c = world.controller(
        "c1",
        &["--cooldown", "0s", "--max-restarts-per-minute", "1"],
    );
    c.wait_rounds(2.0);
    world.moto.put_secret_value("r/a", &random_hex(16));
    let patched = || {
        names
            .iter()
            .map(|n| world.api.patches(&path_of("Deployment", ns, n)))
            .sum::<usize>()
    };
    wait_for("one restart", PATIENCE, || (patched() >= 1).then_some(()));
    // The other two wait for tokens, which come back one a minute: not waited for here.
    c.wait_metric(HELD, &[("reason", "rate_limit")], 2.0);
    c.wait_rounds(2.0);
    assert_eq!(patched(), 1, "one token, one restart");
    let m = c.metrics();
    assert_eq!(m.value(HELD, &[("reason", "rate_limit")]), 2.0);
    assert_eq!(m.value(RESTARTS, &[("result", "restarted")]), 1.0);
}

#[test]
fn a_paused_workload_is_restarted_when_it_is_resumed() {
    let world = World::start();
    let ns = "team-p";
    let secret = random_hex(16);
    world.moto.create_secret("p/a", &secret);
    let d = |reload: &str| {
        workload(
            "Deployment",
            ns,
            "d-a",
            &[("A", "awssm:p/a")],
            opted_in(),
            json!({"secretsinit.io/reload": reload}),
        )
    };
    world.api.put_objects(&d("paused"));
    let c = world.controller("c1", &[]);
    c.wait_rounds(2.0);
    let d_a = path_of("Deployment", ns, "d-a");
    let v2 = world.moto.put_secret_value("p/a", &random_hex(16));
    c.wait_metric(HELD, &[("reason", "paused")], 1.0);
    c.wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_a), 0, "paused: no restart");

    // Back to "true" on the workload's own metadata: the held restart goes out, once.
    world.api.put_objects(&d("true"));
    wait_for("the held restart", PATIENCE, || {
        (world.api.patches(&d_a) >= 1).then_some(())
    });
    c.wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_a), 1);
    let stored = world.api.get(&d_a).expect("d-a");
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["secretsinit.io/restart-reason"],
        format!("awssm:p/a AWSCURRENT={v2}")
    );
    let m = c.metrics();
    assert_eq!(m.value(HELD, &[("reason", "paused")]), 1.0);
    assert_eq!(m.value(RESTARTS, &[("result", "restarted")]), 1.0);
    world.assert_no_values(&[&c], &[&secret]);
}

#[test]
fn dry_run_patches_nothing_and_records_no_event() {
    let world = World::start();
    let ns = "team-d";
    let secret = random_hex(16);
    world.moto.create_secret("d/a", &secret);
    world
        .api
        .put_objects(&deployment(ns, "d-a", &[("A", "awssm:d/a")]));
    let c = world.controller("c1", &["--dry-run"]);
    c.wait_rounds(2.0);
    world.moto.put_secret_value("d/a", &random_hex(16));
    c.wait_metric(RESTARTS, &[("result", "dry_run")], 1.0);
    c.wait_rounds(2.0);
    let requests = world.api.requests();
    let patches = requests.iter().filter(|r| r["method"] == "PATCH").count();
    assert_eq!(patches, 0, "no PATCH at all");
    let events = requests
        .iter()
        .filter(|r| {
            r["path"].as_str().is_some_and(|p| p.ends_with("/events")) && r["method"] != "GET"
        })
        .count();
    assert_eq!(events, 0, "no Event");
    let m = c.metrics();
    assert_eq!(m.value(RESTARTS, &[("result", "dry_run")]), 1.0);
    assert_eq!(m.value(RESTARTS, &[("result", "restarted")]), 0.0);
    let stored = world
        .api
        .get(&path_of("Deployment", ns, "d-a"))
        .expect("d-a");
    assert!(
        stored["spec"]["template"]["metadata"]["annotations"]
            .get("secretsinit.io/restartedAt")
            .is_none()
    );
    assert!(c.log_text().contains("dry run: would restart"));
    world.assert_no_values(&[&c], &[&secret]);
}
