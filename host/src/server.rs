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

use crate::clickhouse::ClickHousePool;
use crate::config::{ComponentSource, ServeConfig};
use crate::respond::{self, ResponseBody};
use crate::routes::{Route, RouteTable};
use crate::runtime::invoke::{self, RouteContext};
use crate::runtime::{RouteComponent, Runtime};

/// The default route component: the seed service's routes.
pub static BUILTIN_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_guest.wasm"));

/// Everything the server shares between requests.
pub struct App {
    runtime: Runtime,
    pool: Arc<ClickHousePool>,
    routes: ArcSwap<RouteTable>,
    request_ids: RequestIds,
}

impl App {
    /// Compile the configured component and set up the engine and pool.
    pub fn new(config: &ServeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config.sizing)?;
        let pool = Arc::new(
            ClickHousePool::new(config.clickhouse.clone())
                .context("creating the ClickHouse connection pool")?,
        );
        let (name, component) = match &config.component {
            ComponentSource::Builtin => (
                "default".to_owned(),
                RouteComponent::compile(&runtime, BUILTIN_COMPONENT)
                    .context("compiling the built-in route component")?,
            ),
            ComponentSource::File(path) => (
                path.file_stem().map_or_else(
                    || "component".to_owned(),
                    |s| s.to_string_lossy().into_owned(),
                ),
                RouteComponent::from_file(&runtime, path)
                    .with_context(|| format!("loading {}", path.display()))?,
            ),
        };
        let context = RouteContext {
            name: name.into(),
            limits: config.limits,
            policy: Arc::new(config.policy.clone()),
            pool: pool.clone(),
        };
        let routes = RouteTable::new(vec![Arc::new(Route::new("/", context, component))]);
        Ok(Self {
            runtime,
            pool,
            routes: ArcSwap::from_pointee(routes),
            request_ids: RequestIds::new(),
        })
    }

    /// The route table in force now.
    pub fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// The ClickHouse pool.
    pub fn pool(&self) -> &Arc<ClickHousePool> {
        &self.pool
    }

    /// Answer one request.
    pub async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<ResponseBody> {
        let request_id = self.request_ids.next();
        let routes = self.routes.load();
        let Some(route) = routes.find(request.uri().path()) else {
            return respond::error(
                404,
                "no_route",
                &format!("no component serves {}", request.uri().path()),
                &request_id,
            );
        };
        let route = route.clone();
        drop(routes);
        invoke::handle(
            &self.runtime,
            route.component(),
            route.context(),
            &request_id,
            request,
        )
        .await
    }
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
