//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can stop the webhook from starting or serving. Runtime admission
/// problems never become an `Error`: they become a denial in an AdmissionResponse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags, env or config file; the message says which and how to fix it.
    #[error("configuration: {0}")]
    Config(String),
    /// What clap has to say about the command line: `--help`, `--version`, or a bad flag
    /// (`exit()` prints it and exits with clap's code).
    #[error("{0}")]
    Cli(#[from] clap::Error),
    /// A certificate, key or CA file could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Logging or tracing could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
    /// Watching the certificate directory failed.
    #[error("watching {path} for certificate changes: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    /// Anything else of the server's I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
