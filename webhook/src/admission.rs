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
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::{DynamicObject, Resource, TypeMeta};
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// Facts about the request for the admission span, recorded in one call: the JSON log
/// layer re-renders a span's fields on every `record`, so one call instead of six matters
/// on the hot path.
fn record_request_fields<T: Resource>(req: &AdmissionRequest<T>) {
    let pod = (req.kind.kind == "Pod")
        .then(|| {
            if req.name.is_empty() {
                let generate = req.object.as_ref()?.meta().generate_name.as_deref()?;
                Some(format!("{generate}*"))
            } else {
                Some(req.name.clone())
            }
        })
        .flatten();
    let span = tracing::Span::current();
    tracing::record_all!(
        span,
        uid = req.uid.as_str(),
        kind = req.kind.kind.as_str(),
        operation = operation_name(&req.operation),
        dry_run = req.dry_run,
        namespace = req.namespace.as_deref(),
        pod = pod.as_deref(),
    );
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
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
    let review = match parse_review(&body) {
        Ok(r) => r,
        Err(reason) => return bad_request(&reason),
    };
    let (response, outcome) = match &review {
        Review::Pod(request) => {
            record_request_fields(request);
            decide(&state, request, deadline).await
        }
        Review::Other { request, pod_error } => {
            record_request_fields(request);
            decide_other(request, pod_error)
        }
    };
    let mut http = review_answer(&response);
    http.extensions_mut().insert(outcome);
    http
}

/// The answer body, serialized once. It carries what kube-core's
/// `AdmissionResponse::into_review` would, except `patch`: kube-core serializes it (Go
/// `[]byte`) as an array of byte values, while the API documents base64 text, which is what
/// every other webhook sends, what `jq -r .response.patch | base64 -d` expects, and a
/// quarter of the size. A unit test holds the two encodings together.
fn review_answer(response: &AdmissionResponse) -> Response {
    use base64::Engine as _;
    let answer = Answer {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response: AnswerResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch: response
                .patch
                .as_ref()
                .map(|p| base64::engine::general_purpose::STANDARD.encode(p)),
            patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
            audit_annotations: &response.audit_annotations,
            warnings: response.warnings.as_deref(),
        },
    };
    match serde_json::to_vec(&answer) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Serializing strings, bools and maps of strings cannot fail; answer rather than panic.
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("internal error: the answer could not be serialized: {e}"),
        ),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: AnswerResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AnswerResponse<'a> {
    uid: &'a str,
    allowed: bool,
    status: &'a kube_core::Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

/// A request whose object is not a v1 Pod: other kinds are allowed unchanged; a Pod CREATE
/// whose object does not decode is denied with the reason.
fn decide_other(
    request: &AdmissionRequest<DynamicObject>,
    pod_error: &str,
) -> (AdmissionResponse, AdmissionOutcome) {
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if is_pod && request.sub_resource.is_none() && matches!(request.operation, Operation::Create) {
        let message = format!(
            "secrets-init-webhook: the pod in the request could not be read as a v1 Pod: {pod_error}"
        );
        tracing::warn!(reason = %message, "admission denied");
        return (
            AdmissionResponse::from(request).deny(message),
            AdmissionOutcome {
                result: AdmissionResult::Error,
                mode: None,
            },
        );
    }
    tracing::debug!(reason = "not a Pod", "allowed unchanged");
    (
        AdmissionResponse::from(request),
        AdmissionOutcome {
            result: AdmissionResult::Skipped,
            mode: None,
        },
    )
}

async fn decide<S: ImageConfigSource>(
    state: &AppState<S>,
    request: &AdmissionRequest<Pod>,
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
    let Some(pod) = &request.object else {
        return failed(
            AdmissionResult::Error,
            "secrets-init-webhook: the AdmissionReview for a Pod CREATE carries no `object`; nothing to decide on".into(),
        );
    };

    let tracker = Tracked {
        inner: &state.images,
        in_flight: Mutex::new(Vec::new()),
    };
    let work = glue::mutate(pod, &state.mutation, &tracker);
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

/// A parsed AdmissionReview request.
#[derive(Debug)]
pub enum Review {
    /// The object (if any) decoded as a v1 Pod: the hot path, decoded once, straight into
    /// the k8s-openapi type.
    Pod(Box<AdmissionRequest<Pod>>),
    /// Any other object (another kind), or a Pod that does not decode as a v1 Pod
    /// (`pod_error` says why).
    Other {
        request: Box<AdmissionRequest<DynamicObject>>,
        pod_error: String,
    },
}

impl Review {
    /// The request's uid.
    pub fn uid(&self) -> &str {
        match self {
            Review::Pod(r) => &r.uid,
            Review::Other { request, .. } => &request.uid,
        }
    }
}

/// The envelope, with `request` left as text: kube-core's `AdmissionReview` flattens its
/// `TypeMeta`, which makes serde buffer the whole body before decoding it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
}

/// Parses and checks an AdmissionReview; the error is the one-line reason for the 400.
pub fn parse_review(body: &[u8]) -> Result<Review, String> {
    // serde_json checks UTF-8 only where it builds strings; a body is text throughout.
    let text = std::str::from_utf8(body).map_err(|e| {
        format!(
            "request body is not valid UTF-8 (at byte {}); send the AdmissionReview as UTF-8 JSON",
            e.valid_up_to()
        )
    })?;
    let envelope: Envelope<'_> = serde_json::from_str(text)
        .map_err(|e| format!("request body is not an AdmissionReview: {e}"))?;
    if envelope.kind != "AdmissionReview" {
        return Err(format!(
            "request body has kind {:?}, expected \"AdmissionReview\"",
            envelope.kind
        ));
    }
    if envelope.api_version != "admission.k8s.io/v1" {
        return Err(format!(
            "AdmissionReview apiVersion {:?} is not supported; this webhook speaks admission.k8s.io/v1 (set admissionReviewVersions: [v1])",
            envelope.api_version
        ));
    }
    let raw = envelope
        .request
        .ok_or_else(|| "AdmissionReview has no `request`".to_owned())?;
    let types = TypeMeta {
        api_version: envelope.api_version,
        kind: envelope.kind,
    };
    let review = match serde_json::from_str::<AdmissionRequest<Pod>>(raw.get()) {
        Ok(mut request) => {
            request.types = types;
            Review::Pod(Box::new(request))
        }
        Err(pod_error) => {
            match serde_json::from_str::<AdmissionRequest<DynamicObject>>(raw.get()) {
                Ok(mut request) => {
                    request.types = types;
                    Review::Other {
                        request: Box::new(request),
                        pod_error: pod_error.to_string(),
                    }
                }
                // Cold path: decode the whole body the plain way so that the error's line and
                // column are positions in the body, not in its `request`.
                Err(e) => {
                    let whole = serde_json::from_str::<AdmissionReview<DynamicObject>>(text).err();
                    return Err(format!(
                        "request body is not an AdmissionReview: {}",
                        whole.map_or_else(|| e.to_string(), |w| w.to_string())
                    ));
                }
            }
        }
    };
    if review.uid().is_empty() {
        return Err("AdmissionReview request has an empty `uid`".into());
    }
    Ok(review)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AdmissionRequest<DynamicObject> {
        let review = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},
            "resource":{"group":"","version":"v1","resource":"pods"},"operation":"CREATE",
            "userInfo":{},"object":null}}"#;
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_slice(review).expect("review");
        review.try_into().expect("request")
    }

    async fn answer_json(response: &AdmissionResponse) -> (Vec<u8>, serde_json::Value) {
        let http = review_answer(response);
        assert_eq!(
            http.headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let body = axum::body::to_bytes(http.into_body(), 1 << 20)
            .await
            .expect("body")
            .to_vec();
        let value = serde_json::from_slice(&body).expect("answer is JSON");
        (body, value)
    }

    /// The answer is kube-core's own encoding of the response, byte for byte, except for
    /// `patch`, which is base64 text instead of an array of numbers.
    #[tokio::test]
    async fn answer_is_kube_cores_review_with_a_base64_patch() {
        let allow = AdmissionResponse::from(&request());
        let mut warned = AdmissionResponse::from(&request());
        warned.warnings = Some(vec!["nothing to mutate".into()]);
        warned
            .audit_annotations
            .insert("secretsinit.io/why".into(), "test".into());
        let deny = AdmissionResponse::from(&request()).deny("no, because");
        for response in [allow, warned, deny] {
            let (bytes, _) = answer_json(&response).await;
            let kube = serde_json::to_vec(&response.clone().into_review()).expect("kube-core");
            assert_eq!(
                String::from_utf8(bytes).expect("utf8"),
                String::from_utf8(kube).expect("utf8")
            );
        }

        let patch: json_patch::Patch = serde_json::from_str(
            r#"[{"op":"add","path":"/metadata/annotations","value":{"a":"b"}}]"#,
        )
        .expect("patch");
        let patched = AdmissionResponse::from(&request())
            .with_patch(patch)
            .expect("with_patch");
        let (_, ours) = answer_json(&patched).await;
        let mut kube = serde_json::to_value(patched.clone().into_review()).expect("kube-core");
        use base64::Engine as _;
        kube["response"]["patch"] = serde_json::Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(patched.patch.as_deref().expect("patch")),
        );
        assert_eq!(ours, kube);
        assert_eq!(ours["response"]["patchType"], "JSONPatch");
    }

    #[test]
    fn pod_reviews_decode_straight_to_a_pod_others_to_a_dynamic_object() {
        let pod = include_bytes!("../../config/examples/pod-with-command.json");
        match parse_review(pod).expect("parses") {
            Review::Pod(r) => {
                assert_eq!(r.types.kind, "AdmissionReview");
                assert_eq!(r.types.api_version, "admission.k8s.io/v1");
                assert!(r.object.is_some());
            }
            other => panic!("expected a Pod review, got {other:?}"),
        }
        let other = include_bytes!("../../config/examples/non-pod.json");
        match parse_review(other).expect("parses") {
            Review::Other { request, .. } => {
                assert_eq!(request.types.kind, "AdmissionReview");
                assert_ne!(request.kind.kind, "Pod");
            }
            pod => panic!("expected another kind, got {pod:?}"),
        }
    }
}
