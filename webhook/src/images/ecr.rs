//! Amazon ECR: registry credentials from `GetAuthorizationToken`, with the webhook's own AWS
//! identity (EKS Pod Identity, IRSA, or whatever the SDK's default chain finds).
//!
//! A host of the form `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` is an ECR
//! registry. One token per region is fetched and cached until shortly before it expires (ECR
//! tokens live 12 hours and work for every registry of the region the identity may read). A
//! token the registry rejects is dropped so the next lookup fetches a fresh one.
//!
//! The SDK talks HTTPS through rustls with the `ring` provider and trust roots compiled into
//! the binary (`webpki-root-certs`), plus the system's roots when it has any. The standard
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_ECR` variables are honoured.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecr::config::{Region, SharedHttpClient};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use base64::Engine as _;

use super::docker_config::Credentials;
use super::error::ImagesError;

/// Tokens are refreshed this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// A token is kept at least this long, even if its expiry looks past (clock skew), so a
/// misbehaving clock cannot turn every lookup into a `GetAuthorizationToken` call.
const MIN_TOKEN_CACHE: Duration = Duration::from_secs(60);

/// The AWS region of an ECR registry host, or `None` when `host` is not an ECR registry.
pub fn ecr_region(host: &str) -> Option<&str> {
    let mut parts = host.split('.');
    let account = parts.next()?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if parts.next()? != "dkr" {
        return None;
    }
    if !matches!(parts.next()?, "ecr" | "ecr-fips") {
        return None;
    }
    let region = parts.next()?;
    if region.is_empty() || parts.next()? != "amazonaws" {
        return None;
    }
    match (parts.next()?, parts.next(), parts.next()) {
        ("com", None, None) | ("com", Some("cn"), None) => Some(region),
        _ => None,
    }
}

/// An HTTPS client for the AWS SDK: rustls + ring, trust roots compiled in (`webpki-root-certs`),
/// plus the certificates of the PEM file named by `SSL_CERT_FILE`, if set. Works in images
/// without a CA bundle.
pub fn https_client() -> SharedHttpClient {
    let mut trust = TrustStore::empty();
    for der in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        trust.add_pem_certificate(der_to_pem(der.as_ref()));
    }
    for der in extra_roots_from_env() {
        trust.add_pem_certificate(der_to_pem(&der));
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls_context)
        .build_https()
}

/// The usable CA certificates of `$SSL_CERT_FILE` (unusable ones are skipped with a warning,
/// since the SDK's TLS setup would panic on them).
fn extra_roots_from_env() -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let Some(path) = std::env::var_os("SSL_CERT_FILE") else {
        return Vec::new();
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %std::path::Path::new(&path).display(), error = %e,
                "SSL_CERT_FILE cannot be read; using the compiled-in roots only");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        match cert {
            Ok(der) if rustls::RootCertStore::empty().add(der.clone()).is_ok() => {
                out.push(der.as_ref().to_vec());
            }
            _ => tracing::warn!(path = %std::path::Path::new(&path).display(),
                "SSL_CERT_FILE holds an unusable certificate; skipping it"),
        }
    }
    out
}

fn der_to_pem(der: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

/// How long to keep a token whose expiry is `expires_at_unix` (seconds), seen at `now_unix`.
fn token_cache_duration(now_unix: i64, expires_at_unix: Option<i64>) -> Duration {
    let Some(expires) = expires_at_unix else {
        return MIN_TOKEN_CACHE;
    };
    let lifetime = Duration::from_secs(u64::try_from(expires - now_unix).unwrap_or(0));
    let keep = if lifetime > 2 * REFRESH_MARGIN {
        lifetime - REFRESH_MARGIN
    } else {
        lifetime / 2
    };
    keep.max(MIN_TOKEN_CACHE)
}

struct CachedToken {
    credentials: Credentials,
    refresh_at: Instant,
}

/// Fetches and caches ECR registry credentials per region.
pub struct EcrAuth {
    given_config: Option<SdkConfig>,
    loaded_config: tokio::sync::OnceCell<SdkConfig>,
    endpoint: Option<String>,
    timeout: Duration,
    tokens: tokio::sync::Mutex<HashMap<String, CachedToken>>,
}

impl fmt::Debug for EcrAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrAuth")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EcrAuth {
    /// `sdk_config`: use this AWS configuration instead of loading the default chain (tests);
    /// `endpoint`: ECR API endpoint override; `timeout`: per `GetAuthorizationToken` call.
    pub fn new(sdk_config: Option<SdkConfig>, endpoint: Option<String>, timeout: Duration) -> Self {
        Self {
            given_config: sdk_config,
            loaded_config: tokio::sync::OnceCell::new(),
            endpoint,
            timeout,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn sdk_config(&self) -> &SdkConfig {
        if let Some(c) = &self.given_config {
            return c;
        }
        self.loaded_config
            .get_or_init(|| async {
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(https_client())
                    .load()
                    .await
            })
            .await
    }

    /// Registry credentials (`AWS` + token) for `registry` in `region`, cached per region.
    pub async fn credentials(
        &self,
        registry: &str,
        region: &str,
    ) -> Result<Credentials, ImagesError> {
        // Held across the fetch: concurrent misses for one region make one call.
        let mut tokens = self.tokens.lock().await;
        if let Some(t) = tokens.get(region)
            && Instant::now() < t.refresh_at
        {
            return Ok(t.credentials.clone());
        }
        let err = |reason: String| ImagesError::Ecr {
            registry: registry.to_owned(),
            region: region.to_owned(),
            reason,
        };
        let sdk = self.sdk_config().await;
        let mut conf = aws_sdk_ecr::config::Builder::from(sdk)
            .region(Region::new(region.to_owned()))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(self.timeout)
                    .build(),
            );
        if let Some(endpoint) = &self.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        let client = aws_sdk_ecr::Client::from_conf(conf.build());
        let out = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| err(aws_sdk_ecr::error::DisplayErrorContext(&e).to_string()))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| err("the answer has no authorizationData".into()))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| err("the answer has no authorizationToken".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| err("the authorizationToken is not base64 text".into()))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| err("the authorizationToken is not of the form user:password".into()))?;
        let credentials = Credentials {
            username: user.to_owned(),
            password: password.to_owned(),
        };
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let keep = token_cache_duration(now_unix, data.expires_at().map(|t| t.secs()));
        tracing::debug!(%region, keep_secs = keep.as_secs(), "fetched an ECR authorization token");
        tokens.insert(
            region.to_owned(),
            CachedToken {
                credentials: credentials.clone(),
                refresh_at: Instant::now() + keep,
            },
        );
        Ok(credentials)
    }

    /// Forgets the cached token of `region` (the registry rejected it).
    pub async fn invalidate(&self, region: &str) {
        self.tokens.lock().await.remove(region);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ecr_hosts() {
        let cases = [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                Some("eu-west-1"),
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                Some("us-east-1"),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                Some("cn-north-1"),
            ),
            ("12345678901.dkr.ecr.eu-west-1.amazonaws.com", None),
            ("12345678901a.dkr.ecr.eu-west-1.amazonaws.com", None),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
                None,
            ),
            ("123456789012.dkr.ecr.eu-west-1.amazonaws.com:443", None),
            ("public.ecr.aws", None),
            ("docker.io", None),
            ("localhost:5000", None),
        ];
        for (host, want) in cases {
            assert_eq!(ecr_region(host), want, "{host}");
        }
    }

    #[test]
    fn token_kept_until_shortly_before_expiry() {
        let h = 3600;
        let cases = [
            // 12 h token: refreshed 15 min early
            (Some(12 * h), Duration::from_secs(12 * 3600 - 15 * 60)),
            // 20 min left: half of it
            (Some(20 * 60), Duration::from_secs(10 * 60)),
            // already expired (clock skew, or moto's fixed 2015 date): the floor
            (Some(-5 * h), MIN_TOKEN_CACHE),
            (Some(30), MIN_TOKEN_CACHE),
            (None, MIN_TOKEN_CACHE),
        ];
        let now = 1_700_000_000;
        for (left, want) in cases {
            assert_eq!(
                token_cache_duration(now, left.map(|l| now + l)),
                want,
                "{left:?}"
            );
        }
    }

    #[test]
    fn compiled_in_roots_become_pem() {
        let der = webpki_root_certs::TLS_SERVER_ROOT_CERTS[0].as_ref();
        let pem = String::from_utf8(der_to_pem(der)).expect("ascii");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
    }
}
