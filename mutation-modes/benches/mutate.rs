//! Criterion micro-benchmarks of the pure mutation (`mutate_pod`), for every mode:
//!
//! - `typical`: a Deployment-made pod as the API server sends it (benches/pods/typical.json:
//!   an app container whose program comes from the image config, a log-shipper sidecar,
//!   projected token volume, probes) — goal: < 50 µs;
//! - `containers-50`: 50 containers over 10 images, every other one setting `command`;
//! - `typical-json`: decode the pod from JSON as the webhook does ([`SparsePod`]: only the
//!   fields the mutation reads; until be2dc5c the whole `k8s_openapi` Pod), mutate, encode
//!   the patch — the pure CPU the webhook spends per admission besides TLS, HTTP and the
//!   AdmissionReview envelope.
//!
//! The image source answers at once from memory (the webhook's warm cache), so the numbers
//! are the mutation's own cost. Run: `cargo bench -p mutation-modes --bench mutate`; with
//! `MUTATE_BENCH_CPU_ITERS=N` set, on-CPU time per mutation instead (see `cpu_time`).

use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutation_modes::{
    ANNOTATION_INJECT, Decision, ImageConfig, ImageConfigError, ImageConfigSource, ModeKind,
    MutationConfig, Platform, SparsePod, mutate_pod,
};

const TYPICAL: &str = include_str!("pods/typical.json");

/// Every image has the same config; answered without waiting (a warm cache).
#[derive(Debug)]
struct WarmImages;

impl ImageConfigSource for WarmImages {
    async fn image_config(
        &self,
        _image: &str,
        _platform: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        Ok(ImageConfig {
            entrypoint: Some(vec!["/usr/local/bin/app".to_owned()]),
            cmd: Some(vec![
                "serve".to_owned(),
                "--config=/etc/app.yaml".to_owned(),
            ]),
        })
    }
}

/// Drives a future that never waits (the image source above answers at once).
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("mutate_pod did not finish although every image lookup is ready");
}

fn config(mode: ModeKind) -> MutationConfig {
    MutationConfig {
        default_mode: mode,
        secrets_init_image: "registry.example/secrets-init/secrets-init:1.0.0".to_owned(),
        default_region: Some("eu-west-1".to_owned()),
        ..MutationConfig::default()
    }
}

fn typical_pod() -> Pod {
    serde_json::from_str(TYPICAL).unwrap_or_else(|e| panic!("benches/pods/typical.json: {e}"))
}

/// 50 containers over 10 images; even ones set `command`, every 10th has no placeholder.
fn pod_50() -> Pod {
    let containers = (0..50)
        .map(|i| Container {
            name: format!("c{i:02}"),
            image: Some(format!("registry.example/svc-{}:1.{i}", i % 10)),
            command: (i % 2 == 0).then(|| vec![format!("/bin/svc-{i}")]),
            args: Some(vec![format!("--id={i}"), "--port=$(PORT)".to_owned()]),
            env: Some(vec![
                EnvVar {
                    name: "TOKEN".into(),
                    value: Some(if i % 10 == 0 {
                        "plain".into()
                    } else {
                        format!("awssm:prod/svc-{i}#token")
                    }),
                    ..Default::default()
                },
                EnvVar {
                    name: "PORT".into(),
                    value: Some(format!("{}", 8000 + i)),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some("big-".into()),
            annotations: Some([(ANNOTATION_INJECT.to_owned(), "true".to_owned())].into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn expect_mutated(d: Result<Decision, mutation_modes::MutationError>) -> json_patch::Patch {
    match d {
        Ok(Decision::Mutated { patch, .. }) => patch,
        other => panic!("expected a mutation, got {other:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let typical = typical_pod();
    let big = pod_50();
    for mode in ModeKind::ALL {
        let cfg = config(mode);
        // Sanity: each case really mutates (a skipped pod would be a meaningless number).
        expect_mutated(run_ready(mutate_pod(&typical, &cfg, &WarmImages)));
        expect_mutated(run_ready(mutate_pod(&big, &cfg, &WarmImages)));

        c.bench_function(&format!("typical/{mode}"), |b| {
            b.iter(|| run_ready(mutate_pod(black_box(&typical), &cfg, &WarmImages)));
        });
        c.bench_function(&format!("containers-50/{mode}"), |b| {
            b.iter(|| run_ready(mutate_pod(black_box(&big), &cfg, &WarmImages)));
        });
        c.bench_function(&format!("typical-json/{mode}"), |b| {
            b.iter(|| {
                let pod: SparsePod = serde_json::from_str(black_box(TYPICAL))
                    .unwrap_or_else(|e| panic!("typical.json: {e}"));
                let patch = expect_mutated(run_ready(mutate_pod(&pod.0, &cfg, &WarmImages)));
                serde_json::to_vec(&patch).unwrap_or_else(|e| panic!("patch: {e}"))
            });
        });
    }
}

criterion_group!(mutation, benches);

/// On-CPU time of this thread in nanoseconds (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot read /proc/thread-self/schedstat (Linux only)"))
}

/// With `MUTATE_BENCH_CPU_ITERS=N`: instead of criterion, runs each `typical` and
/// `containers-50` case N times and prints the mean on-CPU and wall time per mutation, one
/// JSON line per case. On a shared machine, criterion's wall-clock figures include the time
/// other processes held the CPU; the on-CPU time does not.
fn cpu_time(iters: u32) {
    let typical = typical_pod();
    let big = pod_50();
    for mode in ModeKind::ALL {
        let cfg = config(mode);
        for (name, pod, n) in [
            ("typical", &typical, iters),
            ("containers-50", &big, iters / 10),
        ] {
            let n = n.max(1);
            let (cpu0, wall0) = (thread_cpu_ns(), std::time::Instant::now());
            for _ in 0..n {
                black_box(run_ready(mutate_pod(black_box(pod), &cfg, &WarmImages)))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            let cpu = (thread_cpu_ns() - cpu0) as f64 / f64::from(n) / 1000.0;
            let wall = wall0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
            // The harness reads stdout (bench/bench.py).
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{{\"id\":\"{name}/{mode}\",\"iterations\":{n},\"cpu_us\":{cpu:.3},\"wall_us\":{wall:.3}}}"
                );
            }
        }
    }
}

fn main() {
    if let Some(iters) = std::env::var("MUTATE_BENCH_CPU_ITERS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        cpu_time(iters);
        return;
    }
    mutation();
    Criterion::default().configure_from_args().final_summary();
}
