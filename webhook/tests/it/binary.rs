//! The real `secrets-init-webhook` binary: configuration precedence, OTLP trace export,
//! development mode with the README's example, a rolling restart under load. (Signals and
//! the shutdown sequence are in `lifecycle.rs`.)

use crate::common;
// The image tests' real registry (Debian's docker-registry) and image pusher.
use crate::images_support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;
use tokio::sync::mpsc;

use common::Process as Running;
use common::webhook_command as webhook;

fn print_config(cmd: &mut Command) -> Value {
    let out = cmd.arg("--print-config").output().expect("run binary");
    assert!(
        out.status.success(),
        "--print-config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::from_slice(&out.stdout).expect("YAML output")
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("webhook.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:1111\nmutation-mode: shared-volume\nrequest-timeout: 3\nread-timeout: 4s\ninsecure-registry: [file:5000]\n",
    )
    .expect("write");
    let cfg = print_config(
        webhook()
            .env("SECRETS_INIT_WEBHOOK_CONFIG", &file)
            .env("SECRETS_INIT_WEBHOOK_MUTATION_MODE", "image-swap")
            .env("SECRETS_INIT_WEBHOOK_REQUEST_TIMEOUT", "500ms")
            .env("SECRETS_INIT_WEBHOOK_INSECURE_REGISTRY", "a:5000,b:5000")
            .args(["--mutation-mode", "init-container"]),
    );
    assert_eq!(
        cfg["mutation-mode"], "init-container",
        "flag beats env and file"
    );
    assert_eq!(cfg["request-timeout"], "500ms", "env beats file");
    assert_eq!(
        cfg["insecure-registry"],
        serde_json::json!(["a:5000", "b:5000"]),
        "env list, comma-separated"
    );
    assert_eq!(cfg["read-timeout"], "4s", "file beats default");
    assert_eq!(cfg["listen"], "127.0.0.1:1111", "file beats default");
    assert_eq!(cfg["max-body-bytes"], 4 * 1024 * 1024, "default");
    assert_eq!(cfg["metrics-listen"], "0.0.0.0:9090", "default");
    assert_eq!(cfg["log-format"], "json", "default");
    // Repeated flags add up and beat env.
    let cfg = print_config(
        webhook()
            .env("SECRETS_INIT_WEBHOOK_INSECURE_REGISTRY", "a:5000")
            .args([
                "--insecure-registry",
                "x:1",
                "--insecure-registry",
                "y:2,z:3",
            ]),
    );
    assert_eq!(
        cfg["insecure-registry"],
        serde_json::json!(["x:1", "y:2", "z:3"])
    );
}

#[test]
fn shipped_default_config_holds_every_key_at_its_default() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/webhook.yaml");
    let from_file = print_config(webhook().arg("--config").arg(&shipped));
    let defaults = print_config(&mut webhook());
    assert_eq!(
        from_file, defaults,
        "config/webhook.yaml documents the defaults"
    );
    let text = std::fs::read_to_string(&shipped).expect("read");
    for key in secrets_init_webhook::config::file_keys() {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{key}:"))),
            "config/webhook.yaml lacks key {key}"
        );
    }
}

#[test]
fn bad_configuration_fails_with_a_message_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("webhook.yaml");
    std::fs::write(&file, "listen: 127.0.0.1:1\nlisten-address: 0.0.0.0:1\n").expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), file.display().to_string()],
            "unknown key `listen-address`",
        ),
        (
            vec!["--mutation-mode".into(), "sidecar".into()],
            "valid values: init-container, shared-volume, image-swap",
        ),
        (
            vec!["--request-timeout".into(), "soon".into()],
            "not a duration",
        ),
        (
            vec!["--tls-cert".into(), "/nonexistent/tls.crt".into()],
            "--tls-key",
        ),
        (
            vec!["--secrets-init-image".into(), "Not An Image".into()],
            "--secrets-init-image \"Not An Image\" is not a valid image reference",
        ),
        (
            vec!["--run-as-user".into(), "0".into()],
            "`0` is not a user id",
        ),
        (
            vec!["--init-container-memory".into(), "lots".into()],
            "not a positive Kubernetes quantity",
        ),
        (
            vec!["--image-swap-template".into(), "nope".into()],
            "image-swap template",
        ),
        (
            vec!["--max-body-bytes".into(), "4 lots".into()],
            "unknown size unit",
        ),
    ];
    for (args, fragment) in cases {
        let out = webhook()
            .args(&args)
            .arg("--print-config")
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} must fail as a usage error: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
        assert!(
            stderr.contains(fragment),
            "{args:?}: stderr {stderr:?} lacks {fragment:?}"
        );
    }
}

fn insecure_client() -> reqwest::Client {
    crate::common::http()
        .tls_backend_preconfigured(dev_tls_config())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Development mode serves a self-signed certificate; these tests trust it blindly
/// (HTTP/1.1 only, for the raw-socket request below).
fn dev_tls_config() -> rustls::ClientConfig {
    let mut c = common::insecure_client_config();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c
}

#[tokio::test]
async fn readme_example_in_development_mode_returns_a_patch() {
    let running = Running::start(&["--shutdown-delay", "0"], &[]);
    assert!(
        running.logged("DEVELOPMENT MODE: no --tls-cert/--tls-key given, serving an in-memory SELF-SIGNED certificate. Never use this in a cluster: the API server will not trust it."),
        "development mode is announced loudly"
    );
    let resp = insecure_client()
        .post(format!("https://{}/mutate", running.addr))
        .header("Content-Type", "application/json")
        .body(common::example("pod-with-command.json"))
        .send()
        .await
        .expect("POST /mutate");
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["response"]["allowed"], true);
    assert_eq!(v["response"]["patchType"], "JSONPatch");
    running.sigterm();
}

/// Collects exported spans.
struct Receiver(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test]
async fn spans_go_to_the_otlp_endpoint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let otlp_addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let incoming = futures::stream::unfold(listener, |l| async move {
        let accepted = l.accept().await.map(|(s, _)| s);
        Some((accepted, l))
    });
    let receiver = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Receiver(tx)))
            .serve_with_incoming(incoming),
    );

    let endpoint = format!("http://{otlp_addr}");
    let mut running = Running::start(
        &["--shutdown-delay", "0"],
        &[
            ("OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let resp = insecure_client()
        .post(format!("https://{}/mutate", running.addr))
        .body(common::example("pod-with-command.json"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200);

    let span = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(req) = rx.recv().await {
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    for span in ss.spans {
                        if span.name == "admission" {
                            return Some((rs.resource.clone(), span));
                        }
                    }
                }
            }
        }
        None
    })
    .await
    .expect("an admission span within 20 s")
    .expect("receiver open");
    let (resource, span) = span;
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(
        attr("uid").contains("705ab4f5-6393-11e8-b7cc-42010a800002"),
        "{:?}",
        span.attributes
    );
    assert!(attr("namespace").contains("demo"));
    assert!(attr("pod").contains("myapp"));
    assert!(attr("mode").contains("init-container"));
    assert!(attr("result").contains("mutated"));
    let service = resource
        .map(|r| format!("{:?}", r.attributes))
        .unwrap_or_default();
    assert!(
        service.contains("secrets-init-webhook"),
        "service.name: {service}"
    );

    running.sigterm();
    assert!(running.wait_exit(Duration::from_secs(15)).success());
    receiver.abort();
}

#[tokio::test]
async fn metrics_port_of_the_binary_is_plain_http() {
    let running = Running::start(&["--shutdown-delay", "0"], &[]);
    let text = crate::common::http()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{}/metrics", running.metrics_addr))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let m = common::parse_metrics(&text);
    // Every metric of contract section 6, exactly so named, plus process metrics.
    for key in [
        "secrets_init_webhook_admission_requests_total{result=\"mutated\"}",
        "secrets_init_webhook_admission_requests_total{result=\"skipped\"}",
        "secrets_init_webhook_admission_requests_total{result=\"denied\"}",
        "secrets_init_webhook_admission_requests_total{result=\"error\"}",
        "secrets_init_webhook_admission_duration_seconds_count",
        "secrets_init_webhook_image_config_requests_total{result=\"hit\"}",
        "secrets_init_webhook_image_config_requests_total{result=\"miss\"}",
        "secrets_init_webhook_image_config_requests_total{result=\"error\"}",
        "secrets_init_webhook_image_config_fetch_duration_seconds_count",
        "secrets_init_webhook_tls_reloads_total{result=\"ok\"}",
        "secrets_init_webhook_tls_reloads_total{result=\"error\"}",
        "secrets_init_webhook_tls_cert_expiry_timestamp_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
    ] {
        assert!(m.contains_key(key), "missing {key}");
    }
    running.sigterm();
}

/// `pod-needs-registry.json` with its image pointed at `image`.
fn review_for_image(image: &str) -> Vec<u8> {
    let mut v: Value =
        serde_json::from_slice(&common::example("pod-needs-registry.json")).expect("json");
    v["request"]["object"]["spec"]["containers"][0]["image"] = Value::String(image.to_owned());
    serde_json::to_vec(&v).expect("json")
}

#[tokio::test]
async fn image_config_comes_from_a_real_registry_and_is_cached() {
    let registry = images_support::TestRegistry::start().await;
    registry
        .push_image(
            "myapp",
            "1.4.2",
            &images_support::TestImage::new(Some(&["/app/server"]), Some(&["--port", "8080"])),
        )
        .await;
    let running = Running::start(
        &[
            "--shutdown-delay",
            "0",
            "--insecure-registry",
            &registry.addr,
        ],
        &[],
    );
    let image = format!("{}/myapp:1.4.2", registry.addr);
    let client = insecure_client();
    for _ in 0..2 {
        let v: Value = client
            .post(format!("https://{}/mutate", running.addr))
            .body(review_for_image(&image))
            .send()
            .await
            .expect("POST")
            .json()
            .await
            .expect("json");
        assert_eq!(v["response"]["allowed"], true, "{v}");
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().expect("base64 patch"))
            .expect("base64");
        let patch = String::from_utf8(bytes).expect("utf8");
        assert!(
            patch.contains("/app/server") && patch.contains("8080"),
            "program from the image config: {patch}"
        );
    }
    let m = common::scrape(running.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_image_config_requests_total{result=\"miss\"}"],
        1.0
    );
    assert_eq!(
        m["secrets_init_webhook_image_config_requests_total{result=\"hit\"}"],
        1.0
    );
    assert_eq!(
        m["secrets_init_webhook_admission_requests_total{result=\"mutated\"}"],
        2.0
    );
    running.sigterm();
}

#[tokio::test]
async fn a_registry_that_never_answers_gets_a_timely_denial_naming_the_image() {
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let registry = silent_addr.to_string();
    let running = Running::start(
        &[
            "--shutdown-delay",
            "0",
            "--insecure-registry",
            &registry,
            "--request-timeout",
            "1s",
            "--registry-timeout",
            "30s",
        ],
        &[],
    );
    let image = format!("{registry}/myapp:1.4.2");
    let started = std::time::Instant::now();
    let resp = insecure_client()
        .post(format!("https://{}/mutate", running.addr))
        .body(review_for_image(&image))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 200, "a denial, not a 5xx");
    let v: Value = resp.json().await.expect("json");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered near the 1 s deadline"
    );
    assert_eq!(v["response"]["allowed"], false);
    let msg = v["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(msg.contains("timed out after 1s"), "{msg}");
    assert!(msg.contains(&image), "names the image: {msg}");
    running.sigterm();
    hold.abort();
}

/// A TCP balancer as kube-proxy behaves for a Service: a new connection goes to a backend
/// whose `/readyz` answered 200 at its last check (every 50 ms); established connections stay
/// where they are.
struct Balancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<(SocketAddr, bool)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Balancer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let backends: Arc<Mutex<Vec<(SocketAddr, bool)>>> = Arc::default();
        let checker = {
            let backends = backends.clone();
            tokio::spawn(async move {
                let client = crate::common::http()
                    .tls_backend_preconfigured(dev_tls_config())
                    .no_proxy()
                    .timeout(Duration::from_millis(500))
                    .build()
                    .expect("client");
                loop {
                    let addrs: Vec<SocketAddr> =
                        backends.lock().expect("lock").iter().map(|b| b.0).collect();
                    for a in addrs {
                        let ready = client
                            .get(format!("https://{a}/readyz"))
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 200);
                        for b in backends.lock().expect("lock").iter_mut() {
                            if b.0 == a {
                                b.1 = ready;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let proxy = {
            let backends = backends.clone();
            tokio::spawn(async move {
                let mut next = 0usize;
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let ready: Vec<SocketAddr> = backends
                        .lock()
                        .expect("lock")
                        .iter()
                        .filter(|b| b.1)
                        .map(|b| b.0)
                        .collect();
                    if ready.is_empty() {
                        continue; // dropped: the client sees a refused connection
                    }
                    next = next.wrapping_add(1);
                    let target = ready[next % ready.len()];
                    tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            })
        };
        Self {
            addr,
            backends,
            tasks: vec![checker, proxy],
        }
    }

    /// Adds a backend and waits until the balancer has seen it ready.
    async fn add(&self, backend: SocketAddr) {
        self.backends.lock().expect("lock").push((backend, false));
        common::eventually(
            Duration::from_secs(30),
            "the balancer sees the replica ready",
            || async {
                self.backends
                    .lock()
                    .expect("lock")
                    .iter()
                    .any(|b| b.0 == backend && b.1)
                    .then_some(())
            },
        )
        .await;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn mutated_count(r: &Running) -> f64 {
    common::scrape(r.metrics_addr)
        .await
        .get("secrets_init_webhook_admission_requests_total{result=\"mutated\"}")
        .copied()
        .unwrap_or_default()
}

async fn serves_at_least(r: &Running, n: f64) {
    common::eventually(
        Duration::from_secs(60),
        "the replica serves its share",
        || async { (mutated_count(r).await >= n).then_some(()) },
    )
    .await;
}

async fn exits(r: &mut Running, within: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = r.try_wait() {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Status codes and errors from `hey`'s report.
fn hey_report(out: &str) -> (u64, u64, Vec<String>) {
    let (mut ok, mut other, mut errors) = (0, 0, Vec::new());
    let mut section = "";
    for line in out.lines() {
        let t = line.trim();
        if t.ends_with("distribution:") {
            section = if t.starts_with("Status code") {
                "status"
            } else if t.starts_with("Error") {
                "error"
            } else {
                ""
            };
            continue;
        }
        let Some(rest) = t.strip_prefix('[') else {
            continue;
        };
        let Some((key, tail)) = rest.split_once(']') else {
            continue;
        };
        match section {
            "status" => {
                let n: u64 = tail
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if key == "200" { ok += n } else { other += n }
            }
            "error" => errors.push(format!("{key} × {}", tail.trim())),
            _ => {}
        }
    }
    (ok, other, errors)
}

/// Issue 17: two rolling replacements under a Go HTTP/1.1 keep-alive client (`hey`, Go's
/// net/http, 16 connections, like the API server's pool), behind a readiness-aware balancer:
/// every admission is answered 200. Before the replicas told their connections to close
/// (`Connection: close` on each answer once shutdown began), clients sent requests on pooled
/// connections the draining replica was closing: `Post ...: EOF`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_keep_alive_load_fails_no_admission() {
    let hey = images_support::require_tool("hey");
    let replica = || {
        Running::start(
            &["--shutdown-delay", "2s", "--shutdown-timeout", "10s"],
            &[],
        )
    };
    let lb = Balancer::start().await;
    let mut a = replica();
    lb.add(a.addr).await;

    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("review.json");
    std::fs::write(&body, common::example("pod-with-command.json")).expect("write");
    // -host: hey puts the Host header into the TLS server name, and rustls refuses an IP
    // address there.
    let mut load = Command::new(hey)
        .args(["-z", "300s", "-c", "16", "-host", "localhost", "-m", "POST"])
        .args(["-T", "application/json", "-D"])
        .arg(&body)
        .arg(format!("https://{}/mutate", lb.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hey");
    // Both pipes are read while hey runs: a pipe nobody reads blocks hey once it is full.
    let report = common::read_all(load.stdout.take().expect("stdout"));
    let hey_errors = common::read_all(load.stderr.take().expect("stderr"));
    // A failing assertion below must not leave hey loading the machine for 300 s.
    let mut load = common::KillOnDrop(load);

    serves_at_least(&a, 300.0).await;
    let mut b = replica();
    lb.add(b.addr).await;
    a.sigterm();
    assert!(exits(&mut a, Duration::from_secs(30)).await.success());
    let before = mutated_count(&b).await;
    serves_at_least(&b, before + 300.0).await;

    let c = replica();
    lb.add(c.addr).await;
    b.sigterm();
    assert!(exits(&mut b, Duration::from_secs(30)).await.success());
    serves_at_least(&c, 300.0).await;

    // hey prints its report on SIGINT.
    let status = Command::new("kill")
        .args(["-INT", &load.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = load.0.wait().expect("hey exits");
    let out = report.join().expect("hey's report");
    let err_out = hey_errors.join().expect("hey's stderr");
    let (ok, other, errors) = hey_report(&out);
    eprintln!(
        "rolling restart: {ok} admissions answered 200, {other} other statuses, errors: {errors:?}"
    );
    assert!(exit.success() || ok > 0, "hey failed: {out}{err_out}");
    assert!(ok >= 900, "too little load to mean anything: {out}");
    assert!(
        other == 0 && errors.is_empty(),
        "admissions failed across the rolling restart: {other} non-200, errors {errors:?}\n{out}"
    );
}
