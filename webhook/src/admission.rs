//! `POST /mutate`: AdmissionReview `admission.k8s.io/v1` in, AdmissionReview out.
//!
//! - A body that is not an AdmissionReview with a `request` gets HTTP 400 and a one-line
//!   plain-text reason.
//! - A well-formed review always gets an AdmissionResponse with the request's uid: a patch,
//!   an unchanged allow, or a denial with a message — never a 5xx.
//! - Kinds other than Pod, and operations other than CREATE, are allowed unchanged.
//! - Dry-run requests are handled exactly like real ones (the mutation has no side effects).

use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use tokio::time::Instant;

use crate::glue::{self, Outcome};
use crate::layers::timeout::RequestDeadline;
use crate::metrics::AdmissionResult;
use crate::router::AppState;

/// Put into the response's extensions by the handler; read by the metrics and tracing layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionOutcome {
    pub result: AdmissionResult,
    /// The mutation mode, for mutated pods.
    pub mode: Option<String>,
}

/// Facts about the request for the admission span, recorded as soon as they are known.
fn record_request_fields(req: &AdmissionRequest<DynamicObject>) {
    let span = tracing::Span::current();
    span.record("uid", req.uid.as_str());
    span.record("kind", req.kind.kind.as_str());
    span.record(
        "operation",
        format!("{:?}", req.operation).to_uppercase().as_str(),
    );
    span.record("dry_run", req.dry_run);
    if let Some(ns) = &req.namespace {
        span.record("namespace", ns.as_str());
    }
    let name = if req.name.is_empty() {
        req.object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.clone())
            .map(|g| format!("{g}*"))
            .unwrap_or_default()
    } else {
        req.name.clone()
    };
    if !name.is_empty() && req.kind.kind == "Pod" {
        span.record("pod", name.as_str());
    }
}

/// The handler.
pub async fn mutate<S: ImageConfigSource + 'static>(
    State(state): State<AppState<S>>,
    request: Request,
) -> Response {
    let deadline = request
        .extensions()
        .get::<RequestDeadline>()
        .map(|d| d.0)
        .unwrap_or_else(|| Instant::now() + state.request_timeout);
    if let Some(reason) = unsupported_content_type(request.headers()) {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, &reason);
    }
    let body = match read_body(request.into_body(), state.read_timeout).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let request = match parse_review(&body) {
        Ok(r) => r,
        Err(reason) => return bad_request(&reason),
    };
    record_request_fields(&request);
    let (response, outcome) = decide(&state, &request, deadline).await;
    let mut http = review_answer(response).into_response();
    http.extensions_mut().insert(outcome);
    http
}

/// The answer body. kube-core serializes `patch` (Go `[]byte`) as an array of byte values;
/// the API documents it as base64 text, which is what every other webhook sends, what
/// `jq -r .response.patch | base64 -d` expects, and a quarter of the size. So it is
/// rewritten to base64 here.
fn review_answer(response: AdmissionResponse) -> axum::Json<serde_json::Value> {
    use base64::Engine as _;
    let patch = response.patch.clone();
    let mut value = serde_json::to_value(response.into_review()).unwrap_or_default();
    if let (Some(bytes), Some(slot)) = (patch, value.pointer_mut("/response/patch")) {
        *slot = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    axum::Json(value)
}

async fn decide<S: ImageConfigSource>(
    state: &AppState<S>,
    request: &AdmissionRequest<DynamicObject>,
    deadline: Instant,
) -> (AdmissionResponse, AdmissionOutcome) {
    let base = AdmissionResponse::from(request);
    let skipped = |reason: &str| {
        tracing::debug!(reason, "allowed unchanged");
        (
            AdmissionResponse::from(request),
            AdmissionOutcome {
                result: AdmissionResult::Skipped,
                mode: None,
            },
        )
    };
    let failed = |result: AdmissionResult, message: String| {
        tracing::warn!(reason = %message, "admission denied");
        (
            AdmissionResponse::from(request).deny(message),
            AdmissionOutcome { result, mode: None },
        )
    };

    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.sub_resource.is_some() {
        return skipped("not a Pod");
    }
    if !matches!(request.operation, Operation::Create) {
        return skipped("not a CREATE");
    }
    let Some(object) = &request.object else {
        return failed(
            AdmissionResult::Error,
            "secrets-init-webhook: the AdmissionReview for a Pod CREATE carries no `object`; nothing to decide on".into(),
        );
    };
    let pod: Pod = match serde_json::to_value(object).and_then(serde_json::from_value) {
        Ok(p) => p,
        Err(e) => {
            return failed(
                AdmissionResult::Error,
                format!(
                    "secrets-init-webhook: the pod in the request could not be read as a v1 Pod: {e}"
                ),
            );
        }
    };

    let tracker = Tracked {
        inner: &state.images,
        in_flight: Mutex::new(Vec::new()),
    };
    let work = glue::mutate(&pod, &state.mutation, &tracker);
    let outcome = match tokio::time::timeout_at(deadline, work).await {
        Ok(o) => o,
        Err(_) => {
            let waiting = tracker
                .in_flight
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default();
            return failed(
                AdmissionResult::Error,
                timeout_message(state.request_timeout, &waiting),
            );
        }
    };
    match outcome {
        Outcome::Skipped { reason, warnings } => {
            let (mut resp, out) = skipped(&reason);
            resp.warnings = non_empty(warnings);
            (resp, out)
        }
        Outcome::Mutated {
            mode,
            patch,
            warnings,
        } => match base.with_patch(patch) {
            Ok(mut resp) => {
                resp.warnings = non_empty(warnings);
                (
                    resp,
                    AdmissionOutcome {
                        result: AdmissionResult::Mutated,
                        mode: Some(mode),
                    },
                )
            }
            Err(e) => failed(
                AdmissionResult::Error,
                format!(
                    "secrets-init-webhook: internal error: the patch could not be serialized: {e}"
                ),
            ),
        },
        Outcome::Denied { message } => failed(AdmissionResult::Denied, message),
    }
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v) }
}

/// The denial message when the request deadline passes.
pub fn timeout_message(limit: Duration, waiting_for: &[String]) -> String {
    let limit = humantime::format_duration(limit);
    if waiting_for.is_empty() {
        format!(
            "secrets-init-webhook: timed out after {limit} (--request-timeout) while mutating the pod; retry, or raise --request-timeout"
        )
    } else {
        format!(
            "secrets-init-webhook: timed out after {limit} (--request-timeout) waiting for the registry to return the image config of {}; \
             retry, set `command` in the pod spec so no registry lookup is needed, or raise --request-timeout",
            waiting_for.join(", ")
        )
    }
}

/// Wraps the image source to know which lookups are in flight when the deadline passes.
struct Tracked<'a, S> {
    inner: &'a S,
    in_flight: Mutex<Vec<String>>,
}

impl<S: ImageConfigSource> ImageConfigSource for Tracked<'_, S> {
    async fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        if let Ok(mut v) = self.in_flight.lock() {
            v.push(image.to_owned());
        }
        let result = self.inner.image_config(image, platform).await;
        if let Ok(mut v) = self.in_flight.lock()
            && let Some(i) = v.iter().position(|x| x == image)
        {
            v.remove(i);
        }
        result
    }
}

/// Reads the whole body within the read deadline; the body-limit layer has wrapped it.
async fn read_body(body: Body, read_timeout: Duration) -> Result<Bytes, Response> {
    match tokio::time::timeout(read_timeout, axum::body::to_bytes(body, usize::MAX)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            if caused_by::<http_body_util::LengthLimitError>(&e) {
                Err(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body is larger than --max-body-bytes",
                ))
            } else {
                Err(bad_request(&format!("cannot read the request body: {e}")))
            }
        }
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "request body not received within {} (--read-timeout)",
                humantime::format_duration(read_timeout)
            ),
        )),
    }
}

/// True when `T` is `err` or anywhere in its chain of sources.
fn caused_by<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<T>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Parses and checks an AdmissionReview; the error is the one-line reason for the 400.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)
        .map_err(|e| format!("request body is not an AdmissionReview: {e}"))?;
    if review.types.kind != "AdmissionReview" {
        return Err(format!(
            "request body has kind {:?}, expected \"AdmissionReview\"",
            review.types.kind
        ));
    }
    if review.types.api_version != "admission.k8s.io/v1" {
        return Err(format!(
            "AdmissionReview apiVersion {:?} is not supported; this webhook speaks admission.k8s.io/v1 (set admissionReviewVersions: [v1])",
            review.types.api_version
        ));
    }
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|_| "AdmissionReview has no `request`".to_owned())?;
    if request.uid.is_empty() {
        return Err("AdmissionReview request has an empty `uid`".into());
    }
    Ok(request)
}

/// The API server always sends `application/json`; a body declared as anything else is
/// refused before it is read (415). No `Content-Type` at all is read as JSON.
fn unsupported_content_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => None,
        _ => Some(format!(
            "Content-Type {:?} is not supported: send the AdmissionReview as application/json",
            String::from_utf8_lossy(value.as_bytes())
        )),
    }
}

fn bad_request(reason: &str) -> Response {
    let one_line = reason.replace(['\n', '\r'], " ");
    plain(StatusCode::BAD_REQUEST, &one_line)
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}
