//! Concurrency guard / load shedding (`--max-concurrent-requests`, default 256).
//!
//! At most N admission requests are worked on at once; one more is answered 503 with
//! `Retry-After` at once instead of queueing behind slow registry lookups (the API server
//! retries or applies the webhook's failurePolicy, which beats timing out).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

/// Shared permit pool.
#[derive(Debug, Clone)]
pub struct Guard {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Guard {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

/// Middleware: holds a permit for the request's lifetime, or sheds it.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Ok(_permit) = guard.permits.clone().try_acquire_owned() else {
        tracing::warn!(
            max = guard.max,
            "admission request shed: too many in flight"
        );
        let mut resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "secrets-init-webhook is overloaded: {} admission requests are in flight (--max-concurrent-requests); retry\n",
                guard.max
            ),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    next.run(request).await
}
