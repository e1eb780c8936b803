//! Leader election on the Lease: two replicas restart once; a killed leader is replaced; a
//! terminated one releases the Lease; restarts held when a leader dies are done by the next;
//! the API server going away and coming back.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    ApiServer, Controller, Moto, PATIENCE, Peers, deployment, free_port, opted_in, path_of,
    random_hex, wait_for, workload,
};

const LEADER: &str = "secrets_init_controller_leader";
const ROUNDS: &str = "secrets_init_controller_poll_rounds_total";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/default/leases/secrets-init-controller";
/// `--lease-duration` of every test here (support::BASE_FLAGS).
const LEASE_DURATION: Duration = Duration::from_secs(3);

fn holder(api: &ApiServer) -> Option<String> {
    let lease: Value = api.get(LEASE)?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

#[test]
fn two_controllers_restart_once_a_killed_leader_is_replaced_and_a_stopped_one_releases_the_lease() {
    let world = crate::support::World::start();
    let ns = "team-l";
    let values = [random_hex(16), random_hex(16), random_hex(16)];
    world.moto.create_secret("l/a", &values[0]);
    world.api.put_objects(&json!([
        deployment(ns, "d-a", &[("A", "awssm:l/a")]),
        workload(
            "StatefulSet",
            ns,
            "s-a",
            &[("A", "${awssm:l/a}")],
            opted_in(),
            json!({})
        ),
    ]));
    // --cooldown 0s: the second rotation, soon after the first, is not held.
    let flags = ["--cooldown", "0s"];
    let mut controllers = [
        world.controller("one", &flags),
        world.controller("two", &flags),
    ];

    // Exactly one leads (and polls); the other stands by.
    let (li, si) = wait_for("one leader that has polled twice", PATIENCE, || {
        let m: Vec<_> = controllers.iter().map(Controller::metrics).collect();
        let leading: Vec<usize> = (0..2).filter(|&i| m[i].value(LEADER, &[]) == 1.0).collect();
        (leading.len() == 1 && m[leading[0]].value(ROUNDS, &[]) >= 2.0)
            .then(|| (leading[0], 1 - leading[0]))
    });
    assert_eq!(
        holder(&world.api).as_deref(),
        Some(controllers[li].name.as_str())
    );
    let standby = controllers[si].metrics();
    assert_eq!(standby.value(LEADER, &[]), 0.0);
    assert_eq!(standby.value(ROUNDS, &[]), 0.0, "a standby does not poll");

    let d_a = path_of("Deployment", ns, "d-a");
    let s_a = path_of("StatefulSet", ns, "s-a");
    world.moto.put_secret_value("l/a", &values[1]);
    wait_for("both workloads patched", PATIENCE, || {
        (world.api.patches(&d_a) >= 1 && world.api.patches(&s_a) >= 1).then_some(())
    });
    controllers[li].wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_a), 1, "once in total, by two replicas");
    assert_eq!(world.api.patches(&s_a), 1, "once in total, by two replicas");
    assert_eq!(
        controllers[si].metrics().value(
            "secrets_init_controller_restarts_total",
            &[("result", "restarted")]
        ),
        0.0
    );

    // SIGKILL the leader (no release) and rotate during the hand-over: the standby takes over
    // once the Lease has gone unrenewed for its duration, and compares against the versions
    // the old leader recorded in the Lease, so the rotation still restarts each workload once.
    let killed = Instant::now();
    controllers[li].kill();
    let v3 = world.moto.put_secret_value("l/a", &values[2]);
    wait_for("the standby to lead", PATIENCE, || {
        (controllers[si].metrics().value(LEADER, &[]) == 1.0).then_some(())
    });
    let took = killed.elapsed();
    eprintln!(
        "leader: the standby took over {:.1} s after the leader was killed",
        took.as_secs_f64()
    );
    assert!(
        took <= LEASE_DURATION * 4,
        "took over after {took:?} (lease duration {LEASE_DURATION:?})"
    );
    assert_eq!(
        holder(&world.api).as_deref(),
        Some(controllers[si].name.as_str())
    );
    wait_for("the second rotation applied", PATIENCE, || {
        (world.api.patches(&d_a) >= 2 && world.api.patches(&s_a) >= 2).then_some(())
    });
    controllers[si].wait_rounds(2.0);
    assert_eq!(world.api.patches(&d_a), 2);
    assert_eq!(world.api.patches(&s_a), 2);
    let stored = world.api.get(&d_a).expect("d-a");
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["secretsinit.io/restart-reason"],
        format!("awssm:l/a AWSCURRENT={v3}")
    );

    // SIGTERM on the leader: it releases the Lease (holder cleared) and exits, promptly.
    let stopping = Instant::now();
    let status = controllers[si].terminate();
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_eq!(
        holder(&world.api),
        None,
        "the Lease is released: {:?}",
        world.api.get(LEASE)
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        stopping.elapsed()
    );
    assert!(controllers[si].log_text().contains("released the Lease"));
    let refs: Vec<&Controller> = controllers.iter().collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    world.assert_no_values(&refs, &values);
}

#[test]
fn a_rotation_while_the_api_server_is_away_restarts_once_when_it_is_back() {
    let dir = tempfile::Builder::new()
        .prefix("controller-it-")
        .tempdir()
        .expect("tempdir");
    let moto = Moto::start();
    let port = free_port();
    let state = dir.path().join("apiserver-state.json");
    let token = random_hex(16);
    let mut api = ApiServer::start_with(dir.path(), port, Some(&state), &token);
    let secret = random_hex(16);
    moto.create_secret("away/a", &secret);
    let ns = "team-o";
    api.put_objects(&deployment(ns, "d-a", &[("A", "awssm:away/a")]));
    let c = Controller::start(dir.path(), "c1", &Peers::new(&api, &moto), &[]);
    c.wait_rounds(2.0);
    let d_a = path_of("Deployment", ns, "d-a");
    assert_eq!(api.patches(&d_a), 0);

    api.kill();
    let v2 = moto.put_secret_value("away/a", &random_hex(16));
    // The outage outlasts the Lease: the controller cannot renew it and stops leading.
    wait_for("the controller to stop leading", PATIENCE, || {
        (c.metrics().value(LEADER, &[]) == 0.0).then_some(())
    });
    drop(api);
    let api = ApiServer::start_with(dir.path(), port, Some(&state), &token);
    assert!(api.get(&d_a).is_some(), "the state came back");
    wait_for("the controller to lead again", PATIENCE, || {
        (c.metrics().value(LEADER, &[]) == 1.0).then_some(())
    });
    wait_for("d-a patched after the API server is back", PATIENCE, || {
        (api.patches(&d_a) >= 1).then_some(())
    });
    c.wait_rounds(2.0);
    assert_eq!(api.patches(&d_a), 1, "once");
    let stored = api.get(&d_a).expect("d-a");
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["secretsinit.io/restart-reason"],
        format!("awssm:away/a AWSCURRENT={v2}")
    );
    assert!(!c.log_text().contains(&secret));
}

#[test]
fn restarts_still_held_when_the_leader_dies_are_done_by_the_next_one_once() {
    let world = crate::support::World::start();
    let ns = "team-h";
    let values = [random_hex(16), random_hex(16)];
    let v1 = world.moto.create_secret("h/a", &values[0]);
    let names = ["d-1", "d-2", "d-3"];
    world.api.put_objects(&Value::Array(
        names
            .iter()
            .map(|n| deployment(ns, n, &[("A", "awssm:h/a")]))
            .collect(),
    ));
    // Two restarts a minute: a rotation restarts two of the three at once and holds the
    // third for half a minute, long enough to kill the leader while it waits.
    let flags = ["--cooldown", "0s", "--max-restarts-per-minute", "2"];
    let mut controllers = [
        world.controller("one", &flags),
        world.controller("two", &flags),
    ];
    let (li, si) = wait_for("one leader that has polled twice", PATIENCE, || {
        let m: Vec<_> = controllers.iter().map(Controller::metrics).collect();
        let leading: Vec<usize> = (0..2).filter(|&i| m[i].value(LEADER, &[]) == 1.0).collect();
        (leading.len() == 1 && m[leading[0]].value(ROUNDS, &[]) >= 2.0)
            .then(|| (leading[0], 1 - leading[0]))
    });
    let paths: Vec<String> = names.iter().map(|n| path_of("Deployment", ns, n)).collect();
    let patched = |api: &ApiServer| paths.iter().map(|p| api.patches(p)).collect::<Vec<_>>();

    let v2 = world.moto.put_secret_value("h/a", &values[1]);
    controllers[li].wait_metric(
        "secrets_init_controller_restarts_held_total",
        &[("reason", "rate_limit")],
        1.0,
    );
    assert_eq!(
        patched(&world.api).iter().sum::<usize>(),
        2,
        "{:?}",
        patched(&world.api)
    );
    // The Lease hands over the version before the change, since one restart is still to go.
    wait_for(
        "the Lease to record the unsettled version",
        PATIENCE,
        || {
            let lease = world.api.get(LEASE)?;
            let observed = lease["metadata"]["annotations"]["secretsinit.io/observed-versions"]
                .as_str()?
                .to_owned();
            observed.contains(&v1).then_some(())
        },
    );
    controllers[li].kill();
    wait_for("the standby to lead", PATIENCE, || {
        (controllers[si].metrics().value(LEADER, &[]) == 1.0).then_some(())
    });
    wait_for("the held restart done by the new leader", PATIENCE, || {
        (patched(&world.api).iter().all(|&n| n >= 1)).then_some(())
    });
    controllers[si].wait_rounds(3.0);
    assert_eq!(
        patched(&world.api),
        [1, 1, 1],
        "each workload once, across two leaders"
    );
    for p in &paths {
        let stored = world.api.get(p).expect("workload");
        assert_eq!(
            stored["spec"]["template"]["metadata"]["annotations"]["secretsinit.io/restart-reason"],
            format!("awssm:h/a AWSCURRENT={v2}")
        );
    }
    let log = controllers[si].log_text();
    assert_eq!(
        log.matches("already restarted for this change").count(),
        2,
        "the new leader skips the two its predecessor restarted: {log}"
    );
    let refs: Vec<&Controller> = controllers.iter().collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    world.assert_no_values(&refs, &values);
}
