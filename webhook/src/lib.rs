//! The secrets-init admission webhook: `POST /mutate` takes an AdmissionReview, runs the pod
//! through `mutation_modes` and answers with a JSON patch or a denial. The request path, in
//! order: [`server`] (TLS, connections, shutdown) → [`app`] (routes and the one layer stack)
//! → [`admission`] (the handler). Each module's own documentation says what it does.

pub mod admission;
pub mod app;
pub mod audit;
pub mod config;
mod error;
pub mod images;
pub mod layers;
pub mod metrics;
pub mod offload;
pub mod outcome;
pub mod parse;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use app::router;
pub use config::Config;
pub use error::Error;
pub use server::{Server, run};
pub use state::{AppState, Inner, Readiness};
