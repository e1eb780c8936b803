//! The secrets-init admission webhook.
//!
//! - [`config`]: flags > env > YAML file > defaults.
//! - [`server`]: the TLS and metrics listeners, graceful shutdown; [`run`].
//! - [`router`]: the routes and the ONE place the layer stack is composed; [`router()`].
//! - [`layers`]: auth, metrics, tracing, timeout, body limit, concurrency — one module each.
//! - [`admission`]: AdmissionReview v1 in, AdmissionResponse out.
//! - [`glue`]: the mutation's configuration and the image source, built from the config.
//! - [`offload`]: where an admission's CPU work runs (large requests off the runtime workers).
//! - [`tls`]: rustls (TLS 1.3 only), certificate hot reload, development certificate.
//! - [`metrics`], [`telemetry`]: Prometheus metrics, logs and OTLP traces.
//! - [`images`]: image configs from registries (oci-client, ECR auth) behind a moka cache;
//!   implements [`mutation_modes::ImageConfigSource`].

pub mod admission;
pub mod app;
pub mod config;
mod error;
pub mod glue;
pub mod images;
pub mod layers;
pub mod metrics;
pub mod offload;
pub mod outcome;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use app::router;
pub use config::Config;
pub use error::Error;
pub use server::{Server, run};
pub use state::{AppState, Inner, Readiness};
