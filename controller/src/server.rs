//! The plain-HTTP server: `/metrics` (Prometheus text), `/healthz` (the process answers),
//! `/readyz` (the workload and pod caches have synced; a standby replica is ready too, so a
//! rolling update is not held up by which replica leads).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::app::Health;

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        h.metrics.render(),
    )
}

async fn ready(State(h): State<Health>) -> impl IntoResponse {
    if h.ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the workload and pod caches have not synced yet\n",
        )
    }
}

pub async fn serve(listener: tokio::net::TcpListener, health: Health, mut stop: watch::Receiver<bool>) {
    let app = router(health);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "the metrics server stopped");
    }
}
