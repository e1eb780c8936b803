//! Request body limit (`--max-body-bytes`, default 4 MiB).
//!
//! A declared `Content-Length` over the limit is answered 413 before any of the body is
//! read; a chunked body is cut off as soon as it passes the limit (the handler maps that to
//! 413 too).

use tower_http::limit::RequestBodyLimitLayer;

/// 413 past `max_body_bytes`, declared or streamed.
pub fn layer(max_body_bytes: usize) -> RequestBodyLimitLayer {
    RequestBodyLimitLayer::new(max_body_bytes)
}
