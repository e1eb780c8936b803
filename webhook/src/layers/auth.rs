//! Optional client authentication for `/mutate` (off by default).
//!
//! - `--client-ca`: the TLS layer verifies any client certificate against the CA; this layer
//!   requires that one was presented and verified (kubelet probes of `/healthz`/`/readyz`
//!   present none, so TLS itself cannot require it).
//! - `--bearer-token-file`: `Authorization: Bearer <token>` must match the file's contents
//!   (trimmed). The file is re-read when it changes, so a rotated token needs no restart.
//!
//! Both set = both required. Failures are 401 with a one-line reason; the token is never
//! logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Error;

/// Facts about the connection a request came on, put into every request's extensions by
/// the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionInfo {
    /// A client certificate was presented and verified against `--client-ca`.
    pub client_cert_verified: bool,
}

/// What `/mutate` requires.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    pub require_client_cert: bool,
    pub bearer: Option<Arc<BearerToken>>,
}

impl Auth {
    pub fn is_enabled(&self) -> bool {
        self.require_client_cert || self.bearer.is_some()
    }
}

/// The expected bearer token, re-read when the file's modification time changes.
#[derive(Debug)]
pub struct BearerToken {
    path: PathBuf,
    cached: Mutex<(Option<SystemTime>, Vec<u8>)>,
}

impl BearerToken {
    /// Reads the token file once; an unreadable or empty file stops start-up.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let (mtime, token) = read_token(path)?;
        Ok(Self {
            path: path.to_owned(),
            cached: Mutex::new((mtime, token)),
        })
    }

    fn current(&self) -> Vec<u8> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime != cached.0 {
            match read_token(&self.path) {
                Ok(fresh) => *cached = fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "bearer token file unreadable; keeping the previous token")
                }
            }
        }
        cached.1.clone()
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.current();
        // Constant time in the token's contents.
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn read_token(path: &Path) -> Result<(Option<SystemTime>, Vec<u8>), Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
    if token.is_empty() {
        return Err(Error::Config(format!(
            "bearer token file {} is empty; put the token the API server sends in it",
            path.display()
        )));
    }
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((mtime, token))
}

/// Refuses (401) a request without the credentials `auth` requires.
pub async fn check(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    if auth.require_client_cert {
        let verified = request
            .extensions()
            .get::<ConnectionInfo>()
            .is_some_and(|c| c.client_cert_verified);
        if !verified {
            return unauthorized(
                "client certificate required: present a certificate signed by the CA in --client-ca",
                None,
            );
        }
    }
    if let Some(token) = &auth.bearer {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
        match presented {
            None => {
                return unauthorized(
                    "bearer token required: send `Authorization: Bearer <token>`",
                    Some("Bearer"),
                );
            }
            Some(t) if !token.matches(t) => {
                return unauthorized(
                    "bearer token not accepted",
                    Some("Bearer error=\"invalid_token\""),
                );
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

fn unauthorized(reason: &str, challenge: Option<&'static str>) -> Response {
    tracing::warn!(reason, "admission request refused: not authenticated");
    let mut resp = (StatusCode::UNAUTHORIZED, format!("{reason}\n")).into_response();
    if let Some(c) = challenge {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
    }
    resp
}
