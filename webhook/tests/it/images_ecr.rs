//! ECR credentials: `GetAuthorizationToken` against `moto_server`, the token used as Basic
//! credentials by a real registry that only accepts moto's token.
//!
//! The registry is reached under a real ECR host name through a forward proxy (the
//! `http_proxy` setting), so the ECR code path is the production one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::images_support;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_ecr::config::{Credentials, Region};
use base64::Engine as _;
use images_support::{CountingProxy, Moto, TestImage, TestRegistry, wait_until};
use mutation_modes::{ImageConfigError, ImageConfigSource, Platform};
use secrets_init_webhook::images::{CachedImageSource, ImageSourceSettings, RegistryConfig, ecr};

/// moto's `GetAuthorizationToken` answers `AWS:<account>-auth-token` for its default account.
const MOTO_PASSWORD: &str = "123456789012-auth-token";
const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(ecr::https_client().expect("https client"))
        .region(Region::new("eu-central-1"))
        .credentials_provider(Credentials::new(
            "AKIDTEST",
            "test-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await
}

fn token_calls(moto: &CountingProxy) -> usize {
    moto.count(|r| {
        r.amz_target
            .as_deref()
            .is_some_and(|t| t.ends_with(".GetAuthorizationToken"))
    })
}

async fn ecr_source(
    moto: &CountingProxy,
    registry_proxy: &CountingProxy,
    error_ttl: Duration,
) -> CachedImageSource {
    let _ = rustls::crypto::ring::default_provider().install_default();
    CachedImageSource::new(
        ImageSourceSettings {
            registry: RegistryConfig {
                insecure_registry: vec![ECR_HOST.to_owned()],
                registry_timeout: Duration::from_secs(20),
                image_cache_error_ttl: error_ttl,
                ..RegistryConfig::default()
            },
            http_proxy: Some(registry_proxy.url()),
            ecr_endpoint: Some(moto.url()),
            aws_sdk_config: Some(sdk_config().await),
            ..ImageSourceSettings::default()
        },
        &prometheus::Registry::new(),
    )
    .await
    .expect("source")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ecr_token_is_fetched_once_per_region_and_sent() {
    let moto = Moto::start().await;
    let moto_proxy = CountingProxy::start(&moto.url).await;
    let reg = TestRegistry::start_with_htpasswd("AWS", MOTO_PASSWORD).await;
    reg.push_image("team/api", "v1", &TestImage::new(Some(&["/api"]), None))
        .await;
    reg.push_image("team/worker", "v2", &TestImage::new(None, Some(&["work"])))
        .await;
    let reg_proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let src = ecr_source(&moto_proxy, &reg_proxy, Duration::from_secs(5)).await;

    let api = src
        .image_config(
            &format!("{ECR_HOST}/team/api:v1"),
            &Platform::linux("amd64"),
        )
        .await
        .expect("api via ECR token");
    assert_eq!(api.entrypoint, Some(vec!["/api".to_owned()]));
    let worker = src
        .image_config(
            &format!("{ECR_HOST}/team/worker:v2"),
            &Platform::linux("amd64"),
        )
        .await
        .expect("worker via the cached ECR token");
    assert_eq!(worker.cmd, Some(vec!["work".to_owned()]));

    // One token for both images (cached), fetched from the ECR API with the host's region.
    assert_eq!(token_calls(&moto_proxy), 1, "{:?}", moto_proxy.requests());
    // The registry saw the token as Basic credentials, on requests for the ECR host.
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_PASSWORD}"))
    );
    let manifest_reqs: Vec<_> = reg_proxy
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/manifests/"))
        .collect();
    assert_eq!(manifest_reqs.len(), 2, "{manifest_reqs:?}");
    for r in &manifest_reqs {
        assert_eq!(r.host, ECR_HOST);
        assert_eq!(r.authorization.as_deref(), Some(expected.as_str()), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_ecr_token_is_a_clear_error_and_is_refetched() {
    let moto = Moto::start().await;
    let moto_proxy = CountingProxy::start(&moto.url).await;
    let reg = TestRegistry::start_with_htpasswd("AWS", "some-other-token").await;
    reg.push_image("team/api", "v1", &TestImage::new(Some(&["/api"]), None))
        .await;
    let reg_proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let src = ecr_source(&moto_proxy, &reg_proxy, Duration::from_millis(1)).await;
    let image = format!("{ECR_HOST}/team/api:v1");

    let err = src
        .image_config(&image, &Platform::linux("amd64"))
        .await
        .expect_err("wrong token");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains(ECR_HOST) && reason.contains("credentials rejected"),
        "{reason}"
    );
    assert!(
        reason.contains("ECR token") && reason.contains("ecr:BatchGetImage"),
        "{reason}"
    );
    assert!(!reason.contains(MOTO_PASSWORD), "token leaked: {reason}");
    assert_eq!(token_calls(&moto_proxy), 1);

    // The rejected token was dropped: once the failure leaves the cache (error_ttl 1 ms), the
    // next lookup asks ECR again instead of reusing the token (which is cached for >= 60 s).
    wait_until(
        "a second GetAuthorizationToken call",
        Duration::from_secs(15),
        || async {
            let again = src.image_config(&image, &Platform::linux("amd64")).await;
            assert!(again.is_err(), "the token is still wrong");
            token_calls(&moto_proxy) == 2
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ecr_api_failure_names_the_permissions() {
    // An ECR endpoint where nothing listens.
    let port = images_support::free_port();
    let dead = CountingProxy::start(&format!("http://127.0.0.1:{port}")).await;
    let reg = TestRegistry::start().await;
    let reg_proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let src = ecr_source(&dead, &reg_proxy, Duration::from_secs(5)).await;
    let err = src
        .image_config(&format!("{ECR_HOST}/x:v1"), &Platform::linux("amd64"))
        .await
        .expect_err("no ECR API");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("cannot get an ECR authorization token"),
        "{reason}"
    );
    assert!(
        reason.contains("region us-east-1") && reason.contains("ecr:GetAuthorizationToken"),
        "{reason}"
    );
    assert_eq!(
        reg_proxy.requests().len(),
        0,
        "no registry call without a token"
    );
}

/// In production the AWS configuration comes from the SDK's default chain, which must honour
/// `AWS_ENDPOINT_URL`. Environment variables are process-wide, so the lookup runs in a child
/// process (this test binary, re-run for this one test) with its own environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_aws_chain_honours_aws_endpoint_url() {
    const CHILD: &str = "SECRETS_INIT_TEST_ECR_CHILD_PROXY";
    if let Ok(registry_proxy) = std::env::var(CHILD) {
        // Child: default chain, no explicit endpoint or SDK config.
        let src = CachedImageSource::new(
            ImageSourceSettings {
                registry: RegistryConfig {
                    insecure_registry: vec![ECR_HOST.to_owned()],
                    registry_timeout: Duration::from_secs(20),
                    ..RegistryConfig::default()
                },
                http_proxy: Some(registry_proxy),
                ..ImageSourceSettings::default()
            },
            &prometheus::Registry::new(),
        )
        .await
        .expect("source");
        let got = src
            .image_config(
                &format!("{ECR_HOST}/team/api:v1"),
                &Platform::linux("amd64"),
            )
            .await
            .expect("lookup in child");
        assert_eq!(got.entrypoint, Some(vec!["/api".to_owned()]));
        return;
    }

    let moto = Moto::start().await;
    let moto_proxy = CountingProxy::start(&moto.url).await;
    let reg = TestRegistry::start_with_htpasswd("AWS", MOTO_PASSWORD).await;
    reg.push_image("team/api", "v1", &TestImage::new(Some(&["/api"]), None))
        .await;
    let reg_proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");

    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "--exact",
        "images_ecr::default_aws_chain_honours_aws_endpoint_url",
        "--nocapture",
    ])
    .env_clear()
    .env(CHILD, reg_proxy.url())
    .env("AWS_ENDPOINT_URL", moto_proxy.url())
    .env("AWS_ACCESS_KEY_ID", "AKIDCHILD")
    .env("AWS_SECRET_ACCESS_KEY", "child-secret")
    .env("AWS_REGION", "eu-west-3")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_CONFIG_FILE", &missing)
    .env("AWS_SHARED_CREDENTIALS_FILE", &missing);
    // The proxies and servers of this process keep running while the child works.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
    assert_eq!(token_calls(&moto_proxy), 1, "{:?}", moto_proxy.requests());
    assert_eq!(
        reg_proxy.count(|r| r.path == "/v2/team/api/manifests/v1"),
        1
    );
}
