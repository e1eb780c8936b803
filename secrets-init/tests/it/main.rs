//! secrets-init's integration tests, one binary: each test binary links the AWS SDK again.

mod access_denied;
mod common;
mod env_from;
mod flag_contract;
mod harness;
mod hygiene;
mod parameters;
mod resolve;
mod role;
mod ssl_cert_file;
