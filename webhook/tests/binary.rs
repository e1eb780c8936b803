//! The real `secrets-init-webhook` binary: configuration precedence, SIGTERM drain with a
//! request in flight, OTLP trace export, development mode with the README's example.

mod common;
// The image tests' real registry (Debian's docker-registry) and image pusher.
#[path = "images_support/mod.rs"]
mod images_support;

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_secrets-init-webhook");

/// A command with a clean environment (no stray `SECRETS_INIT_WEBHOOK_*` from the caller).
fn webhook() -> Command {
    let mut c = Command::new(BIN);
    c.env_clear();
    c.stdin(Stdio::null());
    c
}

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

/// A running binary whose JSON log lines are collected.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
}

impl Running {
    fn start(extra_args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let mut cmd = webhook();
        cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn webhook");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Log lines are JSON; a final error line (from main) is plain text.
                    let v = serde_json::from_str::<Value>(&line).unwrap_or(Value::String(line));
                    if v["fields"]["message"] == "secrets-init-webhook serving" {
                        let parse = |k: &str| v["fields"][k].as_str().and_then(|s| s.parse().ok());
                        if let (Some(a), Some(m)) = (parse("listen"), parse("metrics_listen")) {
                            let _ = tx.send((a, m));
                        }
                    }
                    lines.lock().expect("lock").push(v);
                }
            })
        };
        let (addr, metrics_addr) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the webhook logs its listen addresses within 30 s");
        Self {
            child,
            lines,
            reader: Some(reader),
            addr,
            metrics_addr,
        }
    }

    /// After exit: waits until every log line has been read.
    fn join_logs(&mut self) {
        if let Some(r) = self.reader.take() {
            r.join().expect("log reader");
        }
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit within `within`; kills and fails otherwise.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the webhook did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logged(&self, message: &str) -> bool {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .any(|v| v["fields"]["message"] == message)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn insecure_client() -> reqwest::Client {
    reqwest::Client::builder()
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

#[tokio::test]
async fn sigterm_turns_readiness_off_and_drains_in_flight_requests() {
    let mut running = Running::start(
        &["--shutdown-delay", "1s", "--shutdown-timeout", "10s"],
        &[],
    );
    let addr = running.addr;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(dev_tls_config()));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");

    // A request in flight: headers and half the body sent.
    let body = common::example("pod-with-command.json");
    let (first, rest) = body.split_at(body.len() / 2);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector
        .connect(name.clone(), tcp)
        .await
        .expect("handshake");
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(first).await.expect("first half");
    tls.flush().await.expect("flush");

    running.sigterm();

    // Readiness turns false while the server still answers.
    let readyz = |c: reqwest::Client| async move {
        c.get(format!("https://{addr}/readyz"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    common::eventually(Duration::from_secs(5), "/readyz to report 503", || {
        let c = insecure_client();
        async move { (readyz(c).await? == 503).then_some(()) }
    })
    .await;
    // Then the listener closes: new connections are refused.
    common::eventually(
        Duration::from_secs(5),
        "the listener to close",
        || async move {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;

    // The in-flight request still completes.
    tls.write_all(rest).await.expect("rest of the body");
    tls.flush().await.expect("flush");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("705ab4f5-6393-11e8-b7cc-42010a800002"),
        "uid echoed: {text}"
    );
    assert!(text.contains("\"allowed\":true"), "{text}");

    let status = running.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "clean exit after drain: {status:?}");
    running.join_logs();
    assert!(running.logged("all connections drained"));
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
    let text = reqwest::Client::builder()
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
