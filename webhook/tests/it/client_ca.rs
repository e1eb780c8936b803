//! `--client-ca` hot reload over real TLS on loopback: the API server's client certificate
//! from a rotated CA is accepted once the bundle file changes (plain rewrite, and a
//! Kubernetes Secret-volume `..data` swap), certificates from the CA rotated out are refused,
//! and an unusable bundle keeps the previous one in use and counts an error; with a bearer
//! token file as well, both credentials are required.

use crate::common;

use std::time::Duration;

use common::{
    Ca, DataVolume, Pair, SecretVolume, TableImages, client_config, eventually, example, scrape,
    start,
};
use secrets_init_webhook::config::Config;
use secrets_init_webhook::metrics::Metrics;
use secrets_init_webhook::tls::ClientCaReloader;
use secrets_init_webhook::tls::reload::Reload;

const OK: &str = "secrets_init_webhook_tls_reloads_total{result=\"ok\"}";
const ERROR: &str = "secrets_init_webhook_tls_reloads_total{result=\"error\"}";
const ADMISSION_ERROR: &str = "secrets_init_webhook_admission_requests_total{result=\"error\"}";
/// Bound for every wait on the watcher (debounce is 200 ms).
const WITHIN: Duration = Duration::from_secs(10);

/// What one `POST /mutate` on a fresh connection got.
#[derive(Debug)]
enum Outcome {
    Status(u16),
    /// The connection failed (a presented certificate that does not verify fails the
    /// handshake).
    Refused(String),
}

impl Outcome {
    fn accepted(&self) -> bool {
        matches!(self, Self::Status(200))
    }

    fn refused(&self) -> bool {
        // The server's alert for a chain that does not lead to the bundle in use.
        matches!(self, Self::Refused(e) if e.contains("UnknownCA"))
    }
}

/// The serving CA, the client CA in use first (A) and the one rotated in (B), and an API
/// server client certificate from each.
struct Cas {
    serving: Ca,
    a: Ca,
    b: Ca,
    client_a: Pair,
    client_b: Pair,
}

impl Cas {
    fn new() -> Self {
        let (a, b) = (Ca::new("client-ca-a"), Ca::new("client-ca-b"));
        Self {
            serving: Ca::new("serving"),
            client_a: a.client_pair("kube-apiserver"),
            client_b: b.client_pair("kube-apiserver"),
            a,
            b,
        }
    }
}

/// The API server's side: one client per CA, each request on a new TLS connection.
struct Callers {
    url: String,
    a: rustls::ClientConfig,
    b: rustls::ClientConfig,
}

impl Callers {
    fn new(addr: std::net::SocketAddr, serving: &Ca, a: &Pair, b: &Pair) -> Self {
        let config =
            |p: &Pair| client_config(&serving.cert_pem, &[&rustls::version::TLS13], Some(p));
        Self {
            url: format!("https://{addr}/mutate"),
            a: config(a),
            b: config(b),
        }
    }

    async fn a(&self) -> Outcome {
        mutate(&self.url, self.a.clone()).await
    }

    async fn b(&self) -> Outcome {
        mutate(&self.url, self.b.clone()).await
    }
}

/// `POST /mutate` with a fresh reqwest client (so a fresh connection and handshake).
async fn mutate(url: &str, tls: rustls::ClientConfig) -> Outcome {
    let client = crate::common::http()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client");
    match client.post(url).body(example("non-pod.json")).send().await {
        Ok(r) => Outcome::Status(r.status().as_u16()),
        Err(e) => Outcome::Refused(format!("{e:?}")),
    }
}

/// Polls until the B client is accepted and the A client refused.
async fn wait_for_ca_b(callers: &Callers, what: &str) {
    eventually(WITHIN, what, || async {
        (callers.b().await.accepted() && callers.a().await.refused()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn plain_rewrite_of_the_client_ca_is_picked_up_and_garbage_keeps_it() {
    let Cas {
        serving,
        a: ca_a,
        b: ca_b,
        client_a,
        client_b,
    } = Cas::new();
    // The serving pair and the CA in different directories: both are watched.
    let serving_dir = tempfile::tempdir().expect("tmp");
    let ca_dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(serving_dir.path(), &serving.server_pair(1));
    let ca_file = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca_a.cert_pem).expect("ca");
    let config = Config {
        client_ca: Some(ca_file.clone()),
        ..vol.config()
    };
    let server = start(config, TableImages::default()).await;
    let callers = Callers::new(server.addr, &serving, &client_a, &client_b);

    let (a, b) = (callers.a().await, callers.b().await);
    assert!(a.accepted(), "CA A client before the rotation: {a:?}");
    assert!(b.refused(), "CA B client before the rotation: {b:?}");

    // Rewritten in place: B in, A out.
    std::fs::write(&ca_file, &ca_b.cert_pem).expect("rewrite ca");
    wait_for_ca_b(&callers, "the rewritten CA (B) to be in use").await;
    let m = scrape(server.metrics_addr).await;
    assert_eq!((m[OK], m[ERROR]), (1.0, 0.0), "one good reload");

    // Garbage: the B bundle stays in use, one error is counted.
    std::fs::write(&ca_file, "this is not a CA bundle\n").expect("garbage");
    let m = eventually(WITHIN, "the bad bundle to be counted", || async {
        let m = scrape(server.metrics_addr).await;
        (m[ERROR] >= 1.0).then_some(m)
    })
    .await;
    assert_eq!((m[OK], m[ERROR]), (1.0, 1.0));
    let (a, b) = (callers.a().await, callers.b().await);
    assert!(b.accepted(), "the previous bundle (B) stays in use: {b:?}");
    assert!(a.refused(), "A stays out: {a:?}");

    // A bundle of both (an overlap during a rotation): both are accepted.
    std::fs::write(&ca_file, format!("{}{}", ca_a.cert_pem, ca_b.cert_pem)).expect("both");
    eventually(WITHIN, "the two-CA bundle to be in use", || async {
        (callers.a().await.accepted() && callers.b().await.accepted()).then_some(())
    })
    .await;
    let m = scrape(server.metrics_addr).await;
    assert_eq!((m[OK], m[ERROR]), (2.0, 1.0));
    server.stop().await;
}

#[tokio::test]
async fn secret_volume_swap_of_the_client_ca_is_picked_up_and_garbage_keeps_it() {
    let Cas {
        serving,
        a: ca_a,
        b: ca_b,
        client_a,
        client_b,
    } = Cas::new();
    // One volume holding ca.crt, tls.crt and tls.key (a cert-manager Secret): only the CA
    // changes, so only the CA counts as reloaded.
    let pair = serving.server_pair(1);
    let files = |ca: &str| -> Vec<(&'static str, String)> {
        vec![
            ("ca.crt", ca.to_owned()),
            ("tls.crt", pair.cert_pem.clone()),
            ("tls.key", pair.key_pem.clone()),
        ]
    };
    let dir = tempfile::tempdir().expect("tmp");
    let first = files(&ca_a.cert_pem);
    let mut vol = DataVolume::new(dir.path(), &borrow(&first));
    let config = Config {
        tls_cert: Some(vol.path("tls.crt")),
        tls_key: Some(vol.path("tls.key")),
        client_ca: Some(vol.path("ca.crt")),
        ..common::test_config()
    };
    let server = start(config, TableImages::default()).await;
    let callers = Callers::new(server.addr, &serving, &client_a, &client_b);
    let (a, b) = (callers.a().await, callers.b().await);
    assert!(a.accepted(), "CA A client before the rotation: {a:?}");
    assert!(b.refused(), "CA B client before the rotation: {b:?}");

    vol.swap(&borrow(&files(&ca_b.cert_pem)));
    wait_for_ca_b(&callers, "the swapped CA (B) to be in use").await;
    let m = scrape(server.metrics_addr).await;
    assert_eq!(
        (m[OK], m[ERROR]),
        (1.0, 0.0),
        "one good reload (the unchanged serving pair is not reloaded)"
    );

    vol.swap(&borrow(&files(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )));
    eventually(WITHIN, "the bad bundle to be counted", || async {
        (scrape(server.metrics_addr).await[ERROR] >= 1.0).then_some(())
    })
    .await;
    let (a, b) = (callers.a().await, callers.b().await);
    assert!(b.accepted(), "the previous bundle (B) stays in use: {b:?}");
    assert!(a.refused(), "A stays out: {a:?}");
    let m = scrape(server.metrics_addr).await;
    assert_eq!((m[OK], m[ERROR]), (1.0, 1.0));
    server.stop().await;
}

fn borrow<'a>(files: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    files.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A client that would resume its TLS session must not get back in with a certificate from
/// a CA that has been rotated out: resumption skips certificate verification.
#[tokio::test]
async fn a_resumed_session_does_not_outlive_a_rotated_ca() {
    let Cas {
        serving,
        a: ca_a,
        b: ca_b,
        client_a,
        client_b,
    } = Cas::new();
    let dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(dir.path(), &serving.server_pair(1));
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca_a.cert_pem).expect("ca");
    let config = Config {
        client_ca: Some(ca_file.clone()),
        ..vol.config()
    };
    let server = start(config, TableImages::default()).await;
    let callers = Callers::new(server.addr, &serving, &client_a, &client_b);
    let url = format!("https://{}/mutate", server.addr);
    // Same session store across connections (it is an Arc inside the config).
    let mut resuming = callers.a.clone();
    resuming.resumption = rustls::client::Resumption::default();
    for _ in 0..3 {
        let r = mutate(&url, resuming.clone()).await;
        assert!(r.accepted(), "A client before the rotation: {r:?}");
    }

    std::fs::write(&ca_file, &ca_b.cert_pem).expect("rewrite ca");
    wait_for_ca_b(&callers, "the rewritten CA (B) to be in use").await;
    let r = mutate(&url, resuming.clone()).await;
    assert!(
        r.refused(),
        "A client trying to resume after the rotation: {r:?}"
    );
    server.stop().await;
}

/// The reloader on its own, without the watcher: each call re-reads the file.
#[test]
fn reload_outcomes_and_counts() {
    let (ca_a, ca_b) = (Ca::new("client-ca-a"), Ca::new("client-ca-b"));
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, &ca_a.cert_pem).expect("ca");
    let metrics = Metrics::new().expect("metrics");
    let (reloader, verifier) = ClientCaReloader::start(&file, metrics.clone()).expect("start");
    let counts = || {
        (
            metrics.tls_reloads.with_label_values(&["ok"]).get(),
            metrics.tls_reloads.with_label_values(&["error"]).get(),
        )
    };
    let hints = || {
        use rustls::server::danger::ClientCertVerifier;
        verifier
            .root_hint_subjects()
            .iter()
            .map(|d| d.as_ref().to_vec())
            .collect::<Vec<_>>()
    };
    let hints_a = hints();
    assert_eq!(hints_a.len(), 1);

    // Unchanged (also after rewriting the same bytes): nothing happens.
    assert_eq!(reloader.reload().expect("same"), Reload::Unchanged);
    std::fs::write(&file, &ca_a.cert_pem).expect("same again");
    assert_eq!(reloader.reload().expect("same"), Reload::Unchanged);
    assert_eq!(counts(), (0, 0));

    // A new bundle: swapped, counted once.
    std::fs::write(&file, &ca_b.cert_pem).expect("b");
    assert!(matches!(reloader.reload(), Ok(Reload::Swapped(_))));
    let hints_b = hints();
    assert_ne!(hints_b, hints_a);
    assert_eq!(counts(), (1, 0));

    // Bad contents of every kind: refused, named, counted once each, B stays.
    for (bad, why) in [
        ("not PEM at all", "no `BEGIN CERTIFICATE` block"),
        (
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
            "bad PEM",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "could be parsed",
        ),
    ] {
        let before = counts().1;
        std::fs::write(&file, bad).expect("bad");
        let err = reloader.reload().expect_err("bad bundle").to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(why), "{err} should say {why}");
        assert_eq!(counts().1, before + 1);
        // The same bad bytes again are not counted again.
        assert_eq!(reloader.reload().expect("same bad"), Reload::Unchanged);
        assert_eq!(counts().1, before + 1);
        assert_eq!(hints(), hints_b, "B stays in use");
    }

    // Unreadable: refused and counted, B stays.
    std::fs::remove_file(&file).expect("rm");
    let err = reloader.reload().expect_err("missing").to_string();
    assert!(
        err.contains("cannot read") && err.contains(&file.display().to_string()),
        "{err}"
    );
    assert_eq!(counts(), (1, 4));
    assert_eq!(hints(), hints_b);

    // Back to A: swapped.
    std::fs::write(&file, &ca_a.cert_pem).expect("a");
    assert!(matches!(reloader.reload(), Ok(Reload::Swapped(_))));
    assert_eq!(hints(), hints_a);
    assert_eq!(counts(), (2, 4));
}

/// `POST /mutate` on a fresh connection with an optional bearer token: the status and body,
/// or why the connection failed.
async fn mutate_with_token(
    url: &str,
    tls: rustls::ClientConfig,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    let client = crate::common::http()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(WITHIN)
        .build()
        .expect("reqwest client");
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(example("non-pod.json"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await.map_err(|e| format!("{e:?}"))?))
}

/// `--client-ca` and `--bearer-token-file` together: `/mutate` needs both a certificate
/// from the CA and the token. Without a certificate TLS still lets the client in (kubelet
/// probes carry none) and the request is refused with 401; a certificate from another CA
/// is refused by TLS itself; a missing or wrong token is a 401 even with a good
/// certificate. Only the 401s reach the admission counter.
#[tokio::test]
async fn client_certificate_and_bearer_token_are_both_required_when_both_are_set() {
    let Cas {
        serving,
        a: ca_a,
        client_a,
        client_b,
        ..
    } = Cas::new();
    let dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(dir.path(), &serving.server_pair(1));
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &ca_a.cert_pem).expect("ca");
    let token_file = dir.path().join("token");
    let token = "api-server-token";
    std::fs::write(&token_file, token).expect("token");
    let config = Config {
        client_ca: Some(ca_file),
        bearer_token_file: Some(token_file),
        ..vol.config()
    };
    let server = start(config, TableImages::default()).await;
    let url = format!("https://{}/mutate", server.addr);
    let tls = |p: Option<&Pair>| client_config(&serving.cert_pem, &[&rustls::version::TLS13], p);
    let (with_cert, no_cert, other_ca) = (tls(Some(&client_a)), tls(None), tls(Some(&client_b)));

    let before = scrape(server.metrics_addr).await;
    // (what, TLS identity, token, reason in the 401)
    let refusals = [
        (
            "a good certificate and no token",
            &with_cert,
            None,
            "bearer token required",
        ),
        (
            "a good certificate and another token",
            &with_cert,
            Some("not-the-token"),
            "bearer token not accepted",
        ),
        (
            "the token and no certificate",
            &no_cert,
            Some(token),
            "client certificate required",
        ),
    ];
    for (what, identity, sent, reason) in refusals {
        let (status, body) = mutate_with_token(&url, identity.clone(), sent)
            .await
            .unwrap_or_else(|e| panic!("{what}: the connection failed: {e}"));
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains(reason), "{what}: {body}");
    }
    let refused = mutate_with_token(&url, other_ca.clone(), Some(token)).await;
    assert!(
        matches!(&refused, Err(e) if e.contains("UnknownCA")),
        "the token and a certificate from another CA: refused by TLS, got {refused:?}"
    );
    let after = scrape(server.metrics_addr).await;
    assert_eq!(
        (after[ADMISSION_ERROR] - before[ADMISSION_ERROR]),
        3.0,
        "each 401 counted once; the TLS refusal never reached the handler"
    );

    let (status, body) = mutate_with_token(&url, with_cert.clone(), Some(token))
        .await
        .expect("both");
    assert_eq!(status, 200, "a good certificate and the token: {body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["response"]["allowed"], true);

    // The probes stay open to a client with neither.
    let probe = crate::common::http()
        .tls_backend_preconfigured(no_cert)
        .no_proxy()
        .timeout(WITHIN)
        .build()
        .expect("client")
        .get(format!("https://{}/healthz", server.addr))
        .send()
        .await
        .expect("healthz");
    assert_eq!(probe.status(), 200);
    server.stop().await;
}
