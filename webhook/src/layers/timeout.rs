//! Request deadline (`--request-timeout`, default 8 s).
//!
//! The layer stamps each request with its deadline; the admission handler races the
//! mutation against it and, when the deadline passes, answers `allowed: false` with a
//! message naming what it was waiting for (it knows the uid and the image being looked
//! up; a generic timeout layer would know neither and could only send a 5xx).

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tokio::time::Instant;

/// The instant by which the request must be answered.
#[derive(Debug, Clone, Copy)]
pub struct RequestDeadline(pub Instant);

/// Middleware: inserts [`RequestDeadline`] = now + `timeout`.
pub async fn stamp_deadline(timeout: Duration, mut request: Request, next: Next) -> Response {
    request
        .extensions_mut()
        .insert(RequestDeadline(Instant::now() + timeout));
    next.run(request).await
}
