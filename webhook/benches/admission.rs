//! Cost of one admission through the real router and layer stack (no socket, no TLS), with
//! JSON logs at INFO into a sink, as deployed:
//! a pod with `command` (no image lookup), a pod whose program comes from a cached image
//! config, a skipped pod and a non-pod object.
//!
//!     cargo bench -p secrets-init-webhook --bench admission

use std::collections::HashMap;
use std::hint::black_box;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use secrets_init_webhook::config::Config;
use secrets_init_webhook::metrics::Metrics;
use secrets_init_webhook::{AppState, Readiness, router};
use tower::ServiceExt;

/// An already-warm cache: every lookup answers from memory.
#[derive(Debug, Clone)]
struct Warm(HashMap<String, ImageConfig>);

impl ImageConfigSource for Warm {
    async fn image_config(
        &self,
        image: &str,
        _platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        self.0
            .get(image)
            .cloned()
            .ok_or_else(|| ImageConfigError::NotFound {
                image: image.to_owned(),
            })
    }
}

fn example(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Logging as deployed (JSON, INFO: one line per admission), into /dev/null (a real
    // write, without a disk or a terminal behind it).
    // ADMISSION_BENCH_LOGS=tracing measures the previous way instead (the line written by
    // tracing's JSON formatter inside a recorded span), for before -> after figures.
    fn null() -> &'static std::fs::File {
        static NULL: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();
        NULL.get_or_init(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .expect("/dev/null")
        })
    }
    let _telemetry = if std::env::var("ADMISSION_BENCH_LOGS").as_deref() == Ok("tracing") {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(
                json_subscriber::fmt::layer()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(null),
            )
            .init();
        None
    } else {
        Some(
            rt.block_on(async {
                secrets_init_webhook::telemetry::init_to(
                    secrets_init_webhook::config::LogFormat::Json,
                    null,
                )
            })
            .expect("telemetry"),
        )
    };
    let images = Warm(HashMap::from([(
        "127.0.0.1:5000/myapp:1.4.2".to_owned(),
        ImageConfig {
            entrypoint: Some(vec!["/app/server".into()]),
            cmd: Some(vec!["--port".into(), "8080".into()]),
        },
    )]));
    let metrics = Metrics::new().expect("metrics");
    let state = AppState::from_config(&Config::default(), metrics, Readiness::new(true), images)
        .expect("state");
    let app = router(state);
    let mut group = c.benchmark_group("admission");
    for name in [
        "pod-with-command.json",
        "pod-needs-registry.json",
        "pod-skip.json",
        "non-pod.json",
    ] {
        let body = example(name);
        group.bench_function(name.trim_end_matches(".json"), |b| {
            b.iter(|| {
                let req = Request::post("/mutate")
                    .header("content-type", "application/json")
                    .body(Body::from(body.clone()))
                    .expect("request");
                let resp = rt.block_on(app.clone().oneshot(req)).expect("infallible");
                assert!(resp.status().is_success());
                black_box(resp)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
