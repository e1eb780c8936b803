//! secrets-init's integration tests, one binary: each test binary links the AWS SDK again.

mod common;
mod flag_contract;
mod hygiene;
mod resolve;
mod ssl_cert_file;
