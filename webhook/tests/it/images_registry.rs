//! Image configs read from a real distribution registry (Debian `docker-registry`) started by
//! the tests, with images pushed by the tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::images_support;

use std::time::Duration;

use base64::Engine as _;
use images_support::{CountingProxy, TestImage, TestRegistry, wait_until};
use mutation_modes::{ImageConfig, ImageConfigError, ImageConfigSource, Platform};
use secrets_init_webhook::images::{CachedImageSource, ImageSourceSettings, RegistryConfig};

fn settings(insecure: &[&str]) -> ImageSourceSettings {
    settings_with(insecure, |_| {})
}

/// [`settings`], then `change`.
fn settings_with(
    insecure: &[&str],
    change: impl FnOnce(&mut ImageSourceSettings),
) -> ImageSourceSettings {
    let mut s = ImageSourceSettings {
        registry: RegistryConfig {
            insecure_registry: insecure.iter().map(|s| (*s).to_owned()).collect(),
            registry_timeout: Duration::from_secs(15),
            ..RegistryConfig::default()
        },
        ecr: false,
        ..ImageSourceSettings::default()
    };
    change(&mut s);
    s
}

async fn source(settings: ImageSourceSettings) -> (CachedImageSource, prometheus::Registry) {
    let metrics = prometheus::Registry::new();
    let src = CachedImageSource::new(settings, &metrics)
        .await
        .expect("image source");
    (src, metrics)
}

fn requests_metric(metrics: &prometheus::Registry, result: &str) -> u64 {
    for family in metrics.gather() {
        if family.name() == "secrets_init_webhook_image_config_requests_total" {
            for m in family.get_metric() {
                if m.get_label()
                    .iter()
                    .any(|l| l.name() == "result" && l.value() == result)
                {
                    return m.get_counter().get_value() as u64;
                }
            }
        }
    }
    panic!("metric requests_total{{result={result}}} not exported");
}

fn fetches_metric(metrics: &prometheus::Registry) -> u64 {
    for family in metrics.gather() {
        if family.name() == "secrets_init_webhook_image_config_fetch_duration_seconds" {
            return family.get_metric()[0].get_histogram().get_sample_count();
        }
    }
    panic!("fetch duration histogram not exported");
}

fn cfg(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    ImageConfig {
        entrypoint: entrypoint.map(own),
        cmd: cmd.map(own),
    }
}

fn amd64() -> Platform {
    Platform::linux("amd64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entrypoint_and_cmd_variants_oci_and_docker() {
    let reg = TestRegistry::start().await;
    let cases: [(&str, TestImage, ImageConfig); 5] = [
        (
            "both",
            TestImage::new(Some(&["/bin/app", "--serve"]), Some(&["--port", "80"])),
            cfg(Some(&["/bin/app", "--serve"]), Some(&["--port", "80"])),
        ),
        (
            "entrypoint-only",
            TestImage::new(Some(&["/entry"]), None),
            cfg(Some(&["/entry"]), None),
        ),
        (
            "cmd-only",
            TestImage::new(None, Some(&["sh", "-c", "echo $HOME"])),
            cfg(None, Some(&["sh", "-c", "echo $HOME"])),
        ),
        ("neither", TestImage::new(None, None), cfg(None, None)),
        (
            "docker-v2",
            TestImage::new(Some(&["/docker-entry"]), Some(&["run"])).docker(),
            cfg(Some(&["/docker-entry"]), Some(&["run"])),
        ),
    ];
    for (repo, image, _) in &cases {
        reg.push_image(&format!("team/{repo}"), "v1", image).await;
    }
    let (src, _m) = source(settings(&[&reg.addr])).await;
    for (repo, _, want) in &cases {
        let image = format!("{}/team/{repo}:v1", reg.addr);
        let got = src.image_config(&image, &amd64()).await.expect(&image);
        assert_eq!(&got, want, "{image}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_arch_index_selects_platform_and_names_the_available_ones() {
    let reg = TestRegistry::start().await;
    let images = [
        TestImage::new(Some(&["/amd64-entry"]), None),
        TestImage::new(Some(&["/arm64-entry"]), None)
            .arch("arm64")
            .variant("v8"),
        TestImage::new(Some(&["/armv7-entry"]), None)
            .arch("arm")
            .variant("v7"),
    ];
    let oci_index = reg.push_index("multi", "oci", &images, false).await;
    let docker_images: Vec<TestImage> = images.iter().cloned().map(TestImage::docker).collect();
    reg.push_index("multi", "docker", &docker_images, true)
        .await;
    let (src, _m) = source(settings(&[&reg.addr])).await;

    for tag in ["oci", "docker"] {
        let image = format!("{}/multi:{tag}", reg.addr);
        let cases = [
            (Platform::linux("amd64"), "/amd64-entry"),
            (Platform::linux("arm64"), "/arm64-entry"),
            (
                Platform {
                    variant: Some("v8".into()),
                    ..Platform::linux("arm64")
                },
                "/arm64-entry",
            ),
            (
                Platform {
                    variant: Some("v7".into()),
                    ..Platform::linux("arm")
                },
                "/armv7-entry",
            ),
        ];
        for (platform, want) in cases {
            let got = src.image_config(&image, &platform).await.expect(&image);
            assert_eq!(
                got.entrypoint,
                Some(vec![want.to_owned()]),
                "{image} {platform}"
            );
        }
        let err = src
            .image_config(&image, &Platform::linux("s390x"))
            .await
            .expect_err("no s390x");
        assert_eq!(
            err,
            ImageConfigError::PlatformMissing {
                image: image.clone(),
                platform: "linux/s390x".into(),
                available: "linux/amd64, linux/arm64/v8, linux/arm/v7".into(),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("linux/s390x") && text.contains("linux/arm64/v8"),
            "{text}"
        );
    }

    // The index by digest, resolved to a platform.
    let by_digest = format!("{}/multi@{oci_index}", reg.addr);
    let got = src
        .image_config(&by_digest, &Platform::linux("arm64"))
        .await
        .expect("by digest");
    assert_eq!(got.entrypoint, Some(vec!["/arm64-entry".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn digest_reference_and_missing_images() {
    let reg = TestRegistry::start().await;
    let (digest, _) = reg
        .push_image("app", "v1", &TestImage::new(Some(&["/pinned"]), None))
        .await;
    let (src, metrics) = source(settings(&[&reg.addr])).await;

    let pinned = format!("{}/app@{digest}", reg.addr);
    let got = src
        .image_config(&pinned, &amd64())
        .await
        .expect("digest ref");
    assert_eq!(got.entrypoint, Some(vec!["/pinned".to_owned()]));
    let tag_and_digest = format!("{}/app:ignored-tag@{digest}", reg.addr);
    let got = src
        .image_config(&tag_and_digest, &amd64())
        .await
        .expect("tag+digest ref");
    assert_eq!(got.entrypoint, Some(vec!["/pinned".to_owned()]));

    let wrong_digest = format!("{}/app@sha256:{}", reg.addr, "0".repeat(64));
    for image in [
        format!("{}/app:no-such-tag", reg.addr),
        format!("{}/no/such/repo:v1", reg.addr),
        wrong_digest,
    ] {
        let err = src.image_config(&image, &amd64()).await.expect_err(&image);
        assert_eq!(
            err,
            ImageConfigError::NotFound {
                image: image.clone()
            }
        );
        assert!(err.to_string().contains(&image), "{err}");
    }
    assert_eq!(requests_metric(&metrics, "error"), 3);
    assert_eq!(requests_metric(&metrics, "miss"), 2);

    let err = src
        .image_config("Not A Reference!", &amd64())
        .await
        .expect_err("invalid");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("is not a valid image reference"),
        "{reason}"
    );
    assert_eq!(requests_metric(&metrics, "error"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_from_docker_config() {
    let reg = TestRegistry::start_with_htpasswd("puller", "pull-pass-123").await;
    reg.push_image(
        "private/app",
        "v1",
        &TestImage::new(Some(&["/private"]), None),
    )
    .await;
    let image = format!("{}/private/app:v1", reg.addr);
    let dir = tempfile::tempdir().expect("tempdir");

    // No credentials at all: a clear "credentials needed" denial.
    let (src, _m) = source(settings(&[&reg.addr])).await;
    let err = src
        .image_config(&image, &amd64())
        .await
        .expect_err("needs creds");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains(&reg.addr) && reason.contains("401"),
        "{reason}"
    );
    assert!(
        reason.contains("credentials needed") && reason.contains("docker config.json"),
        "{reason}"
    );

    // Wrong password (username/password form): "credentials rejected", names the file.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        serde_json::json!({"auths": {reg.addr.clone(): {"username": "puller", "password": "wrong-pass-456"}}}).to_string(),
    )
    .expect("write");
    let (src, _m) = source(settings_with(&[&reg.addr], |s| {
        s.registry.docker_config = Some(bad.clone());
    }))
    .await;
    let err = src
        .image_config(&image, &amd64())
        .await
        .expect_err("wrong creds");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("credentials rejected") && reason.contains(&bad.display().to_string()),
        "{reason}"
    );
    assert!(
        !reason.contains("wrong-pass-456"),
        "the password must never appear: {reason}"
    );

    // Right credentials, `auth` form with a scheme and path in the key, as `docker login` writes.
    let good = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:pull-pass-123");
    std::fs::write(
        &good,
        serde_json::json!({"auths": {format!("http://{}/v2/", reg.addr): {"auth": auth}}})
            .to_string(),
    )
    .expect("write");
    let (src, _m) = source(settings_with(&[&reg.addr], |s| {
        s.registry.docker_config = Some(good);
    }))
    .await;
    let got = src
        .image_config(&image, &amd64())
        .await
        .expect("with creds");
    assert_eq!(got.entrypoint, Some(vec!["/private".to_owned()]));

    // A broken credentials file fails start-up with a clear message.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"auths\": {\"x\": {\"auth\": \"!!!\"}}}").expect("write");
    let err = CachedImageSource::new(
        settings_with(&[], |s| {
            s.registry.docker_config = Some(broken);
        }),
        &prometheus::Registry::new(),
    )
    .await
    .expect_err("broken file");
    assert!(err.to_string().contains("is not base64"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_http_only_for_insecure_registries() {
    let reg = TestRegistry::start().await;
    reg.push_image("app", "v1", &TestImage::new(Some(&["/x"]), None))
        .await;
    let image = format!("{}/app:v1", reg.addr);

    let (src, _m) = source(settings(&[])).await;
    let err = src
        .image_config(&image, &amd64())
        .await
        .expect_err("https to an http registry");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains(&format!(
            "cannot connect to registry {} over HTTPS",
            reg.addr
        )),
        "{reason}"
    );
    assert!(reason.contains("--insecure-registry"), "{reason}");

    let (src, _m) = source(settings(&[&reg.addr])).await;
    src.image_config(&image, &amd64())
        .await
        .expect("plain http when listed");

    let err = CachedImageSource::new(
        settings(&["http://reg.local:5000"]),
        &prometheus::Registry::new(),
    )
    .await
    .expect_err("bad entry");
    assert!(
        err.to_string().contains("must be a host or host:port"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_size_and_time() {
    let reg = TestRegistry::start().await;
    let long_cmd: Vec<String> = (0..200).map(|i| format!("argument-number-{i}")).collect();
    let long_cmd: Vec<&str> = long_cmd.iter().map(String::as_str).collect();
    reg.push_image("big", "v1", &TestImage::new(None, Some(&long_cmd)))
        .await;
    let (src, _m) = source(settings_with(&[&reg.addr], |s| {
        s.max_document_bytes = 2000;
    }))
    .await;
    let err = src
        .image_config(&format!("{}/big:v1", reg.addr), &amd64())
        .await
        .expect_err("too big");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("image config of") && reason.contains("more than the limit of 2000 bytes"),
        "{reason}"
    );

    // A "registry" that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr").to_string();
    let _keep = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let (src, _m) = source(settings_with(&[&silent_addr], |s| {
        s.registry.registry_timeout = Duration::from_millis(500);
    }))
    .await;
    let started = std::time::Instant::now();
    let err = src
        .image_config(&format!("{silent_addr}/app:v1"), &amd64())
        .await
        .expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains(&format!(
            "registry {silent_addr} did not answer within 500ms"
        )),
        "{reason}"
    );
}

fn manifest_gets(proxy: &CountingProxy, repo: &str, reference: &str) -> usize {
    let path = format!("/v2/{repo}/manifests/{reference}");
    proxy.count(|r| r.method == "GET" && r.path == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_flight_one_registry_fetch_for_100_concurrent_lookups() {
    let reg = TestRegistry::start().await;
    reg.push_image("hot", "v1", &TestImage::new(Some(&["/hot"]), Some(&["a"])))
        .await;
    let proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let proxy_addr = proxy.addr.to_string();
    let (src, metrics) = source(settings(&[&proxy_addr])).await;
    let image = format!("{proxy_addr}/hot:v1");

    let lookups = (0..100).map(|_| {
        let (src, image) = (src.clone(), image.clone());
        tokio::spawn(async move { src.image_config(&image, &amd64()).await })
    });
    for r in futures::future::join_all(lookups).await {
        assert_eq!(
            r.expect("task").expect("lookup"),
            cfg(Some(&["/hot"]), Some(&["a"]))
        );
    }
    assert_eq!(
        manifest_gets(&proxy, "hot", "v1"),
        1,
        "manifest GETs counted at the registry for 100 concurrent lookups"
    );
    assert_eq!(requests_metric(&metrics, "miss"), 1);
    assert_eq!(requests_metric(&metrics, "hit"), 99);
    assert_eq!(requests_metric(&metrics, "error"), 0);
    assert_eq!(fetches_metric(&metrics), 1);

    // Short-name spellings of the same image share the entry, so do later lookups.
    src.image_config(&image, &amd64()).await.expect("cached");
    assert_eq!(manifest_gets(&proxy, "hot", "v1"), 1);
    assert_eq!(requests_metric(&metrics, "hit"), 100);
    // Another platform is another entry.
    src.image_config(&image, &Platform::linux("arm64"))
        .await
        .expect("single-arch image");
    assert_eq!(manifest_gets(&proxy, "hot", "v1"), 2);
    assert_eq!(src.cached_entries().await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_are_cached_briefly_and_tags_expire() {
    let reg = TestRegistry::start().await;
    let proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let proxy_addr = proxy.addr.to_string();
    let image = format!("{proxy_addr}/late:v1");

    // error_ttl 1 h: the second lookup is answered from the cache however slow the machine
    // is (a TTL of a second could run out between the two).
    let (src, metrics) = source(settings_with(&[&proxy_addr], |s| {
        s.registry.image_cache_error_ttl = Duration::from_secs(3600);
        s.registry.image_cache_ttl = Duration::from_secs(3600);
    }))
    .await;
    for _ in 0..2 {
        let err = src
            .image_config(&image, &amd64())
            .await
            .expect_err("not yet pushed");
        assert!(matches!(err, ImageConfigError::NotFound { .. }), "{err:?}");
    }
    assert_eq!(manifest_gets(&proxy, "late", "v1"), 1);
    assert_eq!(requests_metric(&metrics, "error"), 2);
    assert_eq!(fetches_metric(&metrics), 1);

    // A brief error_ttl: once the image is pushed, the cached failure runs out and the
    // image is found (waited for, not timed).
    let (brief, _m) = source(settings_with(&[&proxy_addr], |s| {
        s.registry.image_cache_error_ttl = Duration::from_millis(300);
        s.registry.image_cache_ttl = Duration::from_secs(3600);
    }))
    .await;
    let err = brief
        .image_config(&image, &amd64())
        .await
        .expect_err("not yet pushed");
    assert!(matches!(err, ImageConfigError::NotFound { .. }), "{err:?}");
    let (digest, _) = reg
        .push_image("late", "v1", &TestImage::new(Some(&["/first"]), None))
        .await;
    wait_until(
        "the cached failure to expire",
        Duration::from_secs(30),
        || async { brief.image_config(&image, &amd64()).await.is_ok() },
    )
    .await;
    // The long-lived failure is still what `src` answers.
    src.image_config(&image, &amd64())
        .await
        .expect_err("failure cached for an hour");

    // tag_ttl 1 h: moving the tag is not seen.
    reg.push_image("late", "v1", &TestImage::new(Some(&["/second"]), None))
        .await;
    let got = brief.image_config(&image, &amd64()).await.expect("cached");
    assert_eq!(got.entrypoint, Some(vec!["/first".to_owned()]));

    // A source with a short tag TTL sees the moved tag; its digest entry stays cached.
    let (short, _m) = source(settings_with(&[&proxy_addr], |s| {
        s.registry.image_cache_ttl = Duration::from_millis(300);
        s.digest_ttl = Duration::from_secs(3600);
    }))
    .await;
    let pinned = format!("{proxy_addr}/late@{digest}");
    let got = short.image_config(&pinned, &amd64()).await.expect("pinned");
    assert_eq!(got.entrypoint, Some(vec!["/first".to_owned()]));
    let digest_gets = manifest_gets(&proxy, "late", &digest);
    assert_eq!(digest_gets, 1);
    let got = short.image_config(&image, &amd64()).await.expect("tag");
    assert_eq!(got.entrypoint, Some(vec!["/second".to_owned()]));
    reg.push_image("late", "v1", &TestImage::new(Some(&["/third"]), None))
        .await;
    let tag_gets = manifest_gets(&proxy, "late", "v1");
    wait_until(
        "the tag entry to expire",
        Duration::from_secs(30),
        || async {
            short
                .image_config(&image, &amd64())
                .await
                .expect("tag")
                .entrypoint
                == Some(vec!["/third".to_owned()])
        },
    )
    .await;
    assert!(manifest_gets(&proxy, "late", "v1") > tag_gets);
    let got = short
        .image_config(&pinned, &amd64())
        .await
        .expect("pinned again");
    assert_eq!(got.entrypoint, Some(vec!["/first".to_owned()]));
    assert_eq!(
        manifest_gets(&proxy, "late", &digest),
        digest_gets,
        "digest entry refetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_token_registries_anonymous_and_with_credentials() {
    let reg = TestRegistry::start().await;
    reg.push_image("lib/app", "v1", &TestImage::new(Some(&["/tok"]), None))
        .await;

    // Anonymous tokens (like Docker Hub for public images): the 401 challenge leads to the
    // token endpoint, asked for pull scope, and the token is then sent.
    let front = CountingProxy::start_bearer(&format!("http://{}", reg.addr), None).await;
    let front_addr = front.addr.to_string();
    let image = format!("{front_addr}/lib/app:v1");
    let (src, _m) = source(settings(&[&front_addr])).await;
    let got = src
        .image_config(&image, &amd64())
        .await
        .expect("anonymous bearer");
    assert_eq!(got.entrypoint, Some(vec!["/tok".to_owned()]));
    let token_reqs: Vec<_> = front
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/token"))
        .collect();
    assert!(!token_reqs.is_empty(), "{:?}", front.requests());
    assert!(
        token_reqs
            .iter()
            .all(|r| r.path.contains("scope=repository%3Alib%2Fapp%3Apull")
                || r.path.contains("scope=repository:lib/app:pull")),
        "{token_reqs:?}"
    );
    let bearer = format!("Bearer {}", images_support::BEARER_TOKEN);
    assert!(
        front.count(|r| r.path == "/v2/lib/app/manifests/v1"
            && r.authorization.as_deref() == Some(bearer.as_str()))
            == 1,
        "{:?}",
        front.requests()
    );

    // A token endpoint that wants credentials: none → clear denial; docker config → works,
    // and the credentials go to the token endpoint only.
    let private = CountingProxy::start_bearer(
        &format!("http://{}", reg.addr),
        Some(("robot", "robot-secret-789")),
    )
    .await;
    let private_addr = private.addr.to_string();
    let image = format!("{private_addr}/lib/app:v1");
    let (src, _m) = source(settings(&[&private_addr])).await;
    let err = src
        .image_config(&image, &amd64())
        .await
        .expect_err("no creds");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("credentials needed") && reason.contains(&private_addr),
        "{reason}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let cfg_path = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("robot:robot-secret-789");
    std::fs::write(
        &cfg_path,
        serde_json::json!({"auths": {private_addr.clone(): {"auth": auth}}}).to_string(),
    )
    .expect("write");
    let (src, _m) = source(settings_with(&[&private_addr], |s| {
        s.registry.docker_config = Some(cfg_path);
    }))
    .await;
    let got = src
        .image_config(&image, &amd64())
        .await
        .expect("with creds");
    assert_eq!(got.entrypoint, Some(vec!["/tok".to_owned()]));
    let basic = format!("Basic {auth}");
    for r in private.requests() {
        if r.authorization.as_deref() == Some(basic.as_str()) {
            assert!(
                r.path.starts_with("/token"),
                "Basic credentials sent to {}",
                r.path
            );
        }
    }
    assert!(private.count(|r| r.authorization.as_deref() == Some(basic.as_str())) >= 1);
}

/// `--registry-mirror`: image configs of a registry are read from its mirror (here the test
/// registry stands in for `registry.example.com` and for Docker Hub), which is told the
/// original registry in the `ns` query parameter; other registries are not mirrored.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_configs_of_a_mirrored_registry_come_from_the_mirror() {
    use secrets_init_webhook::images::RegistryMirror;
    let reg = TestRegistry::start().await;
    reg.push_image(
        "team/app",
        "v1",
        &TestImage::new(Some(&["/mirrored"]), None),
    )
    .await;
    reg.push_image(
        "library/nginx",
        "1.27",
        &TestImage::new(Some(&["/nginx"]), None),
    )
    .await;
    let mirror = |spec: String| spec.parse::<RegistryMirror>().expect("mirror");
    let (src, _m) = source(settings_with(&[&reg.addr], |s| {
        s.registry.registry_mirror = vec![
            mirror(format!("registry.example.com={}", reg.addr)),
            mirror(format!("docker.io={}", reg.addr)),
        ];
    }))
    .await;

    let got = src
        .image_config("registry.example.com/team/app:v1", &amd64())
        .await
        .expect("through the mirror");
    assert_eq!(got.entrypoint, Some(vec!["/mirrored".to_owned()]));
    let got = src
        .image_config("nginx:1.27", &amd64())
        .await
        .expect("Docker Hub short name through the mirror");
    assert_eq!(got.entrypoint, Some(vec!["/nginx".to_owned()]));
    let log = reg.log();
    assert!(
        log.contains("/v2/team/app/manifests/v1?ns=registry.example.com"),
        "the mirror is told the original registry: {log}"
    );
    assert!(
        log.contains("/v2/library/nginx/manifests/1.27?ns=docker.io"),
        "{log}"
    );

    let err = src
        .image_config("registry.example.com/team/missing:v1", &amd64())
        .await
        .expect_err("missing");
    assert!(matches!(err, ImageConfigError::NotFound { .. }), "{err:?}");
    // Not mirrored: asked of its own host, which does not resolve here.
    let err = src
        .image_config("unmirrored.invalid/team/app:v1", &amd64())
        .await
        .expect_err("not mirrored");
    assert!(err.to_string().contains("unmirrored.invalid"), "{err}");
}

/// The docker config is re-read on each registry fetch: when its Secret is updated (the
/// kubelet's `..data` symlink swap) or the file is rewritten in place, the next fetch uses
/// the new credentials, with no restart. A proxy in front of the registry records the
/// `Authorization` header of every request (compared here, never printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotated_docker_config_credentials_are_used_by_the_next_fetch() {
    use crate::common::DataVolume;
    let reg = TestRegistry::start_with_users(&[
        ("puller-a", "first-pass-111"),
        ("puller-b", "second-pass-222"),
    ])
    .await;
    for tag in ["v1", "v2", "v3", "v4"] {
        reg.push_image(
            "private/app",
            tag,
            &TestImage::new(Some(&[&format!("/{tag}")]), None),
        )
        .await;
    }
    let proxy = CountingProxy::start(&format!("http://{}", reg.addr)).await;
    let proxy_addr = proxy.addr.to_string();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = |user_pass: &str| {
        serde_json::json!({"auths": {proxy_addr.clone(): {"auth": b64(user_pass)}}}).to_string()
    };
    let basic_a = format!("Basic {}", b64("puller-a:first-pass-111"));
    let basic_b = format!("Basic {}", b64("puller-b:second-pass-222"));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut vol = DataVolume::new(
        dir.path(),
        &[("config.json", &config("puller-a:first-pass-111"))],
    );
    let cfg_path = vol.path("config.json");
    let (src, _m) = source(settings_with(&[&proxy_addr], |s| {
        s.registry.docker_config = Some(cfg_path.clone());
    }))
    .await;
    // Each lookup below names another tag: a cache miss, so a registry fetch.
    let fetch = |tag: &'static str| {
        let (src, image) = (src.clone(), format!("{proxy_addr}/private/app:{tag}"));
        async move { src.image_config(&image, &amd64()).await }
    };
    let with = |auth: &str, from: usize| {
        proxy.requests()[from..]
            .iter()
            .filter(|r| r.authorization.as_deref() == Some(auth))
            .count()
    };

    let got = fetch("v1").await.expect("with the first credentials");
    assert_eq!(got.entrypoint, Some(vec!["/v1".to_owned()]));
    assert!(with(&basic_a, 0) >= 1, "the first credentials were sent");
    assert_eq!(with(&basic_b, 0), 0);

    // The kubelet's update of a Secret volume.
    vol.swap(&[("config.json", &config("puller-b:second-pass-222"))]);
    let mark = proxy.requests().len();
    let got = fetch("v2").await.expect("with the rotated credentials");
    assert_eq!(got.entrypoint, Some(vec!["/v2".to_owned()]));
    assert!(
        with(&basic_b, mark) >= 1,
        "the rotated credentials were sent"
    );
    assert_eq!(
        with(&basic_a, mark),
        0,
        "the old credentials were sent after the rotation"
    );

    // A rewrite in place with a password the registry does not know: refused, naming the
    // file (and not the password).
    std::fs::write(&cfg_path, config("puller-b:revoked-pass-333")).expect("rewrite");
    let err = fetch("v3").await.expect_err("revoked password");
    let ImageConfigError::Other { reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.contains("credentials rejected") && reason.contains(&cfg_path.display().to_string()),
        "{reason}"
    );
    assert!(!reason.contains("revoked-pass-333"), "password in a denial");

    // Fixed again: the next fetch works.
    std::fs::write(&cfg_path, config("puller-b:second-pass-222")).expect("rewrite");
    let got = fetch("v4").await.expect("with the fixed file");
    assert_eq!(got.entrypoint, Some(vec!["/v4".to_owned()]));
}
