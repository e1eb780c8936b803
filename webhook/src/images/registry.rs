//! Reads ENTRYPOINT and CMD of an image from its registry with `oci-client`.
//!
//! Flow for one lookup: parse the reference (docker.io short names are normalised:
//! `nginx` = `docker.io/library/nginx:latest`), find credentials (ECR token, else docker
//! `config.json` entry, else anonymous — `oci-client` then does the registry's bearer-token
//! dance itself), GET the manifest (Docker v2 schema 2 or OCI; an index / manifest list is
//! resolved to the requested platform, variant included), then GET the config blob.
//!
//! Limits: the whole lookup is bounded by `request_timeout`; a child manifest and the config
//! blob are refused before download when their descriptor says they exceed
//! `max_document_bytes`, the config blob is also cut off while streaming, and the top-level
//! manifest is checked after download (`oci-client` reads it whole).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use futures::TryStreamExt as _;
use mutation_modes::{ImageConfig, Platform};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, ImageIndexEntry,
    OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageIndex,
    OciImageManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;

use super::ImageSourceSettings;
use super::docker_config::{Credentials, DockerConfig};
use super::ecr::{EcrAuth, ecr_region};
use super::error::ImagesError;

const ACCEPTED_MANIFESTS: &[&str] = &[
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
];

/// At most this many per-registry HTTP clients are kept.
const MAX_CLIENTS: usize = 256;

const USER_AGENT: &str = concat!("secrets-init-webhook/", env!("CARGO_PKG_VERSION"));

/// Where the credentials for a registry came from (for error hints; never the secret).
#[derive(Debug, Clone)]
enum AuthSource {
    Anonymous,
    DockerConfig(PathBuf),
    Ecr(String),
}

/// Parses an image reference the way the container runtime does.
pub fn parse_reference(image: &str) -> Result<Reference, ImagesError> {
    // A pod's image string is unbounded (up to the pod's size): refused before the regex
    // reads it, and only a bounded prefix is echoed.
    if image.len() > mutation_modes::MAX_REFERENCE_BYTES {
        return Err(ImagesError::InvalidReference {
            reason: format!(
                "{} is {} bytes long, and an image reference is at most {} bytes",
                mutation_modes::bounded::quoted(image),
                image.len(),
                mutation_modes::MAX_REFERENCE_BYTES
            ),
        });
    }
    image
        .trim()
        .parse::<Reference>()
        .map_err(|e| ImagesError::InvalidReference {
            reason: format!(
                "{} is not a valid image reference ({e})",
                mutation_modes::bounded::quoted(image)
            ),
        })
}

/// The registry as messages name it: the image's registry, or `<mirror> (mirror of <registry>)`.
/// (oci-client's mirror support — `set_mirror_registry`, `namespace` — is the library's own,
/// marked as outside its semver guarantees; `tests/it/images_registry.rs` covers it.)
fn registry_label(reference: &Reference) -> String {
    match reference.namespace() {
        Some(original) => format!("{} (mirror of {original})", reference.resolve_registry()),
        None => reference.registry().to_owned(),
    }
}

/// A registry client for image configs (no caching; see [`super::CachedImageSource`]).
pub struct RegistryClient {
    insecure: HashSet<String>,
    /// Registry (normalised) → the mirror its image configs are read from.
    mirrors: HashMap<String, String>,
    docker_config: Option<PathBuf>,
    ecr: Option<EcrAuth>,
    timeout: Duration,
    max_bytes: u64,
    http_proxy: Option<String>,
    https_proxy: Option<String>,
    roots: Vec<Certificate>,
    /// One oci-client per registry host, rebuilt when its credentials change (oci-client keeps
    /// the first credentials it is given per registry).
    clients: Mutex<HashMap<String, (RegistryAuth, Client)>>,
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("insecure", &self.insecure)
            .field("mirrors", &self.mirrors)
            .field("docker_config", &self.docker_config)
            .field("ecr", &self.ecr)
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Checks the settings (insecure registry names, the docker config file) and builds the client.
    pub fn new(settings: &ImageSourceSettings) -> Result<Self, ImagesError> {
        let mut insecure = HashSet::new();
        for entry in &settings.registry.insecure_registry {
            let e = entry.trim();
            if e.is_empty()
                || e.contains('/')
                || e.contains("://")
                || e.contains(char::is_whitespace)
            {
                return Err(ImagesError::Settings(format!(
                    "insecure registry {entry:?} must be a host or host:port, like \"registry.local:5000\""
                )));
            }
            insecure.insert(e.to_ascii_lowercase());
        }
        if let Some(path) = &settings.registry.docker_config {
            let cfg = DockerConfig::load(path)?;
            tracing::info!(path = %path.display(), registries = ?cfg.registries(),
                "registry credentials loaded");
            for (registry, why) in &cfg.skipped {
                tracing::warn!(path = %path.display(), %registry, "docker config entry {why}; ignoring it");
            }
        }
        if settings.registry.registry_timeout.is_zero() {
            return Err(ImagesError::Settings(
                "request timeout must be more than 0".into(),
            ));
        }
        let ecr = settings
            .ecr
            .then(|| {
                EcrAuth::new(
                    settings.aws_sdk_config.clone(),
                    settings.ecr_endpoint.clone(),
                    settings.registry.registry_timeout,
                )
            })
            .transpose()?;
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .map(|der| Certificate {
                encoding: CertificateEncoding::Der,
                data: der.as_ref().to_vec(),
            })
            .collect();
        let mut mirrors = HashMap::new();
        for m in &settings.registry.registry_mirror {
            if let Some(other) = mirrors.insert(m.registry.clone(), m.mirror.clone()) {
                return Err(ImagesError::Settings(format!(
                    "registry {} has two mirrors ({other} and {}); give one",
                    m.registry, m.mirror
                )));
            }
        }
        Ok(Self {
            insecure,
            mirrors,
            docker_config: settings.registry.docker_config.clone(),
            ecr,
            timeout: settings.registry.registry_timeout,
            max_bytes: settings.max_document_bytes,
            http_proxy: settings.http_proxy.clone(),
            https_proxy: settings.https_proxy.clone(),
            roots,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// ENTRYPOINT and CMD of `reference` for `platform`, bounded by the request timeout.
    pub async fn image_config(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ImageConfig, ImagesError> {
        match tokio::time::timeout(self.timeout, self.fetch(reference, platform)).await {
            Ok(r) => r,
            Err(_) => Err(ImagesError::Timeout {
                registry: reference.registry().to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    fn is_insecure(&self, reference: &Reference) -> bool {
        self.insecure
            .contains(&reference.registry().to_ascii_lowercase())
            || self
                .insecure
                .contains(&reference.resolve_registry().to_ascii_lowercase())
    }

    async fn auth_for(&self, registry: &str) -> Result<(RegistryAuth, AuthSource), ImagesError> {
        if let (Some(ecr), Some(region)) = (&self.ecr, ecr_region(registry)) {
            let c = ecr.credentials(registry, region).await?;
            return Ok((
                RegistryAuth::Basic(c.username, c.password),
                AuthSource::Ecr(region.to_owned()),
            ));
        }
        if let Some(path) = &self.docker_config {
            // Read on every registry fetch (cache misses only), so a rotated Secret is picked up.
            let cfg = DockerConfig::load(path)?;
            if let Some(Credentials { username, password }) = cfg.credentials_for(registry) {
                return Ok((
                    RegistryAuth::Basic(username.clone(), password.clone()),
                    AuthSource::DockerConfig(path.clone()),
                ));
            }
        }
        Ok((RegistryAuth::Anonymous, AuthSource::Anonymous))
    }

    fn client_for(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<Client, ImagesError> {
        let key = reference.resolve_registry().to_ascii_lowercase();
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((a, c)) = clients.get(&key)
            && a == auth
        {
            return Ok(c.clone());
        }
        let config = ClientConfig {
            protocol: if self.is_insecure(reference) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: self.roots.clone(),
            platform_resolver: None,
            read_timeout: Some(self.timeout),
            connect_timeout: Some(self.timeout),
            user_agent: USER_AGENT,
            http_proxy: self.http_proxy.clone(),
            https_proxy: self.https_proxy.clone(),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| {
            ImagesError::Settings(format!(
                "cannot build an HTTP client for registry {key}: {}",
                error_chain(&e)
            ))
        })?;
        if clients.len() >= MAX_CLIENTS {
            // Image references come from users; do not grow without bound.
            clients.clear();
        }
        clients.insert(key, (auth.clone(), client.clone()));
        Ok(client)
    }

    async fn fetch(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ImageConfig, ImagesError> {
        let mirror = self
            .mirrors
            .get(&super::normalise_registry(reference.registry()));
        let mirrored;
        let (reference, registry) = match mirror {
            Some(mirror) => {
                let mut r = reference.clone();
                r.set_mirror_registry(mirror.clone());
                mirrored = r;
                (&mirrored, mirror.clone())
            }
            None => (reference, reference.registry().to_owned()),
        };
        // `registry` is the host spoken to: the mirror when there is one (its credentials).
        let (auth, source) = self.auth_for(&registry).await?;
        let client = self.client_for(reference, &auth)?;
        let result = self
            .fetch_with(&client, reference, &auth, platform)
            .await
            .map_err(|e| self.map_error(e, reference, &source));
        if let (Err(ImagesError::Unauthorized { .. }), AuthSource::Ecr(region)) = (&result, &source)
            && let Some(ecr) = &self.ecr
        {
            ecr.invalidate(region).await;
        }
        result
    }

    async fn fetch_with(
        &self,
        client: &Client,
        reference: &Reference,
        auth: &RegistryAuth,
        platform: &Platform,
    ) -> Result<ImageConfig, FetchError> {
        let registry = &registry_label(reference);
        let (body, _digest) = client
            .pull_manifest_raw(reference, auth, ACCEPTED_MANIFESTS)
            .await?;
        self.check_size(registry, "manifest", body.len() as u64)?;
        let manifest = match parse_manifest(&body)
            .map_err(|reason| registry_err(registry, reason))?
        {
            Manifest::Image(m) => m,
            Manifest::Index(index) => {
                let entry = select_platform(&index.manifests, platform).ok_or_else(|| {
                    ImagesError::PlatformMissing {
                        platform: platform.to_string(),
                        available: available_platforms(&index.manifests),
                    }
                })?;
                self.check_size(
                    registry,
                    "platform manifest",
                    u64::try_from(entry.size).unwrap_or(u64::MAX),
                )?;
                let child = reference.clone_with_digest(entry.digest.clone());
                let (body, _) = client
                    .pull_manifest_raw(&child, auth, ACCEPTED_MANIFESTS)
                    .await?;
                self.check_size(registry, "platform manifest", body.len() as u64)?;
                match parse_manifest(&body).map_err(|reason| registry_err(registry, reason))? {
                    Manifest::Image(m) => m,
                    Manifest::Index(_) => {
                        return Err(registry_err(
                            registry,
                            format!(
                                "the index entry for {platform} ({}) is another index, not an image manifest",
                                entry.digest
                            ),
                        )
                        .into());
                    }
                }
            }
        };
        let config = self
            .pull_config(client, reference, &manifest.config)
            .await?;
        parse_config(&config).map_err(|reason| registry_err(registry, reason).into())
    }

    async fn pull_config(
        &self,
        client: &Client,
        reference: &Reference,
        descriptor: &OciDescriptor,
    ) -> Result<Vec<u8>, FetchError> {
        let registry = &registry_label(reference);
        self.check_size(
            registry,
            "image config",
            u64::try_from(descriptor.size).unwrap_or(u64::MAX),
        )?;
        let mut stream = client.pull_blob_stream(reference, descriptor).await?;
        let mut buf = Vec::new();
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| registry_err(registry, format!("reading the image config failed: {e}")))?
        {
            self.check_size(registry, "image config", (buf.len() + chunk.len()) as u64)?;
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn check_size(&self, registry: &str, what: &'static str, size: u64) -> Result<(), ImagesError> {
        if size > self.max_bytes {
            return Err(ImagesError::TooLarge {
                registry: registry.to_owned(),
                what,
                size,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    fn map_error(&self, e: FetchError, reference: &Reference, source: &AuthSource) -> ImagesError {
        let registry = registry_label(reference);
        let e = match e {
            FetchError::Images(e) => return e,
            FetchError::Oci(e) => e,
        };
        let unauthorized = |status: u16| {
            let (what, hint) = match (status, source) {
                (403, _) => (
                    "access denied",
                    "the credentials are valid but may not pull this repository; grant pull access"
                        .to_owned(),
                ),
                (_, AuthSource::Anonymous) => (
                    "credentials needed",
                    format!(
                        "the webhook has no credentials for {registry}: add an \"auths\" entry for it to the webhook's registry credentials file (docker config.json)"
                    ),
                ),
                (_, AuthSource::DockerConfig(path)) => (
                    "credentials rejected",
                    format!(
                        "the credentials for {registry} in {} were rejected; update that entry",
                        path.display()
                    ),
                ),
                (_, AuthSource::Ecr(_)) => (
                    "credentials rejected",
                    "the ECR token of the webhook's AWS identity was rejected; its role needs ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on this repository"
                        .to_owned(),
                ),
            };
            ImagesError::Unauthorized {
                registry: registry.clone(),
                status,
                what,
                hint,
            }
        };
        match e {
            OciDistributionError::UnauthorizedError { .. } => unauthorized(401),
            OciDistributionError::AuthenticationFailure(_) => unauthorized(401),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    ImagesError::NotFound { registry }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized))
                {
                    unauthorized(401)
                } else if codes.iter().any(|c| matches!(c, OciErrorCode::Denied)) {
                    unauthorized(403)
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Toomanyrequests))
                {
                    registry_err(
                        &registry,
                        "rate limit hit (TOOMANYREQUESTS); retry later or use authenticated pulls"
                            .into(),
                    )
                } else {
                    let msgs: Vec<String> = envelope
                        .errors
                        .iter()
                        .map(|e| format!("{:?}: {}", e.code, truncate(&e.message)))
                        .collect();
                    registry_err(&registry, msgs.join("; "))
                }
            }
            OciDistributionError::ServerError { code, message, .. } => match code {
                404 => ImagesError::NotFound { registry },
                401 | 403 => unauthorized(code),
                _ => registry_err(&registry, format!("HTTP {code}: {}", truncate(&message))),
            },
            OciDistributionError::RequestError(re) => {
                let insecure = self.is_insecure(reference);
                if re.is_timeout() {
                    ImagesError::Timeout {
                        registry,
                        timeout: self.timeout,
                    }
                } else if re.is_connect() || re.is_request() {
                    let reason = error_chain(&re);
                    ImagesError::Connect {
                        registry,
                        scheme: if insecure { "plain HTTP" } else { "HTTPS" },
                        hint: connect_hint(insecure, &reason),
                        reason,
                    }
                } else {
                    registry_err(&registry, error_chain(&re))
                }
            }
            other => registry_err(&registry, error_chain(&other)),
        }
    }
}

/// An error while fetching: either already ours, or oci-client's (mapped with context later).
#[derive(Debug)]
enum FetchError {
    Images(ImagesError),
    Oci(OciDistributionError),
}

impl From<ImagesError> for FetchError {
    fn from(e: ImagesError) -> Self {
        Self::Images(e)
    }
}

impl From<OciDistributionError> for FetchError {
    fn from(e: OciDistributionError) -> Self {
        Self::Oci(e)
    }
}

/// A fix to suggest for a failed connection, judged from the error text.
fn connect_hint(insecure: bool, reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if insecure {
        ""
    } else if r.contains("invalidcontenttype")
        || r.contains("corrupt message")
        || r.contains("http version")
    {
        " (the registry seems to speak plain HTTP; such a registry must be listed in --insecure-registry)"
    } else if r.contains("certificate") || r.contains("unknownissuer") {
        " (the registry's TLS certificate is not trusted; add its CA to the file named by SSL_CERT_FILE)"
    } else {
        ""
    }
}

fn registry_err(registry: &str, reason: String) -> ImagesError {
    ImagesError::Registry {
        registry: registry.to_owned(),
        reason,
    }
}

fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// `e` and its sources, joined with ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// A parsed manifest.
#[derive(Debug)]
pub enum Manifest {
    Image(Box<OciImageManifest>),
    Index(Box<OciImageIndex>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestProbe {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
}

/// Parses a manifest body: Docker v2 schema 2 manifest or manifest list, OCI manifest or index.
pub fn parse_manifest(body: &[u8]) -> Result<Manifest, String> {
    let probe: ManifestProbe = serde_json::from_slice(body)
        .map_err(|e| format!("the manifest is not valid JSON ({e})"))?;
    match probe.schema_version {
        Some(2) => {}
        Some(1) => {
            return Err(
                "the manifest is Docker schema 1, which is deprecated and not supported; push the image again with a current tool"
                    .into(),
            );
        }
        other => return Err(format!("unsupported manifest schemaVersion {other:?}")),
    }
    let is_index = match probe.media_type.as_deref() {
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE | IMAGE_MANIFEST_LIST_MEDIA_TYPE) => true,
        Some(OCI_IMAGE_MEDIA_TYPE | IMAGE_MANIFEST_MEDIA_TYPE) => false,
        Some(other) => return Err(format!("unsupported manifest media type {other:?}")),
        None => probe.manifests.is_some(),
    };
    if is_index {
        serde_json::from_slice(body)
            .map(|i| Manifest::Index(Box::new(i)))
            .map_err(|e| format!("the image index is malformed ({e})"))
    } else {
        serde_json::from_slice(body)
            .map(|m| Manifest::Image(Box::new(m)))
            .map_err(|e| format!("the image manifest is malformed ({e})"))
    }
}

/// The index entry for `platform`: os and architecture must match; a requested variant must
/// match too; without a requested variant the first entry of that os/architecture wins.
pub fn select_platform<'a>(
    entries: &'a [ImageIndexEntry],
    platform: &Platform,
) -> Option<&'a ImageIndexEntry> {
    entries.iter().find(|e| {
        e.platform.as_ref().is_some_and(|p| {
            p.os.to_string() == platform.os
                && p.architecture.to_string() == platform.architecture
                && platform
                    .variant
                    .as_ref()
                    .is_none_or(|v| p.variant.as_deref() == Some(v.as_str()))
        })
    })
}

/// The platforms of an index, as `os/arch[/variant]`, without attestation entries.
pub fn available_platforms(entries: &[ImageIndexEntry]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for p in entries.iter().filter_map(|e| e.platform.as_ref()) {
        let (os, arch) = (p.os.to_string(), p.architecture.to_string());
        if os == "unknown" || arch == "unknown" {
            continue;
        }
        let s = match &p.variant {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        };
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    if seen.is_empty() {
        "no platforms".into()
    } else {
        seen.join(", ")
    }
}

#[derive(Deserialize)]
struct RawImageConfig {
    config: Option<RawRunConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawRunConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

/// ENTRYPOINT and CMD from an image config blob (OCI or Docker).
pub fn parse_config(body: &[u8]) -> Result<ImageConfig, String> {
    let raw: RawImageConfig =
        serde_json::from_slice(body).map_err(|e| format!("the image config is not valid ({e})"))?;
    let run = raw.config.unwrap_or(RawRunConfig {
        entrypoint: None,
        cmd: None,
    });
    Ok(ImageConfig {
        entrypoint: run.entrypoint,
        cmd: run.cmd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> serde_json::Value {
        let mut p = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": digest, "size": 10, "platform": p})
    }

    fn index(entries: Vec<serde_json::Value>) -> Vec<ImageIndexEntry> {
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE, "manifests": entries});
        match parse_manifest(body.to_string().as_bytes()).expect("index") {
            Manifest::Index(i) => i.manifests,
            Manifest::Image(_) => panic!("parsed as image"),
        }
    }

    #[test]
    fn selects_platform_with_variant() {
        let entries = index(vec![
            entry("linux", "amd64", None, "sha256:a"),
            entry("linux", "arm", Some("v6"), "sha256:b"),
            entry("linux", "arm", Some("v7"), "sha256:c"),
            entry("linux", "arm64", Some("v8"), "sha256:d"),
            entry("unknown", "unknown", None, "sha256:att"),
        ]);
        let p = |arch: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: v.map(Into::into),
        };
        let cases = [
            (p("amd64", None), Some("sha256:a")),
            (p("arm64", None), Some("sha256:d")),
            (p("arm64", Some("v8")), Some("sha256:d")),
            (p("arm", Some("v7")), Some("sha256:c")),
            (p("arm", None), Some("sha256:b")),
            (p("arm", Some("v5")), None),
            (p("s390x", None), None),
        ];
        for (platform, want) in cases {
            let got = select_platform(&entries, &platform).map(|e| e.digest.as_str());
            assert_eq!(got, want, "{platform}");
        }
        assert_eq!(
            available_platforms(&entries),
            "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8"
        );
    }

    #[test]
    fn parses_manifest_kinds() {
        let docker_list = serde_json::json!({"schemaVersion": 2, "mediaType": IMAGE_MANIFEST_LIST_MEDIA_TYPE, "manifests": []});
        assert!(matches!(
            parse_manifest(docker_list.to_string().as_bytes()),
            Ok(Manifest::Index(_))
        ));
        let untyped_index = serde_json::json!({"schemaVersion": 2, "manifests": []});
        assert!(matches!(
            parse_manifest(untyped_index.to_string().as_bytes()),
            Ok(Manifest::Index(_))
        ));
        let desc = serde_json::json!({"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:x", "size": 1});
        let docker = serde_json::json!({"schemaVersion": 2, "mediaType": IMAGE_MANIFEST_MEDIA_TYPE, "config": desc, "layers": []});
        assert!(matches!(
            parse_manifest(docker.to_string().as_bytes()),
            Ok(Manifest::Image(_))
        ));
        let untyped = serde_json::json!({"schemaVersion": 2, "config": desc, "layers": []});
        assert!(matches!(
            parse_manifest(untyped.to_string().as_bytes()),
            Ok(Manifest::Image(_))
        ));

        let errs = [
            (
                serde_json::json!({"schemaVersion": 1, "name": "x"}),
                "schema 1",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"}),
                "unsupported manifest media type",
            ),
            (
                serde_json::json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_MEDIA_TYPE}),
                "malformed",
            ),
        ];
        for (body, want) in errs {
            let e = parse_manifest(body.to_string().as_bytes()).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
        assert!(
            parse_manifest(b"<html>")
                .expect_err("html")
                .contains("not valid JSON")
        );
    }

    #[test]
    fn parses_config_variants() {
        type Case<'a> = (&'a str, Option<Vec<&'a str>>, Option<Vec<&'a str>>);
        let cases: [Case<'_>; 5] = [
            (
                r#"{"config": {"Entrypoint": ["/e"], "Cmd": ["a", "b"]}}"#,
                Some(vec!["/e"]),
                Some(vec!["a", "b"]),
            ),
            (
                r#"{"config": {"Entrypoint": ["/e"], "Cmd": null}}"#,
                Some(vec!["/e"]),
                None,
            ),
            (
                r#"{"config": {"Cmd": ["sh"], "Env": ["A=1"]}}"#,
                None,
                Some(vec!["sh"]),
            ),
            (r#"{"config": {}}"#, None, None),
            (r#"{"architecture": "amd64", "os": "linux"}"#, None, None),
        ];
        for (body, ep, cmd) in cases {
            let got = parse_config(body.as_bytes()).expect(body);
            let own = |v: Option<Vec<&str>>| {
                v.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
            };
            assert_eq!(got.entrypoint, own(ep), "{body}");
            assert_eq!(got.cmd, own(cmd), "{body}");
        }
        assert!(parse_config(b"{\"config\": {\"Cmd\": 5}}").is_err());
    }

    #[test]
    fn references_are_normalised() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("docker.io/nginx:1.27", "docker.io/library/nginx:1.27"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("127.0.0.1:5000/app:v1", "127.0.0.1:5000/app:v1"),
        ];
        for (input, want) in cases {
            assert_eq!(parse_reference(input).expect(input).whole(), want);
        }
        let e = parse_reference("UPPER/Case:tag")
            .expect_err("invalid")
            .to_string();
        assert!(
            e.contains("\"UPPER/Case:tag\" is not a valid image reference"),
            "{e}"
        );
        // A pod-sized image string: refused by its length, echoed bounded.
        let long = format!("registry.example/{}:1", "a".repeat(1 << 20));
        let e = parse_reference(&long).expect_err("too long").to_string();
        assert!(
            e.contains("an image reference is at most 1024 bytes"),
            "{e}"
        );
        assert!(e.len() < 1024, "{} bytes", e.len());
    }
}
