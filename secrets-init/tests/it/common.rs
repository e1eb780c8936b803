//! Test support: a real Secrets Manager, Parameter Store and STS protocol peer
//! (`moto_server`), a counting and fault-injecting HTTP proxy in front of it, a
//! Pod-Identity-style credentials endpoint, and a runner for the built `secrets-init` binary.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub const REGION: &str = "us-east-1";
pub const STATIC_KEY: &str = "AKIASTATICAPPKEY0000";

/// Finds a prerequisite: on PATH, or where `scripts/setup` puts it. A missing tool fails
/// the test (never a skip).
pub fn tool(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(root.join(".tools/venv/bin"));
    dirs.push(root.join(".tools/bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found on PATH or in .tools/: run scripts/setup"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How long moto may take to start, answer its first request, or a run may take: generous,
/// for a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// Reads moto's stderr for the whole of its life (it logs every request there, and a full
/// pipe would stall it): the port from werkzeug's ` * Running on http://127.0.0.1:PORT` goes
/// to `port`, or, when moto exits before saying it, what it printed instead.
fn read_moto_stderr(stderr: ChildStderr, port: mpsc::Sender<Result<u16, String>>) {
    let mut port = Some(port);
    let mut before = Vec::new();
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let Some(tx) = &port else { continue };
        let line = String::from_utf8_lossy(&line).into_owned();
        let found = line
            .split_once("Running on http")
            .and_then(|(_, url)| url.rsplit(':').next())
            .and_then(|p| p.trim().parse::<u16>().ok());
        match found {
            Some(p) => {
                let _ = tx.send(Ok(p));
                port = None;
            }
            None => before.push(line),
        }
    }
    if let Some(tx) = port {
        let _ = tx.send(Err(before.join("\n")));
    }
}

/// Whether moto itself answers on `port` (its dashboard page), not some other listener.
pub fn is_moto(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let request = "GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut answer = Vec::new();
    if stream.write_all(request.as_bytes()).is_err() || stream.read_to_end(&mut answer).is_err() {
        return false;
    }
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.") && answer.contains("<title>Moto</title>")
}

/// A `moto_server` on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    runtime: tokio::runtime::Runtime,
}

impl Moto {
    pub fn start() -> Self {
        Self::spawn(None)
    }

    /// With TLS, using the given PEM certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::spawn(Some((cert, key)))
    }

    fn spawn(tls: Option<(&Path, &Path)>) -> Self {
        // Port 0: moto binds a free port itself and prints it. A port picked here and handed
        // over could be taken by another test's server in between, and any listener on it
        // would have looked like moto.
        let mut cmd = Command::new(tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((cert, key)) = tls {
            cmd.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let mut child = cmd.spawn().expect("spawn moto_server");
        let stderr = child.stderr.take().expect("moto_server stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || read_moto_stderr(stderr, tx));
        let port = match rx.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            Ok(Err(said)) => {
                let status = child.wait().expect("wait for moto_server");
                panic!("moto_server exited ({status}) before listening; it said:\n{said}");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto_server did not say which port it listens on within {PATIENCE:?}");
            }
        };
        // With TLS the port is known to be moto's from its own output; without, ask it.
        if tls.is_none() && !is_moto(port) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("moto_server said it listens on {port}, but what answers there is not moto");
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        Moto {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
        }
    }

    pub fn client(&self, region: &str) -> Client {
        self.client_as(region, test_credentials())
    }

    /// A Secrets Manager client signing with `credentials` (moto keeps one store per
    /// account, and an assumed role's keys are another account's when its ARN says so).
    pub fn client_as(&self, region: &str, credentials: Credentials) -> Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Client::from_conf(config)
    }

    pub fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        self.ssm_as(region, test_credentials())
    }

    pub fn ssm_as(&self, region: &str, credentials: Credentials) -> aws_sdk_ssm::Client {
        let config = aws_sdk_ssm::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        aws_sdk_ssm::Client::from_conf(config)
    }

    /// Puts a parameter (a new version when it exists); returns its version.
    pub fn put_parameter(&self, name: &str, value: &str, kind: &str) -> i64 {
        self.put_parameter_with(&self.ssm(REGION), name, value, kind)
    }

    pub fn put_parameter_with(
        &self,
        client: &aws_sdk_ssm::Client,
        name: &str,
        value: &str,
        kind: &str,
    ) -> i64 {
        self.block_on(async {
            client
                .put_parameter()
                .name(name)
                .value(value)
                .r#type(aws_sdk_ssm::types::ParameterType::from(kind))
                .overwrite(true)
                .send()
                .await
                .unwrap_or_else(|e| panic!("put parameter {name}: {e:?}"))
                .version()
        })
    }

    /// Gives `version` of a parameter the label `label`.
    pub fn label_parameter(&self, name: &str, version: i64, label: &str) {
        let client = self.ssm(REGION);
        self.block_on(async {
            client
                .label_parameter_version()
                .name(name)
                .parameter_version(version)
                .labels(label)
                .send()
                .await
                .unwrap_or_else(|e| panic!("label {name}: {e:?}"));
        });
    }

    /// Assumes `role_arn` directly (as the test, not through secrets-init): the credentials
    /// to seed another account's secrets and parameters with.
    pub fn assume(&self, role_arn: &str) -> Credentials {
        let config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(test_credentials())
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let client = aws_sdk_sts::Client::from_conf(config);
        self.block_on(async {
            let out = client
                .assume_role()
                .role_arn(role_arn)
                .role_session_name("test-seed")
                .send()
                .await
                .unwrap_or_else(|e| panic!("assume {role_arn}: {e:?}"));
            let c = out.credentials().expect("credentials");
            Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                None,
                "assumed-by-the-test",
            )
        })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Creates a string secret and returns its ARN.
    pub fn create(&self, name: &str, value: &str) -> String {
        self.create_in(REGION, name, value)
    }

    pub fn create_in(&self, region: &str, name: &str, value: &str) -> String {
        let client = self.client(region);
        self.block_on(async {
            let out = client
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
            out.arn().expect("arn").to_owned()
        })
    }

    pub fn create_binary(&self, name: &str, bytes: &[u8]) {
        let client = self.client(REGION);
        self.block_on(async {
            client
                .create_secret()
                .name(name)
                .secret_binary(aws_smithy_types::Blob::new(bytes.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        });
    }

    /// Puts a new version; returns its version id.
    pub fn put_version(&self, name: &str, value: &str, stages: &[&str]) -> String {
        let client = self.client(REGION);
        self.block_on(async {
            let mut req = client
                .put_secret_value()
                .secret_id(name)
                .secret_string(value);
            for s in stages {
                req = req.version_stages(*s);
            }
            let out = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {name}: {e:?}"));
            out.version_id().expect("version id").to_owned()
        })
    }
}

fn test_credentials() -> Credentials {
    Credentials::new("testing", "testing", None, None, "tests")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One API call seen by the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// `secretsmanager.GetSecretValue`, `secretsmanager.BatchGetSecretValue`,
    /// `sts.AssumeRoleWithWebIdentity`, …
    pub operation: String,
    /// The access key id the request was signed with.
    pub access_key: Option<String>,
    /// The region in the signature scope.
    pub region: Option<String>,
    /// For form-encoded (STS) requests: the parameters, e.g. `RoleSessionName`.
    pub form: BTreeMap<String, String>,
    /// For `sts.AssumeRole`: the access key id its answer handed out.
    pub issued_key: Option<String>,
}

/// What the proxy does instead of forwarding.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer `BatchGetSecretValue` with this AWS error code (HTTP 400).
    pub batch_error: Option<String>,
    /// Never answer Secrets Manager or Parameter Store calls (to exercise `--timeout`).
    pub hang: bool,
    /// Answer Parameter Store calls that name this parameter with `AccessDeniedException`,
    /// as IAM does a whole `GetParameters` call when one of its names is denied.
    pub deny_parameter: Option<String>,
    /// Answer `sts.AssumeRole` with this STS error code (HTTP 403).
    pub assume_role_error: Option<String>,
    /// Treat this secret (as named in requests) the way Secrets Manager treats a secret the
    /// caller may not read: `GetSecretValue` fails with `AccessDeniedException`, and a
    /// `BatchGetSecretValue` that names it answers for the others and lists it under `Errors`
    /// with that code (the batch permission does not stand in for GetSecretValue on each
    /// secret).
    pub deny_secret: Option<String>,
}

/// A counting, fault-injecting HTTP proxy in front of an upstream endpoint.
pub struct Proxy {
    pub endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
    faults: Arc<Mutex<Faults>>,
    _runtime: tokio::runtime::Runtime,
}

impl Proxy {
    pub fn start(upstream: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let upstream = upstream.to_owned();
        let client: HttpClient<_, Full<Bytes>> =
            HttpClient::builder(TokioExecutor::new()).build_http();
        let (c, f) = (calls.clone(), faults.clone());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, upstream, c, f) =
                    (client.clone(), upstream.clone(), c.clone(), f.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        forward(req, client.clone(), upstream.clone(), c.clone(), f.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy {
            endpoint: format!("http://{addr}"),
            calls,
            faults,
            _runtime: runtime,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("lock").clone()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Calls per operation, e.g. {"secretsmanager.BatchGetSecretValue": 2}.
    pub fn summary(&self) -> BTreeMap<String, usize> {
        let mut map = BTreeMap::new();
        for c in self.calls() {
            *map.entry(c.operation).or_default() += 1;
        }
        map
    }

    pub fn reset(&self) {
        self.calls.lock().expect("lock").clear();
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.faults.lock().expect("lock") = faults;
    }
}

async fn forward(
    req: Request<Incoming>,
    client: HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: String,
    calls: Arc<Mutex<Vec<Call>>>,
    faults: Arc<Mutex<Faults>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let form: BTreeMap<String, String> = if header("x-amz-target").is_none() {
        String::from_utf8_lossy(&body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect()
    } else {
        BTreeMap::new()
    };
    let operation = match header("x-amz-target") {
        Some(t) => t,
        None => format!(
            "form.{}",
            form.get("Action").map(String::as_str).unwrap_or("unknown")
        ),
    };
    let operation = operation.replace("form.AssumeRole", "sts.AssumeRole");
    let (access_key, region) = header("authorization")
        .and_then(|auth| {
            let scope = auth
                .split("Credential=")
                .nth(1)?
                .split(',')
                .next()?
                .to_owned();
            let mut fields = scope.split('/');
            let key = fields.next()?.to_owned();
            let _date = fields.next();
            let region = fields.next().map(str::to_owned);
            Some((Some(key), region))
        })
        .unwrap_or((None, None));
    let index = {
        let mut calls = calls.lock().expect("lock");
        calls.push(Call {
            operation: operation.clone(),
            access_key,
            region,
            form,
            issued_key: None,
        });
        calls.len() - 1
    };
    let f = faults.lock().expect("lock").clone();
    if f.hang && (operation.starts_with("secretsmanager.") || operation.starts_with("AmazonSSM.")) {
        std::future::pending::<()>().await;
    }
    if let (Some(name), true) = (&f.deny_parameter, operation.starts_with("AmazonSSM.")) {
        let names: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("Names").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        if names
            .iter()
            .any(|n| n == name || n.starts_with(&format!("{name}:")))
        {
            return Ok(aws_json_error("AccessDeniedException"));
        }
    }
    if let (Some(code), "sts.AssumeRole") = (&f.assume_role_error, operation.as_str()) {
        let body = format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>injected by the test proxy: not authorized to perform sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        );
        return Ok(Response::builder()
            .status(403)
            .header("content-type", "text/xml")
            .body(Full::new(Bytes::from(body)))
            .expect("response"));
    }
    // moto's GetParameters does not take parameter ARNs (AWS does: the own account's, and
    // parameters shared from other accounts); the proxy asks moto by the ARN's name, and
    // secrets-init matches the answer, which names the parameter, to the ARN it asked for.
    let body = if operation == "AmazonSSM.GetParameters" {
        arns_to_names(&body)
    } else {
        body
    };
    if let (Some(code), "secretsmanager.BatchGetSecretValue") = (&f.batch_error, operation.as_str())
    {
        return Ok(aws_json_error(code));
    }
    if let (Some(denied), "secretsmanager.GetSecretValue") = (&f.deny_secret, operation.as_str()) {
        let asked = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("SecretId")?.as_str().map(str::to_owned));
        if asked.as_deref() == Some(denied.as_str()) {
            return Ok(secrets_manager_access_denied(denied));
        }
    }
    let uri = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in &parts.headers {
        if k != hyper::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let out = out.body(Full::new(body)).expect("request");
    match client.request(out).await {
        Ok(resp) => {
            let (p, b) = resp.into_parts();
            let bytes = b.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            if let (Some(denied), "secretsmanager.BatchGetSecretValue") =
                (&f.deny_secret, operation.as_str())
            {
                return Ok(batch_without(p, &bytes, denied));
            }
            if operation == "sts.AssumeRole" {
                let text = String::from_utf8_lossy(&bytes);
                let issued = text
                    .split("<AccessKeyId>")
                    .nth(1)
                    .and_then(|rest| rest.split('<').next())
                    .map(str::to_owned);
                calls.lock().expect("lock")[index].issued_key = issued;
            }
            Ok(Response::from_parts(p, Full::new(bytes)))
        }
        Err(e) => Ok(Response::builder()
            .status(502)
            .body(Full::new(Bytes::from(format!("proxy: {e}"))))
            .expect("response")),
    }
}

/// An AWS JSON-protocol error answer (HTTP 400) with this code.
fn aws_json_error(code: &str) -> Response<Full<Bytes>> {
    let body = format!(r#"{{"__type":"{code}","message":"injected by the test proxy"}}"#);
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-errortype", code)
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

/// What IAM makes Secrets Manager answer to `GetSecretValue` on a secret the caller may not
/// read: HTTP 400, `AccessDeniedException`, a message naming the action and the resource.
fn secrets_manager_access_denied(secret: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "__type": "AccessDeniedException",
        "Message": denied_message(secret),
    });
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", "00000000-0000-0000-0000-00000000d0d0")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn denied_message(secret: &str) -> String {
    format!(
        "User: arn:aws:sts::123456789012:assumed-role/app/pod is not authorized to perform: \
         secretsmanager:GetSecretValue on resource: {secret} because no identity-based policy \
         allows the secretsmanager:GetSecretValue action"
    )
}

/// moto's `BatchGetSecretValue` answer with `denied` moved from `SecretValues` to `Errors`,
/// as Secrets Manager answers when the caller may not read that one secret.
fn batch_without(
    mut parts: hyper::http::response::Parts,
    body: &[u8],
    denied: &str,
) -> Response<Full<Bytes>> {
    let mut answer: serde_json::Value = serde_json::from_slice(body).expect("batch answer is JSON");
    let mut named = false;
    if let Some(values) = answer
        .get_mut("SecretValues")
        .and_then(|v| v.as_array_mut())
    {
        values.retain(|v| {
            let is_denied = [v.get("Name"), v.get("ARN")]
                .into_iter()
                .flatten()
                .any(|id| id.as_str() == Some(denied));
            named |= is_denied;
            !is_denied
        });
    }
    if named {
        let errors = answer
            .as_object_mut()
            .expect("batch answer is an object")
            .entry("Errors")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        errors
            .as_array_mut()
            .expect("Errors is a list")
            .push(serde_json::json!({
                "SecretId": denied,
                "ErrorCode": "AccessDeniedException",
                "Message": denied_message(denied),
            }));
    }
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&answer).expect("json");
    Response::from_parts(parts, Full::new(Bytes::from(body)))
}

/// `Names` of a GetParameters body with each `arn:…:parameter/<name>[:selector]` replaced by
/// its name (`/<name>` for a hierarchical one).
fn arns_to_names(body: &Bytes) -> Bytes {
    let Ok(mut request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    let Some(names) = request.get_mut("Names").and_then(|n| n.as_array_mut()) else {
        return body.clone();
    };
    for name in names.iter_mut() {
        let Some(text) = name.as_str() else { continue };
        if let Some((_, rest)) = text
            .split_once(":parameter/")
            .filter(|_| text.starts_with("arn:"))
        {
            let bare = rest.split(':').next().unwrap_or(rest);
            let replaced = if bare.contains('/') {
                format!("/{rest}")
            } else {
                rest.to_owned()
            };
            *name = serde_json::Value::String(replaced);
        }
    }
    Bytes::from(serde_json::to_vec(&request).expect("json"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A Pod-Identity-style container credentials endpoint: answers with `access_key` when the
/// request carries `Authorization: <token>`, 401 otherwise.
pub struct CredentialsEndpoint {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Option<String>>>>,
    _runtime: tokio::runtime::Runtime,
}

impl CredentialsEndpoint {
    pub fn start(token: &str, access_key: &str) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (token, key, seen) = (token.to_owned(), access_key.to_owned(), requests.clone());
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (token, key, seen) = (token.clone(), key.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        seen.lock().expect("lock").push(auth.clone());
                        let ok = auth.as_deref() == Some(token.as_str());
                        let body = if ok {
                            format!(
                                r#"{{"AccessKeyId":"{key}","SecretAccessKey":"pod-identity-secret","Token":"pod-identity-session","Expiration":"2099-01-01T00:00:00Z"}}"#
                            )
                        } else {
                            r#"{"message":"bad token"}"#.to_owned()
                        };
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(if ok { 200 } else { 401 })
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CredentialsEndpoint {
            url: format!("http://{addr}/v1/credentials"),
            requests,
            _runtime: runtime,
        }
    }
}

/// What a run of secrets-init produced. `env`/`pid` come from the default test program,
/// which prints its PID and its own environment.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub spawned_pid: u32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// For runs of [`APP`]: the PID it printed and the environment it saw.
    pub fn app(&self) -> (u32, BTreeMap<String, String>) {
        let text = self.stdout_text();
        let (first, rest) = text
            .split_once('\n')
            .unwrap_or_else(|| panic!("app did not run; stdout {text:?}, stderr {}", self.stderr));
        let pid = first.trim().parse().expect("pid line");
        let env = rest
            .split('\0')
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        (pid, env)
    }

    /// Asserts that none of `secrets` appears in stderr (or in `extra`).
    pub fn assert_no_secret_in_logs(&self, secrets: &[&str]) {
        for s in secrets {
            assert!(
                !self.stderr.contains(s),
                "secret value {s:?} leaked into stderr:\n{}",
                self.stderr
            );
        }
    }
}

/// The program secrets-init execs in most tests: prints its PID, then its environment.
pub const APP: [&str; 3] = ["/bin/sh", "-c", "echo $$; cat /proc/$$/environ"];

/// A `secrets-init` command with a clean environment pointing at `endpoint`.
pub fn secrets_init(endpoint: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secrets-init"));
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", STATIC_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "static-app-secret")
        .env(
            "SECRETS_INIT_TERMINATION_LOG",
            "/nonexistent/termination-log",
        );
    cmd
}

/// Runs to completion (bounded: 60 s, then killed and the test fails). stdout and stderr
/// are read while the child runs: a child that fills a pipe's buffer (64 KiB) before exiting
/// would otherwise wait forever for a reader that waits for it to exit.
pub fn run(cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn secrets-init");
    let spawned_pid = child.id();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("secrets-init did not finish within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        status,
        spawned_pid,
        stdout: stdout.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
    }
}

/// Runs `secrets-init [args] -- APP` against `endpoint` with extra env.
pub fn run_app(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = secrets_init(endpoint);
    cmd.args(args).arg("--").args(APP);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}
