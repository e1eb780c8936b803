//! Requests through the real TLS listener and layer stack that are not a plain pod CREATE:
//! - what the API server sends for UPDATE, DELETE and pod subresources is allowed unchanged
//!   (the webhook mutates pods only as they are created), and a pod CREATE that carries no
//!   `object` is denied, as an error of the request rather than of the pod;
//! - refusals before the handler (503 when overloaded, 401 without credentials): their
//!   headers, and that each counts exactly one `result="error"`; and the 503 of `/readyz`,
//!   which is no admission at all.

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{
    Ca, SecretVolume, SlowImages, TableImages, eventually, example, https_client, scrape, start,
};
use secrets_init_webhook::config::Config;
use serde_json::{Value, json};

const RESULT: &str = "secrets_init_webhook_admission_requests_total";
/// Bound for every wait here: far above what any of it takes on an idle machine.
const WITHIN: Duration = Duration::from_secs(20);

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

/// How far each `result` of the admission counter, and the duration histogram's count,
/// moved between two scrapes.
fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> [(String, f64); 5] {
    let delta = |key: String| {
        let d = after[&key] - before[&key];
        (key, d)
    };
    [
        delta(format!("{RESULT}{{result=\"mutated\"}}")),
        delta(format!("{RESULT}{{result=\"skipped\"}}")),
        delta(format!("{RESULT}{{result=\"denied\"}}")),
        delta(format!("{RESULT}{{result=\"error\"}}")),
        delta(DURATION_COUNT.to_owned()),
    ]
}

/// The deltas when `errors` requests were answered with a refusal and nothing else.
fn only_errors(errors: f64) -> [(String, f64); 5] {
    [
        (format!("{RESULT}{{result=\"mutated\"}}"), 0.0),
        (format!("{RESULT}{{result=\"skipped\"}}"), 0.0),
        (format!("{RESULT}{{result=\"denied\"}}"), 0.0),
        (format!("{RESULT}{{result=\"error\"}}"), errors),
        (DURATION_COUNT.to_owned(), errors),
    ]
}

const DURATION_COUNT: &str = "secrets_init_webhook_admission_duration_seconds_count";

struct Tls {
    ca: Ca,
    _dir: tempfile::TempDir,
    config: Config,
}

fn tls() -> Tls {
    let ca = Ca::new("refusals");
    let dir = tempfile::tempdir().expect("tmp");
    let config = SecretVolume::new(dir.path(), &ca.server_pair(1)).config();
    Tls {
        ca,
        _dir: dir,
        config,
    }
}

async fn post_review(
    client: &reqwest::Client,
    addr: SocketAddr,
    review: Vec<u8>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("https://{addr}/mutate"))
        .header("content-type", "application/json")
        .body(review);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("an HTTP answer")
}

/// Past `--max-concurrent-requests`, `/mutate` is refused at once with 503 and
/// `Retry-After: 1`, counted as one `result="error"`; once the permit is free again,
/// requests are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_a_503_with_retry_after_counted_as_an_error() {
    let tls = tls();
    let config = Config {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(60),
        ..tls.config.clone()
    };
    // The one permit is held by a lookup that outlasts the test.
    let images = SlowImages {
        delay: Duration::from_secs(60),
        table: TableImages::default(),
    };
    let server = start(config, images).await;
    let client = https_client(&tls.ca.cert_pem, None);
    let slow = tokio::spawn({
        let client = client.clone();
        let addr = server.addr;
        async move { post_review(&client, addr, example("pod-needs-registry.json"), None).await }
    });
    // Until the slow request holds the permit, probes may still be served.
    eventually(
        WITHIN,
        "the slow request to hold the only permit",
        || async {
            let r = post_review(&client, server.addr, example("non-pod.json"), None).await;
            (r.status() == 503).then_some(())
        },
    )
    .await;

    let before = scrape(server.metrics_addr).await;
    let resp = post_review(&client, server.addr, example("non-pod.json"), None).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "Retry-After: 1 on a shed request"
    );
    let text = resp.text().await.expect("body");
    assert!(
        text.contains("overloaded") && text.contains("--max-concurrent-requests"),
        "{text}"
    );
    let after = scrape(server.metrics_addr).await;
    assert_eq!(moved(&before, &after), only_errors(1.0));

    // The permit comes back when the slow request goes away; then requests are served again.
    slow.abort();
    eventually(WITHIN, "requests to be served again", || async {
        let r = post_review(&client, server.addr, example("non-pod.json"), None).await;
        (r.status() == 200).then_some(())
    })
    .await;
    server.stop().await;
}

/// Once shutdown begins `/readyz` is 503 (so the Service stops sending here), while
/// `/mutate` is still served during the delay; the readiness probe is not an admission and
/// moves no admission counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_is_a_503_on_readyz_only() {
    let tls = tls();
    let mut server = start(
        Config {
            // Longer than the test: everything below happens during the delay.
            shutdown_delay: Duration::from_secs(60),
            ..tls.config.clone()
        },
        TableImages::default(),
    )
    .await;
    let client = https_client(&tls.ca.cert_pem, None);
    let readyz = format!("https://{}/readyz", server.addr);
    let r = client.get(&readyz).send().await.expect("readyz");
    assert_eq!(r.status(), 200);

    let before = scrape(server.metrics_addr).await;
    server.begin_stop();
    let r = eventually(WITHIN, "/readyz to turn 503", || async {
        let r = client.get(&readyz).send().await.ok()?;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert_eq!(r.text().await.expect("body"), "shutting down\n");
    let after = scrape(server.metrics_addr).await;
    assert_eq!(moved(&before, &after), only_errors(0.0));

    let resp = post_review(&client, server.addr, example("pod-with-command.json"), None).await;
    assert_eq!(resp.status(), 200, "admissions are still served");
    let answer: Value = resp.json().await.expect("JSON");
    assert_eq!(answer["response"]["allowed"], true);
    let later = scrape(server.metrics_addr).await;
    assert_eq!(
        later[&format!("{RESULT}{{result=\"mutated\"}}")]
            - after[&format!("{RESULT}{{result=\"mutated\"}}")],
        1.0
    );
}

/// With `--bearer-token-file`, a request without the token or with another one is a 401
/// with a `WWW-Authenticate` challenge and no `Retry-After` (retrying cannot help), counted
/// as one `result="error"` each; with the token it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_bearer_token_is_a_401_counted_as_an_error() {
    let tls = tls();
    let token_dir = tempfile::tempdir().expect("tmp");
    let token_file = token_dir.path().join("token");
    let token = "t0ken-for-the-api-server";
    std::fs::write(&token_file, format!("{token}\n")).expect("token");
    let server = start(
        Config {
            bearer_token_file: Some(token_file),
            ..tls.config.clone()
        },
        TableImages::default(),
    )
    .await;
    let client = https_client(&tls.ca.cert_pem, None);

    // (what, token sent, challenge, reason)
    let refusals = [
        (
            "no token",
            None,
            "Bearer",
            "bearer token required: send `Authorization: Bearer <token>`",
        ),
        (
            "another token",
            Some("not-the-token"),
            "Bearer error=\"invalid_token\"",
            "bearer token not accepted",
        ),
        (
            "the token with a suffix",
            Some("t0ken-for-the-api-server2"),
            "Bearer error=\"invalid_token\"",
            "bearer token not accepted",
        ),
    ];
    for (what, sent, challenge, reason) in refusals {
        let before = scrape(server.metrics_addr).await;
        let resp = post_review(&client, server.addr, example("non-pod.json"), sent).await;
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(
            resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(challenge.as_bytes()),
            "{what}"
        );
        assert!(resp.headers().get("retry-after").is_none(), "{what}");
        assert_eq!(
            resp.text().await.expect("body"),
            format!("{reason}\n"),
            "{what}"
        );
        let after = scrape(server.metrics_addr).await;
        assert_eq!(moved(&before, &after), only_errors(1.0), "{what}");
    }

    let before = scrape(server.metrics_addr).await;
    let resp = post_review(&client, server.addr, example("non-pod.json"), Some(token)).await;
    assert_eq!(resp.status(), 200, "with the token");
    let after = scrape(server.metrics_addr).await;
    assert_eq!(
        after[&format!("{RESULT}{{result=\"skipped\"}}")]
            - before[&format!("{RESULT}{{result=\"skipped\"}}")],
        1.0
    );
    assert_eq!(
        after[&format!("{RESULT}{{result=\"error\"}}")]
            - before[&format!("{RESULT}{{result=\"error\"}}")],
        0.0
    );
    server.stop().await;
}
