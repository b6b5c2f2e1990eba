//! Serving HTTP: the library entry point [`serve`] (a configuration on a
//! bound listener, until a shutdown future resolves; the `wasmhouse` binary,
//! the benchmarks and the tests all start servers this way): the listeners,
//! the worker threads and graceful shutdown. Each request goes to the
//! [`Dispatcher`].
//!
//! The main listener is served on `workers` threads, each with a
//! single-threaded tokio runtime of its own ("thread per core"): a request,
//! its guest and its ClickHouse connection then live on one thread, with no
//! cross-thread wake-ups. The admin listener and the component-file watcher
//! run on the caller's runtime.

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
use wasmhouse_clickhouse::ClickHousePool;

use crate::access::Access;
use crate::admin;
use crate::config::ServeConfig;
use crate::deploy::{Deployer, watch};
use crate::dispatch::{Dispatcher, SqlCheck};
use crate::metrics::{METRICS_PATH, Metrics, metrics_response};
use crate::registry::Registry;
use crate::runtime::Runtime;
use crate::signals;

/// Longest a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most headers a request may have (431 beyond).
const MAX_HEADERS: usize = 100;

/// Serve `config` on `listener` until `shutdown` resolves, then stop
/// accepting and give requests in flight up to the configured grace period.
///
/// Compiles the configured components first (off the async threads). When
/// the configuration has an admin address, the admin API is served there.
pub async fn serve(
    listener: std::net::TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (server, admin) = prepare(config).await?;
    server.run(listener, admin, shutdown).await
}

/// Bind the admin listener (if configured), then build the server off the
/// async threads (it compiles).
async fn prepare(config: ServeConfig) -> anyhow::Result<(Server, Option<std::net::TcpListener>)> {
    let admin = match config.admin.listen {
        Some(address) => Some(
            std::net::TcpListener::bind(address)
                .with_context(|| format!("listening on {address} (WASMHOUSE_ADMIN_LISTEN)"))?,
        ),
        None => None,
    };
    let server = tokio::task::spawn_blocking(move || Server::new(config))
        .await
        .context("compiling the routes")??;
    Ok((server, admin))
}

/// [`serve`] for the `wasmhouse` binary: until SIGINT or SIGTERM, reloading
/// the routes on SIGHUP, announcing each listener on stdout once it serves
/// (`wasmhouse listening on http://…`, the line scripts wait for).
pub async fn serve_until_signalled(
    listener: std::net::TcpListener,
    config: ServeConfig,
) -> anyhow::Result<()> {
    let (server, admin) = prepare(config).await?;
    let address = listener.local_addr()?;
    let config = server.dispatcher().config();
    tracing::info!(
        %address,
        workers = config.workers,
        clickhouse = %config.clickhouse.endpoint().authority(),
        replicas = config.clickhouse.endpoints.len(),
        routes = server.dispatcher().deployer().routes().routes().len(),
        "ready"
    );
    crate::secrets::log_configured();
    tokio::spawn(signals::reload_on_sighup(
        server.dispatcher().deployer().clone(),
    ));
    if let Some(admin) = &admin {
        println!(
            "wasmhouse admin listening on http://{}",
            admin.local_addr()?
        );
    }
    println!("wasmhouse listening on http://{address}");
    server.run(listener, admin, signals::shutdown()).await
}

/// On the admin listener, answered by the host itself: it is up, its routes
/// are compiled and it is not draining (the admin listener closes when it
/// starts to). What an orchestrator's readiness probe asks: it depends on
/// neither ClickHouse nor a route's code.
pub(crate) const HEALTH_PATH: &str = "/health";

/// A server ready to run: routes compiled, ClickHouse pool built (no
/// connection is opened until the first query).
pub struct Server {
    dispatcher: Arc<Dispatcher>,
}

impl Server {
    /// Build the engine and pool and compile the configured routes. Slow
    /// (it compiles): call it before serving, off the async threads.
    pub fn new(config: ServeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(
            config.sizing,
            config.compile_cache.as_deref(),
            config.compilation,
        )?;
        let pool = Arc::new(
            ClickHousePool::new(config.clickhouse.clone())
                .context("creating the ClickHouse connection pool")?,
        );
        let metrics = Arc::new(Metrics::new(pool.metrics()));
        let access = Arc::new(
            Access::new(config.keys.clone(), config.trusted_proxies.clone())
                .context("reading the API keys")?,
        );
        let registry = Arc::new(Registry::new(&config.registry));
        let deployer = Arc::new(Deployer::new(
            runtime,
            config.route_source(),
            registry,
            metrics,
        )?);
        if access.keys().is_empty()
            && let Some(route) = deployer
                .routes()
                .routes()
                .iter()
                .find(|route| route.access().needs_key())
        {
            // No place keys could come from: the route can never answer.
            if config.keys.file.is_none() && config.keys.inline.is_none() {
                anyhow::bail!(
                    "route {:?}: api_key = true, but neither WASMHOUSE_API_KEYS_FILE nor \
                     WASMHOUSE_API_KEYS is set: it would answer 401 to every request",
                    route.name()
                );
            }
            tracing::warn!(
                route = route.name(),
                "the route needs an API key but no keys are configured \
                 (WASMHOUSE_API_KEYS_FILE, WASMHOUSE_API_KEYS): it answers 401 to every request"
            );
        }
        let dispatcher = Arc::new(Dispatcher::new(deployer, pool, access, config));
        dispatcher
            .deployer()
            .check_routes_with(Arc::new(SqlCheck(Arc::downgrade(&dispatcher))));
        Ok(Self { dispatcher })
    }

    /// The request dispatcher (and through it, the deployer).
    pub(crate) fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// Serve until `shutdown` resolves: `listener` on the worker threads,
    /// `admin` (if any) and the file watcher on the current runtime.
    pub async fn run(
        self,
        listener: std::net::TcpListener,
        admin: Option<std::net::TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let config = self.dispatcher.config();
        let grace = config.shutdown_grace;
        let workers = config.workers;
        let cancel = CancellationToken::new();
        let _shared = crate::deploy::shared::follow(
            self.dispatcher.deployer(),
            config.shared_deployments.as_ref(),
        )
        .await
        .context("the shared deployments directory")?;
        let _tags = crate::deploy::follow::follow_tags(self.dispatcher.deployer());
        let watcher = watch::watch_component_files(self.dispatcher.deployer());
        let keys = reload_keys_with_routes(self.dispatcher.clone());
        let health = self.dispatcher.pool().spawn_health_checks();
        let checks = tokio::spawn({
            let deployer = self.dispatcher.deployer().clone();
            async move { deployer.check_live_routes().await }
        });

        let admin_task = match admin {
            Some(admin) => {
                admin
                    .set_nonblocking(true)
                    .context("making the admin listener non-blocking")?;
                let admin = TcpListener::from_std(admin).context("the admin listener")?;
                let dispatcher = self.dispatcher.clone();
                let shutdown = cancel.clone().cancelled_owned();
                Some(tokio::spawn(async move {
                    let config = dispatcher.config().admin.clone();
                    let deployer = dispatcher.deployer().clone();
                    accept(admin, grace, shutdown, move |request, _peer| {
                        let (deployer, config) = (deployer.clone(), config.clone());
                        async move {
                            match request.uri().path() {
                                METRICS_PATH => return metrics_response(deployer.metrics()),
                                HEALTH_PATH => {
                                    let routes = deployer.routes().routes().len();
                                    return crate::respond::json(
                                        200,
                                        &serde_json::json!({ "status": "ok", "routes": routes }),
                                    );
                                }
                                _ => {}
                            }
                            admin::handle(&deployer, &config, request).await
                        }
                    })
                    .await
                }))
            }
            None => None,
        };
        let main = tokio::task::spawn_blocking({
            let dispatcher = self.dispatcher.clone();
            let cancel = cancel.clone();
            move || run_workers(listener, dispatcher, workers, grace, cancel)
        });

        shutdown.await;
        tracing::info!("shutting down; waiting for requests in flight");
        cancel.cancel();
        let served = main.await.context("worker threads")?;
        if let Some(admin_task) = admin_task {
            admin_task.await.context("admin listener task")??;
        }
        watcher.abort();
        keys.abort();
        checks.abort();
        if let Some(health) = health {
            health.abort();
        }
        served
    }
}

/// Serve `listener` on `workers` threads until `cancel` is cancelled and
/// every worker is done.
fn run_workers(
    listener: std::net::TcpListener,
    dispatcher: Arc<Dispatcher>,
    workers: usize,
    grace: Duration,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let mut threads = Vec::with_capacity(workers);
    for index in 0..workers.max(1) {
        let listener = listener.try_clone().context("sharing the listener")?;
        let dispatcher = dispatcher.clone();
        let cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wasmhouse-worker-{index}"))
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a worker runtime")?;
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    accept(
                        listener,
                        grace,
                        cancel.cancelled_owned(),
                        move |request, peer| {
                            let dispatcher = dispatcher.clone();
                            async move { dispatcher.dispatch(request, peer).await }
                        },
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

/// Accept connections on `listener` and answer each request with `handle`
/// until `shutdown` resolves; then wait up to `grace` for open connections.
async fn accept<H, F>(
    listener: TcpListener,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    handle: H,
) -> anyhow::Result<()>
where
    H: Fn(hyper::Request<hyper::body::Incoming>, std::net::SocketAddr) -> F
        + Clone
        + Send
        + 'static,
    F: Future<Output = hyper::Response<crate::respond::ResponseBody>> + Send + 'static,
{
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .keep_alive(true)
        // A client that opens a connection and sends nothing loses it.
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(MAX_HEADERS);
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
        let handle = handle.clone();
        let service = service_fn(move |request| {
            let response = handle(request, peer);
            async move { Ok::<_, Infallible>(response.await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; dropping remaining connections"),
    }
    Ok(())
}

/// Read the API keys again whenever the routes are reloaded or redeployed
/// (a bad keys file keeps the keys in force, and says why).
fn reload_keys_with_routes(dispatcher: Arc<Dispatcher>) -> tokio::task::JoinHandle<()> {
    let mut changes = dispatcher.deployer().subscribe();
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            match dispatcher.access().reload() {
                Ok(count) => tracing::info!(keys = count, "reloaded the API keys"),
                Err(err) => tracing::error!(error = %err, "kept the API keys in force"),
            }
        }
    })
}
