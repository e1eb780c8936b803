//! The two listeners and the shutdown sequence.
//!
//! - TLS port: a tokio accept loop, rustls handshake (bounded by `--read-timeout`), then
//!   hyper-util's auto (HTTP/1.1 + HTTP/2) connection with `header_read_timeout`
//!   = `--read-timeout` (and the first request bytes due within it too), each connection
//!   watched for graceful shutdown. At most `--max-connections` are open at once; at the
//!   limit the loop stops accepting until one closes.
//! - metrics port: plain HTTP, `/metrics`.
//!
//! Shutdown (SIGTERM/SIGINT, or the future given to [`Server::serve`]): `/readyz` turns 503
//! at once while requests are still served for `--shutdown-delay` (so the Service's
//! endpoints drop this pod), then the listener closes, in-flight requests finish (idle
//! keep-alive connections are closed), and after at most `--shutdown-timeout` the server
//! returns regardless.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
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
        let images = crate::glue::image_source(&config, &metrics.registry).await?;
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
        let (stop_tx, stop_rx) = watch::channel(false);
        let tls_task = tokio::spawn(serve_tls(
            tls_listener,
            acceptor,
            app,
            Limits {
                read_timeout: config.read_timeout,
                shutdown_timeout: config.shutdown_timeout,
                max_connections: config.max_connections,
            },
            stop_rx.clone(),
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
        tracing::info!(
            delay = %humantime::format_duration(config.shutdown_delay),
            timeout = %humantime::format_duration(config.shutdown_timeout),
            "shutdown requested: /readyz now reports 503; still serving during the delay"
        );
        tokio::time::sleep(config.shutdown_delay).await;
        let _ = stop_tx.send(true);
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

/// Connection-level limits of the TLS port.
#[derive(Debug, Clone, Copy)]
struct Limits {
    read_timeout: Duration,
    shutdown_timeout: Duration,
    max_connections: usize,
}

async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let Limits {
        read_timeout,
        shutdown_timeout,
        max_connections,
    } = limits;
    let graceful = GracefulShutdown::new();
    // One slot per open connection (handshaking or served). At the limit the loop stops
    // accepting: new connections wait in the kernel's backlog instead of costing memory here.
    let slots = Arc::new(Semaphore::new(max_connections));
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
                    () = async { let _ = stop.wait_for(|s| *s).await; } => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let watcher = graceful.watcher();
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    tokio::spawn(async move {
                        let _slot = slot;
                        if let Some(conn) = handshake(acceptor, tcp, peer, read_timeout).await {
                            serve_connection(conn, app, read_timeout, watcher).await;
                        }
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "listener closed; waiting for in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(shutdown_timeout) => tracing::warn!(
            timeout = %humantime::format_duration(shutdown_timeout),
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

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    app: Router,
    read_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let info = ConnectionInfo {
        client_cert_verified: tls.get_ref().1.peer_certificates().is_some(),
    };
    let service = app.map_request(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info);
        req
    });
    // hyper's header_read_timeout only starts once the protocol is known, and the auto
    // builder waits for the first bytes to tell HTTP/1.1 from HTTP/2: a client that completes
    // the handshake and then says nothing would hold the connection forever. So the first
    // bytes must arrive within --read-timeout too (peeked, not consumed).
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
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
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
