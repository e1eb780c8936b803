//! Request bodies through the webhook's real router and layer stack (`POST /mutate`, no
//! socket): never a 5xx; a 200 is an AdmissionReview answer for the request's uid whose
//! patch (if any) is a JSON Patch; anything else is a 4xx with a one-line reason.
//! The first byte picks raw bytes or a structure-aware pod wrapped in an AdmissionReview.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use secrets_init_webhook::layers::auth::Auth;
use secrets_init_webhook::metrics::Metrics;
use secrets_init_webhook::{AppState, Inner, Readiness, router};
use serde_json::Value;
use tower::ServiceExt;

struct World {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let state = AppState::new(Inner {
            images: fuzz_support::TableImages,
            mutation: std::sync::Arc::new(fuzz_support::config(
                mutation_modes::ModeKind::InitContainer,
            )),
            cpu: secrets_init_webhook::offload::CpuPool::new(1),
            metrics: Metrics::new().expect("metrics"),
            readiness: Readiness::new(true),
            auth: Auth {
                require_client_cert: false,
                bearer: None,
            },
            request_timeout: Duration::from_secs(8),
            read_timeout: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
            max_concurrent_requests: 64,
        });
        World {
            runtime,
            app: router(state),
        }
    })
}

fn review(data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let shape = fuzz_support::PodShape::arbitrary(&mut u).ok()?;
    let operation = *u.choose(&["CREATE", "UPDATE", "DELETE"]).ok()?;
    let dry_run = bool::arbitrary(&mut u).ok()?;
    let pod = shape.into_pod();
    Some(
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "fuzz-uid",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "default",
                "operation": operation,
                "userInfo": {"username": "fuzz"},
                "object": pod,
                "dryRun": dry_run,
            }
        }))
        .expect("json"),
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let (body, structured) = if first % 4 == 0 {
        match review(rest) {
            Some(b) => (b, true),
            None => return,
        }
    } else {
        (rest.to_vec(), false)
    };
    let uid = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["request"]["uid"].as_str().map(str::to_owned));
    let w = world();
    let request = Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request");
    let (status, bytes) = w.runtime.block_on(async {
        let resp = w.app.clone().oneshot(request).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, bytes)
    });
    assert!(
        !status.is_server_error(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if structured {
        assert_eq!(status.as_u16(), 200, "{}", String::from_utf8_lossy(&bytes));
    }
    if status.is_success() {
        let answer: Value = serde_json::from_slice(&bytes).expect("a 200 answer is JSON");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        let response = &answer["response"];
        // serde_json's `Value` refuses invalid UTF-8 inside a field name that the typed
        // AdmissionReview parser skips as unknown, so the uid is only compared when the body
        // also parses as a `Value`.
        match &uid {
            Some(uid) => assert_eq!(
                response["uid"].as_str(),
                Some(uid.as_str()),
                "uid not echoed"
            ),
            None => assert!(response["uid"].is_string(), "no uid in the answer"),
        }
        assert!(response["allowed"].is_boolean());
        if response["allowed"] == false {
            let message = response["status"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "denial without a message");
        }
        if let Some(patch) = response.get("patch").filter(|p| !p.is_null()) {
            // The admission API carries the patch as base64 text.
            let text = patch.as_str().expect("patch is base64 text");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("patch is base64");
            let _: json_patch::Patch =
                serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
        }
    } else {
        assert!(status.is_client_error());
        let text = String::from_utf8_lossy(&bytes);
        assert_eq!(text.trim_end().lines().count(), 1, "not one line: {text:?}");
    }
});
