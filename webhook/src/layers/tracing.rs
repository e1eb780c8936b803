//! One span per admission request: `admission` with uid, namespace, pod (name, or
//! generateName followed by `*`), kind, operation, dry_run, mode, result and HTTP status;
//! and one log line per request, "admission answered", with the same fields (`audit.rs`).
//!
//! The handler puts what it learns from the review into the response ([`RequestFacts`]); this
//! layer adds the outcome. The span is made only where it goes somewhere: exported over
//! OTLP (`OTLP_ENDPOINT`), or decorating the text log format. With JSON logs and no OTLP, the
//! audit line carries the fields itself and the span would be pure cost (~40 k instructions
//! an admission to record fields nobody reads).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use crate::audit::{self, RequestFacts};
use crate::outcome::Outcome;

/// Runs the request (inside its `admission` span when one is wanted) and logs the answer.
pub async fn span(request: Request, next: Next) -> Response {
    let span = if !audit::started() || crate::telemetry::spans_exported() {
        tracing::info_span!(
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
        )
    } else {
        tracing::Span::none()
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Error);
    let facts = response.extensions().get::<RequestFacts>();
    if !span.is_disabled() {
        if let Some(f) = facts {
            f.record(&span);
        }
        let result = outcome.as_str();
        let mode = outcome.mode().map(|m| m.as_str());
        // One `record` for the three: the JSON log layer re-renders the span's fields each time.
        tracing::record_all!(span, http.status = status, mode = mode, result = result);
    }
    span.in_scope(|| audit::answered(facts, outcome, status));
    response
}
