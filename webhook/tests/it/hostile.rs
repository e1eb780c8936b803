//! Hostile and unlucky clients: wrong methods and media types, pathological JSON, idle and
//! half-open connections, and certificate rotation plus shutdown under load. In every case
//! the server keeps answering everyone else.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{
    Ca, SecretVolume, TableImages, client_config, eventually, example, pem_serial, start,
    test_config,
};
use rustls::pki_types::ServerName;
use secrets_init_webhook::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

fn router() -> axum::Router {
    let state = secrets_init_webhook::AppState::from_config(
        &test_config(),
        secrets_init_webhook::metrics::Metrics::new().expect("metrics"),
        secrets_init_webhook::Readiness::new(true),
        TableImages::default(),
    )
    .expect("state");
    secrets_init_webhook::router(state)
}

async fn status_of(req: Request<Body>) -> (StatusCode, String) {
    let resp = router().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn wrong_methods_paths_and_media_types_get_4xx() {
    let review = example("pod-with-command.json");
    let (status, _) = status_of(
        Request::builder()
            .method(Method::GET)
            .uri("/mutate")
            .body(Body::empty())
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let (status, _) = status_of(
        Request::builder()
            .method(Method::POST)
            .uri("/nope")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(review.clone()))
            .expect("req"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/yaml",
    ] {
        let (status, text) = status_of(
            Request::builder()
                .method(Method::POST)
                .uri("/mutate")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(review.clone()))
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert!(
            text.contains("send the AdmissionReview as application/json"),
            "{text}"
        );
        assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
    }
    // Parameters and case do not matter; a missing Content-Type is read as JSON.
    for content_type in [
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
        None,
    ] {
        let mut req = Request::builder().method(Method::POST).uri("/mutate");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let (status, text) = status_of(req.body(Body::from(review.clone())).expect("req")).await;
        assert_eq!(status, StatusCode::OK, "{content_type:?}: {text}");
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_stack_overflow() {
    for depth in [1_000usize, 100_000, 1_000_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let mut body = String::with_capacity(depth * 6);
            body.push_str(
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":"#,
            );
            for _ in 0..depth {
                body.push_str(open);
            }
            body.push('1');
            for _ in 0..depth {
                body.push_str(close);
            }
            body.push('}');
            let (status, text) = status_of(
                Request::builder()
                    .method(Method::POST)
                    .uri("/mutate")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("req"),
            )
            .await;
            // Past the 4 MiB limit it is a 413; below it, serde's recursion limit gives a 400.
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
                "depth {depth} {open}: {status} {text}"
            );
            assert_eq!(text.trim_end().lines().count(), 1, "one line: {text}");
        }
    }
}

fn tls_client(ca: &Ca) -> Arc<rustls::ClientConfig> {
    Arc::new(client_config(
        &ca.cert_pem,
        &[&rustls::version::TLS13],
        None,
    ))
}

/// POSTs the example review on a fresh TLS connection. Returns the status line, and the
/// instant the request was completely written.
async fn post_review(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    body: &[u8],
) -> (Result<String, String>, Option<Instant>) {
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut tls = connector
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let head = format!(
            "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.write_all(body)
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.flush().await.map_err(|e| format!("flush: {e}"))?;
        Ok::<_, String>(tls)
    };
    let mut tls = match attempt.await {
        Ok(tls) => tls,
        Err(e) => return (Err(e), None),
    };
    let written = Instant::now();
    let mut buf = Vec::new();
    let result = match tls.read_to_end(&mut buf).await {
        Ok(_) => {
            let text = String::from_utf8_lossy(&buf);
            let status = text.lines().next().unwrap_or_default().to_owned();
            if status.starts_with("HTTP/1.1 200") && text.contains("\"allowed\":true") {
                Ok(status)
            } else {
                Err(format!("answer: {status}"))
            }
        }
        Err(e) => Err(format!("read: {e}")),
    };
    (result, Some(written))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_are_dropped_while_others_are_served() {
    let ca = Ca::new("idle");
    let dir = tempfile::tempdir().expect("tmp");
    let volume = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let config = Config {
        read_timeout: Duration::from_secs(1),
        ..volume.config()
    };
    let server = start(config, TableImages::default()).await;
    let client = tls_client(&ca);

    // 200 connections that never start TLS, 50 that finish the handshake and then say nothing.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let mut idle_tls = Vec::new();
    for _ in 0..50 {
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(client.clone())
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        idle_tls.push(tls);
    }
    // Everyone else is still served meanwhile.
    let review = example("pod-with-command.json");
    for _ in 0..20 {
        let (result, _) = post_review(server.addr, client.clone(), &review).await;
        result.expect("a normal request while 250 connections idle");
    }
    // The idle ones are closed by the server after the read timeout (bounded by the test).
    let deadline = Duration::from_secs(10);
    let mut buf = [0u8; 16];
    for mut conn in idle {
        let n = tokio::time::timeout(deadline, conn.read(&mut buf))
            .await
            .expect("the server closes an idle TCP connection");
        assert!(matches!(n, Ok(0) | Err(_)), "closed, got {n:?}");
    }
    for mut conn in idle_tls {
        let n = tokio::time::timeout(deadline, conn.read(&mut buf))
            .await
            .expect("the server closes an idle TLS connection");
        assert!(matches!(n, Ok(0) | Err(_)), "closed, got {n:?}");
    }
    let (result, _) = post_review(server.addr, client.clone(), &review).await;
    result.expect("served after the idle connections were dropped");
    server.stop().await;
}

/// The server-side ends of the TCP connections to `server_port`, from the kernel's table:
/// the client's port of each, and whether the server has accepted it. A connection the
/// kernel has completed but the server has not taken out of the listen backlog has no
/// socket inode yet (0); an accepted one has. Loopback IPv4 only, as the tests bind.
fn server_side_ends(server_port: u16) -> Vec<(u16, bool)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |addr: &str| {
        let hex = addr.rsplit_once(':').expect("addr:port").1;
        u16::from_str_radix(hex, 16).expect("hex port")
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, remote address, state (01 = ESTABLISHED), ..., inode
            let (local, remote, state, inode) = (fields[1], fields[2], fields[3], fields[9]);
            (state == "01" && port_of(local) == server_port)
                .then(|| (port_of(remote), inode != "0"))
        })
        .collect()
}

/// At `--max-connections` open connections the server stops accepting: a further client's
/// handshake waits (in the kernel's backlog) until one of the open connections closes, and
/// is then served.
///
/// "Not accepted" is judged against the server's own progress, not a clock: while the fourth
/// connection sits in the backlog the server answers a run of requests on the open ones,
/// which it could not do without also running an accept loop that was free to take it. A
/// slow machine makes the run slower, not the verdict different.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_until_one_closes() {
    let ca = Ca::new("limit");
    let dir = tempfile::tempdir().expect("tmp");
    let volume = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let config = Config {
        max_connections: 3,
        ..volume.config()
    };
    let server = start(config, TableImages::default()).await;
    let client = tls_client(&ca);
    let connect = || async {
        let tcp = TcpStream::connect(server.addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(client.clone())
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake below the limit");
        let (send, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Empty<bytes::Bytes>,
        >(hyper_util::rt::TokioIo::new(tls))
        .await
        .expect("http/1.1");
        (send, tokio::spawn(conn))
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect().await);
    }

    // The fourth: the TCP connect completes (the kernel queues it in the backlog), and its
    // ClientHello goes out, but nobody accepts it, so no ServerHello comes back.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let fourth_port = tcp.local_addr().expect("local addr").port();
    let mut fourth = tokio::spawn({
        let client = client.clone();
        async move {
            tokio_rustls::TlsConnector::from(client)
                .connect(ServerName::try_from("localhost").expect("name"), tcp)
                .await
        }
    });

    // The server keeps working meanwhile: 20 answers on each open connection.
    for (send, _) in &mut open {
        for _ in 0..20 {
            send.ready().await.expect("open connection");
            let resp = tokio::time::timeout(
                Duration::from_secs(30),
                send.send_request(
                    http::Request::get("/healthz")
                        .header("host", "localhost")
                        .body(http_body_util::Empty::new())
                        .expect("request"),
                ),
            )
            .await
            .expect("answered within 30 s")
            .expect("answer on an open connection");
            assert_eq!(resp.status(), 200);
        }
    }
    assert!(
        !fourth.is_finished(),
        "a fourth connection got through the TLS handshake while 3 (--max-connections) were open: {:?}",
        (&mut fourth).await
    );
    // And the kernel agrees: three accepted, the fourth still waiting in the backlog.
    let ends = server_side_ends(server.addr.port());
    assert_eq!(
        ends.iter().filter(|(_, accepted)| *accepted).count(),
        3,
        "{ends:?}"
    );
    assert!(
        ends.contains(&(fourth_port, false)),
        "the fourth is queued, not accepted: {ends:?}"
    );

    // One closes: the fourth is accepted and served.
    let (send, conn) = open.pop().expect("open");
    drop(send);
    tokio::time::timeout(Duration::from_secs(30), conn)
        .await
        .expect("the closed connection ends")
        .expect("task")
        .expect("ended cleanly");
    let tls = tokio::time::timeout(Duration::from_secs(30), fourth)
        .await
        .expect("accepted once a connection closed")
        .expect("task")
        .expect("handshake");
    drop(tls);
    let (result, _) = post_review(
        server.addr,
        client.clone(),
        &example("pod-with-command.json"),
    )
    .await;
    result.expect("served below the limit again");
    // Idle connections hold shutdown until they close or --read-timeout passes.
    drop(open);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_rotations_then_shutdown_under_load_lose_no_accepted_request() {
    let ca = Ca::new("rotation");
    let dir = tempfile::tempdir().expect("tmp");
    let mut volume = SecretVolume::new(dir.path(), &ca.server_pair(1));
    let config = Config {
        // Like a pod being removed: readiness turns false first, requests keep being served
        // for this long, then the listener closes and in-flight requests finish.
        shutdown_delay: Duration::from_millis(800),
        ..volume.config()
    };
    let server = start(config, TableImages::default()).await;
    let client = tls_client(&ca);
    let review = Arc::new(example("pod-with-command.json"));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<(String, Option<Instant>)>::new()));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (stop, ok, failures, client, review, addr) = (
            stop.clone(),
            ok.clone(),
            failures.clone(),
            client.clone(),
            review.clone(),
            server.addr,
        );
        workers.push(tokio::spawn(async move {
            // Bounded: at most 100 000 requests per worker.
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match post_review(addr, client.clone(), &review).await {
                    (Ok(_), _) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    (Err(e), written) => failures.lock().expect("lock").push((e, written)),
                }
            }
        }));
    }

    for serial in 2..=11u8 {
        let pair = ca.server_pair(serial);
        volume.swap(&pair);
        let want = pem_serial(&pair.cert_pem);
        common::wait_for_serial(server.addr, &client, &want, "the new serial to be served").await;
        let before = ok.load(Ordering::SeqCst);
        eventually(
            Duration::from_secs(10),
            "admissions after a rotation",
            || {
                let ok = ok.clone();
                async move { (ok.load(Ordering::SeqCst) >= before + 8).then_some(()) }
            },
        )
        .await;
    }
    let during_rotation: Vec<_> = failures.lock().expect("lock").clone();
    assert!(
        during_rotation.is_empty(),
        "failed during rotations: {during_rotation:?}"
    );

    // Shutdown begins now, with the workers still sending.
    let shutdown_began = Instant::now();
    server.stop().await;
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }

    let failures = failures.lock().expect("lock").clone();
    let lost: Vec<_> = failures
        .iter()
        .filter(|(_, written)| written.is_some_and(|w| w < shutdown_began))
        .collect();
    assert!(
        lost.is_empty(),
        "requests written before shutdown began must all be answered: {lost:?}"
    );
    assert!(ok.load(Ordering::SeqCst) > 80, "the load generator ran");
}
