//! The webhook's own Prometheus metrics (contract §6) and the registry they live in.
//!
//! The image-config metrics are registered by `images::CachedImageSource` into the same
//! registry; process metrics by the prometheus process collector.

use prometheus::{Encoder, Gauge, Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

use crate::outcome::Outcome;

/// The `stage` label values of `secrets_init_webhook_admission_timeouts_total`.
pub const TIMEOUT_STAGES: [&str; 3] = ["cpu-queue", "cpu", "registry"];

/// All metrics the webhook itself records.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub admission_requests: IntCounterVec,
    pub admission_duration: Histogram,
    pub admission_request_bytes: Histogram,
    pub admission_timeouts: IntCounterVec,
    pub tls_reloads: IntCounterVec,
    pub tls_cert_expiry: Gauge,
}

impl Metrics {
    /// A fresh registry with the webhook's metrics (and, on Linux, the process metrics).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let admission_requests = IntCounterVec::new(
            Opts::new(
                "secrets_init_webhook_admission_requests_total",
                "Admission requests answered, by result (mutated, skipped, denied, error).",
            ),
            &["result"],
        )?;
        let admission_duration = Histogram::with_opts(
            HistogramOpts::new(
                "secrets_init_webhook_admission_duration_seconds",
                "Time to answer one admission request, from the request to the response.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        // What an operator looks at when admissions slow down: how big the requests are, and
        // what the ones that ran out of time were waiting for.
        let admission_request_bytes = Histogram::with_opts(
            HistogramOpts::new(
                "secrets_init_webhook_admission_request_bytes",
                "Size of each /mutate request body. Requests of 64 KiB and more are worked on \
                 off the runtime workers, a few at a time.",
            )
            .buckets(vec![
                1024.0,
                4096.0,
                16384.0,
                65536.0,
                262_144.0,
                1_048_576.0,
                4_194_304.0,
            ]),
        )?;
        let admission_timeouts = IntCounterVec::new(
            Opts::new(
                "secrets_init_webhook_admission_timeouts_total",
                "Admissions denied because --request-timeout passed, by what they were waiting \
                 for: cpu-queue (a turn to work on a large request), cpu (that work), registry \
                 (image configs).",
            ),
            &["stage"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "secrets_init_webhook_tls_reloads_total",
                "Serving-certificate reloads, by result (ok, error). An error keeps the previous certificate.",
            ),
            &["result"],
        )?;
        let tls_cert_expiry = Gauge::new(
            "secrets_init_webhook_tls_cert_expiry_timestamp_seconds",
            "Unix time at which the serving certificate in use expires (notAfter).",
        )?;
        registry.register(Box::new(admission_requests.clone()))?;
        registry.register(Box::new(admission_duration.clone()))?;
        registry.register(Box::new(admission_request_bytes.clone()))?;
        registry.register(Box::new(crate::audit::dropped_lines().clone()))?;
        registry.register(Box::new(admission_timeouts.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        registry.register(Box::new(tls_cert_expiry.clone()))?;
        // Every label value exists from the start, so rate() and alerts see zeros.
        for r in Outcome::LABELS {
            admission_requests.with_label_values(&[r]);
        }
        for r in ["ok", "error"] {
            tls_reloads.with_label_values(&[r]);
        }
        for s in TIMEOUT_STAGES {
            admission_timeouts.with_label_values(&[s]);
        }
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            admission_requests,
            admission_duration,
            admission_request_bytes,
            admission_timeouts,
            tls_reloads,
            tls_cert_expiry,
        })
    }

    /// Counts one answered admission request.
    pub fn observe_admission(&self, outcome: Outcome, seconds: f64) {
        self.admission_requests
            .with_label_values(&[outcome.as_str()])
            .inc();
        self.admission_duration.observe(seconds);
    }

    /// The Prometheus text exposition of everything in the registry.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
