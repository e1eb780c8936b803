//! Rotation → rollout: which workloads a change restarts, how often, with what; a watch
//! that ends in 410; malformed placeholders.

use serde_json::{Value, json};

use crate::support::{
    PATIENCE, World, deployment, opted_in, path_of, random_hex, wait_for, workload,
};

const ROUNDS: &str = "secrets_init_controller_poll_rounds_total";
const RESTARTS: &str = "secrets_init_controller_restarts_total";

/// The template annotations the controller wrote on a stored workload.
fn template_annotations(world: &World, path: &str) -> Value {
    let object = world
        .api
        .get(path)
        .unwrap_or_else(|| panic!("{path} exists"));
    object["spec"]["template"]["metadata"]["annotations"].clone()
}

#[test]
fn rotation_restarts_exactly_the_referencing_workloads_once() {
    let world = World::start();
    let ns = "team-a";
    let (a, b, p) = ("rot/alpha", "rot/beta", "/rot/param");
    let values = [
        random_hex(16),
        random_hex(16),
        random_hex(16),
        random_hex(16),
        random_hex(16),
    ];
    let a_v1 = world
        .moto
        .create_secret(a, &json!({"k": values[0]}).to_string());
    world
        .moto
        .create_secret(b, &json!({"k": values[1]}).to_string());
    world.moto.put_parameter(p, &values[2]);
    let no_reload = json!({"secretsinit.io/inject": "true"});
    world.api.put_objects(&json!([
        workload(
            "Deployment",
            ns,
            "d-a",
            &[("DB", &format!("awssm:{a}#k"))],
            opted_in(),
            json!({})
        ),
        workload(
            "StatefulSet",
            ns,
            "s-a",
            &[("DSN", &format!("postgres://u:${{awssm:{a}#k}}@db/app"))],
            opted_in(),
            json!({})
        ),
        workload(
            "DaemonSet",
            ns,
            "ds-p",
            &[("URL", &format!("awsssm:{p}"))],
            opted_in(),
            json!({})
        ),
        workload(
            "Deployment",
            ns,
            "d-b",
            &[("B", &format!("awssm:{b}#k"))],
            opted_in(),
            json!({})
        ),
        workload(
            "Deployment",
            ns,
            "d-noreload",
            &[("DB", &format!("awssm:{a}#k"))],
            no_reload,
            json!({})
        ),
    ]));
    let c = world.controller("c1", &[]);
    let d_a = path_of("Deployment", ns, "d-a");
    let s_a = path_of("StatefulSet", ns, "s-a");
    let ds_p = path_of("DaemonSet", ns, "ds-p");
    let d_b = path_of("Deployment", ns, "d-b");
    let d_noreload = path_of("Deployment", ns, "d-noreload");
    let all = [&d_a, &s_a, &ds_p, &d_b, &d_noreload];

    // First sight restarts nothing, and neither does an unchanged id.
    wait_for("two poll rounds", PATIENCE, || {
        (c.metrics().value(ROUNDS, &[]) >= 2.0).then_some(())
    });
    let m = c.metrics();
    assert_eq!(
        m.value(
            "secrets_init_controller_watched_ids",
            &[("source", "awssm")]
        ),
        2.0,
        "A and B"
    );
    assert_eq!(
        m.value(
            "secrets_init_controller_watched_ids",
            &[("source", "awsssm")]
        ),
        1.0,
        "P"
    );
    for path in all {
        assert_eq!(
            world.api.patches(path),
            0,
            "{path} patched before any change"
        );
    }

    let a_v2 = world
        .moto
        .put_secret_value(a, &json!({"k": values[3]}).to_string());
    assert_ne!(a_v1, a_v2);
    wait_for("d-a and s-a patched", PATIENCE, || {
        (world.api.patches(&d_a) >= 1 && world.api.patches(&s_a) >= 1).then_some(())
    });
    // Two more rounds: nothing is restarted twice, and nothing else is restarted.
    c.wait_rounds(2.0);
    for (path, want) in [
        (&d_a, 1),
        (&s_a, 1),
        (&ds_p, 0),
        (&d_b, 0),
        (&d_noreload, 0),
    ] {
        assert_eq!(world.api.patches(path), want, "PATCH count of {path}");
    }
    let requests = world.api.requests();
    for path in [&d_a, &s_a] {
        let patch = requests
            .iter()
            .find(|r| r["method"] == "PATCH" && r["path"] == *path)
            .expect("the patch");
        assert_eq!(
            patch["contentType"], "application/merge-patch+json",
            "{patch}"
        );
        let annotations = &patch["body"]["spec"]["template"]["metadata"]["annotations"];
        let reason = annotations["secretsinit.io/restart-reason"]
            .as_str()
            .expect("restart-reason");
        assert_eq!(reason, format!("awssm:{a} AWSCURRENT={a_v2}"), "{patch}");
        let at = annotations["secretsinit.io/restartedAt"]
            .as_str()
            .expect("restartedAt");
        assert!(
            at.len() >= 20 && at.ends_with('Z') && at.contains('T'),
            "RFC 3339: {at}"
        );
        // the patch is the whole body: only those two annotations
        assert_eq!(
            patch["body"],
            json!({"spec": {"template": {"metadata": {"annotations": {
            "secretsinit.io/restartedAt": at, "secretsinit.io/restart-reason": reason}}}}})
        );
        // and it is stored: the template annotations now carry it beside the opt-in
        let stored = template_annotations(&world, path);
        assert_eq!(stored["secretsinit.io/restart-reason"], reason);
        assert_eq!(stored["secretsinit.io/inject"], "true");
    }
    // One Event per restarted workload, naming the id and version, never a value.
    let events: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"] == format!("/apis/events.k8s.io/v1/namespaces/{ns}/events")
        })
        .collect();
    assert_eq!(
        events.len(),
        2,
        "one Event per restarted workload: {events:?}"
    );
    let mut regarding: Vec<String> = Vec::new();
    for e in &events {
        let body = &e["body"];
        assert_eq!(body["reason"], "SecretRotated", "{body}");
        let note = body["note"].as_str().expect("note");
        assert!(
            note.contains(&format!("awssm:{a}")) && note.contains(&a_v2),
            "{note}"
        );
        regarding.push(format!(
            "{}/{}",
            body["regarding"]["kind"].as_str().unwrap_or("-"),
            body["regarding"]["name"].as_str().unwrap_or("-")
        ));
    }
    regarding.sort();
    assert_eq!(regarding, ["Deployment/d-a", "StatefulSet/s-a"]);

    // A new parameter version restarts the DaemonSet, once.
    let p_v2 = world.moto.put_parameter(p, &values[4]);
    wait_for("ds-p patched", PATIENCE, || {
        (world.api.patches(&ds_p) >= 1).then_some(())
    });
    c.wait_rounds(2.0);
    for (path, want) in [
        (&d_a, 1),
        (&s_a, 1),
        (&ds_p, 1),
        (&d_b, 0),
        (&d_noreload, 0),
    ] {
        assert_eq!(world.api.patches(path), want, "PATCH count of {path}");
    }
    assert_eq!(
        template_annotations(&world, &ds_p)["secretsinit.io/restart-reason"],
        format!("awsssm:{p} version {p_v2}")
    );
    let patches: Vec<Value> = world
        .api
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .skip(2)
        .collect();
    assert_eq!(
        patches.len(),
        1,
        "one patch for the new parameter version: {patches:?}"
    );
    // The record the closing note of issue 23 quotes (`--no-capture` shows it).
    eprintln!(
        "rotation: PutParameter {p} (now version {p_v2}) led to {} patch: PATCH {} {}",
        patches.len(),
        patches[0]["path"].as_str().unwrap_or("-"),
        patches[0]["body"]
    );
    assert_eq!(c.metrics().value(RESTARTS, &[("result", "restarted")]), 3.0);
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    world.assert_no_values(&[&c], &values);
}

#[test]
fn a_watch_that_ends_in_410_recovers() {
    let world = World::start();
    let ns = "team-w";
    let secret = random_hex(16);
    world.moto.create_secret("w/a", &secret);
    world.moto.create_secret("w/c", &random_hex(16));
    world
        .api
        .put_objects(&deployment(ns, "d-a", &[("A", "awssm:w/a")]));
    let c = world.controller("c1", &[]);
    c.wait_rounds(2.0);
    // the three workload kinds and the pods, each watched
    wait_for("four open watches", PATIENCE, || {
        (world.api.watches().len() >= 4).then_some(())
    });
    let expired = world.api.expire();
    assert!(
        expired["expiredWatches"].as_u64().unwrap_or(0) >= 4,
        "the controller was watching: {expired}"
    );

    // A Deployment created after the 410: it references A and C; watching C (a second id)
    // shows the controller has it in its index again.
    world.api.put_objects(&deployment(
        ns,
        "d-new",
        &[("A", "awssm:w/a"), ("C", "awssm:w/c")],
    ));
    c.wait_metric(
        "secrets_init_controller_watched_ids",
        &[("source", "awssm")],
        2.0,
    );
    c.wait_rounds(1.0);
    let v2 = world.moto.put_secret_value("w/a", &random_hex(16));
    let d_new = path_of("Deployment", ns, "d-new");
    let d_a = path_of("Deployment", ns, "d-a");
    wait_for("d-new and d-a patched", PATIENCE, || {
        (world.api.patches(&d_new) >= 1 && world.api.patches(&d_a) >= 1).then_some(())
    });
    c.wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_new), 1);
    assert_eq!(world.api.patches(&d_a), 1);
    assert_eq!(
        template_annotations(&world, &d_new)["secretsinit.io/restart-reason"],
        format!("awssm:w/a AWSCURRENT={v2}")
    );
    world.assert_no_values(&[&c], &[&secret]);
}

#[test]
fn a_malformed_placeholder_is_counted_once_per_generation_and_others_still_restart() {
    let world = World::start();
    let ns = "team-m";
    let secret = random_hex(16);
    world.moto.create_secret("m/a", &secret);
    world.moto.create_secret("m/c", &random_hex(16));
    world.moto.create_secret("m/d", &random_hex(16));
    let bad = |label: &str, env: &[(&str, &str)]| {
        let mut w = workload("Deployment", ns, "d-bad", env, opted_in(), json!({}));
        w["metadata"]["labels"] = json!({"touch": label});
        w
    };
    world.api.put_objects(&json!([
        bad("1", &[("BROKEN", "x=${awssm:m/a"), ("OK", "plain")]),
        deployment(ns, "d-a", &[("A", "awssm:m/a")]),
    ]));
    let c = world.controller("c1", &[]);
    const MALFORMED: &str = "secrets_init_controller_malformed_placeholders_total";
    c.wait_metric(MALFORMED, &[], 1.0);
    c.wait_rounds(1.0);

    // The same generation seen again (a label changed): not counted again. A second
    // Deployment after it, referencing a new id, marks when the watch has passed it.
    world
        .api
        .put_objects(&bad("2", &[("BROKEN", "x=${awssm:m/a"), ("OK", "plain")]));
    world
        .api
        .put_objects(&deployment(ns, "marker-1", &[("C", "awssm:m/c")]));
    c.wait_metric(
        "secrets_init_controller_watched_ids",
        &[("source", "awssm")],
        2.0,
    );
    assert_eq!(
        c.metrics().value(MALFORMED, &[]),
        1.0,
        "a metadata change is not a new generation"
    );
    let stored = world
        .api
        .get(&path_of("Deployment", ns, "d-bad"))
        .expect("d-bad");
    assert_eq!(stored["metadata"]["generation"], 1, "{stored}");

    // A new generation (the template changed) with the placeholder still malformed: once more.
    world
        .api
        .put_objects(&bad("2", &[("BROKEN", "x=${awssm:m/a"), ("OK", "plain2")]));
    c.wait_metric(MALFORMED, &[], 2.0);
    world
        .api
        .put_objects(&deployment(ns, "marker-2", &[("D", "awssm:m/d")]));
    c.wait_metric(
        "secrets_init_controller_watched_ids",
        &[("source", "awssm")],
        3.0,
    );
    c.wait_rounds(1.0);
    assert_eq!(c.metrics().value(MALFORMED, &[]), 2.0);

    // The controller runs on and restarts the well-formed workload.
    world.moto.put_secret_value("m/a", &random_hex(16));
    let d_a = path_of("Deployment", ns, "d-a");
    wait_for("d-a patched", PATIENCE, || {
        (world.api.patches(&d_a) >= 1).then_some(())
    });
    c.wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_a), 1);
    assert_eq!(
        world.api.patches(&path_of("Deployment", ns, "d-bad")),
        0,
        "its only reference is malformed"
    );
    let log = c.log_text();
    assert!(
        log.contains("malformed placeholder in a watched template"),
        "logged"
    );
    world.assert_no_values(&[&c], &[&secret]);
}
