//! The real binary's shutdown sequence (issue 18): SIGTERM and SIGINT both turn readiness
//! off, drain in-flight requests and exit 0; a request that outlives `--shutdown-timeout`
//! does not keep the process alive.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Process;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Development mode serves a self-signed certificate, trusted blindly here; HTTP/1.1 only,
/// for the raw-socket requests.
fn dev_tls_config() -> Arc<rustls::ClientConfig> {
    let mut c = common::insecure_client_config();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn insecure_client() -> reqwest::Client {
    crate::common::http()
        .tls_backend_preconfigured((*dev_tls_config()).clone())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Opens a connection and sends a `/mutate` request's head and the first half of its body;
/// returns the connection and the rest of the body.
async fn half_sent_request(addr: std::net::SocketAddr) -> (TlsStream<TcpStream>, Vec<u8>) {
    let connector = tokio_rustls::TlsConnector::from(dev_tls_config());
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let body = common::example("pod-with-command.json");
    let (first, rest) = body.split_at(body.len() / 2);
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("head");
    tls.write_all(first).await.expect("first half");
    tls.flush().await.expect("flush");
    (tls, rest.to_vec())
}

/// `signal` (TERM or INT) with a request in flight: `/readyz` turns 503 while the server
/// still answers, the listener closes after the delay, the request is answered in full, and
/// the process exits 0 having drained every connection.
async fn drains_gracefully_on(signal: &str) {
    let mut running = Process::start(
        &["--shutdown-delay", "1s", "--shutdown-timeout", "10s"],
        &[],
    );
    let addr = running.addr;
    let (mut tls, rest) = half_sent_request(addr).await;

    running.signal(signal);

    let readyz = |c: reqwest::Client| async move {
        c.get(format!("https://{addr}/readyz"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    };
    common::eventually(Duration::from_secs(5), "/readyz to report 503", || {
        let c = insecure_client();
        async move { (readyz(c).await? == 503).then_some(()) }
    })
    .await;
    common::eventually(
        Duration::from_secs(5),
        "the listener to close",
        || async move { TcpStream::connect(addr).await.is_err().then_some(()) },
    )
    .await;

    // The in-flight request still completes.
    tls.write_all(&rest).await.expect("rest of the body");
    tls.flush().await.expect("flush");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer))
        .await
        .expect("answer within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("705ab4f5-6393-11e8-b7cc-42010a800002"),
        "uid echoed: {text}"
    );
    assert!(text.contains("\"allowed\":true"), "{text}");

    let status = running.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "clean exit after drain: {status:?}");
    running.join_logs();
    assert!(
        running.logged(&format!("SIG{signal} received")),
        "{:?}",
        running.lines()
    );
    assert!(running.logged("all connections drained"));
}

#[tokio::test]
async fn sigterm_turns_readiness_off_and_drains_in_flight_requests() {
    drains_gracefully_on("TERM").await;
}

/// Ctrl-C in a terminal, or `docker stop` of an image whose STOPSIGNAL is SIGINT: the same
/// graceful sequence as SIGTERM, not the default action (death by signal, requests cut off).
#[tokio::test]
async fn sigint_drains_like_sigterm() {
    drains_gracefully_on("INT").await;
}

/// A request that never finishes (its body stalls, and `--read-timeout` is far away) keeps a
/// connection open through shutdown: the process waits `--shutdown-timeout` for it, says so
/// in a warning, and exits 0 anyway — well before the read timeout would have ended it.
#[tokio::test]
async fn a_request_outliving_the_shutdown_timeout_does_not_keep_the_process_alive() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut running = Process::start(
        &[
            "--shutdown-delay",
            "0",
            "--shutdown-timeout",
            "2s",
            "--read-timeout",
            "300s",
        ],
        &[],
    );
    let (mut stalled, _never_sent) = half_sent_request(running.addr).await;

    let signalled = Instant::now();
    running.sigterm();
    // Generous next to the 2 s, and far below the 300 s read timeout.
    let status = running.wait_exit(Duration::from_secs(30));
    let took = signalled.elapsed();
    assert!(
        status.success(),
        "exit status 0 after the timeout: {status:?}"
    );
    assert!(
        took >= TIMEOUT,
        "exited after {took:?}, before --shutdown-timeout: the request was not waited for"
    );
    running.join_logs();
    let lines = running.lines();
    let warning = running
        .line("connections still open after --shutdown-timeout; exiting anyway")
        .unwrap_or_else(|| panic!("no warning about the open connection: {lines:?}"));
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["fields"]["timeout"], "2s", "{warning}");
    let closed = running
        .line("listener closed; waiting for in-flight requests")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(closed["fields"]["connections"], 1, "{closed}");
    assert!(!running.logged("all connections drained"), "{lines:?}");
    assert!(running.logged("secrets-init-webhook stopped"), "{lines:?}");

    // The stalled client sees its connection end (the process is gone), with no answer.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stalled.read_to_end(&mut buf))
        .await
        .expect("the connection ends with the process");
    assert!(
        read.is_err() || buf.is_empty(),
        "no answer expected: {read:?}"
    );
}
