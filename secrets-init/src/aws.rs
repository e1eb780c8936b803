//! AWS SDK set-up: our own HTTPS client with trust roots compiled in, the default
//! credential chain, and the rules for which of the container's variables secrets-init
//! itself may use (contract §3).

use std::ffi::OsString;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::Error;
use crate::placeholder::is_placeholder;

/// Variables that mean "this pod has its own identity" (EKS Pod Identity, IRSA).
const POD_IDENTITY_VARS: &[&str] = &[
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];
/// Static keys: the app's own when a pod identity is present.
const STATIC_KEY_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Which variables secrets-init must not use for its own AWS configuration, given the
/// container's environment: `AWS_*` variables whose value is a placeholder, and static keys
/// when a pod identity is present. The program still receives all of them.
pub fn vars_not_for_us(env: &[(OsString, OsString)]) -> Vec<OsString> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let pod_identity = POD_IDENTITY_VARS.iter().any(|name| {
        get(name).is_some_and(|v| !v.is_empty() && !v.to_string_lossy().starts_with("awssm:"))
    });
    let mut hidden = Vec::new();
    for (name, value) in env {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if !name_str.starts_with("AWS_") {
            continue;
        }
        let placeholder = is_placeholder(&value.to_string_lossy());
        if placeholder || (pod_identity && STATIC_KEY_VARS.contains(&name_str)) {
            hidden.push(name.clone());
        }
    }
    hidden
}

/// The PEM bundle of the compiled-in trust roots (Mozilla's, via `webpki-root-certs`).
fn bundled_roots_pem() -> String {
    let mut pem = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        let b64 = aws_smithy_types::base64::encode(cert.as_ref());
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// HTTPS client (rustls + ring) that trusts the compiled-in roots plus `SSL_CERT_FILE`.
fn http_client() -> Result<SharedHttpClient, Error> {
    let mut store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(bundled_roots_pem());
    if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
        match std::fs::read(&path) {
            Ok(pem) => store = store.with_pem_certificate(pem),
            Err(err) => tracing::warn!(
                "SSL_CERT_FILE={} cannot be read ({err}); using the compiled-in roots only",
                path.to_string_lossy()
            ),
        }
    }
    let context = TlsContext::builder()
        .with_trust_store(store)
        .build()
        .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https())
}

/// Loads the SDK config: region from `--region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`/
/// profile (no instance metadata look-up: pods usually cannot reach it, and the wait would
/// only delay a clear error); credentials from the default chain; endpoint overrides from
/// `AWS_ENDPOINT_URL*`.
pub async fn load_config(region: Option<String>) -> Result<aws_config::SdkConfig, Error> {
    let region_chain = RegionProviderChain::first_try(region.map(aws_config::Region::new))
        .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::new());
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client()?)
        .region(region_chain)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn placeholders_in_aws_vars_are_not_ours() {
        let e = env(&[
            ("AWS_REGION", "awssm:cfg#region"),
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_PROFILE", "x${awssm:p}"),
            ("OTHER", "awssm:x"),
        ]);
        assert_eq!(
            vars_not_for_us(&e),
            vec![OsString::from("AWS_REGION"), OsString::from("AWS_PROFILE")]
        );
    }

    #[test]
    fn static_keys_are_not_ours_under_pod_identity() {
        for identity in [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            let e = env(&[
                (identity, "x"),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_SESSION_TOKEN", "t"),
                ("AWS_REGION", "eu-west-1"),
            ]);
            assert_eq!(
                vars_not_for_us(&e),
                vec![
                    OsString::from("AWS_ACCESS_KEY_ID"),
                    OsString::from("AWS_SECRET_ACCESS_KEY"),
                    OsString::from("AWS_SESSION_TOKEN")
                ],
                "{identity}"
            );
        }
        let e = env(&[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", ""),
        ]);
        assert!(vars_not_for_us(&e).is_empty());
    }

    #[test]
    fn bundled_roots_are_pem() {
        let pem = bundled_roots_pem();
        assert!(pem.matches("BEGIN CERTIFICATE").count() > 100);
        assert!(http_client().is_ok());
    }
}
