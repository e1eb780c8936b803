//! The HTTP surface of the TLS port, and the ONE place where the layer stack is composed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post};
use mutation_modes::ImageConfigSource;
use tower::ServiceBuilder;

use crate::Error;
use crate::config::Config;
use crate::layers::auth::{Auth, BearerToken};
use crate::layers::{self, concurrency::Guard};
use crate::metrics::Metrics;
use crate::offload::CpuPool;

/// Readiness, shared by the router (`/readyz`) and the server (turns it off on shutdown).
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new(ready: bool) -> Self {
        Self(Arc::new(AtomicBool::new(ready)))
    }
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything the handlers and layers need.
#[derive(Debug)]
pub struct AppState<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::ops::Deref for AppState<S> {
    type Target = Inner<S>;
    fn deref(&self) -> &Inner<S> {
        &self.inner
    }
}

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner<S> {
    pub images: S,
    pub mutation: Arc<mutation_modes::MutationConfig>,
    pub cpu: CpuPool,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub auth: Auth,
    pub request_timeout: Duration,
    pub read_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
}

impl<S> AppState<S> {
    pub fn new(inner: Inner<S>) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// State from the configuration: mutation settings checked, bearer token file read.
    /// The client-certificate requirement follows `--client-ca` (the TLS layer verifies).
    pub fn from_config(
        config: &Config,
        metrics: Metrics,
        readiness: Readiness,
        images: S,
    ) -> Result<Self, Error> {
        let bearer = match &config.bearer_token_file {
            Some(path) => Some(Arc::new(BearerToken::load(path)?)),
            None => None,
        };
        Ok(Self::new(Inner {
            images,
            mutation: Arc::new(crate::glue::mutation_config(config)?),
            cpu: CpuPool::for_this_machine(),
            metrics,
            readiness,
            auth: Auth {
                require_client_cert: config.client_ca.is_some(),
                bearer,
            },
            request_timeout: config.request_timeout,
            read_timeout: config.read_timeout,
            max_body_bytes: config.max_body_bytes,
            max_concurrent_requests: config.max_concurrent_requests,
        }))
    }
}

/// `POST /mutate`, `GET /healthz`, `GET /readyz`.
///
/// Layers on `/mutate`, outermost first:
/// 1. tracing — one `admission` span per request, outcome recorded at the end;
/// 2. metrics — counts and times every answer, including refusals below;
/// 3. auth — client certificate and/or bearer token (401), before anything is read;
/// 4. concurrency — sheds load past `--max-concurrent-requests` (503);
/// 5. timeout — stamps the `--request-timeout` deadline the handler answers by;
/// 6. body limit — 413 past `--max-body-bytes` (axum's own 2 MB default is disabled).
///
/// The read timeout for slow headers and bodies lives at the connection level
/// ([`crate::server`]) and in the handler's body read.
pub fn router<S: ImageConfigSource + 'static>(state: AppState<S>) -> Router {
    let request_timeout = state.request_timeout;
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
        .layer(from_fn(move |req, next| {
            layers::timeout::stamp_deadline(request_timeout, req, next)
        }))
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
