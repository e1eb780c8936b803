//! Admission metrics: counts every `/mutate` answer by result and times it.
//!
//! The result comes from the handler's [`AdmissionOutcome`] response extension; an answer
//! without one (400, 401, 413, 503...) is a `result="error"`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

use crate::admission::AdmissionOutcome;
use crate::metrics::{AdmissionResult, Metrics};

/// Middleware.
pub async fn record(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let result = response
        .extensions()
        .get::<AdmissionOutcome>()
        .map_or(AdmissionResult::Error, |o| o.result);
    metrics.observe_admission(result, start.elapsed().as_secs_f64());
    response
}
