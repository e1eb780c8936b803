//! AWS SDK set-up: the shared HTTPS client (compiled-in roots plus `SSL_CERT_FILE`), the
//! default credential chain, and the rules for which of the container's variables
//! secrets-init itself may use (contract §3).

use std::ffi::OsString;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_sdk_secretsmanager::config::SharedHttpClient;
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
