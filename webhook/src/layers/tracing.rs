//! One span per admission request: `admission` with uid, namespace, pod (name, or
//! generateName followed by `*`), kind, operation, dry_run, mode, result and HTTP status.
//!
//! The handler fills in what it learns from the review (see `admission.rs`); this layer
//! fills in the outcome and logs one line per request. With `OTLP_ENDPOINT` set the span is
//! exported as an OpenTelemetry span.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use crate::admission::AdmissionOutcome;

/// Middleware.
pub async fn span(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "admission",
        otel.name = "admission",
        otel.kind = "server",
        uid = Empty,
        namespace = Empty,
        pod = Empty,
        kind = Empty,
        operation = Empty,
        dry_run = Empty,
        mode = Empty,
        result = Empty,
        http.status = Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.status", status);
    let result = match response.extensions().get::<AdmissionOutcome>() {
        Some(outcome) => {
            if let Some(mode) = &outcome.mode {
                span.record("mode", mode.as_str());
            }
            outcome.result.as_str()
        }
        None => "error",
    };
    span.record("result", result);
    span.in_scope(|| tracing::info!(result, status, "admission answered"));
    response
}
