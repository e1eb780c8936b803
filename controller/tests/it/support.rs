//! Test support: the peers the real `secrets-init-controller` binary talks to in these tests,
//! each a child process killed on drop:
//!
//! - [`Moto`]: `moto_server` (Secrets Manager, Parameter Store, SQS, EventBridge), driven by
//!   the tests through its JSON protocols with a minimal HTTP client ([`http`]);
//! - [`ApiServer`]: the stand-in Kubernetes API server (`tests/apiserver/fake_kube_apiserver.py`),
//!   with a bearer token, its request log and test controls;
//! - [`Controller`]: the controller binary with a kubeconfig for the fake, moto as its AWS
//!   endpoint, its JSON log on a file and its `/metrics` read back.
//!
//! Every wait is a bounded poll on a condition ([`wait_for`]); nothing sleeps hoping. A
//! missing python3 or moto_server fails the test with a message (never a skip).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any one condition may take to become true: generous, for a loaded 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(60);
pub const REGION: &str = "us-east-1";
/// moto's default account (the one the access key `testing` maps to).
pub const ACCOUNT: &str = "123456789012";

/// Finds a prerequisite: the project's venv first (`scripts/setup python`), then PATH. A
/// missing tool fails the test.
pub fn tool(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join(".tools/venv/bin"), root.join(".tools/bin")];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found in .tools/venv/bin, .tools/bin or on PATH: run `bash scripts/setup python`")
        })
}

/// A port free now (bound and released). Only where a fixed port is needed: the controller's
/// `--listen` (retried when taken in between) and the API server that must come back on the
/// same port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `n` random bytes as hex, from /dev/urandom: the secret values, unique per test.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `check` every 100 ms until it gives a value; panics naming `what` after `within`.
pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client (one request per connection).

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request to `url` (`http://host:port/path?query`), `Connection: close`, read to the
/// end; chunked and Content-Length bodies both understood.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    let body = body.unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut payload = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        payload = dechunk(&payload)?;
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        payload.truncate(n);
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&payload).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| std::io::Error::other("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&data[..size.min(data.len())]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Reads a child's line-oriented output for its whole life (a full pipe would stall it),
/// sending the first line `pick` accepts, or everything seen when it ends first.
fn watch_output(
    out: impl std::io::Read + Send + 'static,
    pick: fn(&str) -> Option<u16>,
    log: Option<PathBuf>,
) -> mpsc::Receiver<Result<u16, String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut seen = Vec::new();
        let mut file = log.and_then(|p| {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        for line in BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if tx.is_none() {
                continue;
            }
            match pick(&line) {
                Some(port) => {
                    let _ = tx.take().map(|t| t.send(Ok(port)));
                }
                None if seen.len() < 200 => seen.push(line),
                None => {}
            }
        }
        if let Some(t) = tx {
            let _ = t.send(Err(seen.join("\n")));
        }
    });
    rx
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// moto

/// A `moto_server` on a free loopback port (it binds port 0 and says which), killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Self {
        let mut child = Command::new(tool("moto_server"))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moto_server");
        let stderr = child.stderr.take().expect("moto stderr");
        // werkzeug: ` * Running on http://127.0.0.1:PORT`
        let rx = watch_output(
            stderr,
            |line| {
                line.split_once("Running on http://")
                    .and_then(|(_, url)| url.rsplit(':').next())
                    .and_then(|p| p.trim().trim_end_matches('/').parse().ok())
            },
            None,
        );
        let port = match rx.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            Ok(Err(said)) => {
                kill(&mut child);
                panic!("moto_server ended before listening; it said:\n{said}");
            }
            Err(_) => {
                kill(&mut child);
                panic!("moto_server did not say its port within {PATIENCE:?}");
            }
        };
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let page =
            http("GET", &format!("{}/moto-api/", moto.endpoint), &[], None).expect("moto answers");
        assert!(
            page.body.contains("<title>Moto</title>"),
            "what answers on {port} is not moto"
        );
        moto
    }

    /// One JSON-protocol call: `service` is the signing name (`secretsmanager`, `ssm`,
    /// `sqs`, `events`), `target` the `X-Amz-Target`. moto routes by the credential scope
    /// and does not check the signature.
    pub fn call(&self, service: &str, target: &str, body: &Value) -> Value {
        let content_type = if service == "sqs" {
            "application/x-amz-json-1.0"
        } else {
            "application/x-amz-json-1.1"
        };
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"
        );
        let body = body.to_string();
        let r = http(
            "POST",
            &format!("{}/", self.endpoint),
            &[
                ("Content-Type", content_type),
                ("X-Amz-Target", target),
                ("Authorization", &auth),
            ],
            Some(body.as_bytes()),
        )
        .unwrap_or_else(|e| panic!("{target}: {e}"));
        assert_eq!(r.status, 200, "{target} {body}: {}", r.body);
        if r.body.trim().is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// Creates a secret with `value`; its version id.
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        let out = self.call(
            "secretsmanager",
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": value}),
        );
        out["VersionId"].as_str().expect("VersionId").to_owned()
    }

    /// A new `AWSCURRENT` version; its id.
    pub fn put_secret_value(&self, name: &str, value: &str) -> String {
        let out = self.call(
            "secretsmanager",
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": name, "SecretString": value}),
        );
        out["VersionId"].as_str().expect("VersionId").to_owned()
    }

    /// Writes a String parameter (overwriting); its new version.
    pub fn put_parameter(&self, name: &str, value: &str) -> i64 {
        let out = self.call(
            "ssm",
            "AmazonSSM.PutParameter",
            &json!({"Name": name, "Value": value, "Type": "String", "Overwrite": true}),
        );
        out["Version"].as_i64().expect("Version")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------
// The stand-in Kubernetes API server

/// `fake_kube_apiserver.py` with a random bearer token, killed on drop; its stderr goes to
/// a file, shown when a test fails.
#[derive(Debug)]
pub struct ApiServer {
    child: Child,
    pub url: String,
    pub token: String,
    log: PathBuf,
}

impl ApiServer {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, 0, None, &random_hex(16))
    }

    /// On `port` (0: a free one), with `--state state` when given.
    pub fn start_with(dir: &Path, port: u16, state: Option<&Path>, token: &str) -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/apiserver/fake_kube_apiserver.py");
        let log = dir.join("apiserver.log");
        let mut cmd = Command::new(tool("python3"));
        cmd.arg(&script)
            .args(["--port", &port.to_string(), "--token", token])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("apiserver log"),
            );
        if let Some(state) = state {
            cmd.arg("--state").arg(state);
        }
        let mut child = cmd.spawn().expect("spawn python3 fake_kube_apiserver.py");
        let stdout = child.stdout.take().expect("apiserver stdout");
        let rx = watch_output(
            stdout,
            |line| {
                line.strip_prefix("listening on http://127.0.0.1:")
                    .and_then(|p| p.trim().parse().ok())
            },
            None,
        );
        let port = match rx.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            Ok(Err(said)) => {
                kill(&mut child);
                panic!(
                    "the fake API server ended before listening:\n{said}\n{}",
                    tail(&log, 40)
                );
            }
            Err(_) => {
                kill(&mut child);
                panic!("the fake API server did not say its port within {PATIENCE:?}");
            }
        };
        ApiServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            token: token.to_owned(),
            log,
        }
    }

    /// Kills the process at once (SIGKILL), as if the API server went away.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let text = body.map(Value::to_string);
        let r = http(
            method,
            &format!("{}{path}", self.url),
            &[("Content-Type", "application/json")],
            text.as_deref().map(str::as_bytes),
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.body);
        r.json()
    }

    /// Creates or replaces objects exactly as given (an object or an array).
    pub fn put_objects(&self, objects: &Value) -> Value {
        self.control("POST", "/_test/objects", Some(objects))
    }

    /// Ends every open watch with 410 and forgets the history.
    pub fn expire(&self) -> Value {
        self.control("POST", "/_test/expire", Some(&json!({})))
    }

    /// The open watches (`[{"path","query","resourceVersion"}]`).
    pub fn watches(&self) -> Vec<Value> {
        match self.control("GET", "/_test/watches", None) {
            Value::Array(a) => a,
            other => panic!("watches: {other}"),
        }
    }

    /// Every request seen (oldest first).
    pub fn requests(&self) -> Vec<Value> {
        match self.control("GET", "/_test/requests", None) {
            Value::Array(a) => a,
            other => panic!("requests: {other}"),
        }
    }

    /// The number of PATCH requests to `path`.
    pub fn patches(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["path"] == path)
            .count()
    }

    /// GET with the token; None on 404.
    pub fn get(&self, path: &str) -> Option<Value> {
        let auth = format!("Bearer {}", self.token);
        let r = http(
            "GET",
            &format!("{}{path}", self.url),
            &[("Authorization", &auth)],
            None,
        )
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("GET {path}: {s} {}", r.body),
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        kill(&mut self.child);
        if std::thread::panicking() {
            eprintln!(
                "--- fake API server log (last lines) ---\n{}",
                tail(&self.log, 30)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The controller

/// Where a controller finds its peers: fixed at spawn, so the API server may go away and
/// come back on the same port while the controller runs.
#[derive(Debug, Clone)]
pub struct Peers {
    pub api_url: String,
    pub token: String,
    pub aws_endpoint: String,
}

impl Peers {
    pub fn new(api: &ApiServer, moto: &Moto) -> Self {
        Peers {
            api_url: api.url.clone(),
            token: api.token.clone(),
            aws_endpoint: moto.endpoint.clone(),
        }
    }
}

/// The real controller binary, killed (SIGKILL) on drop; its JSON log (stderr) is a file.
#[derive(Debug)]
pub struct Controller {
    child: Child,
    pub metrics_url: String,
    pub log: PathBuf,
    pub name: String,
}

/// The flags every test's controller gets unless it gives them itself.
pub const BASE_FLAGS: &[(&str, &str)] = &[
    ("--poll-interval", "1s"),
    ("--lease-duration", "3s"),
    ("--lease-namespace", "default"),
    ("--log-format", "json"),
];

impl Controller {
    /// Starts `secrets-init-controller` named `name` (its identity and log file in `dir`)
    /// with `flags` and the [`BASE_FLAGS`] it does not give, and waits until /metrics answers.
    pub fn start(dir: &Path, name: &str, peers: &Peers, flags: &[&str]) -> Self {
        Self::try_start(dir, name, peers, flags)
            .unwrap_or_else(|e| panic!("controller {name} did not start: {e}"))
    }

    /// As [`Controller::start`], for a start that is meant to fail: how it exited and the
    /// end of its log.
    pub fn start_fails(dir: &Path, name: &str, peers: &Peers, flags: &[&str]) -> String {
        match Self::try_start(dir, name, peers, flags) {
            Ok(mut c) => {
                c.kill();
                panic!("controller {name} started, but should have refused to")
            }
            Err(e) => e,
        }
    }

    fn try_start(dir: &Path, name: &str, peers: &Peers, flags: &[&str]) -> Result<Self, String> {
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: test\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: test\n    namespace: default\ncurrent-context: fake\n",
                peers.api_url, peers.token
            ),
        )
        .expect("write kubeconfig");
        let home = dir.join(format!("{name}.home"));
        fs::create_dir_all(&home).expect("home");
        let log = dir.join(format!("{name}.log"));
        let mut last_error = String::new();
        // The listen port is picked free and handed over; another process may take it in
        // between, and then the controller says so and exits: try again with another.
        for _ in 0..5 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut args: Vec<&str> = Vec::new();
            for (flag, value) in BASE_FLAGS {
                if !flags.contains(flag) {
                    args.extend([*flag, *value]);
                }
            }
            args.extend(["--identity", name, "--listen", &listen]);
            args.extend(flags);
            let file = fs::File::create(&log).expect("controller log");
            let mut child = Command::new(env!("CARGO_BIN_EXE_secrets-init-controller"))
                .args(&args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &home)
                .env("KUBECONFIG", &kubeconfig)
                .env("AWS_ENDPOINT_URL", &peers.aws_endpoint)
                .env("AWS_REGION", REGION)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("spawn secrets-init-controller");
            let metrics_url = format!("http://{listen}/metrics");
            let start = Instant::now();
            loop {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    last_error = format!("exited ({status}):\n{}", tail(&log, 20));
                    break;
                }
                if http("GET", &metrics_url, &[], None).is_ok_and(|r| r.status == 200) {
                    return Ok(Controller {
                        child,
                        metrics_url,
                        log,
                        name: name.to_owned(),
                    });
                }
                if start.elapsed() > PATIENCE {
                    kill(&mut child);
                    panic!(
                        "controller {name}: /metrics did not answer within {PATIENCE:?}:\n{}",
                        tail(&log, 20)
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if !last_error.contains("cannot listen") {
                break;
            }
        }
        Err(last_error)
    }

    /// The current metrics.
    pub fn metrics(&self) -> Metrics {
        let r = http("GET", &self.metrics_url, &[], None)
            .unwrap_or_else(|e| panic!("{}: GET /metrics: {e}", self.name));
        assert_eq!(r.status, 200, "{}: /metrics: {}", self.name, r.body);
        Metrics::parse(&r.body)
    }

    /// The raw metrics text (for the no-value check).
    pub fn metrics_text(&self) -> String {
        http("GET", &self.metrics_url, &[], None)
            .map(|r| r.body)
            .unwrap_or_default()
    }

    /// Waits until the controller has finished `n` more poll rounds than it had now.
    pub fn wait_rounds(&self, n: f64) {
        let from = self
            .metrics()
            .value("secrets_init_controller_poll_rounds_total", &[]);
        wait_for(
            &format!("{}: {n} more poll rounds after {from}", self.name),
            PATIENCE,
            || {
                (self
                    .metrics()
                    .value("secrets_init_controller_poll_rounds_total", &[])
                    >= from + n)
                    .then_some(())
            },
        );
    }

    /// Waits until `name{labels}` equals `want`.
    pub fn wait_metric(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let what = format!("{}: {name}{labels:?} == {want}", self.name);
        let start = Instant::now();
        loop {
            let last = self.metrics().value(name, labels);
            if last == want {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "timed out waiting for {what} (last {last}):\n{}",
                tail(&self.log, 20)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// SIGTERM, then waits (bounded) for the exit; the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        wait_for(
            &format!("{} to exit after SIGTERM", self.name),
            PATIENCE,
            || self.child.try_wait().expect("try_wait"),
        )
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        kill(&mut self.child);
        if std::thread::panicking() {
            eprintln!(
                "--- controller {} log (last lines) ---\n{}",
                self.name,
                tail(&self.log, 60)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Metrics

/// A parsed Prometheus text page: `name{k="v",...}` (labels sorted) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub BTreeMap<String, f64>);

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut out = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let key = match key.split_once('{') {
                None => key.to_owned(),
                Some((name, labels)) => {
                    let labels = labels.trim_end_matches('}');
                    let pairs: Vec<(&str, &str)> = labels
                        .split(',')
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k, v.trim_matches('"')))
                        .collect();
                    series(name, &pairs)
                }
            };
            out.insert(key, value);
        }
        Metrics(out)
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.get(&series(name, labels)).copied()
    }

    /// The value, 0 when the series is absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }
}

// ---------------------------------------------------------------------------------------
// Objects

/// The env entries `[(NAME, value)]` as JSON.
fn env(vars: &[(&str, &str)]) -> Value {
    Value::Array(
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

/// The template annotations of an opted-in workload.
pub fn opted_in() -> Value {
    json!({"secretsinit.io/inject": "true", "secretsinit.io/reload": "true"})
}

/// An apps/v1 workload of `kind` (Deployment, StatefulSet, DaemonSet) with one container
/// whose env is `vars`, `template_annotations` on its pod template and `annotations` on its
/// own metadata.
pub fn workload(
    kind: &str,
    ns: &str,
    name: &str,
    vars: &[(&str, &str)],
    template_annotations: Value,
    annotations: Value,
) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}, "annotations": template_annotations},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1", "env": env(vars)}]}
        }
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": spec
    })
}

/// An opted-in Deployment referencing `vars`.
pub fn deployment(ns: &str, name: &str, vars: &[(&str, &str)]) -> Value {
    workload("Deployment", ns, name, vars, opted_in(), json!({}))
}

/// The API path of a workload.
pub fn path_of(kind: &str, ns: &str, name: &str) -> String {
    let plural = match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        other => panic!("kind {other}"),
    };
    format!("/apis/apps/v1/namespaces/{ns}/{plural}/{name}")
}

/// Everything each test starts with: moto, the fake API server and a temporary directory.
#[derive(Debug)]
pub struct World {
    // Dropped in this order: the controllers a test holds go first (they are its locals).
    pub api: ApiServer,
    pub moto: Moto,
    pub dir: tempfile::TempDir,
}

impl World {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("controller-it-")
            .tempdir()
            .expect("tempdir");
        let api = ApiServer::start(dir.path());
        let moto = Moto::start();
        World { api, moto, dir }
    }

    pub fn peers(&self) -> Peers {
        Peers::new(&self.api, &self.moto)
    }

    pub fn controller(&self, name: &str, flags: &[&str]) -> Controller {
        Controller::start(self.dir.path(), name, &self.peers(), flags)
    }

    /// Checks that none of `values` was logged by `controller`, sent in a request body to the
    /// API server, or shown in its /metrics.
    pub fn assert_no_values(&self, controllers: &[&Controller], values: &[&str]) {
        let requests = serde_json::to_string(&self.api.requests()).expect("json");
        for c in controllers {
            let log = c.log_text();
            let metrics = c.metrics_text();
            for v in values {
                assert!(!log.contains(v), "{}: a secret value is in the log", c.name);
                assert!(
                    !metrics.contains(v),
                    "{}: a secret value is in /metrics",
                    c.name
                );
            }
        }
        for v in values {
            assert!(
                !requests.contains(v),
                "a secret value is in a request to the API server"
            );
        }
    }
}
