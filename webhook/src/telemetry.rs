//! Logs and traces.
//!
//! Logs go to stderr, JSON by default (`--log-format text` for people), filtered by
//! `RUST_LOG` (default `info`). When `OTLP_ENDPOINT` is set (e.g. `http://otel-collector:4317`)
//! spans — one `admission` span per request — are also exported over OTLP/gRPC, batched.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::Error;
use crate::config::LogFormat;

/// Env variable naming the OTLP/gRPC endpoint.
pub const OTLP_ENDPOINT_ENV: &str = "OTLP_ENDPOINT";

static SPANS_EXPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True when spans go somewhere (an OTLP endpoint is set): then the `admission` span is
/// worth recording. Without it, the span would only decorate log lines, and the audit line
/// carries the same fields itself (`audit.rs`).
pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops trace export (blocking; call outside the async hot path).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            tracing::warn!(error = %e, "flushing traces at shutdown failed");
        }
    }
}

/// Installs the global subscriber, logging to stderr. Must run inside the tokio runtime (the
/// OTLP exporter uses it).
pub fn init(format: LogFormat) -> Result<Telemetry, Error> {
    init_to(format, std::io::stderr)
}

/// [`init`] with another destination for the logs (benchmarks measure logging into a sink).
pub fn init_to<W>(format: LogFormat, out: fn() -> W) -> Result<Telemetry, Error>
where
    W: std::io::Write + Send + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if format == LogFormat::Json {
        crate::audit::start(out())
            .map_err(|e| Error::Telemetry(format!("cannot start the log writer thread: {e}")))?;
    }
    let fmt = match format {
        LogFormat::Json => json_subscriber::fmt::layer()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(out)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(out).boxed(),
    };
    let endpoint = std::env::var(OTLP_ENDPOINT_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let provider = match &endpoint {
        None => None,
        Some(ep) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(ep.trim())
                .build()
                .map_err(|e| {
                    Error::Telemetry(format!(
                        "{OTLP_ENDPOINT_ENV}={ep}: cannot build the OTLP exporter: {e}"
                    ))
                })?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        Resource::builder()
                            .with_service_name("secrets-init-webhook")
                            .build(),
                    )
                    .build(),
            )
        }
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("secrets-init-webhook"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| Error::Telemetry(format!("cannot install the log subscriber: {e}")))?;
    SPANS_EXPORTED.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
    if let Some(ep) = endpoint {
        tracing::info!(endpoint = %ep, "exporting traces over OTLP/gRPC");
    }
    Ok(Telemetry { provider })
}
