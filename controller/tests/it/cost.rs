//! The AWS cost of a poll round follows the distinct ids, not the workloads.

use serde_json::{Value, json};

use crate::support::{Controller, PATIENCE, World, deployment, wait_for};

const IDS: usize = 50;
const CALLS: &str = "secrets_init_controller_detection_calls_total";
const ROUNDS: &str = "secrets_init_controller_poll_rounds_total";

/// (rounds, calls) read just after a round ended: the round counter moves after its calls
/// are counted, and two reads in a row agree (no call of the next round in between).
fn after_round(c: &Controller, min_rounds: f64) -> (f64, f64) {
    wait_for(&format!("{}: round {min_rounds}", c.name), PATIENCE, || {
        let a = c.metrics();
        if a.value(ROUNDS, &[]) < min_rounds {
            std::thread::sleep(std::time::Duration::from_millis(20));
            return None;
        }
        let b = c.metrics();
        let (ra, ca) = (a.value(ROUNDS, &[]), a.sum(CALLS));
        let (rb, cb) = (b.value(ROUNDS, &[]), b.sum(CALLS));
        (ra == rb && ca == cb).then_some((rb, cb))
    })
}

fn deployments(from: usize, to: usize, ids: &[String]) -> Value {
    let vars: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("S{i:02}"), format!("awssm:{id}#k")))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    Value::Array(
        (from..to)
            .map(|i| deployment("team-cost", &format!("d-{i:04}"), &vars))
            .collect(),
    )
}

#[test]
fn aws_calls_per_round_do_not_grow_with_workloads() {
    let world = World::start();
    let ids: Vec<String> = (0..IDS).map(|i| format!("cost/s-{i:02}")).collect();
    for id in &ids {
        world
            .moto
            .create_secret(id, &json!({"k": crate::support::random_hex(8)}).to_string());
    }
    let mut figures = Vec::new();
    let mut have = 0;
    for size in [1usize, 100, 1000] {
        world.api.put_objects(&deployments(have, size, &ids));
        have = size;
        // A fresh controller that lists all of them before its first round (its own Lease:
        // no waiting for the previous one's to expire).
        let lease = format!("cost-{size}");
        let c = world.controller(&format!("cost-{size}"), &["--lease-name", &lease]);
        let (r1, c1) = after_round(&c, 1.0);
        let m = c.metrics();
        assert_eq!(
            m.value(
                "secrets_init_controller_watched_ids",
                &[("source", "awssm")]
            ),
            IDS as f64,
            "{size}"
        );
        let (r2, c2) = after_round(&c, r1 + 3.0);
        let per_round = (c2 - c1) / (r2 - r1);
        eprintln!(
            "cost: {size} Deployments sharing {IDS} secret ids: {per_round} AWS calls per round ({} calls over {} rounds after the first)",
            c2 - c1,
            r2 - r1
        );
        let m = c.metrics();
        assert_eq!(
            m.value(CALLS, &[("api", "DescribeSecret"), ("result", "ok")]),
            0.0,
            "every name found by ListSecrets"
        );
        assert_eq!(
            m.sum(CALLS),
            m.value(CALLS, &[("api", "ListSecrets"), ("result", "ok")]),
            "only ListSecrets, no errors"
        );
        figures.push((size, per_round));
    }
    let want = IDS.div_ceil(10) as f64;
    for (size, per_round) in &figures {
        assert_eq!(
            *per_round, want,
            "{size} Deployments: {per_round} calls per round, want ⌈{IDS}/10⌉ = {want}"
        );
    }
}
