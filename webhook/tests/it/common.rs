//! Shared helpers for the webhook's integration tests: test CAs and certificates (rcgen),
//! TLS clients, in-process servers on free loopback ports, image sources, metric parsing.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrets_init_webhook::Server;
use secrets_init_webhook::config::Config;
use secrets_init_webhook::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

/// A PEM certificate and key.
#[derive(Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// A serving certificate for localhost/127.0.0.1 with the given serial.
    pub fn server_pair(&self, serial: u8) -> Pair {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params.serial_number = Some(SerialNumber::from_slice(&[0x01, serial]));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A serving certificate like [`Ca::server_pair`], valid only between the two Unix times.
    pub fn server_pair_valid(&self, serial: u8, not_before: i64, not_after: i64) -> Pair {
        let at = |secs: i64| {
            x509_parser::time::ASN1Time::from_timestamp(secs)
                .expect("a representable time")
                .to_datetime()
        };
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params.serial_number = Some(SerialNumber::from_slice(&[0x01, serial]));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = at(not_before);
        params.not_after = at(not_after);
        self.sign(params)
    }

    /// A client certificate.
    pub fn client_pair(&self, cn: &str) -> Pair {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Pair {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The serial of a PEM certificate as the server reports it (hex with colons).
pub fn pem_serial(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    der_serial(&der)
}

/// notAfter of a PEM certificate, Unix seconds.
pub fn pem_not_after(pem: &str) -> i64 {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    cert.validity().not_after.timestamp()
}

/// Now, Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        .try_into()
        .expect("fits i64")
}

pub fn der_serial(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("x509");
    cert.raw_serial_as_string()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client trusting `ca`, speaking exactly `versions`, optionally with a client cert.
pub fn client_config(
    ca_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<&Pair>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(p) => {
            let chain = CertificateDer::pem_slice_iter(p.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(p.key_pem.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
    };
    // Every connection does a full handshake, so it sees the certificate served now
    // (a resumed session would report the one from the first handshake).
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// What one fresh connection saw.
#[derive(Debug)]
pub struct Probe {
    pub serial: String,
    pub version: rustls::ProtocolVersion,
    pub status_line: String,
}

/// Opens a fresh TLS connection, sends `GET path` (HTTP/1.1, Connection: close) and returns
/// the served certificate's serial and the status line.
pub async fn probe(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<Probe, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (serial, version) = {
        let (_, conn) = tls.get_ref();
        let certs = conn.peer_certificates().ok_or("no server certificate")?;
        (
            der_serial(&certs[0]),
            conn.protocol_version().ok_or("no version")?,
        )
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    Ok(Probe {
        serial,
        version,
        status_line,
    })
}

/// Waits (up to 10 s) until fresh connections to `addr` are served the certificate whose
/// serial is `want`: how a test sees a rotation take effect.
pub async fn wait_for_serial(
    addr: SocketAddr,
    client: &Arc<rustls::ClientConfig>,
    want: &str,
    what: &str,
) {
    eventually(Duration::from_secs(10), what, || {
        let client = client.clone();
        async move { (probe(addr, client, "/healthz").await.ok()?.serial == want).then_some(()) }
    })
    .await;
}

/// reqwest's builder, with rustls's process-wide provider set first: the workspace builds
/// reqwest without a provider of its own (its default would compile aws-lc next to ring), so
/// the ring provider the webhook itself installs is installed here too.
pub fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A reqwest client with our own rustls config (TLS 1.3, test CA, optional identity).
pub fn https_client(ca_pem: &str, identity: Option<&Pair>) -> reqwest::Client {
    let tls = client_config(ca_pem, &[&rustls::version::TLS13], identity);
    crate::common::http()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// Image configs from a table; anything else is "not found".
#[derive(Debug, Default, Clone)]
pub struct TableImages(pub HashMap<String, ImageConfig>);

impl ImageConfigSource for TableImages {
    async fn image_config(
        &self,
        image: &str,
        _p: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        self.0
            .get(image)
            .cloned()
            .ok_or_else(|| ImageConfigError::NotFound {
                image: image.to_owned(),
            })
    }
}

/// A registry that takes `delay` to answer each lookup (then answers from the table).
#[derive(Debug, Clone)]
pub struct SlowImages {
    pub delay: Duration,
    pub table: TableImages,
}

impl ImageConfigSource for SlowImages {
    async fn image_config(
        &self,
        image: &str,
        p: &Platform,
    ) -> Result<ImageConfig, ImageConfigError> {
        tokio::time::sleep(self.delay).await;
        self.table.image_config(image, p).await
    }
}

/// The bytes of `config/examples/<name>`.
pub fn example(name: &str) -> Vec<u8> {
    let path = examples_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/examples")
}

/// A config for in-process servers: loopback, port 0, no shutdown delay.
pub fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        metrics_listen: "127.0.0.1:0".parse().expect("addr"),
        shutdown_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(10),
        ..Config::default()
    }
}

/// An in-process server.
pub struct Running {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Begins the shutdown sequence (as SIGTERM does) without waiting for it to end.
    pub fn begin_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("server stops within 15 s")
                .expect("server task");
        }
    }
}

pub async fn start<S: ImageConfigSource + 'static>(config: Config, images: S) -> Running {
    let metrics = Metrics::new().expect("metrics");
    let server = Server::bind_with(config, metrics.clone(), images)
        .await
        .expect("server binds");
    let addr = server.local_addr();
    let metrics_addr = server.metrics_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(async move {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    Running {
        addr,
        metrics_addr,
        metrics,
        stop: Some(tx),
        task: Some(task),
    }
}

/// `GET /metrics` on the plain-HTTP metrics port, parsed.
pub async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let text = crate::common::http()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    parse_metrics(&text)
}

/// Parses Prometheus text: `name{labels}` (as written) → value. Panics on a malformed line.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metric line {line:?}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad metric value in {line:?}"));
        out.insert(key.to_owned(), v);
    }
    out
}

/// Polls `f` until it returns `Some`, at most `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A directory laid out like a Kubernetes Secret or ConfigMap volume: every key is a
/// symlink `<key> -> ..data/<key>`, and `..data -> ..<generation>`.
pub struct DataVolume {
    dir: PathBuf,
    generation: usize,
}

impl DataVolume {
    pub fn new(dir: &Path, files: &[(&str, &str)]) -> Self {
        let mut v = Self {
            dir: dir.to_owned(),
            generation: 0,
        };
        v.swap(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("link");
        }
        v
    }

    /// What the kubelet does on an update: new timestamped dir, `..data_tmp` symlink,
    /// rename over `..data`, remove the old dir.
    pub fn swap(&mut self, files: &[(&str, &str)]) {
        let old = format!("..gen_{}", self.generation);
        self.generation += 1;
        let new = format!("..gen_{}", self.generation);
        let new_dir = self.dir.join(&new);
        std::fs::create_dir(&new_dir).expect("gen dir");
        for (name, contents) in files {
            std::fs::write(new_dir.join(name), contents).expect("write key");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).expect("tmp link");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("rename over ..data");
        let old_dir = self.dir.join(old);
        if old_dir.exists() {
            std::fs::remove_dir_all(old_dir).expect("remove old gen");
        }
    }

    /// The path of a key as a pod sees it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A Secret volume of type `kubernetes.io/tls`: `tls.crt` and `tls.key`.
pub struct SecretVolume(DataVolume);

impl SecretVolume {
    pub fn new(dir: &Path, pair: &Pair) -> Self {
        Self(DataVolume::new(dir, &Self::files(pair)))
    }

    /// Rotates the pair the way the kubelet does.
    pub fn swap(&mut self, pair: &Pair) {
        self.0.swap(&Self::files(pair));
    }

    /// The path of `tls.crt` or `tls.key` as the webhook is given it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path(name)
    }

    fn files(pair: &Pair) -> [(&'static str, &str); 2] {
        [("tls.crt", &pair.cert_pem), ("tls.key", &pair.key_pem)]
    }

    pub fn config(&self) -> Config {
        Config {
            tls_cert: Some(self.0.path("tls.crt")),
            tls_key: Some(self.0.path("tls.key")),
            ..test_config()
        }
    }
}

/// Development mode has no CA to trust; this client accepts any server certificate.
pub fn insecure_client_config() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct AcceptAll(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(provider)))
        .with_no_client_auth()
}

/// The `secrets-init-webhook` binary built for these tests.
pub const WEBHOOK_BIN: &str = env!("CARGO_BIN_EXE_secrets-init-webhook");

/// A command for the real binary with a clean environment (no stray
/// `SECRETS_INIT_WEBHOOK_*` from the caller).
pub fn webhook_command() -> std::process::Command {
    let mut c = std::process::Command::new(WEBHOOK_BIN);
    c.env_clear();
    c.stdin(std::process::Stdio::null());
    c
}

/// The real binary, running on loopback ports it picked itself (port 0, read back from its
/// "serving" log line); its JSON log lines are collected by a thread that reads stderr for as
/// long as the process lives, so the pipe never fills up. Killed on drop.
pub struct Process {
    child: std::process::Child,
    lines: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
}

impl Process {
    pub fn start(extra_args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        use std::process::Stdio;
        let mut cmd = webhook_command();
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
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<(SocketAddr, SocketAddr)>();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    // Log lines are JSON; a final error line (from main) is plain text.
                    let v = serde_json::from_str::<serde_json::Value>(&line)
                        .unwrap_or(serde_json::Value::String(line));
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
    pub fn join_logs(&mut self) {
        if let Some(r) = self.reader.take() {
            r.join().expect("log reader");
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for exit within `within`; kills and fails otherwise.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the webhook did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether a log line with exactly this message was written.
    pub fn logged(&self, message: &str) -> bool {
        self.line(message).is_some()
    }

    /// The first log line with exactly this message.
    pub fn line(&self, message: &str) -> Option<serde_json::Value> {
        self.lines
            .lock()
            .expect("lock")
            .iter()
            .find(|v| v["fields"]["message"] == message)
            .cloned()
    }

    /// Every log line so far (for failure messages).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.lines.lock().expect("lock").clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `from` to the end on a thread of its own, so a child writing more than a pipe
/// holds (64 KiB on Linux) never blocks on it; join for the text.
pub fn read_all<R: std::io::Read + Send + 'static>(mut from: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// A child process killed (and reaped) when this goes out of scope, a failed assertion
/// included.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
