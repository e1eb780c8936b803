//! The real TLS server on loopback: protocol versions, certificate hot reload (Kubernetes
//! Secret-volume `..data` swaps and plain rewrites), bad pairs, client certificates,
//! metrics over the metrics port.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Ca, SecretVolume, TableImages, client_config, eventually, example, parse_metrics, pem_serial,
    probe, scrape, start, test_config,
};
use secrets_init_webhook::config::Config;

fn tls13(ca: &Ca) -> Arc<rustls::ClientConfig> {
    Arc::new(client_config(
        &ca.cert_pem,
        &[&rustls::version::TLS13],
        None,
    ))
}

#[tokio::test]
async fn tls_1_3_is_accepted_and_tls_1_2_refused() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let server = start(vol.config(), TableImages::default()).await;

    let ok = probe(server.addr, tls13(&ca), "/healthz")
        .await
        .expect("TLS 1.3 works");
    assert_eq!(ok.version, rustls::ProtocolVersion::TLSv1_3);
    assert!(
        ok.status_line.starts_with("HTTP/1.1 200"),
        "{}",
        ok.status_line
    );

    // A client offering both gets 1.3.
    let both = Arc::new(client_config(
        &ca.cert_pem,
        &[&rustls::version::TLS12, &rustls::version::TLS13],
        None,
    ));
    assert_eq!(
        probe(server.addr, both, "/healthz")
            .await
            .expect("both")
            .version,
        rustls::ProtocolVersion::TLSv1_3
    );

    let tls12 = Arc::new(client_config(
        &ca.cert_pem,
        &[&rustls::version::TLS12],
        None,
    ));
    let err = probe(server.addr, tls12, "/healthz")
        .await
        .expect_err("TLS 1.2 must be refused");
    assert!(err.starts_with("handshake"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn symlink_swap_rotates_the_certificate_without_failed_requests() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let first = ca.server_pair(1);
    let second = ca.server_pair(2);
    let mut vol = SecretVolume::new(dir.path(), &first);
    let server = start(vol.config(), TableImages::default()).await;
    let client = tls13(&ca);
    assert_eq!(
        probe(server.addr, client.clone(), "/healthz")
            .await
            .expect("probe")
            .serial,
        pem_serial(&first.cert_pem)
    );

    // A client that keeps sending requests on fresh connections the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (stop, ok, failures, client, addr) = (
            stop.clone(),
            ok.clone(),
            failures.clone(),
            client.clone(),
            server.addr,
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match probe(addr, client.clone(), "/readyz").await {
                    Ok(p) if p.status_line.starts_with("HTTP/1.1 200") => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(p) => failures.lock().expect("lock").push(p.status_line),
                    Err(e) => failures.lock().expect("lock").push(e),
                }
            }
        })
    };
    eventually(
        Duration::from_secs(5),
        "some requests before the swap",
        || {
            let ok = ok.clone();
            async move { (ok.load(Ordering::SeqCst) > 5).then_some(()) }
        },
    )
    .await;

    vol.swap(&second);
    let want = pem_serial(&second.cert_pem);
    common::wait_for_serial(server.addr, &client, &want, "the new serial to be served").await;
    let before = ok.load(Ordering::SeqCst);
    eventually(Duration::from_secs(5), "requests after the swap", || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::SeqCst) > before + 5).then_some(()) }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load task");
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "failed requests during rotation: {failures:?}"
    );

    let m = scrape(server.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        1.0
    );
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"error\"}"],
        0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn plain_rewrite_is_picked_up_and_a_bad_pair_keeps_the_old_one() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let first = ca.server_pair(1);
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &first.cert_pem).expect("crt");
    std::fs::write(&key, &first.key_pem).expect("key");
    let config = Config {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.clone()),
        ..test_config()
    };
    let server = start(config, TableImages::default()).await;
    let client = tls13(&ca);

    // A certificate whose key does not match: rejected, old one still served, error counted.
    let other = ca.server_pair(3);
    std::fs::write(&cert, &other.cert_pem).expect("bad crt");
    let m = eventually(
        Duration::from_secs(10),
        "the reload error to be counted",
        || async {
            let m = scrape(server.metrics_addr).await;
            (m["secrets_init_webhook_tls_reloads_total{result=\"error\"}"] >= 1.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        0.0
    );
    let p = probe(server.addr, client.clone(), "/healthz")
        .await
        .expect("still serving");
    assert_eq!(
        p.serial,
        pem_serial(&first.cert_pem),
        "old certificate kept"
    );
    assert!(p.status_line.starts_with("HTTP/1.1 200"));

    // Garbage is rejected too.
    std::fs::write(&key, "not a key").expect("garbage");
    eventually(Duration::from_secs(10), "a second error", || async {
        let m = scrape(server.metrics_addr).await;
        (m["secrets_init_webhook_tls_reloads_total{result=\"error\"}"] >= 2.0).then_some(())
    })
    .await;
    assert_eq!(
        probe(server.addr, client.clone(), "/healthz")
            .await
            .expect("serving")
            .serial,
        pem_serial(&first.cert_pem)
    );

    // Completing the pair in place: the new certificate is served.
    std::fs::write(&key, &other.key_pem).expect("good key");
    let want = pem_serial(&other.cert_pem);
    common::wait_for_serial(
        server.addr,
        &client,
        &want,
        "the rewritten pair to be served",
    )
    .await;
    let m = scrape(server.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        1.0
    );
    let (_, parsed) = x509_parser::pem::parse_x509_pem(other.cert_pem.as_bytes()).expect("pem");
    let not_after = parsed
        .parse_x509()
        .expect("x509")
        .validity()
        .not_after
        .timestamp();
    assert_eq!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"],
        not_after as f64
    );
    server.stop().await;
}

#[tokio::test]
async fn client_certificates_are_verified_over_real_tls() {
    let serving = Ca::new("serving");
    let clients = Ca::new("clients");
    let stranger = Ca::new("stranger");
    let dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(dir.path(), &serving.server_pair(1));
    let ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &clients.cert_pem).expect("ca");
    let config = Config {
        client_ca: Some(ca_file),
        ..vol.config()
    };
    let server = start(config, TableImages::default()).await;
    let url = format!("https://{}/mutate", server.addr);
    let body = example("non-pod.json");

    // With a certificate from the configured CA: admitted.
    let good = common::https_client(
        &serving.cert_pem,
        Some(&clients.client_pair("kube-apiserver")),
    );
    let r = good
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    // Without one: 401 (TLS itself allows it, for kubelet probes).
    let none = common::https_client(&serving.cert_pem, None);
    let r = none
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = none
        .get(format!("https://{}/healthz", server.addr))
        .send()
        .await
        .expect("probe");
    assert_eq!(r.status(), 200, "probes need no client certificate");
    // With a certificate from another CA: the handshake fails.
    let bad = common::https_client(&serving.cert_pem, Some(&stranger.client_pair("intruder")));
    assert!(
        bad.post(&url).body(body).send().await.is_err(),
        "foreign client cert refused"
    );
    server.stop().await;
}

#[tokio::test]
async fn metrics_port_serves_every_contract_metric() {
    let server = start(test_config(), TableImages::default()).await;
    let ca_less = Arc::new(common::insecure_client_config());
    let p = probe(server.addr, ca_less, "/healthz")
        .await
        .expect("dev mode serves");
    assert!(p.status_line.starts_with("HTTP/1.1 200"));
    let http = crate::common::http().no_proxy().build().expect("client");
    let resp = http
        .get(format!("http://{}/metrics", server.metrics_addr))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"]
        .to_str()
        .expect("ctype")
        .to_owned();
    assert!(ctype.starts_with("text/plain"), "{ctype}");
    let m = parse_metrics(&resp.text().await.expect("text"));
    for key in [
        "secrets_init_webhook_admission_requests_total{result=\"mutated\"}",
        "secrets_init_webhook_admission_requests_total{result=\"skipped\"}",
        "secrets_init_webhook_admission_requests_total{result=\"denied\"}",
        "secrets_init_webhook_admission_requests_total{result=\"error\"}",
        "secrets_init_webhook_admission_duration_seconds_count",
        "secrets_init_webhook_admission_duration_seconds_bucket{le=\"+Inf\"}",
        "secrets_init_webhook_tls_reloads_total{result=\"ok\"}",
        "secrets_init_webhook_tls_reloads_total{result=\"error\"}",
        "secrets_init_webhook_tls_cert_expiry_timestamp_seconds",
        "process_resident_memory_bytes",
    ] {
        assert!(
            m.contains_key(key),
            "missing {key}; have {:?}",
            m.keys().collect::<Vec<_>>()
        );
    }
    assert!(m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"] > 1.7e9);
    server.stop().await;
}

#[tokio::test]
async fn slow_clients_are_dropped_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let vol = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let config = Config {
        read_timeout: Duration::from_millis(500),
        ..vol.config()
    };
    let server = start(config, TableImages::default()).await;
    let connector = tokio_rustls::TlsConnector::from(tls13(&ca));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        connector
            .connect(name.clone(), tcp)
            .await
            .expect("handshake")
    };

    // Headers never finished: the connection is closed (hyper answers 408 or just closes).
    let mut stalled_head = connect().await;
    stalled_head
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("partial head");
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stalled_head.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "connection with stalled headers closed by the server"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    // Body never finished: 408 with a reason.
    let mut stalled_body = connect().await;
    stalled_body
        .write_all(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{\"apiVersion\"")
        .await
        .expect("partial body");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stalled_body.read_to_end(&mut buf))
        .await
        .expect("answered within 5 s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("--read-timeout"), "{text}");

    // A client that does not even finish the TLS handshake is dropped too.
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "handshake timeout closes the socket: {closed:?}"
    );
    server.stop().await;
}

/// The binary with `--tls-cert`/`--tls-key` (and `extra` flags), on loopback ports it picks.
fn serve_files(cert: &std::path::Path, key: &std::path::Path, extra: &[&str]) -> common::Process {
    let mut args = vec![
        "--shutdown-delay".to_owned(),
        "0".to_owned(),
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::Process::start(&args, &[])
}

/// An hour ago to a minute ago.
fn expired_pair(ca: &Ca, serial: u8) -> common::Pair {
    let now = common::unix_now();
    ca.server_pair_valid(serial, now - 3600, now - 60)
}

#[test]
fn an_expired_certificate_is_refused_at_start_up() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let pair = expired_pair(&ca, 1);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &pair.cert_pem).expect("crt");
    std::fs::write(&key, &pair.key_pem).expect("key");
    let mut child = common::webhook_command()
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the webhook");
    let stderr = common::read_all(child.stderr.take().expect("stderr"));
    // A webhook that accepted the certificate would serve until killed: bounded wait.
    let mut child = common::KillOnDrop(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            panic!(
                "still running 30 s after start with an expired certificate: {}",
                stderr.join().expect("stderr")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = stderr.join().expect("stderr");
    assert!(
        !status.success(),
        "exit 0 with an expired certificate: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("secrets-init-webhook: ")
            && last.contains(&format!("certificate {} expired at", cert.display()))
            && last.contains("renew it"),
        "the last line says which certificate expired: {stderr}"
    );
    assert!(
        !stderr.contains("secrets-init-webhook serving"),
        "never served: {stderr}"
    );
}

/// A rotation to an expired pair is refused like any bad pair: counted, logged with the
/// reason, the previous certificate keeps serving and the expiry gauge keeps its notAfter.
/// A good pair afterwards is taken.
#[tokio::test]
async fn rotation_to_an_expired_certificate_keeps_the_previous_one() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let good = ca.server_pair(1);
    let mut vol = SecretVolume::new(dir.path(), &good);
    let running = serve_files(&vol.path("tls.crt"), &vol.path("tls.key"), &[]);
    let client = tls13(&ca);

    vol.swap(&expired_pair(&ca, 2));
    let m = eventually(
        Duration::from_secs(10),
        "the expired pair to be refused",
        || async {
            let m = scrape(running.metrics_addr).await;
            (m["secrets_init_webhook_tls_reloads_total{result=\"error\"}"] >= 1.0).then_some(m)
        },
    )
    .await;
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        0.0
    );
    assert_eq!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"],
        common::pem_not_after(&good.cert_pem) as f64,
        "the gauge describes the certificate still in use"
    );
    let p = probe(running.addr, client.clone(), "/readyz")
        .await
        .expect("still serving, and still trusted");
    assert_eq!(p.serial, pem_serial(&good.cert_pem));
    assert!(
        p.status_line.starts_with("HTTP/1.1 200"),
        "{}",
        p.status_line
    );
    let lines = running.lines();
    let refused = running
        .line("new serving certificate rejected; the previous certificate stays in use")
        .unwrap_or_else(|| panic!("no log line for the refused pair: {lines:?}"));
    assert_eq!(refused["level"], "ERROR", "{refused}");
    let error = refused["fields"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("expired at"), "{refused}");

    let renewed = ca.server_pair(3);
    vol.swap(&renewed);
    let want = pem_serial(&renewed.cert_pem);
    common::wait_for_serial(
        running.addr,
        &client,
        &want,
        "the renewed pair to be served",
    )
    .await;
    let m = scrape(running.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        1.0
    );
    assert_eq!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"],
        common::pem_not_after(&renewed.cert_pem) as f64
    );
}

/// A certificate that runs out while it is served: the webhook keeps serving it (every
/// replica has the same Secret, so turning unready would take the whole Service down with
/// no benefit; the expiry gauge is what the alerts in `deploy/prometheus` watch), clients
/// that verify refuse it, and the renewed Secret is picked up without a restart.
#[tokio::test]
async fn a_certificate_expiring_while_served_is_replaced_by_the_renewed_one() {
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let now = common::unix_now();
    let short = ca.server_pair_valid(1, now - 3600, now + 2);
    let mut vol = SecretVolume::new(dir.path(), &short);
    let server = start(vol.config(), TableImages::default()).await;
    let client = tls13(&ca);
    let m = scrape(server.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"],
        common::pem_not_after(&short.cert_pem) as f64
    );

    let err = eventually(
        Duration::from_secs(30),
        "verifying clients to see the certificate expired",
        || {
            let client = client.clone();
            async move { probe(server.addr, client, "/healthz").await.err() }
        },
    )
    .await;
    assert!(err.contains("xpired"), "{err}");
    let blind = Arc::new(common::insecure_client_config());
    let p = probe(server.addr, blind, "/readyz")
        .await
        .expect("still serving");
    assert_eq!(p.serial, pem_serial(&short.cert_pem));
    assert!(
        p.status_line.starts_with("HTTP/1.1 200"),
        "{}",
        p.status_line
    );
    let m = scrape(server.metrics_addr).await;
    assert!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"] < common::unix_now() as f64,
        "the gauge shows a notAfter in the past, which the alerts fire on"
    );

    let renewed = ca.server_pair(2);
    vol.swap(&renewed);
    let want = pem_serial(&renewed.cert_pem);
    eventually(Duration::from_secs(10), "the renewed certificate", || {
        let (client, want) = (client.clone(), want.clone());
        async move { (probe(server.addr, client, "/healthz").await.ok()?.serial == want).then_some(()) }
    })
    .await;
    let m = scrape(server.metrics_addr).await;
    assert_eq!(
        m["secrets_init_webhook_tls_cert_expiry_timestamp_seconds"],
        common::pem_not_after(&renewed.cert_pem) as f64
    );
    assert_eq!(
        m["secrets_init_webhook_tls_reloads_total{result=\"ok\"}"],
        1.0
    );
    server.stop().await;
}

/// The periodic re-check catches a change no filesystem event reports: here the watched
/// directory holds symlinks into a directory that is not watched (as with a hostPath or a
/// projected layout of another tool), and the files are rewritten there. The interval is
/// 300 ms instead of the webhook's minute (`watch_every` exists for this).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_recheck_picks_up_changes_no_event_reports() {
    use secrets_init_webhook::tls::{CertReloader, Watched, watch_every};
    let ca = Ca::new("serving");
    let dir = tempfile::tempdir().expect("tmp");
    let (watched, store) = (dir.path().join("watched"), dir.path().join("store"));
    std::fs::create_dir(&watched).expect("mkdir");
    std::fs::create_dir(&store).expect("mkdir");
    let first = ca.server_pair(1);
    std::fs::write(store.join("tls.crt"), &first.cert_pem).expect("crt");
    std::fs::write(store.join("tls.key"), &first.key_pem).expect("key");
    for name in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(store.join(name), watched.join(name)).expect("link");
    }
    let metrics = secrets_init_webhook::metrics::Metrics::new().expect("metrics");
    let (reloader, resolver) = CertReloader::start(
        &watched.join("tls.crt"),
        &watched.join("tls.key"),
        metrics.clone(),
    )
    .expect("first pair");
    let items: Vec<Arc<dyn Watched>> = vec![reloader];
    let task = watch_every(items, Duration::from_millis(300)).expect("watch");

    let second = ca.server_pair(2);
    // Key first: until the certificate follows, the pair does not match and is refused.
    std::fs::write(store.join("tls.key"), &second.key_pem).expect("key");
    std::fs::write(store.join("tls.crt"), &second.cert_pem).expect("crt");
    let want = pem_serial(&second.cert_pem);
    eventually(
        Duration::from_secs(20),
        "the re-check to swap the pair",
        || {
            let served = common::der_serial(&resolver.current().cert[0]);
            let want = want.clone();
            async move { (served == want).then_some(()) }
        },
    )
    .await;
    assert_eq!(metrics.tls_reloads.with_label_values(&["ok"]).get(), 1);
    assert_eq!(
        metrics.tls_cert_expiry.get(),
        common::pem_not_after(&second.cert_pem) as f64
    );
    task.abort();
}
