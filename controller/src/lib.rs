//! secrets-init-controller: restarts workloads when the AWS secrets and parameters they
//! reference change, and counts the fleet's secret-resolution failures (controller/README.md).
//!
//! Pure parts (what a template references, what counts as a change, when a restart may go,
//! what a termination message says) are separate from the I/O that feeds them: `refs`,
//! `track`, `restart`, `failures` hold no client; `detect` (AWS), `workloads`, `lease` and
//! `app` (Kubernetes) do the talking.

pub mod app;
pub mod config;
pub mod detect;
pub mod failures;
pub mod lease;
pub mod metrics;
pub mod refs;
pub mod restart;
pub mod server;
pub mod sqs;
pub mod track;
pub mod workloads;
