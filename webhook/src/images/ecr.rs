//! Amazon ECR: registry credentials from `GetAuthorizationToken`, with the webhook's own AWS
//! identity (EKS Pod Identity, IRSA, or whatever the SDK's default chain finds).
//!
//! A host of the form `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` is an ECR
//! registry. One token per region is fetched and cached until shortly before it expires (ECR
//! tokens live 12 hours and work for every registry of the region the identity may read). A
//! token the registry rejects is dropped so the next lookup fetches a fresh one.
//!
//! The SDK talks HTTPS through the client secrets-init uses too (crate `aws_https`: rustls with
//! the `ring` provider, trust roots compiled into the binary, plus `SSL_CERT_FILE`). The
//! standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_ECR` variables are honoured.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ecr::config::{Region, SharedHttpClient};
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

/// The HTTPS client for the AWS SDK, trusting the compiled-in roots plus `SSL_CERT_FILE`. A
/// file that cannot be read or parsed is an error (the SDK would panic on it later).
pub fn https_client() -> Result<SharedHttpClient, ImagesError> {
    aws_https::https_client(aws_https::ssl_cert_file_from_env().as_deref())
        .map_err(|e| ImagesError::Settings(e.to_string()))
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

/// Where the AWS configuration comes from.
enum Sdk {
    /// Given by the caller (tests).
    Given(SdkConfig),
    /// The default chain, loaded on first ECR use with this client.
    Default {
        http_client: SharedHttpClient,
        loaded: tokio::sync::OnceCell<SdkConfig>,
    },
}

/// Fetches and caches ECR registry credentials per region.
pub struct EcrAuth {
    sdk: Sdk,
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
    ///
    /// Without `sdk_config` the HTTPS client is built here, at start-up, not on the first ECR
    /// image: an unusable `SSL_CERT_FILE` stops the webhook instead of failing every ECR
    /// lookup.
    pub fn new(
        sdk_config: Option<SdkConfig>,
        endpoint: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ImagesError> {
        let sdk = match sdk_config {
            Some(config) => Sdk::Given(config),
            None => Sdk::Default {
                http_client: https_client()?,
                loaded: tokio::sync::OnceCell::new(),
            },
        };
        Ok(Self {
            sdk,
            endpoint,
            timeout,
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    async fn sdk_config(&self) -> &SdkConfig {
        match &self.sdk {
            Sdk::Given(config) => config,
            Sdk::Default {
                http_client,
                loaded,
            } => {
                loaded
                    .get_or_init(|| async {
                        aws_config::defaults(BehaviorVersion::latest())
                            .http_client(http_client.clone())
                            .load()
                            .await
                    })
                    .await
            }
        }
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
}
