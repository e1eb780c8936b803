//! The two listeners and the shutdown sequence.
//!
//! - TLS port: a tokio accept loop, rustls handshake (bounded by `--read-timeout`), then
//!   hyper-util's auto (HTTP/1.1 + HTTP/2) connection with `header_read_timeout`
//!   = `--read-timeout` (and the first request, whatever the protocol, due within it too).
//!   At most `--max-connections` are open at once; at the limit the loop stops accepting
//!   until one closes.
//! - metrics port: plain HTTP, `/metrics`.
//!
//! Connections end from our side only where the client can see it coming, because a client
//! that sends a request on a keep-alive connection at the moment we close it gets an error
//! (`EOF`, `server closed idle connection`), and the API server does not retry a webhook call:
//! under `failurePolicy: Fail` that is a pod refused. (The API server keeps a pool of
//! HTTP/1.1 connections and reuses them, kubernetes/kubernetes#127335.) So a connection that
//! must go is told on its next answer: HTTP/1.1 responses carry `Connection: close` and the
//! connection closes right after; HTTP/2 connections get a GOAWAY (in-flight streams finish).
//! That happens to every connection once shutdown has begun, and to a connection older than
//! `--max-connection-age`, so a long-lived pool spreads over new replicas after a scale-up.
//!
//! Shutdown (SIGTERM/SIGINT, or the future given to [`Server::serve`]): `/readyz` turns 503
//! at once and every connection is told to go as above, while requests are still served for
//! `--shutdown-delay` (so the Service's endpoints drop this pod and clients reconnect to a
//! ready replica); then the listener closes, connections that stayed idle through the delay
//! are closed, in-flight requests finish, and after at most `--shutdown-timeout` the server
//! returns regardless.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use mutation_modes::ImageConfigSource;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::Error;
use crate::app::{metrics_router, router};
use crate::config::Config;
use crate::images::{CachedImageSource, ImageSourceSettings};
use crate::layers::auth::ConnectionInfo;
use crate::metrics::Metrics;
use crate::state::{AppState, Readiness};
use crate::tls::{self, CertReloader, CertResolver, ClientCaReloader};

/// A bound, not yet serving, webhook.
pub struct Server {
    config: Config,
    tls_listener: TcpListener,
    metrics_listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    metrics: Metrics,
    readiness: Readiness,
    reload_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.tls_listener.local_addr().ok())
            .field("metrics_listen", &self.metrics_listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Builds everything from the configuration, with the real image source, and binds.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let metrics = Metrics::new()?;
        let settings = ImageSourceSettings {
            registry: config.registry.clone(),
            ..ImageSourceSettings::default()
        };
        let images = CachedImageSource::new(settings, &metrics.registry)
            .await
            .map_err(|e| Error::Config(format!("image registry client: {e}")))?;
        Self::bind_with(config, metrics, images).await
    }

    /// Like [`Server::bind`] with a given image source (tests use a table or a slow one).
    pub async fn bind_with<S: ImageConfigSource + 'static>(
        config: Config,
        metrics: Metrics,
        images: S,
    ) -> Result<Self, Error> {
        tls::install_default_provider();
        // Every file-backed piece of TLS state, kept current by one watcher.
        let mut watched: Vec<Arc<dyn tls::Watched>> = Vec::new();
        let resolver = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let (reloader, resolver) = CertReloader::start(cert, key, metrics.clone())?;
                watched.push(reloader);
                resolver
            }
            _ => {
                let dev = tls::dev::self_signed()?;
                tracing::warn!(
                    names = ?tls::dev::DEV_NAMES,
                    "DEVELOPMENT MODE: no --tls-cert/--tls-key given, serving an in-memory \
                     SELF-SIGNED certificate. Never use this in a cluster: the API server will \
                     not trust it."
                );
                metrics.tls_cert_expiry.set(dev.not_after as f64);
                Arc::new(CertResolver::new(dev.key))
            }
        };
        let client_ca = match &config.client_ca {
            Some(path) => {
                let (reloader, verifier) = ClientCaReloader::start(path, metrics.clone())?;
                watched.push(reloader);
                Some(verifier)
            }
            None => None,
        };
        let server_config = tls::server_config(resolver, client_ca)?;
        let reload_task = if watched.is_empty() {
            None
        } else {
            Some(tls::watch(watched)?)
        };
        let readiness = Readiness::new(true);
        let state = AppState::from_config(&config, metrics.clone(), readiness.clone(), images)?;
        if !state.auth.is_enabled() {
            tracing::info!("client authentication is off (no --client-ca, no --bearer-token-file)");
        }
        let app = router(state);
        let tls_listener = bind(config.listen).await?;
        let metrics_listener = bind(config.metrics_listen).await?;
        Ok(Self {
            config,
            tls_listener,
            metrics_listener,
            acceptor: TlsAcceptor::from(Arc::new(server_config)),
            app,
            metrics,
            readiness,
            reload_task,
        })
    }

    /// The bound address of the TLS port (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.tls_listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The bound address of the metrics port.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .unwrap_or(self.config.metrics_listen)
    }

    /// The metrics registry (shared with the image source).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serves until `shutdown` completes, then drains as described in the module docs.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Self {
            config,
            tls_listener,
            metrics_listener,
            acceptor,
            app,
            metrics,
            readiness,
            reload_task,
        } = self;
        tracing::info!(
            listen = %tls_listener.local_addr()?,
            metrics_listen = %metrics_listener.local_addr()?,
            mutation_mode = %config.mutation.default_mode,
            "secrets-init-webhook serving"
        );
        let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
        let tls_task = tokio::spawn(serve_tls(
            tls_listener,
            acceptor,
            app,
            Limits {
                read_timeout: config.read_timeout,
                shutdown_timeout: config.shutdown_timeout,
                max_connections: config.max_connections,
                max_connection_age: (!config.max_connection_age.is_zero())
                    .then_some(config.max_connection_age),
            },
            phase_rx,
        ));
        let (metrics_stop_tx, mut metrics_stop_rx) = watch::channel(false);
        let metrics_task = tokio::spawn(async move {
            let served = axum::serve(metrics_listener, metrics_router(metrics))
                .with_graceful_shutdown(async move {
                    let _ = metrics_stop_rx.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics server failed");
            }
        });

        shutdown.await;
        readiness.set(false);
        let _ = phase_tx.send(Phase::Draining);
        tracing::info!(
            delay = %humantime::format_duration(config.shutdown_delay),
            timeout = %humantime::format_duration(config.shutdown_timeout),
            "shutdown requested: /readyz now reports 503 and every connection is told to close \
             on its next answer; still serving during the delay"
        );
        tokio::time::sleep(config.shutdown_delay).await;
        let _ = phase_tx.send(Phase::Stopping);
        if let Err(e) = tls_task.await {
            tracing::error!(error = %e, "TLS server task failed");
        }
        let _ = metrics_stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), metrics_task).await;
        if let Some(t) = reload_task {
            t.abort();
        }
        tracing::info!("secrets-init-webhook stopped");
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Where the server is in its life; every connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Shutdown has begun: connections are told to close on their next answer.
    Draining,
    /// The delay is over: the listener closes, idle connections are closed.
    Stopping,
}

/// Connection-level limits of the TLS port.
#[derive(Debug, Clone, Copy)]
struct Limits {
    read_timeout: Duration,
    shutdown_timeout: Duration,
    max_connections: usize,
    max_connection_age: Option<Duration>,
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    limits: Limits,
    mut phase: watch::Receiver<Phase>,
) {
    let max_connections = limits.max_connections;
    // One slot per open connection (handshaking or served). At the limit the loop stops
    // accepting: new connections wait in the kernel's backlog instead of costing memory here.
    let slots = Arc::new(Semaphore::new(max_connections));
    let stopping = |p: &Phase| *p == Phase::Stopping;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tracing::warn!(
                    max_connections,
                    "--max-connections connections are open: not accepting until one closes"
                );
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = async { let _ = phase.wait_for(stopping).await; } => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    let phase = phase.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        if let Some(conn) = handshake(acceptor, tcp, peer, limits.read_timeout).await {
                            serve_connection(conn, app, limits, phase).await;
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = async { let _ = phase.wait_for(stopping).await; } => break,
        }
    }
    drop(listener);
    let open = max_connections - slots.available_permits();
    tracing::info!(
        connections = open,
        "listener closed; waiting for in-flight requests"
    );
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = slots.acquire_many(all) => tracing::info!("all connections drained"),
        () = tokio::time::sleep(limits.shutdown_timeout) => tracing::warn!(
            timeout = %humantime::format_duration(limits.shutdown_timeout),
            "connections still open after --shutdown-timeout; exiting anyway"
        ),
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    read_timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(read_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not completed within --read-timeout");
            None
        }
    }
}

/// When one connection should end: once shutdown has begun, or once it is older than
/// `--max-connection-age`.
#[derive(Debug, Clone)]
struct Lifetime {
    phase: watch::Receiver<Phase>,
    ends_at: Option<tokio::time::Instant>,
}

impl Lifetime {
    fn should_end(&self) -> bool {
        *self.phase.borrow() != Phase::Serving
            || self
                .ends_at
                .is_some_and(|t| tokio::time::Instant::now() >= t)
    }
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    app: Router,
    limits: Limits,
    mut phase: watch::Receiver<Phase>,
) {
    let read_timeout = limits.read_timeout;
    // The first request must be complete (its headers, for HTTP/2 its header block) within
    // --read-timeout. hyper bounds HTTP/1.1 headers itself, but nothing bounds the bytes
    // before hyper knows the protocol (a partial HTTP/2 preface) nor HTTP/2's own start (the
    // rest of the preface, SETTINGS, the first HEADERS and CONTINUATION frames): a client
    // stalled there would hold its slot until shutdown.
    let first_request_due = tokio::time::Instant::now() + read_timeout;
    let requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let info = ConnectionInfo {
        client_cert_verified: tls.get_ref().1.peer_certificates().is_some(),
    };
    let lifetime = Lifetime {
        phase: phase.clone(),
        ends_at: limits
            .max_connection_age
            .map(|age| tokio::time::Instant::now() + age),
    };
    // An HTTP/1.1 answer is where a client learns that the connection will close: with
    // `Connection: close` on it, hyper closes the connection right after, and the client
    // opens a new one for its next request (to a ready replica).
    let answers_end_it = lifetime.clone();
    let seen = requested.clone();
    let service = tower::service_fn(move |mut req: http::Request<Incoming>| {
        seen.store(true, std::sync::atomic::Ordering::Relaxed);
        req.extensions_mut().insert(info);
        let http1 = req.version() < http::Version::HTTP_2;
        let lifetime = http1.then(|| answers_end_it.clone());
        let answer = app.clone().oneshot(req);
        async move {
            let mut resp = answer.await?;
            // Decided when the answer is ready: shutdown may have begun meanwhile.
            if lifetime.is_some_and(|l| l.should_end()) {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    // hyper's header_read_timeout only starts once the protocol is known, and the auto
    // builder waits for the first bytes to tell HTTP/1.1 from HTTP/2: a client that completes
    // the handshake and then says nothing would hold the connection forever. So the first
    // bytes must arrive within --read-timeout too (peeked, not consumed).
    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut io = tokio::io::BufReader::new(tls);
    match tokio::time::timeout(read_timeout, io.fill_buf()).await {
        Ok(Ok(first)) if !first.is_empty() => {}
        Ok(Ok(_)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!("no request within --read-timeout after the TLS handshake; closing");
            return;
        }
    }
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let aged = async {
        match lifetime.ends_at {
            Some(t) => tokio::time::sleep_until(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(aged);
    let first_due = tokio::time::sleep_until(first_request_due);
    tokio::pin!(first_due);
    let mut waiting_for_first = true;
    let mut told = false;
    loop {
        tokio::select! {
            () = &mut first_due, if waiting_for_first => {
                waiting_for_first = false;
                if !requested.load(std::sync::atomic::Ordering::Relaxed) {
                    tracing::debug!("no complete request within --read-timeout; closing");
                    break;
                }
            }
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            // HTTP/2: a GOAWAY as soon as the connection should end (in-flight streams
            // finish). HTTP/1.1 waits for its next answer, or for the end of the delay.
            () = &mut aged, if !told && http2 => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
            changed = phase.changed(), if !told => {
                let now = if changed.is_err() { Phase::Stopping } else { *phase.borrow_and_update() };
                if now == Phase::Stopping || (now == Phase::Draining && http2) {
                    told = true;
                    // HTTP/1.1: closes at once when idle, else right after the answer.
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Registers SIGTERM and SIGINT handlers now (so a signal that arrives while the server is
/// still starting is not lost to the default action) and returns a future that completes on
/// either. Must be called inside the tokio runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Binds with the configuration and serves until SIGTERM/SIGINT.
pub async fn run(config: Config) -> Result<(), Error> {
    let signal = shutdown_signal()?;
    Server::bind(config).await?.serve(signal).await
}
