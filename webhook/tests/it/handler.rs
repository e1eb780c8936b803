//! `/mutate`, `/healthz`, `/readyz` through the real router and layer stack, without a
//! socket (`Router::oneshot`).

use crate::common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{SlowImages, TableImages, example, parse_metrics};
use mutation_modes::{ImageConfig, ImageConfigSource};
use secrets_init_webhook::config::Config;
use secrets_init_webhook::layers::auth::ConnectionInfo;
use secrets_init_webhook::metrics::Metrics;
use secrets_init_webhook::{AppState, Readiness, router};
use serde_json::Value;
use tower::ServiceExt;

fn app<S: ImageConfigSource + 'static>(
    config: &Config,
    images: S,
) -> (axum::Router, Metrics, Readiness) {
    let metrics = Metrics::new().expect("metrics");
    let readiness = Readiness::new(true);
    let state =
        AppState::from_config(config, metrics.clone(), readiness.clone(), images).expect("state");
    (router(state), metrics, readiness)
}

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("request")
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body.to_vec())
}

/// The `response` of an AdmissionReview answer, with `patch` decoded to JSON.
fn response(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("JSON answer");
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    let mut r = v["response"].clone();
    if let Some(p) = r.get("patch").cloned() {
        use base64::Engine as _;
        let text = p
            .as_str()
            .expect("patch is base64 text, as the API documents");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("patch is valid base64");
        r["patch"] = serde_json::from_slice(&bytes).expect("patch is JSON");
    }
    r
}

fn uid_of(example_body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(example_body).expect("example");
    v["request"]["uid"].as_str().expect("uid").to_owned()
}

#[tokio::test]
async fn examples_get_the_expected_answers() {
    let (app, metrics, _) = app(&Config::default(), TableImages::default());
    // (example, allowed, patched, message fragment)
    let cases: &[(&str, bool, bool, &str)] = &[
        ("pod-with-command.json", true, true, ""),
        ("pod-skip.json", true, false, ""),
        ("non-pod.json", true, false, ""),
        ("pod-invalid-annotation.json", false, false, "valid values"),
        (
            "pod-needs-registry.json",
            false,
            false,
            "127.0.0.1:5000/myapp:1.4.2",
        ),
    ];
    for (name, allowed, patched, fragment) in cases {
        let body = example(name);
        let (status, answer) = send(&app, post(body.clone())).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let r = response(&answer);
        assert_eq!(r["uid"], uid_of(&body), "{name}: uid echoed");
        assert_eq!(r["allowed"], *allowed, "{name}: {r}");
        assert_eq!(r.get("patch").is_some(), *patched, "{name}: {r}");
        if !fragment.is_empty() {
            let msg = r["status"]["message"].as_str().unwrap_or_default();
            assert!(
                msg.contains(fragment),
                "{name}: message {msg:?} lacks {fragment:?}"
            );
        }
    }
    let m = parse_metrics(&metrics.render());
    let count =
        |r: &str| m[&format!("secrets_init_webhook_admission_requests_total{{result=\"{r}\"}}")];
    assert_eq!(count("mutated"), 1.0);
    assert_eq!(count("skipped"), 2.0);
    assert_eq!(count("denied"), 2.0);
    assert_eq!(count("error"), 0.0);
    assert_eq!(
        m["secrets_init_webhook_admission_duration_seconds_count"],
        5.0
    );
}

#[tokio::test]
async fn mutated_pod_runs_secrets_init_first() {
    let (app, _, _) = app(&Config::default(), TableImages::default());
    let (_, answer) = send(&app, post(example("pod-with-command.json"))).await;
    let r = response(&answer);
    assert_eq!(r["patchType"], "JSONPatch");
    let ops = r["patch"].as_array().expect("patch ops");
    assert!(
        ops.iter()
            .any(|op| op["path"] == "/spec/containers/0/command"
                && op["value"][0] == "/secrets-init/bin/secrets-init"),
        "{ops:?}"
    );
    assert!(
        ops.iter()
            .any(|op| op["path"] == "/metadata/annotations/secretsinit.io~1injected"),
        "{ops:?}"
    );
    // The label of the same name (the example pod has labels), for the controller's label
    // selector.
    let label = serde_json::json!({"op": "add", "value": "init-container",
                                   "path": "/metadata/labels/secretsinit.io~1injected"});
    assert!(ops.contains(&label), "{ops:?}");
}

#[tokio::test]
async fn image_lookup_goes_through_the_given_source() {
    let mut table = TableImages::default();
    table.0.insert(
        "127.0.0.1:5000/myapp:1.4.2".into(),
        ImageConfig {
            entrypoint: Some(vec!["/app/server".into()]),
            cmd: Some(vec!["--port".into(), "8080".into()]),
        },
    );
    let (app, _, _) = app(&Config::default(), table);
    let (_, answer) = send(&app, post(example("pod-needs-registry.json"))).await;
    let r = response(&answer);
    assert_eq!(r["allowed"], true, "{r}");
    let text = r["patch"].to_string();
    assert!(text.contains("/app/server"), "{text}");
}

#[tokio::test]
async fn dry_run_is_answered_like_a_real_request() {
    let (app, _, _) = app(&Config::default(), TableImages::default());
    let real = example("pod-with-command.json");
    let mut v: Value = serde_json::from_slice(&real).expect("json");
    v["request"]["dryRun"] = Value::Bool(true);
    let (_, a) = send(&app, post(real)).await;
    let (_, b) = send(&app, post(serde_json::to_vec(&v).expect("json"))).await;
    assert_eq!(response(&a), response(&b));
}

#[tokio::test]
async fn malformed_bodies_get_400_with_one_line() {
    let (app, metrics, _) = app(&Config::default(), TableImages::default());
    let no_request = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#;
    let v1beta1 = String::from_utf8(example("pod-skip.json"))
        .expect("utf8")
        .replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
    let mut review: Value = serde_json::from_slice(&example("pod-skip.json")).expect("json");
    review["request"]
        .as_object_mut()
        .expect("request")
        .remove("uid");
    let no_uid = review.to_string();
    review["request"]["uid"] = Value::from(5);
    let uid_number = review.to_string();
    let cases: &[(&str, &str)] = &[
        ("not json at all", "not an AdmissionReview"),
        (
            "{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}",
            "expected \"AdmissionReview\"",
        ),
        (no_request, "no `request`"),
        (&v1beta1, "admission.k8s.io/v1"),
        ("", "not an AdmissionReview"),
        (&no_uid, "missing field `uid` at line 1 column"),
        (&uid_number, "invalid type: integer `5`"),
    ];
    let mut bodies: Vec<(Vec<u8>, String)> = cases
        .iter()
        .map(|(b, f)| (b.as_bytes().to_vec(), f.to_string()))
        .collect();
    // Invalid UTF-8 inside a field name the decoder would otherwise skip unread.
    let mut bad_utf8 =
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","x"#.to_vec();
    let first_bad_byte = bad_utf8.len();
    bad_utf8.extend_from_slice(b"\xff\xfe\":1,");
    bad_utf8.extend_from_slice(&example("pod-skip.json")[1..]);
    bodies.push((
        bad_utf8,
        format!("not valid UTF-8 (at byte {first_bad_byte})"),
    ));
    let expected_errors = bodies.len();
    for (body, fragment) in bodies {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, answer) = send(&app, post(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{shown}");
        let text = String::from_utf8(answer).expect("utf8");
        assert_eq!(text.trim_end().lines().count(), 1, "one line: {text:?}");
        assert!(text.contains(&fragment), "{text:?} lacks {fragment:?}");
    }
    let m = parse_metrics(&metrics.render());
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"error\"}"],
        expected_errors as f64
    );
}

#[tokio::test]
async fn pod_create_that_is_not_a_v1_pod_is_denied_with_the_reason() {
    let (app, metrics, _) = app(&Config::default(), TableImages::default());
    let mut review: Value =
        serde_json::from_slice(&example("pod-with-command.json")).expect("json");
    review["request"]["object"]["spec"]["containers"] = Value::from("not a list");
    let (status, answer) = send(&app, post(review.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    let r = response(&answer);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["uid"], review["request"]["uid"], "{r}");
    let msg = r["status"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("could not be read as a v1 Pod") && msg.contains("invalid type: string"),
        "{msg}"
    );
    // The same object under another kind is not ours to judge: allowed unchanged.
    review["request"]["kind"]["kind"] = Value::from("PodTemplate");
    let (_, answer) = send(&app, post(review.to_string())).await;
    let r = response(&answer);
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "{r}");
    let m = parse_metrics(&metrics.render());
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"error\"}"],
        1.0
    );
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"skipped\"}"],
        1.0
    );
}

#[tokio::test]
async fn slow_registry_is_denied_before_the_deadline_naming_the_image() {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let images = SlowImages {
        delay: Duration::from_secs(30),
        table: TableImages::default(),
    };
    let (app, metrics, _) = app(&config, images);
    let body = example("pod-needs-registry.json");
    let started = std::time::Instant::now();
    let (status, answer) = send(&app, post(body.clone())).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered promptly"
    );
    assert_eq!(status, StatusCode::OK, "a denial, not a 5xx");
    let r = response(&answer);
    assert_eq!(r["uid"], uid_of(&body));
    assert_eq!(r["allowed"], false);
    let msg = r["status"]["message"].as_str().expect("message");
    assert!(msg.contains("timed out after 300ms"), "{msg}");
    assert!(msg.contains("127.0.0.1:5000/myapp:1.4.2"), "{msg}");
    let m = parse_metrics(&metrics.render());
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"error\"}"],
        1.0
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let config = Config {
        max_body_bytes: 2048,
        ..Config::default()
    };
    let (app, _, _) = app(&config, TableImages::default());
    // Declared length over the limit: refused from the header.
    let (status, _) = send(&app, post(vec![b' '; 8192])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // No declared length (streamed): cut off once past the limit.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..8)
        .map(|_| Ok(bytes::Bytes::from(vec![b' '; 512])))
        .collect();
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    let (status, _) = send(&app, post(streamed)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Under the limit: handled.
    let (status, _) = send(&app, post(example("non-pod.json"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bearer_token_auth_on_and_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write");
    let on = Config {
        bearer_token_file: Some(token_file.clone()),
        ..Config::default()
    };
    let (app_on, _, _) = app(&on, TableImages::default());
    let with = |t: &str| {
        Request::post("/mutate")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::from(example("non-pod.json")))
            .expect("req")
    };
    assert_eq!(
        send(&app_on, post(example("non-pod.json"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&app_on, with("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(&app_on, with("s3cret-token")).await.0, StatusCode::OK);
    // Rotated token file: the new token is accepted, the old one refused.
    std::fs::write(&token_file, "rotated-token").expect("write");
    // A distinct modification time, whatever the filesystem's timestamp granularity.
    std::fs::File::options()
        .write(true)
        .open(&token_file)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() + Duration::from_secs(10)))
        .expect("set mtime");
    assert_eq!(send(&app_on, with("rotated-token")).await.0, StatusCode::OK);
    assert_eq!(
        send(&app_on, with("s3cret-token")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Probes stay open.
    let probe = Request::get("/healthz").body(Body::empty()).expect("req");
    assert_eq!(send(&app_on, probe).await.0, StatusCode::OK);
    // Off: no header needed.
    let (app_off, _, _) = app(&Config::default(), TableImages::default());
    assert_eq!(
        send(&app_off, post(example("non-pod.json"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn client_certificate_required_when_a_ca_is_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = common::Ca::new("clients");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).expect("write");
    let config = Config {
        client_ca: Some(ca_file),
        ..Config::default()
    };
    let (app, _, _) = app(&config, TableImages::default());
    let (status, body) = send(&app, post(example("non-pod.json"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body).contains("client certificate required"));
    let mut req = post(example("non-pod.json"));
    req.extensions_mut().insert(ConnectionInfo {
        client_cert_verified: true,
    });
    assert_eq!(send(&app, req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn health_and_readiness() {
    let (app, _, readiness) = app(&Config::default(), TableImages::default());
    let get = |p: &str| Request::get(p).body(Body::empty()).expect("req");
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(send(&app, get("/readyz")).await.0, StatusCode::OK);
    readiness.set(false);
    assert_eq!(
        send(&app, get("/readyz")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    let wrong_method = Request::get("/mutate").body(Body::empty()).expect("req");
    assert_eq!(
        send(&app, wrong_method).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn load_is_shed_past_the_concurrency_limit() {
    let config = Config {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_secs(20),
        ..Config::default()
    };
    let images = SlowImages {
        delay: Duration::from_secs(20),
        table: TableImages::default(),
    };
    let (app, metrics, _) = app(&config, images);
    let slow_app = app.clone();
    let slow =
        tokio::spawn(
            async move { send(&slow_app, post(example("pod-needs-registry.json"))).await },
        );
    // Once the slow request holds the only permit, the next is shed with 503: the poll
    // returns that answer, whose headers and body are what is checked below.
    let shed = common::eventually(Duration::from_secs(20), "a 503", || {
        let app = app.clone();
        async move {
            let resp = app
                .oneshot(post(example("non-pod.json")))
                .await
                .expect("infallible");
            (resp.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(resp)
        }
    })
    .await;
    assert_eq!(
        shed.headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.as_bytes()),
        Some(&b"1"[..]),
        "a shed request says when to retry"
    );
    let body = axum::body::to_bytes(shed.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("overloaded: 1 admission requests are in flight"),
        "{text}"
    );
    let errors = || {
        metrics
            .admission_requests
            .with_label_values(&["error"])
            .get()
    };
    // Every earlier poll was served (the loop stops at the first 503), and the slow request
    // is still in flight: the one error is the shed request.
    assert_eq!(errors(), 1, "a shed request counts as one error");

    // The permit is given back when the slow request goes away: served again, not shed.
    slow.abort();
    let (status, _) = common::eventually(Duration::from_secs(20), "a 200 again", || {
        let app = app.clone();
        async move {
            let answer = send(&app, post(example("non-pod.json"))).await;
            (answer.0 != StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
        }
    })
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the freed permit serves the next request"
    );
}

/// An AdmissionReview (Pod CREATE) around a golden case's input pod.
fn golden_review(case: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mutation-modes/tests/golden")
        .join(case)
        .join("input.yaml");
    let text = std::fs::read_to_string(&path).expect("golden input");
    let pod: Value = serde_yaml_ng::from_str(&text).expect("yaml");
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("golden-{case}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team",
            "operation": "CREATE",
            "userInfo": {"username": "someone"},
            "object": pod,
        }
    }))
    .expect("review")
}

/// Contract §4's admission checks reach the client: the warnings in the AdmissionResponse,
/// a malformed placeholder as a denial naming container and variable.
#[tokio::test]
async fn admission_checks_answer_with_warnings_and_denials() {
    let (app, _, _) = app(&Config::default(), TableImages::default());
    let cases: &[(&str, bool, &str)] = &[
        (
            "placeholders-without-inject",
            true,
            "they will reach the app unresolved",
        ),
        ("shared-pid-probes", true, "PID 1 is the pause process"),
        (
            "unknown-annotation",
            true,
            "ignored unknown annotation \"secretsinit.io/cache-ttl\"",
        ),
    ];
    for (case, allowed, warning) in cases {
        let (status, body) = send(&app, post(golden_review(case))).await;
        assert_eq!(status, StatusCode::OK, "{case}");
        let r = response(&body);
        assert_eq!(r["allowed"], *allowed, "{case}: {r}");
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .unwrap_or_else(|| panic!("{case}: no warnings in {r}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            warnings.iter().any(|w| w.contains(warning)),
            "{case}: {warnings:?}"
        );
        assert!(warnings.iter().all(|w| w.len() <= 256), "{warnings:?}");
    }
    let (_, body) = send(&app, post(golden_review("malformed-placeholder"))).await;
    let r = response(&body);
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().expect("message");
    assert!(
        message.contains("container \"api\", variable \"DSN\"")
            && message.contains("unclosed `${awssm:`"),
        "{message}"
    );
}
