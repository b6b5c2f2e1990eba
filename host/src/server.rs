//! The HTTP server: accept connections, route requests, shut down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use crate::clickhouse::ClickHousePool;
use crate::config::ServeConfig;
use crate::manifest::{ComponentSource, RouteSpec};
use crate::respond::{self, ResponseBody};
use crate::routes::{Route, RouteTable};
use crate::runtime::Runtime;
use crate::runtime::component::ComponentCache;
use crate::runtime::invoke::{self, RouteContext};

/// The default route component: the seed service's routes.
pub static BUILTIN_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_guest.wasm"));

/// Everything the server shares between requests.
pub struct App {
    runtime: Runtime,
    pool: Arc<ClickHousePool>,
    components: ComponentCache,
    routes: ArcSwap<RouteTable>,
    in_flight: Arc<Semaphore>,
    queue_timeout: Duration,
    max_body_size: usize,
    request_ids: RequestIds,
}

impl App {
    /// Compile the configured components and set up the engine and pool.
    pub fn new(config: &ServeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config.sizing)?;
        let pool = Arc::new(
            ClickHousePool::new(config.clickhouse.clone())
                .context("creating the ClickHouse connection pool")?,
        );
        let app = Self {
            runtime,
            pool,
            components: ComponentCache::default(),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            in_flight: Arc::new(Semaphore::new(config.sizing.max_instances as usize)),
            queue_timeout: config.queue_timeout,
            max_body_size: config.max_body_size,
            request_ids: RequestIds::new(),
        };
        let table = app.build_routes(&config.routes)?;
        app.routes.store(Arc::new(table));
        Ok(app)
    }

    /// Compile `specs` into a route table (not yet in force).
    pub fn build_routes(&self, specs: &[RouteSpec]) -> anyhow::Result<RouteTable> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let component = match &spec.source {
                ComponentSource::Builtin => self
                    .components
                    .compile(&self.runtime, BUILTIN_COMPONENT)
                    .context("compiling the built-in route component")?,
                ComponentSource::File(path) => self
                    .components
                    .compile_file(&self.runtime, path)
                    .with_context(|| {
                        format!("route {:?}: loading {}", spec.name, path.display())
                    })?,
            };
            let context = RouteContext {
                name: spec.name.as_str().into(),
                limits: spec.limits,
                policy: Arc::new(spec.policy.clone()),
                pool: self.pool.clone(),
            };
            routes.push(Arc::new(Route::new(
                spec.prefix.clone(),
                context,
                component,
            )));
        }
        Ok(RouteTable::new(routes))
    }

    /// Put `table` in force for new requests; requests running keep theirs.
    pub fn replace_routes(&self, table: RouteTable) {
        self.routes.store(Arc::new(table));
    }

    /// The route table in force now.
    pub fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// The ClickHouse pool.
    pub fn pool(&self) -> &Arc<ClickHousePool> {
        &self.pool
    }

    /// The Wasmtime runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Compiled components by content hash.
    pub fn components(&self) -> &ComponentCache {
        &self.components
    }

    /// Answer one request.
    pub async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<ResponseBody> {
        let request_id = self.request_ids.next();
        let path = request.uri().path();
        let Some(route) = self.routes.load().find(path).cloned() else {
            return respond::error(
                404,
                "no_route",
                &format!("no component serves {path}"),
                &request_id,
            );
        };
        if let Some(length) = content_length(&request)
            && length > self.max_body_size as u64
        {
            return respond::error(
                413,
                "body_too_large",
                &format!(
                    "the request body is {length} bytes; the limit is {}",
                    self.max_body_size
                ),
                &request_id,
            );
        }
        // Backpressure: wait a bounded time for a free instance, then shed.
        let permit =
            match tokio::time::timeout(self.queue_timeout, self.in_flight.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => return respond::overloaded(&request_id),
            };
        let limit = self.max_body_size;
        let request = request.map(|body| {
            http_body_util::Limited::new(body, limit)
                .map_err(move |_| {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit as u64))
                })
                .boxed_unsync()
        });
        invoke::handle(&self.runtime, &route, &request_id, request, permit).await
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

/// Serve HTTP on `listener` until `shutdown` resolves, then stop accepting
/// and give requests in flight up to the configured grace period.
pub async fn serve(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = Arc::new(App::new(&config)?);
    run(listener, app, config.shutdown_grace, shutdown).await
}

/// [`serve`] with an [`App`] built beforehand.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
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
            async move { Ok::<_, Infallible>(app.dispatch(request).await) }
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
    tracing::info!("shutting down; waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over; dropping remaining connections"),
    }
    Ok(())
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
