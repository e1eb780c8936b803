//! Admission requests other than a pod CREATE, through the real TLS listener and layer
//! stack: what the API server sends for UPDATE, DELETE and pod subresources is allowed
//! unchanged (the webhook mutates pods only as they are created), and a pod CREATE that
//! carries no `object` is denied, as an error of the request rather than of the pod.

use crate::common;

use common::{Ca, SecretVolume, TableImages, example, https_client, scrape, start};
use serde_json::{Value, json};

const RESULT: &str = "secrets_init_webhook_admission_requests_total";

/// The example pod CREATE (annotated for injection, so a CREATE of it is mutated), turned
/// into another request by `edit`.
fn review(uid: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v: Value = serde_json::from_slice(&example("pod-with-command.json")).expect("json");
    v["request"]["uid"] = Value::from(uid);
    edit(&mut v["request"]);
    v
}

fn update(request: &mut Value) {
    request["operation"] = json!("UPDATE");
    request["oldObject"] = request["object"].clone();
    request["options"] = json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"});
}

fn on_subresource(request: &mut Value, name: &str) {
    request["subResource"] = json!(name);
    request["requestSubResource"] = json!(name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_pod_create_with_an_object_is_mutated() {
    let ca = Ca::new("requests");
    let dir = tempfile::tempdir().expect("tmp");
    let volume = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let server = start(volume.config(), TableImages::default()).await;
    let client = https_client(&ca.cert_pem, None);
    let url = format!("https://{}/mutate", server.addr);

    // (review, allowed, message fragment of a denial)
    let cases: Vec<(&str, Value, bool, &str)> = vec![
        // The control: this very pod, created, is mutated.
        ("create", review("create", |_| {}), true, ""),
        ("update", review("update", update), true, ""),
        (
            "delete",
            review("delete", |r| {
                r["operation"] = json!("DELETE");
                r["oldObject"] = r["object"].take();
                r["options"] = json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"});
            }),
            true,
            "",
        ),
        // `kubectl debug`: an UPDATE of pods/ephemeralcontainers carrying the whole pod.
        (
            "ephemeralcontainers",
            review("ephemeralcontainers", |r| {
                update(r);
                on_subresource(r, "ephemeralcontainers");
            }),
            true,
            "",
        ),
        // The kubelet's status updates.
        (
            "status",
            review("status", |r| {
                update(r);
                on_subresource(r, "status");
            }),
            true,
            "",
        ),
        // A subresource is left alone even under a CREATE: only the pod itself is mutated.
        (
            "create-on-subresource",
            review("create-on-subresource", |r| {
                on_subresource(r, "ephemeralcontainers")
            }),
            true,
            "",
        ),
        (
            "create-without-object",
            review("create-without-object", |r| {
                r.as_object_mut().expect("request").remove("object");
            }),
            false,
            "the AdmissionReview for a Pod CREATE carries no `object`",
        ),
        (
            "create-with-null-object",
            review("create-with-null-object", |r| r["object"] = Value::Null),
            false,
            "the AdmissionReview for a Pod CREATE carries no `object`",
        ),
    ];

    for (name, body, allowed, fragment) in &cases {
        let before = scrape(server.metrics_addr).await;
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(resp.status(), 200, "{name}: an answer, never an HTTP error");
        let answer: Value = resp.json().await.expect("JSON answer");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{name}");
        assert_eq!(answer["kind"], "AdmissionReview", "{name}");
        let r = &answer["response"];
        assert_eq!(r["uid"], *name, "{name}: uid echoed");
        assert_eq!(r["allowed"], *allowed, "{name}: {r}");
        let mutated = *name == "create";
        assert_eq!(r.get("patch").is_some(), mutated, "{name}: {r}");
        assert_eq!(r.get("patchType").is_some(), mutated, "{name}: {r}");
        let message = r["status"]["message"].as_str().unwrap_or_default();
        if fragment.is_empty() {
            assert_eq!(message, "", "{name}: an allow says nothing: {r}");
        } else {
            assert!(message.contains(fragment), "{name}: {message:?}");
        }

        // Each counted once, under the result the code gives it: a missing object is the
        // request's fault (error), not the pod's (denied).
        let result = match (mutated, allowed) {
            (true, _) => "mutated",
            (false, true) => "skipped",
            (false, false) => "error",
        };
        let after = scrape(server.metrics_addr).await;
        for label in ["mutated", "skipped", "denied", "error"] {
            let key = format!("{RESULT}{{result=\"{label}\"}}");
            let moved = after[&key] - before[&key];
            let want = if label == result { 1.0 } else { 0.0 };
            assert_eq!(moved, want, "{name}: result=\"{label}\" moved by {moved}");
        }
    }
    server.stop().await;
}
