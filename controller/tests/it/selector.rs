//! `--namespace-selector`: only workloads in matching namespaces are restarted, a namespace
//! that starts matching is followed, and a malformed selector stops the start.

use serde_json::{Value, json};

use crate::support::{Controller, PATIENCE, World, deployment, path_of, random_hex, wait_for};

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

#[test]
fn only_workloads_in_selected_namespaces_are_restarted() {
    let world = World::start();
    let values = [random_hex(16), random_hex(16), random_hex(16)];
    world.moto.create_secret("sel/a", &values[0]);
    world.api.put_objects(&json!([
        namespace("sel-in", json!({"team": "payments"})),
        namespace("sel-out", json!({"team": "search"})),
        deployment("sel-in", "d", &[("A", "awssm:sel/a")]),
        deployment("sel-out", "d", &[("A", "awssm:sel/a")]),
    ]));
    let c = world.controller(
        "c",
        &[
            "--cooldown",
            "0s",
            "--namespace-selector",
            "team in (payments, billing)",
        ],
    );
    c.wait_rounds(2.0);
    let inside = path_of("Deployment", "sel-in", "d");
    let outside = path_of("Deployment", "sel-out", "d");

    world.moto.put_secret_value("sel/a", &values[1]);
    wait_for(
        "the selected namespace's workload patched",
        PATIENCE,
        || (world.api.patches(&inside) == 1).then_some(()),
    );
    c.wait_rounds(2.0);
    assert_eq!(
        world.api.patches(&outside),
        0,
        "not in a selected namespace"
    );

    // The other namespace starts matching: its workload is watched from then on.
    world
        .api
        .put_objects(&namespace("sel-out", json!({"team": "billing"})));
    c.wait_rounds(2.0);
    world.moto.put_secret_value("sel/a", &values[2]);
    wait_for("both workloads patched", PATIENCE, || {
        (world.api.patches(&inside) == 2 && world.api.patches(&outside) == 1).then_some(())
    });
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    world.assert_no_values(&[&c], &values);
}

#[test]
fn a_malformed_namespace_selector_stops_the_start_with_the_reason() {
    let world = World::start();
    let out = Controller::start_fails(
        world.dir.path(),
        "c",
        &world.peers(),
        &["--namespace-selector", "team in (payments"],
    );
    assert!(out.contains("exit status: 2"), "{out}");
    let line = out
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .filter(|v| v["level"] == "ERROR")
        })
        .unwrap_or_else(|| panic!("no error line: {out}"));
    let message = line["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            r#"--namespace-selector "team in (payments" is not a valid label selector: "#
        ),
        "{message}"
    );
}
