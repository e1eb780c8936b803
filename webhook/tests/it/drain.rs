//! How connections end (issue 17): while the webhook is ready nothing ends a connection but
//! the client; once shutdown begins, or past `--max-connection-age`, HTTP/1.1 answers carry
//! `Connection: close` and the connection closes right after, and HTTP/2 connections get a
//! GOAWAY at once. (`binary.rs` has the rolling restart under load that this makes safe.)

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{TableImages, example, insecure_client_config, start, test_config};
use rustls::pki_types::ServerName;
use secrets_init_webhook::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Conn = BufReader<TlsStream<TcpStream>>;

async fn connect(addr: std::net::SocketAddr, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut config = insecure_client_config();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("handshake")
}

/// One HTTP/1.1 request on an open connection; the answer's status, whether it said
/// `Connection: close`, and its body.
async fn post_h1(conn: &mut Conn, body: &[u8]) -> (u16, bool, Vec<u8>) {
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("write");
    conn.get_mut().write_all(body).await.expect("write");
    let mut status = 0;
    let mut close = false;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.expect("read header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(code) = lower.strip_prefix("http/1.1 ") {
            status = code[..3].parse().expect("status");
        } else if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        } else if lower == "connection: close" {
            close = true;
        }
    }
    let mut answer = vec![0; length];
    conn.read_exact(&mut answer).await.expect("body");
    (status, close, answer)
}

async fn closed_by_server(conn: &mut Conn) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_answers_say_close_once_shutdown_begins_and_only_then() {
    let mut server = start(
        Config {
            shutdown_delay: Duration::from_secs(2),
            ..test_config()
        },
        TableImages::default(),
    )
    .await;
    let review = example("pod-with-command.json");
    let mut conn = BufReader::new(connect(server.addr, b"http/1.1").await);
    for _ in 0..3 {
        let (status, close, _) = post_h1(&mut conn, &review).await;
        assert_eq!((status, close), (200, false), "kept alive while ready");
    }
    // An idle connection, opened before shutdown and quiet through it.
    let mut idle = BufReader::new(connect(server.addr, b"http/1.1").await);
    let (status, close, _) = post_h1(&mut idle, &review).await;
    assert_eq!((status, close), (200, false));

    server.begin_stop();
    // /readyz tells the balancer first; answers meanwhile tell each client to reconnect.
    let (status, close, answer) = post_h1(&mut conn, &review).await;
    assert_eq!(status, 200);
    assert!(
        close,
        "an answer during the shutdown delay says Connection: close"
    );
    let v: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
    assert_eq!(v["response"]["allowed"], true, "still served in full");
    assert!(
        closed_by_server(&mut conn).await,
        "and the connection closes after it"
    );

    // A new connection during the delay is served, and told the same.
    let mut late = BufReader::new(connect(server.addr, b"http/1.1").await);
    let (status, close, _) = post_h1(&mut late, &review).await;
    assert_eq!((status, close), (200, true));

    // The idle one is closed at the end of the delay.
    assert!(closed_by_server(&mut idle).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_get_a_goaway_as_soon_as_shutdown_begins() {
    let mut server = start(
        Config {
            // Far longer than the test waits for the GOAWAY: it must come at the start.
            shutdown_delay: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(1),
            ..test_config()
        },
        TableImages::default(),
    )
    .await;
    let tls = connect(server.addr, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let request = || {
        http::Request::post("https://localhost/mutate")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(example(
                "pod-with-command.json",
            ))))
            .expect("request")
    };
    let resp = send.send_request(request()).await.expect("answer over h2");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);

    server.begin_stop();
    // The GOAWAY ends the client's connection (no stream is in flight).
    tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("the server sent GOAWAY within 10 s of the start of a 30 s delay")
        .expect("driver task")
        .expect("the connection ended cleanly (GOAWAY, not a reset)");
    assert!(send.is_closed() || send.ready().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_their_maximum_age_are_told_to_close() {
    // 1 ms: every answer comes after it (a TLS handshake alone takes longer).
    let server = start(
        Config {
            max_connection_age: Duration::from_millis(1),
            ..test_config()
        },
        TableImages::default(),
    )
    .await;
    let review = example("pod-with-command.json");
    let mut conn = BufReader::new(connect(server.addr, b"http/1.1").await);
    let (status, close, _) = post_h1(&mut conn, &review).await;
    assert_eq!((status, close), (200, true));
    assert!(closed_by_server(&mut conn).await);

    let tls = connect(server.addr, b"h2").await;
    let (_send, conn) =
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
    tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("an aged HTTP/2 connection gets a GOAWAY")
        .expect("ended cleanly");
    server.stop().await;
}
