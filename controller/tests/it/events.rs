//! Change events: EventBridge → SQS → the controller re-checks the id at once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ACCOUNT, PATIENCE, REGION, World, deployment, path_of, random_hex, wait_for};

#[test]
fn an_eventbridge_event_through_sqs_restarts_without_waiting_for_the_poll() {
    let world = World::start();
    let moto = &world.moto;
    let ns = "team-e";
    let secret = random_hex(16);
    moto.create_secret("e/a", &secret);
    moto.create_secret("e/b", &random_hex(16));
    world.api.put_objects(&json!([
        deployment(ns, "d-a", &[("A", "awssm:e/a#k")]),
        deployment(ns, "d-b", &[("B", "awssm:e/b#k")]),
    ]));

    // The queue and a rule on the default bus sending Secrets Manager's events to it.
    let queue = moto.call(
        "sqs",
        "AmazonSQS.CreateQueue",
        &json!({"QueueName": "secret-changes"}),
    );
    let queue_url = queue["QueueUrl"].as_str().expect("QueueUrl").to_owned();
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:secret-changes");
    let pattern = json!({"source": ["aws.secretsmanager"], "detail": {"eventName": ["PutSecretValue", "UpdateSecretVersionStage", "RotationSucceeded"]}});
    moto.call(
        "events",
        "AWSEvents.PutRule",
        &json!({"Name": "secret-changes", "EventPattern": pattern.to_string(), "State": "ENABLED"}),
    );
    let targets = moto.call(
        "events",
        "AWSEvents.PutTargets",
        &json!({"Rule": "secret-changes", "Targets": [{"Id": "queue", "Arn": queue_arn}]}),
    );
    assert_eq!(targets["FailedEntryCount"], 0, "{targets}");

    // Polling once an hour: only the event can bring the change in time. The controller
    // polls once when it starts leading; that round records the first versions.
    let c = world.controller(
        "c1",
        &["--poll-interval", "1h", "--sqs-queue-url", &queue_url],
    );
    c.wait_rounds(1.0);
    let m = c.metrics();
    assert_eq!(
        m.value("secrets_init_controller_poll_rounds_total", &[]),
        1.0
    );
    let v2 = moto.put_secret_value("e/a", &json!({"k": random_hex(16)}).to_string());
    let sent = Instant::now();
    // moto takes `aws.` sources on PutEvents (AWS does not; there CloudTrail puts them).
    let detail = json!({"eventName": "PutSecretValue", "requestParameters": {"secretId": "e/a"}});
    let put = moto.call("events", "AWSEvents.PutEvents", &json!({"Entries": [{
        "Source": "aws.secretsmanager", "DetailType": "AWS API Call via CloudTrail", "Detail": detail.to_string()
    }]}));
    assert_eq!(put["FailedEntryCount"], 0, "{put}");

    let d_a = path_of("Deployment", ns, "d-a");
    wait_for("d-a restarted by the event", PATIENCE, || {
        (world.api.patches(&d_a) >= 1).then_some(())
    });
    let took = sent.elapsed();
    eprintln!(
        "events: d-a restarted {:.1} s after the event",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(45),
        "the event path took {took:?}"
    );
    // The message was handed over and deleted: none visible, none in flight.
    wait_for("the queue to be empty", PATIENCE, || {
        let attrs = moto.call("sqs", "AmazonSQS.GetQueueAttributes", &json!({
            "QueueUrl": queue_url, "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        }));
        (attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"
            && attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0")
            .then_some(())
    });
    let m = c.metrics();
    assert_eq!(
        m.value("secrets_init_controller_poll_rounds_total", &[]),
        1.0,
        "no poll round since the first"
    );
    assert_eq!(world.api.patches(&d_a), 1);
    assert_eq!(
        world.api.patches(&path_of("Deployment", ns, "d-b")),
        0,
        "the event named only A"
    );
    let stored = world.api.get(&d_a).expect("d-a");
    assert_eq!(
        stored["spec"]["template"]["metadata"]["annotations"]["secretsinit.io/restart-reason"],
        format!("awssm:e/a AWSCURRENT={v2}")
    );
    world.assert_no_values(&[&c], &[&secret]);
}
