//! Bounded work per admission (issue 12): the CPU an admission costs grows linearly with the
//! request, and what the answer echoes back stays small, whatever part of the AdmissionReview
//! a client makes big.
//!
//! Each case grows one repeated element of a pod (annotations, containers, env entries,
//! volumes, probe commands, names, the `secretsinit.io/containers` list, ...) from ~16 KiB
//! to ~1 MiB of request and measures the process CPU time of answering it through the real
//! router and layer stack. A quadratic step makes the cost per byte of the largest request
//! ~60× that of the smallest; linear work keeps the ratio near 1 (fixed per-request costs
//! even push it below 1). CPU time, not wall time, and the best of a few runs: other
//! processes on the machine do not count.
//!
//! nextest runs each test in its own process, and these with the machine to themselves
//! (`.config/nextest.toml`), so the process's CPU time is the test's.

use crate::common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::TableImages;
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use secrets_init_webhook::config::Config;
use secrets_init_webhook::metrics::Metrics;
use secrets_init_webhook::{AppState, Readiness, router};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Largest cost per byte (largest request) over the smallest request's. Linear work measures
/// 0.3–1.5 here; quadratic work ~60.
const MAX_PER_BYTE_RATIO: f64 = 4.0;
/// Every answer that is not a patch (a denial, an unchanged allow) fits in this, however big
/// the request: the API server shows it to a person.
const MAX_PLAIN_ANSWER: usize = 8 * 1024;
const SIZES: [usize; 3] = [16 << 10, 128 << 10, 1 << 20];
const RUNS: usize = 3;

/// Answers every image with an entrypoint (image-swap variants exist).
#[derive(Debug, Clone, Copy)]
struct AnyImage;

impl ImageConfigSource for AnyImage {
    async fn image_config(&self, _: &str, _: &Platform) -> Result<ImageConfig, ImageConfigError> {
        Ok(ImageConfig {
            entrypoint: Some(vec!["/app".to_owned()]),
            cmd: None,
        })
    }
}

fn app(mode: &str) -> axum::Router {
    let config = Config {
        mutation: mutation_modes::MutationConfig {
            default_mode: mode.parse().expect("mode"),
            ..Default::default()
        },
        // Measure the work, not the deadline.
        request_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    let state = AppState::from_config(
        &config,
        Metrics::new().expect("metrics"),
        Readiness::new(true),
        AnyImage,
    )
    .expect("state");
    router(state)
}

fn review(pod: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "growth-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team",
            "operation": "CREATE",
            "userInfo": {"username": "someone"},
            "object": pod,
        }
    }))
    .expect("review")
}

fn container(name: &str) -> Value {
    json!({
        "name": name,
        "image": "registry.example/app:1",
        "command": ["/app"],
        "env": [{"name": "TOKEN", "value": "awssm:prod/token"}],
    })
}

/// An annotated pod with one container `app`, changed by `edit`.
fn pod(edit: impl FnOnce(&mut Value)) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "growth",
            "namespace": "team",
            "annotations": {"secretsinit.io/inject": "true"},
        },
        "spec": {"containers": [container("app")]},
    });
    edit(&mut pod);
    pod
}

/// What the answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Mutated,
    Allowed,
    Denied,
    /// Mutated until the secrets-init flags it repeats on every container pass their budget
    /// (`MAX_ADDED_FLAG_BYTES`), denied from there on.
    MutatedWithinFlagBudget,
}

/// One growing element: a pod with `n` repetitions of it.
struct Case {
    name: &'static str,
    mode: &'static str,
    expect: Expect,
    build: fn(usize) -> Value,
}

fn annotation(pod: &mut Value, key: &str, value: Value) {
    pod["metadata"]["annotations"][key] = value;
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

const CASES: &[Case] = &[
    Case {
        name: "many foreign annotations",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                for i in 0..n {
                    annotation(p, &format!("example.com/a-{i}"), json!("v"));
                }
            })
        },
    },
    Case {
        // Decoded (the patch adds to them), so they must cost linear work too.
        name: "many labels",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                for i in 0..n {
                    p["metadata"]["labels"][format!("example.com/l-{i}")] = json!("v");
                }
            })
        },
    },
    Case {
        name: "one long foreign annotation value",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| pod(|p| annotation(p, "example.com/big", json!("x".repeat(n * 8)))),
    },
    Case {
        name: "containers annotation, unknown names",
        mode: "init-container",
        expect: Expect::Denied,
        build: |n| {
            pod(|p| {
                let list = names("missing-", n).join(",");
                annotation(p, "secretsinit.io/containers", json!(list));
            })
        },
    },
    Case {
        name: "containers annotation, one long unknown name",
        mode: "init-container",
        expect: Expect::Denied,
        build: |n| pod(|p| annotation(p, "secretsinit.io/containers", json!("n".repeat(n * 8)))),
    },
    Case {
        name: "containers annotation naming every container",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                let list = names("c", n);
                p["spec"]["containers"] = list.iter().map(|c| container(c)).collect();
                annotation(p, "secretsinit.io/containers", json!(list.join(",")));
            })
        },
    },
    Case {
        name: "containers",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| p["spec"]["containers"] = names("c", n).iter().map(|c| container(c)).collect())
        },
    },
    Case {
        name: "init containers",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                p["spec"]["initContainers"] = names("i", n).iter().map(|c| container(c)).collect();
            })
        },
    },
    Case {
        name: "containers, image-swap",
        mode: "image-swap",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                p["spec"]["containers"] = (0..n)
                    .map(|i| {
                        let mut c = container(&format!("c{i}"));
                        c["image"] = json!(format!("registry.example/team/app-{}:1.{i}", i % 7));
                        c
                    })
                    .collect();
            })
        },
    },
    Case {
        name: "env entries",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                p["spec"]["containers"][0]["env"] = (0..n)
                    .map(|i| json!({"name": format!("V{i}"), "value": format!("awssm:s#k{i}")}))
                    .collect();
            })
        },
    },
    Case {
        name: "volumes and mounts",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                p["spec"]["volumes"] = (0..n)
                    .map(|i| json!({"name": format!("v{i}"), "emptyDir": {}}))
                    .collect();
                p["spec"]["containers"][0]["volumeMounts"] = (0..n)
                    .map(|i| json!({"name": format!("v{i}"), "mountPath": format!("/m/{i}")}))
                    .collect();
            })
        },
    },
    Case {
        name: "probe command",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                annotation(p, "secretsinit.io/mutate-probes", json!("true"));
                p["spec"]["containers"][0]["livenessProbe"] =
                    json!({"exec": {"command": names("arg-$(X)-", n)}});
            })
        },
    },
    Case {
        name: "args",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| pod(|p| p["spec"]["containers"][0]["args"] = json!(names("$(V)-", n))),
    },
    Case {
        name: "one long container name",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| pod(|p| p["spec"]["containers"][0]["name"] = json!("c".repeat(n * 8))),
    },
    Case {
        name: "unknown secretsinit.io annotations",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                for i in 0..n {
                    annotation(p, &format!("secretsinit.io/x-{i}"), json!("v"));
                }
            })
        },
    },
    Case {
        name: "env-from references",
        mode: "init-container",
        expect: Expect::MutatedWithinFlagBudget,
        build: |n| {
            pod(|p| {
                let refs: Vec<String> = (0..n).map(|i| format!("awssm:prod/app-{i}")).collect();
                annotation(p, "secretsinit.io/env-from", json!(refs.join(",")));
            })
        },
    },
    Case {
        name: "containers, with env-from",
        mode: "init-container",
        expect: Expect::MutatedWithinFlagBudget,
        build: |n| {
            pod(|p| {
                annotation(
                    p,
                    "secretsinit.io/env-from",
                    json!("awssm:prod/app,awsssm:/prod/app/"),
                );
                p["spec"]["containers"] = names("c", n)
                    .iter()
                    .map(|c| json!({"name": c, "image": "registry.example/app:1", "command": ["/app"]}))
                    .collect();
            })
        },
    },
    Case {
        name: "env entries, embedded placeholders",
        mode: "init-container",
        expect: Expect::Mutated,
        build: |n| {
            pod(|p| {
                p["spec"]["containers"][0]["env"] = (0..n)
                    .map(|i| json!({"name": format!("V{i}"), "value": format!("x${{awssm:s#k{i}}}y$${{z}}")}))
                    .collect();
            })
        },
    },
    Case {
        name: "invalid region, long",
        mode: "init-container",
        expect: Expect::Denied,
        build: |n| pod(|p| annotation(p, "secretsinit.io/aws-region", json!("X".repeat(n * 8)))),
    },
    Case {
        name: "secrets-init image, long",
        mode: "init-container",
        expect: Expect::Denied,
        build: |n| {
            pod(|p| {
                let image = format!("registry.example/{}:1", "a".repeat(n * 8));
                annotation(p, "secretsinit.io/secret-init-image", json!(image));
            })
        },
    },
    Case {
        name: "containers without placeholders",
        mode: "init-container",
        expect: Expect::Allowed,
        build: |n| {
            pod(|p| {
                p["spec"]["containers"] = names("c", n)
                    .iter()
                    .map(|c| json!({"name": c, "image": "registry.example/app:1"}))
                    .collect();
            })
        },
    },
];

/// A pod of about `bytes` bytes for `case`: `n` found from a small sample.
fn sized(case: &Case, bytes: usize) -> Vec<u8> {
    let base = review((case.build)(0)).len();
    let sample = review((case.build)(64)).len();
    let per_item = ((sample - base) / 64).max(1);
    let n = bytes.saturating_sub(base) / per_item;
    review((case.build)(n.max(1)))
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn post(body: Vec<u8>) -> Request<Body> {
    Request::post("/mutate")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("request")
}

/// Sends `body`; returns the CPU time it cost and the answer.
async fn answer(app: &axum::Router, body: Vec<u8>) -> (Duration, Vec<u8>) {
    let start = cpu_time();
    let resp = app.clone().oneshot(post(body)).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("answer body");
    (cpu_time() - start, bytes.to_vec())
}

/// What is wrong with `answer` to a `request_len`-byte request, if anything.
fn check_answer(case: &Case, request_len: usize, answer: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(answer).map_err(|e| format!("not JSON: {e}"))?;
    let r = &v["response"];
    let (allowed, patched) = (r["allowed"] == json!(true), r.get("patch").is_some());
    let got = match (allowed, patched) {
        (true, true) => Expect::Mutated,
        (true, false) => Expect::Allowed,
        (false, _) => Expect::Denied,
    };
    let over_budget = || {
        r["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("the secrets-init flags would add"))
    };
    let expected = match case.expect {
        Expect::MutatedWithinFlagBudget if got == Expect::Denied && over_budget() => got,
        Expect::MutatedWithinFlagBudget => Expect::Mutated,
        e => e,
    };
    if got != expected {
        return Err(format!(
            "expected {:?}, got {got:?}: {}",
            case.expect, r["status"]["message"]
        ));
    }
    // A patch grows with the request (it rewrites what grew), but only linearly: each
    // mutated container costs a few hundred bytes of patch however small it is written, and
    // the flags repeated on each are capped (MAX_ADDED_FLAG_BYTES). Anything else is a few
    // lines for a person.
    let limit = match got {
        Expect::Mutated => 8 * request_len + (1 << 20),
        _ => MAX_PLAIN_ANSWER,
    };
    if answer.len() > limit {
        return Err(format!(
            "a {request_len}-byte request got a {}-byte answer: {}…",
            answer.len(),
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        ));
    }
    for w in r["warnings"].as_array().into_iter().flatten() {
        let w = w.as_str().unwrap_or_default();
        if w.len() > 256 {
            return Err(format!("a warning of {} bytes: {w}", w.len()));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_cost_per_byte_stays_flat_as_any_element_grows() {
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for case in CASES {
        let app = app(case.mode);
        let mut per_byte: Vec<(usize, f64)> = Vec::new();
        for &size in &SIZES {
            let body = sized(case, size);
            let len = body.len();
            let mut best = Duration::MAX;
            for _ in 0..RUNS {
                let (cpu, answer) = answer(&app, body.clone()).await;
                if let Err(e) = check_answer(case, len, &answer) {
                    failures.push(format!("{}: {e}", case.name));
                }
                best = best.min(cpu);
            }
            per_byte.push((len, best.as_secs_f64() / len as f64));
            let ratio = per_byte[per_byte.len() - 1].1 / per_byte[0].1;
            if ratio > MAX_PER_BYTE_RATIO {
                // Larger sizes would only take longer to say the same.
                failures.push(format!(
                    "{}: cost per byte grew {ratio:.1}× from {} to {len} bytes",
                    case.name, per_byte[0].0
                ));
                break;
            }
        }
        report.push(format!(
            "{:<46} {}  ratio {:.2}",
            case.name,
            per_byte
                .iter()
                .map(|(len, c)| format!("{len:>8} B: {:>6.1} ns/B", c * 1e9))
                .collect::<Vec<_>>()
                .join(" "),
            per_byte[per_byte.len() - 1].1 / per_byte[0].1
        ));
    }
    eprintln!("{}", report.join("\n"));
    failures.dedup();
    assert!(
        failures.is_empty(),
        "work or answers are not bounded by the request:\n{}\n\n{}",
        failures.join("\n"),
        report.join("\n")
    );
}

/// The case the issue was found with: a 1 MiB `secretsinit.io/containers` annotation of
/// ~145,000 unknown names got no answer within 12 s, and each unknown name was echoed back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mebibyte_containers_annotation_is_denied_at_once_with_a_short_message() {
    let config = Config::default();
    let state = AppState::from_config(
        &config,
        Metrics::new().expect("metrics"),
        Readiness::new(true),
        TableImages::default(),
    )
    .expect("state");
    let app = router(state);
    let list: Vec<String> = (0..145_000).map(|i| format!("c{i:05}")).collect();
    let list = list.join(",");
    assert!(list.len() > 1_000_000, "{}", list.len());
    let body = review(pod(|p| {
        annotation(p, "secretsinit.io/containers", json!(list));
    }));
    let started = Instant::now();
    let resp = app.oneshot(post(body)).await.expect("infallible");
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("answer");
    assert!(
        elapsed < config.request_timeout / 4,
        "answered after {elapsed:?}, --request-timeout is {:?}",
        config.request_timeout
    );
    assert!(answer.len() < 2048, "{} bytes", answer.len());
    let v: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(v["response"]["allowed"], json!(false));
    let message = v["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("\"c00000\"") && message.contains("and 144995 more"),
        "{message}"
    );
    assert!(message.contains("[\"app\"]"), "{message}");
}

/// Every annotation this webhook reads, and one it does not, with a 1 MiB value: answered
/// well within the deadline, and briefly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_annotation_of_one_mebibyte_is_answered_well_within_the_deadline() {
    let config = Config::default();
    let state = AppState::from_config(
        &config,
        Metrics::new().expect("metrics"),
        Readiness::new(true),
        AnyImage,
    )
    .expect("state");
    let app = router(state);
    let big = "a,".repeat(1 << 19);
    for key in mutation_modes::KNOWN_ANNOTATIONS
        .iter()
        .copied()
        .chain(["secretsinit.io/unknown", "example.com/foreign"])
    {
        let body = review(pod(|p| {
            if key != "secretsinit.io/inject" {
                annotation(p, key, json!(big));
            } else {
                annotation(p, "secretsinit.io/inject", json!(big));
            }
        }));
        let started = Instant::now();
        let resp = app.clone().oneshot(post(body)).await.expect("infallible");
        let elapsed = started.elapsed();
        assert_eq!(resp.status(), StatusCode::OK, "{key}");
        let answer = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("answer");
        assert!(
            elapsed < config.request_timeout / 4,
            "{key}: answered after {elapsed:?}"
        );
        let v: Value = serde_json::from_slice(&answer).expect("JSON");
        if v["response"].get("patch").is_none() {
            assert!(answer.len() < 2048, "{key}: {} bytes", answer.len());
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Small admissions keep their usual latency while large ones are being worked on: the
/// large ones' CPU work runs off the runtime workers (`offload.rs`), so the workers go on
/// serving every other connection. Before that, each ~3.5 MiB request held a worker for
/// its whole decode and mutation, and on two workers small requests queued behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_admissions_keep_their_latency_while_large_ones_are_worked_on() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let server = common::start(common::test_config(), AnyImage).await;
    let client = crate::common::http()
        .tls_backend_preconfigured(common::insecure_client_config())
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let url = format!("https://{}/mutate", server.addr);
    let small = bytes::Bytes::from(common::example("pod-with-command.json"));
    // One container with ~3 MiB of env entries: CPU-heavy to decode and check, mutated.
    let env = CASES
        .iter()
        .find(|c| c.name == "env entries")
        .expect("case");
    let large = bytes::Bytes::from(sized(env, 3 << 20));

    let post = move |body: bytes::Bytes| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let started = Instant::now();
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("answered");
            assert_eq!(resp.status(), StatusCode::OK);
            let answer: Value = resp.json().await.expect("JSON answer");
            assert!(answer["response"]["patch"].is_string(), "{answer}");
            started.elapsed()
        }
    };

    // Warm the connection pool, then the usual latency.
    post(small.clone()).await;
    let mut quiet = Vec::new();
    for _ in 0..30 {
        quiet.push(post(small.clone()).await);
    }
    let quiet = median(quiet);

    let stop = Arc::new(AtomicBool::new(false));
    let large_done = Arc::new(AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for _ in 0..3 {
        let (stop, done, body, post) = (
            stop.clone(),
            large_done.clone(),
            large.clone(),
            post.clone(),
        );
        loaders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                post(body.clone()).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Measure while at least four large requests are answered, so the samples overlap
    // their work.
    let first = large_done.load(Ordering::Relaxed);
    let mut loaded = Vec::new();
    while loaded.len() < 30 || large_done.load(Ordering::Relaxed) < first + 4 {
        // A loader that stopped (its assertion failed) would leave this waiting forever.
        if loaders.iter().any(|l| l.is_finished()) {
            break;
        }
        loaded.push(post(small.clone()).await);
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.expect("loader");
    }
    let samples = loaded.len();
    let loaded = median(loaded);
    eprintln!(
        "small admission p50: {quiet:?} quiet, {loaded:?} with {} large ones in flight ({samples} samples)",
        3
    );
    assert!(
        loaded <= quiet * 5 + Duration::from_millis(10),
        "small admissions took {loaded:?} (p50) while large ones were worked on, {quiet:?} without"
    );
    server.stop().await;
}

/// A request whose work outlasts `--request-timeout` gets the usual timeout denial at the
/// deadline, naming what it was doing, while its work is abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_request_past_its_deadline_is_denied_saying_what_timed_out() {
    let config = Config {
        // A ~3.5 MiB pod takes far longer than this to decode and mutate, in any build.
        request_timeout: Duration::from_millis(2),
        ..Config::default()
    };
    let metrics = Metrics::new().expect("metrics");
    let state = AppState::from_config(&config, metrics.clone(), Readiness::new(true), AnyImage)
        .expect("state");
    let app = router(state);
    let containers = CASES.iter().find(|c| c.name == "containers").expect("case");
    let body = sized(containers, 3 << 20 | 1 << 19);
    let resp = app.oneshot(post(body)).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    let answer = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("answer");
    let v: Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(v["response"]["uid"], "growth-1");
    assert_eq!(v["response"]["allowed"], json!(false));
    let message = v["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.contains("timed out after 2ms (--request-timeout)")
            && (message.contains("while decoding the request (3.")
                || message.contains("waiting for a turn to decode the request (3.")),
        "{message}"
    );
    let m = common::parse_metrics(&metrics.render());
    let timeouts = |stage: &str| {
        m[&format!("secrets_init_webhook_admission_timeouts_total{{stage=\"{stage}\"}}")]
    };
    assert_eq!(timeouts("cpu") + timeouts("cpu-queue"), 1.0, "{m:?}");
    assert_eq!(timeouts("registry"), 0.0);
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"error\"}"],
        1.0
    );
}
