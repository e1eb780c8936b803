//! What the handlers and layers share: the application state and readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Error;
use crate::config::Config;
use crate::layers::auth::{Auth, BearerToken};
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
            mutation: Arc::new(config.mutation.clone()),
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
