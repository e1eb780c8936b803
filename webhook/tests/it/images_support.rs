//! Real servers for the image-config tests: Debian's `docker-registry` (CNCF distribution),
//! `moto_server` for ECR, and a small counting HTTP proxy, all on loopback ports and stopped
//! when dropped. Test images are pushed with oci-client itself.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The path of `tool` on PATH, or a panic telling the user to run scripts/setup.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(tool);
        if p.is_file() {
            return p;
        }
    }
    // The repo's own tool dirs, in case PATH was not set up (scripts/test sets it).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in [".tools/venv/bin", ".tools/bin"] {
        let p = root.join(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("required tool {tool:?} is not installed (not on PATH): run scripts/setup");
}

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local addr")
        .port()
}

pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Polls `f` until it returns true or `deadline` passes.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out after {deadline:?} waiting for {what}");
}

/// A child process killed on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A distribution registry on 127.0.0.1, optionally with htpasswd auth.
pub struct TestRegistry {
    pub addr: String,
    pub basic: Option<(String, String)>,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    pub async fn start() -> Self {
        Self::start_inner(Vec::new()).await
    }

    pub async fn start_with_htpasswd(user: &str, password: &str) -> Self {
        Self::start_with_users(&[(user, password)]).await
    }

    /// A registry that lets in each of `users` (name, password); the first one pushes.
    pub async fn start_with_users(users: &[(&str, &str)]) -> Self {
        let users: Vec<(String, String)> = users
            .iter()
            .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
            .collect();
        Self::start_inner(users).await
    }

    async fn start_inner(users: Vec<(String, String)>) -> Self {
        let bin = require_tool("docker-registry");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut auth = String::new();
        if !users.is_empty() {
            let htpasswd = require_tool("htpasswd");
            let mut entries = Vec::new();
            for (user, pass) in &users {
                let out = Command::new(&htpasswd)
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("run htpasswd");
                // Not `{out:?}`: its stdout holds the password hash.
                assert!(out.status.success(), "htpasswd failed for user {user}");
                entries.extend_from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes());
                entries.push(b'\n');
            }
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, entries).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                file.display()
            );
        }
        let basic = users.into_iter().next();
        // Port 0: the registry binds a free port itself and names it in its "listening on"
        // line, so no other process can take the port between our choice and its bind.
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: test-only-secret\n{auth}",
            dir.path().join("storage").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, config).expect("write registry config");
        let log = dir.path().join("registry.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn docker-registry");
        let mut proc = Proc { child, log };
        let http = crate::common::http().no_proxy().build().expect("client");
        let end = Instant::now() + Duration::from_secs(30);
        let mut addr = None;
        while Instant::now() < end && !proc.exited() {
            if addr.is_none() {
                addr = proc.log_text().lines().find_map(|l| {
                    let rest = l.split("msg=\"listening on ").nth(1)?;
                    Some(rest.split('"').next()?.to_owned())
                });
            }
            if let Some(a) = &addr
                && let Ok(r) = http.get(format!("http://{a}/v2/")).send().await
                && (r.status() == 200 || r.status() == 401)
            {
                return Self {
                    addr: a.clone(),
                    basic,
                    _proc: proc,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("docker-registry did not come up: {}", proc.log_text());
    }

    pub fn log(&self) -> String {
        self._proc.log_text()
    }

    fn push_client(&self) -> (Client, RegistryAuth) {
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..ClientConfig::default()
        });
        let auth = match &self.basic {
            Some((u, p)) => RegistryAuth::Basic(u.clone(), p.clone()),
            None => RegistryAuth::Anonymous,
        };
        (client, auth)
    }

    /// Pushes blobs and a manifest (raw JSON) under `repo:tag`; returns (digest, size) of the manifest.
    pub async fn push_raw(
        &self,
        repo: &str,
        tag: &str,
        blobs: &[Vec<u8>],
        manifest: &[u8],
        media_type: &str,
    ) -> (String, usize) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (client, auth) = self.push_client();
        let reference: Reference = format!("{}/{repo}:{tag}", self.addr).parse().expect("ref");
        client
            .auth(&reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .expect("registry auth for push");
        for blob in blobs {
            client
                .push_blob(&reference, blob.clone(), &sha256(blob))
                .await
                .expect("push blob");
        }
        client
            .push_manifest_raw(
                &reference,
                manifest.to_vec(),
                media_type.parse().expect("content type"),
            )
            .await
            .expect("push manifest");
        (sha256(manifest), manifest.len())
    }

    /// Pushes a single-platform image with the given ENTRYPOINT / CMD; returns the manifest
    /// digest and size. `docker` selects Docker v2 schema 2 media types instead of OCI.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &TestImage) -> (String, usize) {
        let layer = format!("layer of {repo}:{tag} {}", image.arch).into_bytes();
        let mut run = serde_json::Map::new();
        if let Some(e) = &image.entrypoint {
            run.insert("Entrypoint".into(), serde_json::json!(e));
        }
        if let Some(c) = &image.cmd {
            run.insert("Cmd".into(), serde_json::json!(c));
        }
        run.insert("Env".into(), serde_json::json!(["PATH=/usr/bin:/bin"]));
        let config = serde_json::json!({
            "architecture": image.arch,
            "os": "linux",
            "config": run,
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        });
        let config = serde_json::to_vec(&config).expect("config json");
        let (mt, cmt, lmt) = if image.docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": cmt, "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": lmt, "digest": sha256(&layer), "size": layer.len()}],
        });
        let manifest = serde_json::to_vec(&manifest).expect("manifest json");
        self.push_raw(repo, tag, &[config, layer], &manifest, mt)
            .await
    }

    /// Pushes one image per entry and an index over them under `repo:tag`; returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[TestImage],
        docker: bool,
    ) -> String {
        let mut entries = Vec::new();
        for img in images {
            let plat_tag = format!(
                "{tag}-{}{}",
                img.arch,
                img.variant.as_deref().unwrap_or_default()
            );
            let (digest, size) = self.push_image(repo, &plat_tag, img).await;
            let mut platform = serde_json::json!({"os": "linux", "architecture": img.arch});
            if let Some(v) = &img.variant {
                platform["variant"] = v.clone().into();
            }
            entries.push(serde_json::json!({
                "mediaType": if img.docker { DOCKER_MANIFEST } else { OCI_MANIFEST },
                "digest": digest,
                "size": size,
                "platform": platform,
            }));
        }
        let mt = if docker { DOCKER_LIST } else { OCI_INDEX };
        let index = serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": entries});
        let body = serde_json::to_vec(&index).expect("index json");
        self.push_raw(repo, tag, &[], &body, mt).await.0
    }
}

/// What to push.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub arch: String,
    pub variant: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub docker: bool,
}

impl TestImage {
    pub fn new(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> Self {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Self {
            arch: "amd64".into(),
            variant: None,
            entrypoint: entrypoint.map(own),
            cmd: cmd.map(own),
            docker: false,
        }
    }

    pub fn arch(mut self, arch: &str) -> Self {
        self.arch = arch.into();
        self
    }

    pub fn variant(mut self, v: &str) -> Self {
        self.variant = Some(v.into());
        self
    }

    pub fn docker(mut self) -> Self {
        self.docker = true;
        self
    }
}

/// One request seen by the [`CountingProxy`].
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub host: String,
    pub amz_target: Option<String>,
    pub authorization: Option<String>,
}

/// The bearer token the [`CountingProxy`] hands out in bearer mode.
pub const BEARER_TOKEN: &str = "test-bearer-token-42";

/// An HTTP proxy on 127.0.0.1 that forwards every request (origin-form or, as a forward proxy,
/// absolute-form) to `upstream` and records it.
///
/// In bearer mode it also plays a token-auth registry front (like Docker Hub's): requests
/// without `Authorization: Bearer <BEARER_TOKEN>` get a 401 with a `Bearer realm=...`
/// challenge, and `GET /token` hands the token out — to anyone, or only to callers with the
/// given Basic credentials.
pub struct CountingProxy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    realm: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    /// `Some(None)`: anonymous tokens; `Some(Some(basic))`: tokens for these credentials only.
    bearer: Option<Option<String>>,
}

impl CountingProxy {
    pub async fn start(upstream: &str) -> Self {
        Self::start_with(upstream, None).await
    }

    /// Bearer-token mode; `basic`: credentials the token endpoint requires (None: anonymous).
    pub async fn start_bearer(upstream: &str, basic: Option<(&str, &str)>) -> Self {
        use base64::Engine as _;
        let basic = basic.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Self::start_with(upstream, Some(basic)).await
    }

    async fn start_with(upstream: &str, bearer: Option<Option<String>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let state = ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            realm: format!("http://{addr}/token"),
            http: crate::common::http()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .expect("reqwest client"),
            seen: seen.clone(),
            bearer,
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(forward(req, &state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self, f: impl Fn(&SeenRequest) -> bool) -> usize {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| f(r))
            .count()
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: String) -> Response<Full<Bytes>> {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Full::new(Bytes::from(body))).expect("response")
}

async fn forward(req: Request<hyper::body::Incoming>, state: &ProxyState) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let host = parts
        .uri
        .host()
        .map(str::to_owned)
        .or_else(|| {
            parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header("authorization");
    state.seen.lock().expect("lock").push(SeenRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        host,
        amz_target: header("x-amz-target"),
        authorization: authorization.clone(),
    });
    if let Some(required_basic) = &state.bearer {
        if path.starts_with("/token") {
            if required_basic.is_some() && authorization != *required_basic {
                return reply(
                    401,
                    &[],
                    "{\"details\": \"incorrect username or password\"}".into(),
                );
            }
            return reply(
                200,
                &[("content-type", "application/json".into())],
                format!("{{\"token\": \"{BEARER_TOKEN}\", \"expires_in\": 300}}"),
            );
        }
        if authorization.as_deref() != Some(&format!("Bearer {BEARER_TOKEN}")) {
            return reply(
                401,
                &[
                    (
                        "www-authenticate",
                        format!("Bearer realm=\"{}\",service=\"test-registry\"", state.realm),
                    ),
                    ("content-type", "application/json".into()),
                ],
                "{\"errors\": [{\"code\": \"UNAUTHORIZED\", \"message\": \"authentication required\"}]}".into(),
            );
        }
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = state
        .http
        .request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (name, value) in &parts.headers {
        let skip = matches!(
            name.as_str(),
            "host" | "connection" | "proxy-connection" | "content-length"
        ) || (state.bearer.is_some() && name.as_str() == "authorization");
        if !skip {
            out = out.header(name, value);
        }
    }
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => return reply(502, &[], format!("proxy: {e}")),
    };
    let mut builder = Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        if matches!(
            name.as_str(),
            "connection" | "transfer-encoding" | "content-length"
        ) {
            continue;
        }
        builder = builder.header(name, value);
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    builder.body(Full::new(bytes)).expect("response")
}

/// `moto_server` on a free loopback port.
pub struct Moto {
    pub url: String,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Started on port 0: moto binds a free port itself and names it in its "Running on"
    /// line, so there is no window in which another process can take the port.
    pub async fn start() -> Self {
        let bin = require_tool("moto_server");
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("moto.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup log"))
            .stderr(logf)
            .spawn()
            .expect("spawn moto_server");
        let mut proc = Proc { child, log };
        let http = crate::common::http().no_proxy().build().expect("client");
        let end = Instant::now() + Duration::from_secs(30);
        let mut url = None;
        while Instant::now() < end && !proc.exited() {
            let text = proc.log_text();
            if url.is_none() {
                url = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("* Running on "))
                    .map(|u| u.trim().trim_end_matches('/').to_owned());
            }
            if let Some(u) = &url
                && let Ok(r) = http.get(format!("{u}/moto-api/")).send().await
                && r.status().is_success()
            {
                return Self {
                    url: u.clone(),
                    _proc: proc,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not come up: {}", proc.log_text());
    }
}
