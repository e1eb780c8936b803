//! AWS SDK set-up: the shared HTTPS client (compiled-in roots plus `SSL_CERT_FILE`), the
//! default credential chain, `--role-arn`, and the rules for which of the container's
//! variables secrets-init itself may use (contract §3).

use std::ffi::OsString;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::config::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_types::timeout::TimeoutConfig;
use placeholder::is_placeholder;

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

/// Which variables secrets-init must not use for its own configuration, given the
/// container's environment: `AWS_*` and `SSL_CERT_FILE` variables whose value is a
/// placeholder (the app's, resolved for it like any other), and static keys when a pod
/// identity is present. The program still receives all of them.
pub fn vars_not_for_us(env: &[(OsString, OsString)]) -> Vec<OsString> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let pod_identity = POD_IDENTITY_VARS.iter().any(|name| {
        get(name).is_some_and(|v| !v.is_empty() && !is_placeholder(&v.to_string_lossy()))
    });
    let mut hidden = Vec::new();
    for (name, value) in env {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if !name_str.starts_with("AWS_") && name_str != aws_https::SSL_CERT_FILE {
            continue;
        }
        let placeholder = is_placeholder(&value.to_string_lossy());
        if placeholder || (pod_identity && STATIC_KEY_VARS.contains(&name_str)) {
            hidden.push(name.clone());
        }
    }
    hidden
}

/// Loads the SDK config: region from `--region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`/
/// profile (no instance metadata look-up: pods usually cannot reach it, and the wait would
/// only delay a clear error); credentials from the default chain; endpoint overrides from
/// `AWS_ENDPOINT_URL*`.
pub async fn load_config(
    region: Option<String>,
    http_client: SharedHttpClient,
) -> aws_config::SdkConfig {
    let region_chain = RegionProviderChain::first_try(region.map(aws_config::Region::new))
        .or_else(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::new());
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(region_chain)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .load()
        .await
}

/// `--role-arn` / `--role-external-id`: the role every Secrets Manager and Parameter Store
/// call is made as.
#[derive(Debug, Clone)]
pub struct Role {
    pub arn: String,
    pub external_id: Option<String>,
    /// `secrets-init-<HOSTNAME>`, as STS accepts it ([`session_name`]).
    pub session_name: String,
}

/// STS session names: 2 to 64 of `[A-Za-z0-9+=,.@_-]`. It shows in CloudTrail as the
/// assumed-role user, so the pod (its `HOSTNAME`) is named there.
const SESSION_NAME_MAX: usize = 64;

/// `secrets-init-<hostname>` with every character STS refuses replaced by `-`, cut to 64;
/// `secrets-init` alone when the hostname is unset, empty, or a placeholder (the app's).
pub fn session_name(hostname: Option<&str>) -> String {
    let mut name = String::from("secrets-init");
    if let Some(host) = hostname.filter(|h| !h.is_empty() && !is_placeholder(h)) {
        name.push('-');
        name.extend(host.chars().map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        }));
    }
    name.truncate(SESSION_NAME_MAX);
    name
}

/// Assumes `role` once, with the credentials `sdk` resolves (the pod identity), through
/// aws-config's `AssumeRoleProvider` and an STS client built from `sdk` (so
/// `AWS_ENDPOINT_URL_STS` applies). The config returned signs every call with the assumed
/// role's credentials, which are fetched here and never again: they last an hour, and a run
/// is bounded by `--timeout`. `region` is used for STS when `sdk` has none.
///
/// The error is one line: the role, STS's error code and message, and what to check.
pub async fn assume_role(
    sdk: &aws_config::SdkConfig,
    role: &Role,
    region: Option<&str>,
) -> Result<aws_config::SdkConfig, String> {
    let mut builder = AssumeRoleProvider::builder(role.arn.clone())
        .session_name(role.session_name.clone())
        .configure(sdk);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id.clone());
    }
    if sdk.region().is_none()
        && let Some(region) = region
    {
        builder = builder.region(aws_config::Region::new(region.to_owned()));
    }
    let provider = builder.build().await;
    match provider.provide_credentials().await {
        Ok(credentials) => {
            tracing::debug!(role = %role.arn, session = %role.session_name, "assumed the role");
            Ok(sdk
                .clone()
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(credentials))
                .build())
        }
        Err(err) => {
            let (code, message) = sts_error(&err);
            let external_id = if role.external_id.is_some() {
                " with this external id"
            } else {
                ""
            };
            Err(format!(
                "cannot assume role {} (--role-arn): {code}: {message}; the pod's identity needs sts:AssumeRole on that role, and the role's trust policy must allow the pod's identity{external_id}",
                role.arn
            ))
        }
    }
}

/// STS's error code and message behind a credentials error, when STS answered; otherwise why
/// there was no answer.
fn sts_error(err: &(dyn std::error::Error + 'static)) -> (String, String) {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(sdk) = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>() {
            return match sdk {
                SdkError::ServiceError(_) => (
                    sdk.code().unwrap_or("UnknownError").to_owned(),
                    sdk.message().unwrap_or("no message from STS").to_owned(),
                ),
                SdkError::DispatchFailure(_) => (
                    "NetworkError".to_owned(),
                    DisplayErrorContext(sdk).to_string(),
                ),
                SdkError::TimeoutError(_) => (
                    "Timeout".to_owned(),
                    "the request to STS timed out".to_owned(),
                ),
                _ => (
                    "RequestFailed".to_owned(),
                    DisplayErrorContext(sdk).to_string(),
                ),
            };
        }
        source = e.source();
    }
    (
        "CredentialsError".to_owned(),
        DisplayErrorContext(err).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_what_sts_accepts() {
        assert_eq!(
            session_name(Some("app-7d9f-x2")),
            "secrets-init-app-7d9f-x2"
        );
        assert_eq!(session_name(None), "secrets-init");
        assert_eq!(session_name(Some("")), "secrets-init");
        assert_eq!(session_name(Some("awssm:host")), "secrets-init");
        assert_eq!(session_name(Some("a b/c:d")), "secrets-init-a-b-c-d");
        let long = session_name(Some(&"x".repeat(100)));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("secrets-init-xxx"));
        assert_eq!(session_name(Some("é")), "secrets-init--");
    }

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
    fn a_placeholder_ssl_cert_file_is_the_apps() {
        let e = env(&[
            ("SSL_CERT_FILE", "awssm:certs#bundle-path"),
            ("SSL_CERT_DIR", "awssm:x"),
        ]);
        assert_eq!(vars_not_for_us(&e), vec![OsString::from("SSL_CERT_FILE")]);
        let e = env(&[("SSL_CERT_FILE", "/etc/ssl/corp.pem")]);
        assert!(vars_not_for_us(&e).is_empty());
    }

    #[test]
    fn a_pod_identity_variable_holding_a_placeholder_is_no_pod_identity() {
        for value in ["awssm:token-file", "x${awssm:token-file}"] {
            let e = env(&[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", value),
                ("AWS_ACCESS_KEY_ID", "AKIA"),
            ]);
            assert_eq!(
                vars_not_for_us(&e),
                vec![OsString::from("AWS_WEB_IDENTITY_TOKEN_FILE")],
                "{value}"
            );
        }
    }
}
