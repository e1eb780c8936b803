//! The webhook's integration tests, one binary: the AWS SDK, rustls and oci-client are
//! linked once instead of once per file.
//!
//! `growth` measures the CPU time of this process, so nextest runs it with the machine to
//! itself (`.config/nextest.toml`).

mod common;
mod images_support;

mod binary;
mod client_ca;
mod drain;
mod growth;
mod handler;
mod hostile;
mod http2;
mod images_ecr;
mod images_hostile;
mod images_registry;
mod lifecycle;
mod requests;
mod ssl_cert_file;
mod tls;
