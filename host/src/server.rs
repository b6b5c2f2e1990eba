//! Serving HTTP: the library entry point [`serve`] (a configuration on a
//! bound listener, until a shutdown future resolves; the `wasmhouse` binary,
//! the benchmarks and the tests all start servers this way), and the
//! [`Dispatcher`] that takes each request from hyper to a guest and back:
//! the admin check, the route lookup, the limits that apply before any
//! instance exists (body size, the queue for an instance slot), then a fresh
//! instance of the route's live component.
//!
//! The main listener is served on `workers` threads, each with a
//! single-threaded tokio runtime of its own ("thread per core"): a request,
//! its guest and its ClickHouse connection then live on one thread, with no
//! cross-thread wake-ups. The admin listener and the component-file watcher
//! run on the caller's runtime.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use wasmhouse_clickhouse::{ClickHousePool, QueryContext};

use crate::access::{self, Access, Admission, Denied};
use crate::admin;
use crate::config::ServeConfig;
use crate::deploy::routes::{Deployment, Route};
use crate::deploy::{Deployer, watch};
use crate::metrics::{DenialKind, InstanceSlot, Metrics};
use crate::respond::{self, ResponseBody};
use crate::runtime::{Invocation, Runtime, instance};
use crate::{docs, openapi, signals, telemetry};

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

/// A server ready to run: routes compiled, ClickHouse pool built (no
/// connection is opened until the first query).
pub struct Server {
    dispatcher: Arc<Dispatcher>,
}

impl Server {
    /// Build the engine and pool and compile the configured routes. Slow
    /// (it compiles): call it before serving, off the async threads.
    pub fn new(config: ServeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config.sizing, config.compile_cache.as_deref())?;
        let pool = Arc::new(
            ClickHousePool::new(config.clickhouse.clone())
                .context("creating the ClickHouse connection pool")?,
        );
        let metrics = Arc::new(Metrics::new(pool.metrics()));
        let access = Arc::new(
            Access::new(config.keys.clone(), config.trusted_proxies.clone())
                .context("reading the API keys")?,
        );
        let deployer = Arc::new(Deployer::new(runtime, config.route_source(), metrics)?);
        if access.keys().is_empty()
            && let Some(route) = deployer
                .routes()
                .routes()
                .iter()
                .find(|route| route.access().needs_key())
        {
            tracing::warn!(
                route = route.name(),
                "the route needs an API key but no keys are configured \
                 (WASMHOUSE_API_KEYS_FILE, WASMHOUSE_API_KEYS): it answers 401 to every request"
            );
        }
        Ok(Self {
            dispatcher: Arc::new(Dispatcher::new(deployer, pool, access, config)),
        })
    }

    /// The request dispatcher (and through it, the deployer).
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
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
        let watcher = watch::watch_component_files(self.dispatcher.deployer());
        let keys = reload_keys_with_routes(self.dispatcher.clone());
        let health = self.dispatcher.pool().spawn_health_checks();

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
                            if request.uri().path() == METRICS_PATH {
                                return metrics_response(deployer.metrics());
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

/// Header carrying the path below the route's prefix (Spin's name for it).
const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
/// Header carrying the prefix of the route that matched.
const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");
/// On answers of routes whose reads the result cache served: `hit`, `stale`
/// or `miss` (see [`wasmhouse_clickhouse::CacheReport`]).
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Everything requests share: the routes, the ClickHouse pool, the slots
/// instances run in.
pub struct Dispatcher {
    deployer: Arc<Deployer>,
    pool: Arc<ClickHousePool>,
    in_flight: Arc<Semaphore>,
    access: Arc<Access>,
    config: ServeConfig,
    request_ids: RequestIds,
}

impl Dispatcher {
    /// Dispatch to `deployer`'s routes, querying through `pool`, letting in
    /// the callers `access` allows.
    pub fn new(
        deployer: Arc<Deployer>,
        pool: Arc<ClickHousePool>,
        access: Arc<Access>,
        config: ServeConfig,
    ) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(config.sizing.max_instances as usize)),
            deployer,
            pool,
            access,
            config,
            request_ids: RequestIds::new(),
        }
    }

    /// The routes and what changes them.
    pub fn deployer(&self) -> &Arc<Deployer> {
        &self.deployer
    }

    /// The configuration served.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The ClickHouse servers and connections.
    pub fn pool(&self) -> &Arc<ClickHousePool> {
        &self.pool
    }

    /// API keys and trusted proxies.
    pub fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// Answer one request on the main listener.
    pub async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        let admin = &self.config.admin;
        let path = request.uri().path();
        if path == METRICS_PATH && admin.listen.is_none() {
            return metrics_response(self.deployer.metrics());
        }
        if admin.on_main_listener() && admin::is_admin_path(path) {
            return admin::handle(&self.deployer, admin, request).await;
        }
        let started = std::time::Instant::now();
        let request_id = request_id(request.headers()).unwrap_or_else(|| self.request_ids.next());
        if self.config.docs {
            let page = if path == openapi::OPENAPI_PATH {
                Some(self.openapi().await)
            } else {
                docs::asset(path)
            };
            if let Some(mut response) = page {
                set_request_id(&mut response, &request_id);
                return response;
            }
        }
        let Some(route) = self.deployer.routes().find(path).cloned() else {
            self.deployer.metrics().unrouted(404);
            let mut response = respond::error(
                404,
                "no_route",
                &format!("no component serves {}", crate::respond::shorten(path, 200)),
                &request_id,
            );
            set_request_id(&mut response, &request_id);
            return response;
        };
        let deployment = route.current();
        // Created with what is known up front: a log layer formats a span's
        // fields when it is created and again on every `record`, so the
        // fields only exporters read are recorded only when exporting.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            route = route.name(),
            version = deployment.version,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            clickhouse_ms = tracing::field::Empty,
        );
        let exporting = telemetry::continue_trace(&span, request.headers());
        let mut response = match self.admit(&route, &request, peer) {
            Ok(admission) => {
                let allowance = admission.allowance;
                let mut response = self
                    .serve_route(&route, &deployment, request, admission, &request_id)
                    .instrument(span.clone())
                    .await;
                if let Some(allowance) = allowance {
                    respond::rate_limit_headers(
                        response.headers_mut(),
                        allowance.limit,
                        allowance.remaining,
                        allowance.reset,
                    );
                }
                response
            }
            Err(denied) => {
                deployment.metrics.denied(match denied {
                    Denied::Unauthorized => DenialKind::unauthorized,
                    Denied::Forbidden => DenialKind::forbidden,
                    Denied::TooManyRequests { .. } => DenialKind::rate_limited,
                });
                respond::denied(&denied, &request_id)
            }
        };
        let status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        deployment.metrics.answered(status, elapsed);
        if exporting {
            span.record("status", status);
            span.record("duration_ms", elapsed * 1000.0);
        }
        tracing::debug!(parent: &span, status, "answered");
        set_request_id(&mut response, &request_id);
        response
    }

    /// The route's API key and rate limit checks (none on most routes).
    fn admit<B>(
        &self,
        route: &Route,
        request: &hyper::Request<B>,
        peer: SocketAddr,
    ) -> Result<Admission, Denied> {
        let access = route.access();
        if access.is_open() {
            return Ok(Admission::default());
        }
        let headers = request.headers();
        let client = self.access.proxies().client(peer.ip(), headers);
        access.check(
            route.name(),
            &self.access.keys(),
            access::presented_key(headers),
            client,
        )
    }

    async fn serve_route(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
        request: hyper::Request<Incoming>,
        admission: Admission,
        request_id: &str,
    ) -> hyper::Response<ResponseBody> {
        let max_body = self.config.max_body_size;
        if let Some(length) = content_length(&request)
            && length > max_body as u64
        {
            return respond::error(
                413,
                "body_too_large",
                &format!("the request body is {length} bytes; the limit is {max_body}"),
                request_id,
            );
        }
        // Backpressure: wait a bounded time for a free instance, then shed.
        let metrics = self.deployer.metrics();
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Only requests that wait are counted in the queue.
            Err(_) => {
                let waiting = metrics.queued();
                match tokio::time::timeout(
                    self.config.queue_timeout,
                    self.in_flight.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => {
                        drop(waiting);
                        permit
                    }
                    _ => {
                        metrics.shed();
                        return respond::overloaded(request_id);
                    }
                }
            }
        };
        let slot = metrics.slot(permit);

        let (mut parts, body) = request.into_parts();
        if let Some(token) = &self.config.admin.token
            && admin::strip_admin_token(&mut parts.headers, token)
        {
            tracing::warn!(
                request_id,
                route = route.name(),
                "removed the admin token from a request for a route"
            );
        }
        // The guest learns which key called (by name), never the key.
        access::strip_keys(&mut parts.headers, admission.key.is_some());
        if let Some(value) = admission
            .key
            .as_deref()
            .and_then(|name| HeaderValue::from_str(name).ok())
        {
            parts.headers.insert(access::KEY_NAME_HEADER, value);
        }
        // Like Spin: the guest sees the full path, and the part below its
        // route's prefix in `spin-path-info`; and its request id.
        if let Ok(value) = HeaderValue::from_str(route.path_info(parts.uri.path())) {
            parts.headers.insert(PATH_INFO, value);
        }
        parts
            .headers
            .insert(COMPONENT_ROUTE, route.prefix_header().clone());
        if let Ok(value) = HeaderValue::from_str(request_id) {
            parts.headers.insert(REQUEST_ID, value);
        }
        let body = http_body_util::Limited::new(body, max_body)
            .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body as u64)))
            .boxed_unsync();
        let request = hyper::Request::from_parts(parts, body);

        self.invoke(route, deployment, request, request_id, slot)
            .await
    }

    /// Run `request` on a fresh instance of `deployment`, in `slot`.
    async fn invoke(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
        request: hyper::Request<instance::RequestBody>,
        request_id: &str,
        slot: InstanceSlot,
    ) -> hyper::Response<ResponseBody> {
        let limits = route.limits();
        let deadline = Instant::now() + limits.timeout;
        let query = QueryContext::new(self.pool.clone(), route.policy().clone(), deadline)
            .with_request_id(request_id)
            .with_span_timing(telemetry::exporting());
        let cache_report = query.cache_report();
        let invocation = Invocation {
            label: route.name(),
            request_id,
            limits,
            deadline,
            query,
            slot,
            metrics: deployment.metrics.clone(),
        };
        let run = instance::run(
            self.deployer.runtime(),
            deployment.component.clone(),
            invocation,
            request,
        );
        // A host bug must cost one request, never the process or the worker.
        match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(mut response) => {
                // Reads made before the response head: how the cache answered.
                if let Some(outcome) = cache_report.header() {
                    response
                        .headers_mut()
                        .insert(X_CACHE, HeaderValue::from_static(outcome));
                }
                response
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(
                    request_id,
                    route = route.name(),
                    panic = why,
                    "host bug: panicked while serving a request"
                );
                respond::error(
                    500,
                    "internal",
                    "the host failed while serving this request",
                    request_id,
                )
            }
        }
    }
}

impl Dispatcher {
    /// `GET /openapi.json`: every live route's description, merged.
    async fn openapi(&self) -> hyper::Response<ResponseBody> {
        let routes: Vec<Arc<Route>> = self.deployer.routes().routes().to_vec();
        let deployments: Vec<Arc<Deployment>> =
            routes.iter().map(|route| route.current()).collect();
        let descriptions = futures::future::join_all(
            routes
                .iter()
                .zip(&deployments)
                .map(|(route, deployment)| self.description(route, deployment)),
        )
        .await;
        let docs: Vec<openapi::RouteDoc<'_>> = routes
            .iter()
            .zip(&deployments)
            .zip(&descriptions)
            .map(|((route, deployment), described)| openapi::RouteDoc {
                name: route.name(),
                prefix: route.prefix(),
                version: deployment.version,
                sha256: deployment.component.sha256(),
                access: route.access().rules(),
                described: described.as_deref(),
            })
            .collect();
        let mut response = respond::json(200, &openapi::merge(&docs));
        response.headers_mut().insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
        response
    }

    /// What `deployment`'s component says about itself, asked once: a
    /// component that answers its well-known path with anything but an
    /// OpenAPI 3 document describes nothing. A busy or failing instance is
    /// asked again next time.
    async fn description(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
    ) -> Option<Arc<serde_json::Value>> {
        let described = deployment
            .api_description
            .get_or_try_init(|| self.ask_description(route, deployment))
            .await;
        match described {
            Ok(described) => described.clone(),
            Err(why) => {
                tracing::warn!(
                    route = route.name(),
                    version = deployment.version,
                    why,
                    "no API description this time"
                );
                None
            }
        }
    }

    async fn ask_description(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
    ) -> Result<Option<Arc<serde_json::Value>>, &'static str> {
        let Ok(Ok(permit)) = tokio::time::timeout(
            self.config.queue_timeout,
            self.in_flight.clone().acquire_owned(),
        )
        .await
        else {
            return Err("every instance slot is busy");
        };
        let slot = self.deployer.metrics().slot(permit);
        let request_id = self.request_ids.next();
        let path = format!(
            "{}{}",
            route.prefix().trim_end_matches('/'),
            openapi::COMPONENT_DOC_PATH
        );
        let mut request = hyper::Request::get(path)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never: Infallible| match never {})
                    .boxed_unsync(),
            )
            .map_err(|_| "the route's prefix is no valid path")?;
        let headers = request.headers_mut();
        headers.insert(
            PATH_INFO,
            HeaderValue::from_static(openapi::COMPONENT_DOC_PATH),
        );
        headers.insert(COMPONENT_ROUTE, route.prefix_header().clone());
        headers.insert(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, value);
        }
        let response = self
            .invoke(route, deployment, request, &request_id, slot)
            .await;
        if response.status() != hyper::StatusCode::OK {
            tracing::debug!(
                route = route.name(),
                status = response.status().as_u16(),
                "the component does not describe its routes"
            );
            return Ok(None);
        }
        let body = http_body_util::Limited::new(response.into_body(), openapi::MAX_COMPONENT_DOC);
        let Ok(Ok(body)) = tokio::time::timeout(route.limits().timeout, body.collect()).await
        else {
            return Err("the component's description did not arrive whole");
        };
        match serde_json::from_slice::<serde_json::Value>(&body.to_bytes()) {
            Ok(doc) if openapi::is_openapi3(&doc) => Ok(Some(Arc::new(doc))),
            _ => {
                tracing::warn!(
                    route = route.name(),
                    path = openapi::COMPONENT_DOC_PATH,
                    "the component answered with something that is not an OpenAPI 3 document; ignored"
                );
                Ok(None)
            }
        }
    }
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

/// Where the metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// `GET /metrics`: the registry in Prometheus' text format.
pub fn metrics_response(metrics: &Metrics) -> hyper::Response<ResponseBody> {
    let mut response = hyper::Response::new(respond::full(metrics.encode()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

/// The header requests and responses carry their id in.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The incoming `X-Request-Id`, when it is one wasmhouse can pass on (to the
/// guest, to ClickHouse's query log, to logs): 1 to 64 letters, digits,
/// `.`, `_` or `-`.
fn request_id(headers: &hyper::HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?;
    let well_formed = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    well_formed.then(|| value.to_owned())
}

fn set_request_id(response: &mut hyper::Response<ResponseBody>, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
}

/// The declared body length, if any.
fn content_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Short unique ids for requests: a random per-process prefix and a counter.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().as_u128() as u32,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:08x}-{:x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
