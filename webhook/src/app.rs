//! The HTTP surface of the TLS port, and the ONE place where the layer stack is composed.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use mutation_modes::ImageConfigSource;
use tower::ServiceBuilder;

use crate::layers::{self, concurrency::Guard};
use crate::metrics::Metrics;
use crate::state::AppState;

/// `POST /mutate`, `GET /healthz`, `GET /readyz`.
///
/// Layers on `/mutate`, outermost first:
/// 1. tracing — one `admission` span per request, outcome recorded at the end;
/// 2. metrics — counts and times every answer, including refusals below;
/// 3. auth — client certificate and/or bearer token (401), before anything is read;
/// 4. concurrency — sheds load past `--max-concurrent-requests` (503);
/// 5. body limit — 413 past `--max-body-bytes` (axum's own 2 MB default is disabled).
///
/// The handler owns `--request-timeout` (it alone knows the uid to deny and what the request
/// was waiting for); the read timeout for slow headers and bodies lives at the connection
/// level ([`crate::server`]) and in the handler's body read.
pub fn router<S: ImageConfigSource + 'static>(state: AppState<S>) -> Router {
    let stack = ServiceBuilder::new()
        .layer(from_fn(layers::tracing::span))
        .layer(from_fn_with_state(
            state.metrics.clone(),
            layers::metrics::record,
        ))
        .layer(from_fn_with_state(state.auth.clone(), layers::auth::check))
        .layer(from_fn_with_state(
            Guard::new(state.max_concurrent_requests),
            layers::concurrency::guard,
        ))
        .layer(layers::body_limit::layer(state.max_body_bytes));
    Router::new()
        .route("/mutate", post(crate::admission::mutate::<S>).layer(stack))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz<S>(State(state): State<AppState<S>>) -> (StatusCode, &'static str) {
    if state.readiness.get() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

/// The metrics port: `GET /metrics` in the Prometheus text format.
pub fn metrics_router(metrics: Metrics) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    )
}
