//! The HTTP listeners: accept connections, hand requests to the [`App`],
//! shut down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::app::App;
use crate::config::ServeConfig;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Routes (and the admin API under `/admin` when it has no listener of
    /// its own).
    Main,
    /// Only the admin API.
    Admin,
}

/// Serve HTTP on `listener` until `shutdown` resolves, then stop accepting
/// and give requests in flight up to the configured grace period.
///
/// Component files are watched and redeployed when they change. A separate
/// admin listener, signal handling and the like are the caller's: see the
/// `wasmhouse` binary.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = Arc::new(App::new(&config)?);
    app.watch_component_files();
    run(
        listener,
        app,
        Listener::Main,
        config.shutdown_grace,
        shutdown,
    )
    .await
}

/// Serve the main listener on `workers` threads, each with a single-threaded
/// tokio runtime of its own ("thread per core"): a request, its guest and
/// its ClickHouse connection then live on one thread, with no cross-thread
/// wake-ups. Blocks until `shutdown` is cancelled and every worker is done.
pub fn run_on_threads(
    listener: std::net::TcpListener,
    app: Arc<App>,
    workers: usize,
    grace: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers.max(1) {
        let listener = listener.try_clone().context("sharing the listener")?;
        let app = app.clone();
        let shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wasmhouse-worker-{index}"))
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a worker runtime")?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    run(
                        listener,
                        app,
                        Listener::Main,
                        grace,
                        shutdown.cancelled_owned(),
                    )
                    .await
                })
            })
            .context("starting a worker thread")?;
        threads.push(thread);
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
    }
    Ok(())
}

/// Accept connections on `listener` for `app` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    serves: Listener,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        // A client that opens a connection and sends nothing loses it.
        .header_read_timeout(Duration::from_secs(10))
        .max_headers(100);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Running out of file descriptors, say: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |request| {
            let app = app.clone();
            async move {
                Ok::<_, Infallible>(match serves {
                    Listener::Main => app.dispatch(request).await,
                    Listener::Admin => admin::handle(&app, request).await,
                })
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tracing::info!(?serves, "shutting down; waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(?serves, "all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; dropping remaining connections"),
    }
    Ok(())
}
