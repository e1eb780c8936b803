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

use crate::outcome::Outcome;

/// Runs the request inside its `admission` span and logs the answer.
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
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Error);
    let result = outcome.as_str();
    let mode = outcome.mode().map(|m| m.as_str());
    // One `record` for the three: the JSON log layer re-renders the span's fields each time.
    tracing::record_all!(span, http.status = status, mode = mode, result = result);
    span.in_scope(|| tracing::info!(result, status, "admission answered"));
    response
}
