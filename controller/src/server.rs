//! The plain-HTTP server: `/metrics` (Prometheus text), `/healthz` (the process answers),
//! `/readyz` (the workload and pod caches have synced; a standby replica is ready too, so a
//! rolling update is not held up by which replica leads).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::metrics::Metrics;
use crate::workloads::Shared;

/// What the HTTP server reports.
#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Metrics,
    pub index: Shared,
    pub pods_synced: Arc<AtomicBool>,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.pods_synced.load(Ordering::Relaxed)
            && self
                .index
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .synced()
    }
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
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

pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    mut stop: watch::Receiver<bool>,
) {
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
