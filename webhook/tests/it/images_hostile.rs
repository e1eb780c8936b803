//! Registries that misbehave: server errors, rate limiting, redirect loops, oversized
//! manifests. Each must end in a clear denial reason, well within the request timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mutation_modes::{ImageConfigError, ImageConfigSource, Platform};
use secrets_init_webhook::images::{CachedImageSource, ImageSourceSettings, RegistryConfig};

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    ServerError,
    RateLimited,
    RedirectLoop,
    HugeManifest,
}

/// A plain-HTTP "registry" that answers every request the same bad way; counts requests.
async fn bad_registry(how: Misbehaviour) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let (counter, me) = (hits.clone(), addr.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, me) = (counter.clone(), me.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let path = req.uri().path().to_owned();
                    let me = me.clone();
                    async move {
                        let resp = match how {
                            Misbehaviour::ServerError => Response::builder()
                                .status(503)
                                .body(Full::new(Bytes::from_static(b"upstream exploded"))),
                            Misbehaviour::RateLimited => Response::builder()
                                .status(429)
                                .header("retry-after", "30")
                                .body(Full::new(Bytes::from_static(b"slow down"))),
                            Misbehaviour::RedirectLoop => Response::builder()
                                .status(302)
                                .header("location", format!("http://{me}{path}"))
                                .body(Full::new(Bytes::new())),
                            Misbehaviour::HugeManifest => {
                                // 8 MiB of a syntactically valid-looking manifest.
                                let mut body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":""#.to_vec();
                                body.resize(8 << 20, b'a');
                                body.extend_from_slice(br#""}}"#);
                                Response::builder()
                                    .status(200)
                                    .header(
                                        "content-type",
                                        "application/vnd.oci.image.manifest.v1+json",
                                    )
                                    .body(Full::new(Bytes::from(body)))
                            }
                        };
                        Ok::<_, Infallible>(resp.expect("response"))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hits)
}

async fn lookup(how: Misbehaviour) -> (String, Duration, usize) {
    let (addr, hits) = bad_registry(how).await;
    let settings = ImageSourceSettings {
        registry: RegistryConfig {
            insecure_registry: vec![addr.clone()],
            registry_timeout: Duration::from_secs(3),
            ..RegistryConfig::default()
        },
        ecr: false,
        ..ImageSourceSettings::default()
    };
    let source = CachedImageSource::new(settings, &prometheus::Registry::new())
        .await
        .expect("source");
    let started = Instant::now();
    let err = source
        .image_config(&format!("{addr}/team/app:v1"), &Platform::default())
        .await
        .expect_err("a misbehaving registry gives no config");
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            ImageConfigError::Other { .. } | ImageConfigError::NotFound { .. }
        ),
        "{err:?}"
    );
    assert!(
        text.contains(&format!("{addr}/team/app:v1")),
        "names the image: {text}"
    );
    (text, elapsed, hits.load(Ordering::SeqCst))
}

#[tokio::test]
async fn server_errors_are_a_clear_denial() {
    let (text, elapsed, _) = lookup(Misbehaviour::ServerError).await;
    assert!(text.contains("503"), "{text}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn rate_limiting_is_a_clear_denial_without_waiting_for_retry_after() {
    let (text, elapsed, _) = lookup(Misbehaviour::RateLimited).await;
    assert!(text.contains("429"), "{text}");
    // Retry-After says 30 s; the API server would have given up long before.
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn redirect_loops_end_with_a_clear_denial() {
    let (text, elapsed, hits) = lookup(Misbehaviour::RedirectLoop).await;
    assert!(text.to_lowercase().contains("redirect"), "{text}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(hits < 50, "redirects are bounded: {hits}");
}

#[tokio::test]
async fn oversized_manifests_are_refused() {
    let (text, elapsed, _) = lookup(Misbehaviour::HugeManifest).await;
    assert!(text.contains("more than the limit"), "{text}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}
