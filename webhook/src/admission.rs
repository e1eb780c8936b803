//! `POST /mutate`: AdmissionReview `admission.k8s.io/v1` in, AdmissionReview out.
//!
//! - A body that is not an AdmissionReview with a `request` gets HTTP 400 and a one-line
//!   plain-text reason.
//! - A well-formed review always gets an AdmissionResponse with the request's uid: a patch,
//!   an unchanged allow, or a denial with a message — never a 5xx.
//! - Kinds other than Pod, and operations other than CREATE, are allowed unchanged.
//! - Dry-run requests are handled exactly like real ones (the mutation has no side effects).

use std::collections::BTreeSet;
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
use mutation_modes::{
    Decision, ImageConfig, ImageConfigError, ImageConfigSource, ImageConfigs, MutationConfig, Plan,
    Planned, Platform, SparsePod, bounded,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::audit::RequestFacts;
use crate::offload::Place;
use crate::outcome::Outcome;
use crate::state::AppState;

/// Bytes of a pod name kept in the admission span (and so in the log line): Kubernetes
/// names are at most 253, but the pod is not validated yet when the webhook sees it.
const NAME_BYTES: usize = 253;

/// What the log line and the span say about a request; every value bounded.
fn facts_of<T: Resource>(req: &AdmissionRequest<T>) -> RequestFacts {
    let pod = (req.kind.kind == "Pod")
        .then(|| {
            if req.name.is_empty() {
                let generate = req.object.as_ref()?.meta().generate_name.as_deref()?;
                Some(format!("{}*", bounded::prefix(generate, NAME_BYTES)))
            } else {
                Some(bounded::prefix(&req.name, NAME_BYTES).to_owned())
            }
        })
        .flatten();
    RequestFacts {
        uid: bounded::prefix(&req.uid, NAME_BYTES).to_owned(),
        kind: Some(bounded::prefix(&req.kind.kind, NAME_BYTES).to_owned()),
        operation: Some(operation_name(&req.operation)),
        dry_run: Some(req.dry_run),
        namespace: req
            .namespace
            .as_deref()
            .map(|n| bounded::prefix(n, NAME_BYTES).to_owned()),
        pod,
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// `POST /mutate`: reads the body, then answers by the request deadline, whatever the
/// work in between costs (see [`crate::offload`]).
pub async fn mutate<S: ImageConfigSource + 'static>(
    State(state): State<AppState<S>>,
    request: Request,
) -> Response {
    let deadline = Instant::now() + state.request_timeout;
    if let Some(reason) = unsupported_content_type(request.headers()) {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, &reason);
    }
    let body = match read_body(request.into_body(), state.read_timeout).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    state
        .metrics
        .admission_request_bytes
        .observe(body.len() as f64);
    let progress = Progress::default();
    match tokio::time::timeout_at(deadline, admit(&state, body.clone(), &progress)).await {
        Ok(response) => response,
        Err(_) => timed_out(&state, &body, &progress),
    }
}

/// How far an admission got, for the message when its deadline passes.
#[derive(Debug, Default)]
struct Progress(Mutex<ProgressInner>);

#[derive(Debug, Default)]
struct ProgressInner {
    stage: Stage,
    /// Images whose config is being read.
    images: BTreeSet<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    WaitingForCpu,
    Decoding,
    Registry,
    Patching,
}

impl Progress {
    fn set(&self, stage: Stage) {
        if let Ok(mut p) = self.0.lock() {
            p.stage = stage;
        }
    }

    fn snapshot(&self) -> (Stage, Vec<String>) {
        self.0
            .lock()
            .map(|p| (p.stage, p.images.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// A place to run CPU work of a `bytes`-long request; the stage says whether it waited.
    async fn place<S>(&self, state: &AppState<S>, bytes: usize, then: Stage) -> Place {
        self.set(Stage::WaitingForCpu);
        let place = state.cpu.place(bytes).await;
        self.set(then);
        place
    }
}

/// What the first CPU step found.
enum First {
    /// The answer (not a pod CREATE, a bad body, a denial, a skip, or a pod whose patch
    /// needed no image config).
    Answered(Response),
    /// A pod to mutate once its image configs are read.
    LookUp {
        request: Box<AdmissionRequest<Pod>>,
        plan: Plan,
    },
}

/// The three steps of an admission: decode and plan (CPU), read image configs (I/O), write
/// the patch and the answer (CPU).
async fn admit<S: ImageConfigSource>(
    state: &AppState<S>,
    body: Bytes,
    progress: &Progress,
) -> Response {
    let bytes = body.len();
    let config = state.mutation.clone();
    let for_panic = body.clone();
    let first = progress
        .place(state, bytes, Stage::Decoding)
        .await
        .run(move || decode_and_plan(&body, &config))
        .await;
    let (request, plan) = match first {
        Ok(First::Answered(response)) => return response,
        Ok(First::LookUp { request, plan }) => (request, plan),
        Err(panicked) => return internal_error(&for_panic, &panicked.0),
    };

    progress.set(Stage::Registry);
    let tracker = Tracked {
        inner: &state.images,
        progress,
    };
    let configs = match mutation_modes::look_up(&plan, &tracker).await {
        Ok(c) => c,
        Err(e) => return denied(&request, Outcome::Denied, e.to_string()),
    };

    progress
        .place(state, bytes, Stage::Patching)
        .await
        .run(move || patch_answer(&request, &plan, &configs))
        .await
        .unwrap_or_else(|panicked| internal_error(&for_panic, &panicked.0))
}

/// The first CPU step: decode the review; answer everything that is not a pod CREATE to
/// mutate; plan the mutation, and when it needs no image config, write the patch too.
fn decode_and_plan(body: &[u8], config: &MutationConfig) -> First {
    let review = match parse_review(body) {
        Ok(r) => r,
        Err(reason) => return First::Answered(bad_request(&reason)),
    };
    let request = match review {
        Review::Pod(request) => request,
        Review::Other { request, pod_error } => {
            return First::Answered(decide_other(&request, &pod_error));
        }
    };
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.sub_resource.is_some() {
        return First::Answered(skipped(&request, "not a Pod", Vec::new()));
    }
    if !matches!(request.operation, Operation::Create) {
        return First::Answered(skipped(&request, "not a CREATE", Vec::new()));
    }
    let Some(pod) = &request.object else {
        let message = "secrets-init-webhook: the AdmissionReview for a Pod CREATE carries no `object`; nothing to decide on";
        return First::Answered(denied(&request, Outcome::Error, message.into()));
    };
    match mutation_modes::plan(pod, config) {
        Err(e) => First::Answered(denied(&request, Outcome::Denied, e.to_string())),
        Ok(Planned::Done(decision)) => First::Answered(decided(&request, decision)),
        Ok(Planned::Mutate(plan)) if plan.needs_image_configs() => First::LookUp { request, plan },
        Ok(Planned::Mutate(plan)) => {
            First::Answered(patch_answer(&request, &plan, &ImageConfigs::default()))
        }
    }
}

/// The last CPU step: the patch, and the answer that carries it.
fn patch_answer(request: &AdmissionRequest<Pod>, plan: &Plan, configs: &ImageConfigs) -> Response {
    let Some(pod) = &request.object else {
        let message = "secrets-init-webhook: the AdmissionReview for a Pod CREATE carries no `object`; nothing to decide on";
        return denied(request, Outcome::Error, message.into());
    };
    match mutation_modes::build_patch(pod, plan, configs) {
        Ok(decision) => decided(request, decision),
        Err(e) => denied(request, Outcome::Denied, e.to_string()),
    }
}

/// The answer for a decision about a pod.
fn decided(request: &AdmissionRequest<Pod>, decision: Decision) -> Response {
    match decision {
        Decision::Skipped { reason, warnings } => skipped(request, &reason, warnings),
        Decision::Mutated {
            mode,
            patch,
            warnings,
        } => match AdmissionResponse::from(request).with_patch(patch) {
            Ok(mut resp) => {
                resp.warnings = non_empty(bounded::warnings(warnings));
                answer(&resp, Outcome::Mutated(mode), facts_of(request))
            }
            Err(e) => denied(
                request,
                Outcome::Error,
                format!(
                    "secrets-init-webhook: internal error: the patch could not be serialized: {e}"
                ),
            ),
        },
    }
}

/// Allowed unchanged; `reason` is logged, `warnings` go to the client.
fn skipped<T: Resource>(
    request: &AdmissionRequest<T>,
    reason: &str,
    warnings: Vec<String>,
) -> Response {
    tracing::debug!(reason, "allowed unchanged");
    let mut resp = AdmissionResponse::from(request);
    resp.warnings = non_empty(bounded::warnings(warnings));
    answer(&resp, Outcome::Skipped, facts_of(request))
}

/// Denied with `message` (bounded: it echoes the pod, and a person reads it).
fn denied<T: Resource>(
    request: &AdmissionRequest<T>,
    result: Outcome,
    message: String,
) -> Response {
    deny(
        AdmissionResponse::from(request),
        result,
        bounded::message(message),
        facts_of(request),
    )
}

fn deny(
    base: AdmissionResponse,
    result: Outcome,
    message: String,
    facts: RequestFacts,
) -> Response {
    tracing::warn!(
        uid = facts.uid.as_str(),
        namespace = facts.namespace.as_deref(),
        pod = facts.pod.as_deref(),
        reason = %message,
        "admission denied"
    );
    answer(&base.deny(message), result, facts)
}

/// What is known of a request whose review was not decoded (yet): its uid.
fn uid_only(uid: &str) -> RequestFacts {
    RequestFacts {
        uid: bounded::prefix(uid, NAME_BYTES).to_owned(),
        ..RequestFacts::default()
    }
}

/// A response for `uid` without the decoded request (the deadline passed, or the work
/// panicked, before it was at hand).
fn response_for_uid(uid: String) -> AdmissionResponse {
    let mut resp = AdmissionResponse::invalid("");
    resp.types = TypeMeta {
        api_version: "admission.k8s.io/v1".to_owned(),
        kind: "AdmissionReview".to_owned(),
    };
    resp.uid = uid;
    resp.allowed = true;
    resp.result = kube_core::Status::default();
    resp
}

/// The uid of a review, read without decoding the rest (linear, allocation-free), for the
/// answers that have no decoded request to hand.
fn uid_of(body: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        request: Option<HeadRequest<'a>>,
    }
    #[derive(Deserialize)]
    struct HeadRequest<'a> {
        #[serde(borrow)]
        uid: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_slice::<Head<'_>>(body) {
        Ok(Head {
            request: Some(r), ..
        }) if !r.uid.is_empty() => Ok(r.uid.into_owned()),
        _ => Err(match parse_review(body) {
            Err(reason) => reason,
            Ok(_) => "AdmissionReview request has no `uid`".to_owned(),
        }),
    }
}

/// The answer when the request deadline passes: a denial saying what it was waiting for.
fn timed_out<S>(state: &AppState<S>, body: &[u8], progress: &Progress) -> Response {
    let (stage, images) = progress.snapshot();
    let label = match stage {
        Stage::WaitingForCpu => "cpu-queue",
        Stage::Decoding | Stage::Patching => "cpu",
        Stage::Registry => "registry",
    };
    state
        .metrics
        .admission_timeouts
        .with_label_values(&[label])
        .inc();
    let message = timeout_message(
        state.request_timeout,
        stage_text(stage, body.len()),
        &images,
    );
    match uid_of(body) {
        Ok(uid) => {
            let facts = uid_only(&uid);
            deny(response_for_uid(uid), Outcome::Error, message, facts)
        }
        Err(reason) => bad_request(&reason),
    }
}

fn stage_text(stage: Stage, bytes: usize) -> Option<String> {
    let size = format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20));
    match stage {
        Stage::WaitingForCpu => Some(format!(
            "waiting for a turn to decode the request ({size}): the webhook was busy with other large admission requests"
        )),
        Stage::Decoding => Some(format!(
            "while decoding the request ({size}) and planning the mutation"
        )),
        Stage::Patching => Some(format!("while writing the patch for the request ({size})")),
        Stage::Registry => None,
    }
}

/// The answer when the work panicked (a bug): a denial, logged as an error.
fn internal_error(body: &[u8], panic: &str) -> Response {
    tracing::error!(panic, "admission work panicked (a bug in the webhook)");
    match uid_of(body) {
        Ok(uid) => {
            let facts = uid_only(&uid);
            deny(
                response_for_uid(uid),
                Outcome::Error,
                "secrets-init-webhook: internal error while deciding about this pod; retry, and report it if it persists".to_owned(),
                facts,
            )
        }
        Err(reason) => bad_request(&reason),
    }
}

/// The answer body, serialized once. It carries what kube-core's
/// `AdmissionResponse::into_review` would, except `patch`: kube-core serializes it (Go
/// `[]byte`) as an array of byte values, while the API documents base64 text, which is what
/// every other webhook sends, what `jq -r .response.patch | base64 -d` expects, and a
/// quarter of the size. A unit test holds the two encodings together.
fn review_answer(response: &AdmissionResponse) -> Response {
    let answer = Answer {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response: AnswerResponse {
            uid: &response.uid,
            allowed: response.allowed,
            status: &response.result,
            patch: response.patch.as_deref().map(Base64),
            patch_type: response.patch.as_ref().map(|_| "JSONPatch"),
            audit_annotations: &response.audit_annotations,
            warnings: response.warnings.as_deref(),
        },
    };
    // One buffer, sized for the answer: base64 is 4/3 of the patch, the rest is a few
    // hundred bytes (more with a message or warnings, when it may grow once).
    let mut body =
        Vec::with_capacity(response.patch.as_ref().map_or(0, |p| p.len() / 3 * 4 + 4) + 512);
    match serde_json::to_writer(&mut body, &answer) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // Serializing strings, bools and maps of strings cannot fail; answer rather than panic.
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("internal error: the answer could not be serialized: {e}"),
        ),
    }
}

/// The HTTP answer for `response`, with `outcome` and `facts` for the metrics and tracing
/// layers.
fn answer(response: &AdmissionResponse, outcome: Outcome, facts: RequestFacts) -> Response {
    let mut http = review_answer(response);
    http.extensions_mut().insert(outcome);
    http.extensions_mut().insert(facts);
    http
}

/// Bytes serialized as base64 text, encoded straight into the answer (no intermediate String).
struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&base64::display::Base64Display::new(
            self.0,
            &base64::engine::general_purpose::STANDARD,
        ))
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
    patch: Option<Base64<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    audit_annotations: &'a std::collections::HashMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<&'a [String]>,
}

/// A request whose object is not a v1 Pod: other kinds are allowed unchanged; a Pod CREATE
/// whose object does not decode is denied with the reason.
fn decide_other(request: &AdmissionRequest<DynamicObject>, pod_error: &str) -> Response {
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if is_pod && request.sub_resource.is_none() && matches!(request.operation, Operation::Create) {
        let message = format!(
            "secrets-init-webhook: the pod in the request could not be read as a v1 Pod: {}",
            bounded::clip(pod_error, 1024)
        );
        return denied(request, Outcome::Error, message);
    }
    skipped(request, "not a Pod", Vec::new())
}

fn non_empty(v: Vec<String>) -> Option<Vec<String>> {
    if v.is_empty() { None } else { Some(v) }
}

/// The denial message when the request deadline passes: what the webhook was doing
/// (`doing`), or else which images it was waiting for.
pub fn timeout_message(limit: Duration, doing: Option<String>, waiting_for: &[String]) -> String {
    let limit = humantime::format_duration(limit);
    match doing {
        Some(doing) => format!(
            "secrets-init-webhook: timed out after {limit} (--request-timeout) {doing}; retry, or raise --request-timeout"
        ),
        None if waiting_for.is_empty() => format!(
            "secrets-init-webhook: timed out after {limit} (--request-timeout) while mutating the pod; retry, or raise --request-timeout"
        ),
        None => format!(
            "secrets-init-webhook: timed out after {limit} (--request-timeout) waiting for the registry to return the image config of {}; \
             retry, set `command` in the pod spec so no registry lookup is needed, or raise --request-timeout",
            bounded::list(
                waiting_for
                    .iter()
                    .map(|i| bounded::clip(i, bounded::VALUE_BYTES))
            )
        ),
    }
}

/// Wraps the image source to know which lookups are in flight when the deadline passes.
struct Tracked<'a, S> {
    inner: &'a S,
    progress: &'a Progress,
}

impl<S: ImageConfigSource> ImageConfigSource for Tracked<'_, S> {
    async fn image_config(
        &self,
        image: &str,
        platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        if let Ok(mut p) = self.progress.0.lock() {
            p.images.insert(image.to_owned());
        }
        let result = self.inner.image_config(image, platform).await;
        if let Ok(mut p) = self.progress.0.lock() {
            p.images.remove(image);
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
    /// the k8s-openapi type, with only the fields the mutation reads
    /// ([`mutation_modes::SparsePod`]).
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

/// The envelope with a pod request decoded in the same pass.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodEnvelope {
    api_version: String,
    kind: String,
    #[serde(default)]
    request: Option<AdmissionRequest<SparsePod>>,
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
    // The hot path, a v1 review of a pod, in one pass over the body. Anything else (another
    // kind, a pod that does not decode, a malformed review) is read again below in two
    // passes, which give the fallback and the precise messages. One pass instead of two
    // saved ~10 % of the decode (callgrind, typical pod).
    if let Ok(PodEnvelope {
        api_version,
        kind,
        request: Some(request),
    }) = serde_json::from_str::<PodEnvelope>(text)
        && kind == "AdmissionReview"
        && api_version == "admission.k8s.io/v1"
        && !request.uid.is_empty()
    {
        let types = TypeMeta { api_version, kind };
        return Ok(Review::Pod(Box::new(whole_pod_request(request, types))));
    }
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
    let review = match serde_json::from_str::<AdmissionRequest<SparsePod>>(raw.get()) {
        Ok(request) => Review::Pod(Box::new(whole_pod_request(request, types))),
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

/// The request with its pods as plain `Pod`s (holding the fields the mutation reads).
fn whole_pod_request(r: AdmissionRequest<SparsePod>, types: TypeMeta) -> AdmissionRequest<Pod> {
    AdmissionRequest {
        types,
        uid: r.uid,
        kind: r.kind,
        resource: r.resource,
        sub_resource: r.sub_resource,
        request_kind: r.request_kind,
        request_resource: r.request_resource,
        request_sub_resource: r.request_sub_resource,
        name: r.name,
        namespace: r.namespace,
        operation: r.operation,
        user_info: r.user_info,
        object: r.object.map(|p| p.0),
        old_object: r.old_object.map(|p| p.0),
        dry_run: r.dry_run,
        options: r.options,
    }
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
    // serde's messages quote the offending value, which the client chose: keep it short.
    let one_line = bounded::clip(reason, 1024).replace(['\n', '\r'], " ");
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

    /// A pod that sets fields the mutation does not read, next to every field it does, in
    /// every mode: the webhook's sparse decode gives the same patch as the whole Pod.
    #[tokio::test]
    async fn the_sparse_decode_gives_the_whole_pods_patch() {
        let container = |name: &str, restart: Option<&str>| {
            serde_json::json!({
                "name": name, "image": "registry.example/app:1",
                "command": ["/app"], "args": ["--port=$(PORT)"], "workingDir": "/srv",
                "env": [
                    {"name": "DB", "value": "awssm:prod/db#url"},
                    {"name": "PORT", "value": "8080"},
                    {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                ],
                "envFrom": [{"secretRef": {"name": "s"}}],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                "livenessProbe": {"exec": {"command": ["/check", "$(PORT)"]}, "periodSeconds": 5},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                "startupProbe": {"tcpSocket": {"port": "http"}},
                "lifecycle": {"preStop": {"exec": {"command": ["/drain"]}}},
                "securityContext": {"runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}},
                "restartPolicy": restart, "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            })
        };
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "kitchen-sink", "namespace": "team", "uid": "0000",
                "labels": {"app": "x"}, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "1"}],
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"secretsinit.io/inject": "true",
                                "secretsinit.io/mutate-probes": "true",
                                "secretsinit.io/env-from": "awssm:prod/all"}
            },
            "spec": {
                "initContainers": [container("migrate", None), container("proxy", Some("Always"))],
                "containers": [container("app", None), container("worker", None)],
                "ephemeralContainers": [{"name": "secrets-init", "image": "busybox"}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
                    {"name": "secrets-init-bin", "emptyDir": {}},
                    {"name": "kube-api-access", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                    ]}}
                ],
                "nodeSelector": {"kubernetes.io/arch": "arm64", "disk": "ssd"},
                "os": {"name": "linux"},
                "shareProcessNamespace": false,
                "affinity": {"nodeAffinity": {}}, "tolerations": [{"operator": "Exists"}],
                "securityContext": {"fsGroup": 2000}, "serviceAccountName": "sa",
                "dnsPolicy": "ClusterFirst", "priority": 0
            },
            "status": {"phase": "Pending", "qosClass": "Burstable"}
        });
        let review = |pod: &serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE", "userInfo": {"username": "me"}, "object": pod
                }
            }))
            .expect("json")
        };
        struct AnyImage;
        impl ImageConfigSource for AnyImage {
            async fn image_config(
                &self,
                _: &str,
                _: &Platform,
            ) -> Result<ImageConfig, ImageConfigError> {
                Ok(ImageConfig {
                    entrypoint: Some(vec!["/entry".into()]),
                    cmd: Some(vec!["serve".into()]),
                })
            }
        }
        let outcome =
            async |pod: &Pod, config: &MutationConfig| match mutation_modes::plan(pod, config) {
                Ok(Planned::Mutate(plan)) => {
                    let configs = mutation_modes::look_up(&plan, &AnyImage)
                        .await
                        .expect("configs");
                    format!("{:?}", mutation_modes::build_patch(pod, &plan, &configs))
                }
                other => format!("{other:?}"),
            };
        let mut pods = vec![pod.clone()];
        let mut without_command = pod.clone();
        for list in ["initContainers", "containers"] {
            for c in without_command["spec"][list].as_array_mut().expect("list") {
                c.as_object_mut().expect("container").remove("command");
            }
        }
        pods.push(without_command);
        // Without labels the patch adds the map (with the injected label), else one entry.
        let mut without_labels = pod.clone();
        without_labels["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("labels");
        pods.push(without_labels);
        use mutation_modes::ModeKind;
        for mode in [
            ModeKind::InitContainer,
            ModeKind::SharedVolume,
            ModeKind::ImageSwap,
        ] {
            let config = MutationConfig {
                default_mode: mode,
                ..MutationConfig::default()
            };
            for pod in &pods {
                let Review::Pod(sparse) = parse_review(&review(pod)).expect("review") else {
                    panic!("not read as a pod");
                };
                let whole: Pod = serde_json::from_value(pod.clone()).expect("pod");
                let sparse = outcome(sparse.object.as_ref().expect("object"), &config).await;
                assert!(
                    sparse.contains("Mutated") || sparse.contains("Mutate"),
                    "{mode}: {sparse}"
                );
                assert_eq!(sparse, outcome(&whole, &config).await, "{mode}");
            }
        }
    }
}
