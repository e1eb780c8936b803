//! Admission metrics: counts every `/mutate` answer by result and times it.
//!
//! The result comes from the handler's [`Outcome`] response extension; an answer without
//! one (400, 401, 413, 503...) is a `result="error"`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::outcome::Outcome;

/// Times the request and counts its outcome.
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Error);
    metrics.observe_admission(outcome, start.elapsed().as_secs_f64());
    response
}
