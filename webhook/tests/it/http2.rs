//! `/mutate` over HTTP/2 through the real TLS listener (ALPN h2): admission, read timeout, drain.
//!
//! The API server speaks HTTP/2 to a webhook whenever ALPN offers it, so everything the
//! HTTP/1.1 tests check about answers, stalls and shutdown is checked here for h2 streams
//! and connections, with hyper's own h2 client (and raw frames where a well-behaved client
//! cannot be made to misbehave).

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Ca, SecretVolume, TableImages, client_config, example, https_client, scrape, start};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2::SendRequest;
use rustls::pki_types::ServerName;
use secrets_init_webhook::config::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

type Body = BoxBody<Bytes, Infallible>;

/// Bound for every wait in this module: far above what any of it takes on an idle machine.
const WITHIN: Duration = Duration::from_secs(20);

const ERROR: &str = "secrets_init_webhook_admission_requests_total{result=\"error\"}";
const MUTATED: &str = "secrets_init_webhook_admission_requests_total{result=\"mutated\"}";

/// A server with a serving certificate from its own CA (so the client verifies it).
struct Setup {
    ca: Ca,
    _dir: tempfile::TempDir,
    config: Config,
}

impl Setup {
    fn new() -> Self {
        let ca = Ca::new("h2");
        let dir = tempfile::tempdir().expect("tmp");
        let volume = SecretVolume::new(dir.path(), &ca.server_pair(1));
        let config = volume.config();
        Self {
            ca,
            _dir: dir,
            config,
        }
    }

    fn tls(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut config = client_config(&self.ca.cert_pem, &[&rustls::version::TLS13], None);
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    /// A TLS connection that agreed on `h2`.
    async fn connect_h2(&self, addr: SocketAddr) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(self.tls(b"h2"))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake");
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "the server offers h2 by ALPN"
        );
        tls
    }

    /// An h2 client connection; the task drives it and ends when the connection does.
    async fn client(
        &self,
        addr: SocketAddr,
    ) -> (SendRequest<Body>, JoinHandle<Result<(), hyper::Error>>) {
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(self.connect_h2(addr).await),
        )
        .await
        .expect("h2 handshake");
        (send, tokio::spawn(conn))
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body that starts with `first` and goes on with whatever is sent on the channel; it
/// ends only when the sender is dropped.
fn held_open(first: &[u8]) -> (UnboundedSender<Bytes>, Body) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Bytes>();
    tx.unbounded_send(Bytes::copy_from_slice(first))
        .expect("first bytes");
    let frames = rx.map(|b| Ok::<_, Infallible>(Frame::data(b)));
    (tx, BodyExt::boxed(StreamBody::new(frames)))
}

fn post(body: Body, length: Option<usize>) -> http::Request<Body> {
    let mut req = http::Request::post("https://localhost/mutate")
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(n) = length {
        req = req.header(http::header::CONTENT_LENGTH, n);
    }
    req.body(body).expect("request")
}

/// Status, headers and whole body of one answer.
async fn answer(
    send: &mut SendRequest<Body>,
    req: http::Request<Body>,
) -> (http::response::Parts, Bytes) {
    send.ready().await.expect("connection ready for a stream");
    let resp = tokio::time::timeout(WITHIN, send.send_request(req))
        .await
        .expect("answered in time")
        .expect("answer over h2");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(WITHIN, body.collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    (parts, body)
}

/// The example review with its uid replaced, so answers on shared connections can be told
/// apart.
fn review_with_uid(uid: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&example("pod-with-command.json")).expect("json");
    v["request"]["uid"] = Value::from(uid);
    serde_json::to_vec(&v).expect("json")
}

/// Reads (and discards) what the server sends until it closes the connection. False when it
/// is still open after `WITHIN`.
async fn closed_by_server(conn: &mut TlsStream<TcpStream>) -> bool {
    let mut buf = [0u8; 4096];
    let drained = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(WITHIN, drained).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_over_h2_answers_as_http1_does_on_concurrent_streams() {
    let setup = Setup::new();
    let server = start(setup.config.clone(), TableImages::default()).await;

    // The same review over HTTP/1.1 (reqwest speaks nothing else here): the reference answer.
    let review = example("pod-with-command.json");
    let h1 = https_client(&setup.ca.cert_pem, None)
        .post(format!("https://{}/mutate", server.addr))
        .header("content-type", "application/json")
        .body(review.clone())
        .send()
        .await
        .expect("HTTP/1.1 answer");
    assert_eq!(h1.version(), http::Version::HTTP_11);
    assert_eq!(h1.status(), 200);
    let h1_body = h1.bytes().await.expect("body");

    let (mut send, driver) = setup.client(server.addr).await;
    let (parts, h2_body) = answer(&mut send, post(full(review.clone()), None)).await;
    assert_eq!(parts.version, http::Version::HTTP_2);
    assert_eq!(parts.status, 200);
    assert_eq!(
        parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    assert_eq!(
        h2_body, h1_body,
        "the h2 answer is byte for byte the HTTP/1.1 one"
    );
    let r: Value = serde_json::from_slice(&h2_body).expect("JSON");
    assert_eq!(r["response"]["allowed"], true, "{r}");
    assert_eq!(r["response"]["patchType"], "JSONPatch", "{r}");

    // Eight streams at once on the one connection, each answered with its own uid.
    let streams: Vec<_> = (0..8)
        .map(|i| {
            let mut send = send.clone();
            tokio::spawn(async move {
                let uid = format!("h2-stream-{i}");
                let (parts, body) =
                    answer(&mut send, post(full(review_with_uid(&uid)), None)).await;
                (uid, parts.status, body)
            })
        })
        .collect();
    for s in streams {
        let (uid, status, body) = s.await.expect("stream task");
        assert_eq!(status, 200, "{uid}");
        let r: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            r["response"]["uid"],
            uid.as_str(),
            "answers are not mixed up"
        );
        assert_eq!(r["response"]["allowed"], true, "{uid}: {r}");
    }
    assert!(
        !driver.is_finished(),
        "the connection stays open between streams"
    );
    let m = scrape(server.metrics_addr).await;
    assert_eq!(m[MUTATED], 10.0, "one HTTP/1.1 and nine h2 admissions");
    assert_eq!(m[ERROR], 0.0);
    drop(send);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_h2_request_body_gets_408_and_the_connection_keeps_serving() {
    let setup = Setup::new();
    let server = start(
        Config {
            read_timeout: Duration::from_secs(1),
            ..setup.config.clone()
        },
        TableImages::default(),
    )
    .await;
    let (mut send, driver) = setup.client(server.addr).await;

    // Half the body, then nothing: the sender stays open, so the stream never ends.
    let review = example("pod-with-command.json");
    let (tx, stalled) = held_open(&review[..review.len() / 2]);
    let (parts, body) = answer(&mut send, post(stalled, Some(review.len()))).await;
    assert_eq!(parts.status, http::StatusCode::REQUEST_TIMEOUT);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("not received within 1s (--read-timeout)"),
        "{text}"
    );
    drop(tx);

    // The stall cost that stream only: the same connection answers the next one in full.
    let (parts, body) = answer(&mut send, post(full(review), None)).await;
    assert_eq!(parts.status, 200);
    let r: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(r["response"]["allowed"], true, "{r}");
    assert!(!driver.is_finished());
    let m = scrape(server.metrics_addr).await;
    assert_eq!((m[ERROR], m[MUTATED]), (1.0, 1.0));
    drop(send);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_connection_that_never_sends_a_request_is_closed() {
    let setup = Setup::new();
    let server = start(
        Config {
            read_timeout: Duration::from_secs(1),
            ..setup.config.clone()
        },
        TableImages::default(),
    )
    .await;
    // Silent after the TLS handshake.
    let mut silent = setup.connect_h2(server.addr).await;
    // The connection preface, then nothing: not even the SETTINGS frame that must follow.
    let mut preface_only = setup.connect_h2(server.addr).await;
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("write");
    // Part of the preface: the server cannot even tell HTTP/2 from HTTP/1.1 yet.
    let mut half_preface = setup.connect_h2(server.addr).await;
    half_preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("write");
    // A complete preface and SETTINGS, then a HEADERS frame without END_HEADERS: the
    // header block never finishes, and nothing else may be sent on the connection meanwhile.
    let mut half_headers = setup.connect_h2(server.addr).await;
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS, empty: length 0, type 4, no flags, stream 0.
    frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    // HEADERS on stream 1 holding `:method: POST` (static table index 3), flags END_STREAM
    // only; the CONTINUATION that should follow never comes.
    frames.extend_from_slice(&[0, 0, 1, 1, 0x1, 0, 0, 0, 1, 0x83]);
    half_headers.write_all(&frames).await.expect("write");

    for (what, conn) in [
        ("silent after the handshake", &mut silent),
        ("stalled after the preface", &mut preface_only),
        ("stalled inside the preface", &mut half_preface),
        ("stalled inside a header block", &mut half_headers),
    ] {
        assert!(
            closed_by_server(conn).await,
            "an h2 connection {what} is still open {WITHIN:?} after a 1 s --read-timeout"
        );
    }

    // Meanwhile, and after, a well-behaved h2 client is served.
    let (mut send, _driver) = setup.client(server.addr).await;
    let (parts, _) = answer(
        &mut send,
        post(full(example("pod-with-command.json")), None),
    )
    .await;
    assert_eq!(parts.status, 200);
    drop(send);
    server.stop().await;
}

/// Drain, with the server's `--shutdown-delay`: once shutdown begins, an h2 connection gets
/// a GOAWAY (no new stream is accepted on it), the stream in flight at that moment is still
/// answered in full on it, and then the connection ends cleanly. With no delay, the server's
/// shutdown also waits for that stream; with a delay longer than the test, all of it must
/// happen at the start of the delay.
async fn goaway_and_the_stream_in_flight_finishes(shutdown_delay: Duration) {
    let setup = Setup::new();
    let mut server = start(
        Config {
            shutdown_delay,
            // Far longer than the test takes: shutdown must end because the stream did.
            shutdown_timeout: Duration::from_secs(12),
            read_timeout: Duration::from_secs(60),
            ..setup.config.clone()
        },
        TableImages::default(),
    )
    .await;
    // Read in-process: the metrics port closes with the server.
    let metrics = server.metrics.clone();
    let (mut send, driver) = setup.client(server.addr).await;

    // A stream the client keeps in flight: half the body now, the rest when it chooses.
    let review = review_with_uid("in-flight");
    let (tx, body) = held_open(&review[..review.len() / 2]);
    send.ready().await.expect("ready");
    let in_flight = tokio::spawn(send.send_request(post(body, Some(review.len()))));
    // Streams are opened in order: once a later one is answered, the server has the first.
    let (parts, _) = answer(&mut send, post(full(review_with_uid("before")), None)).await;
    assert_eq!(parts.status, 200);

    server.begin_stop();
    let stopping = shutdown_delay
        .is_zero()
        .then(|| tokio::spawn(server.stop()));

    // GOAWAY: new streams on this connection are refused by the client itself. hyper reports
    // that as the connection being closed; the stream in flight answered in full on the same
    // connection below is what shows it was a GOAWAY and not a close.
    common::eventually(WITHIN, "a GOAWAY on the h2 connection", || {
        let mut send = send.clone();
        async move {
            let attempt = async {
                send.ready().await?;
                send.send_request(post(full(review_with_uid("after")), None))
                    .await
            };
            // An answer means the GOAWAY has not gone out yet: try again.
            attempt.await.err().map(drop)
        }
    })
    .await;
    assert!(
        !in_flight.is_finished(),
        "the stream in flight is not cut off"
    );
    if let Some(stopping) = &stopping {
        assert!(
            !stopping.is_finished(),
            "shutdown waits for the stream in flight"
        );
    }

    // The rest of the body: the answer comes in full, on the connection told to go away.
    tx.unbounded_send(Bytes::copy_from_slice(&review[review.len() / 2..]))
        .expect("second half");
    drop(tx);
    let resp = tokio::time::timeout(WITHIN, in_flight)
        .await
        .expect("the stream in flight is answered")
        .expect("task")
        .expect("answer after GOAWAY");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let r: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(r["response"]["uid"], "in-flight");
    assert_eq!(r["response"]["allowed"], true, "{r}");

    // Then the connection ends cleanly, and shutdown completes long before its timeout.
    tokio::time::timeout(WITHIN, driver)
        .await
        .expect("the connection ends once its last stream is answered")
        .expect("driver task")
        .expect("ended cleanly (GOAWAY, not a reset)");
    if let Some(stopping) = stopping {
        tokio::time::timeout(WITHIN, stopping)
            .await
            .expect("shutdown completes")
            .expect("stop task");
    }
    let m = common::parse_metrics(&metrics.render());
    assert_eq!(m[ERROR], 0.0, "nothing was cut off");
    assert!(m[MUTATED] >= 2.0, "`before` and `in-flight` were answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_shutdown_sends_goaway_and_waits_for_the_stream_in_flight() {
    goaway_and_the_stream_in_flight_finishes(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_goaway_comes_at_the_start_of_the_shutdown_delay() {
    // Longer than every wait in the test: nothing may wait for the delay to end.
    goaway_and_the_stream_in_flight_finishes(Duration::from_secs(60)).await;
}
