//! The state every request shares, and the operations that change it:
//! dispatching requests, deploying and rolling back components, reloading
//! the manifest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use futures::FutureExt as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use wasmhouse_clickhouse::ClickHousePool;

use crate::admin::{self, AdminConfig};
use crate::config::ServeConfig;
use crate::manifest::{ComponentSource, ManifestError, RouteSpec};
use crate::respond::{self, ResponseBody};
use crate::routes::{Deployment, Route, RouteTable};
use crate::runtime::component::{ComponentCache, ComponentError};
use crate::runtime::invoke::{self, RouteContext};
use crate::runtime::{RouteComponent, Runtime};
use crate::watch::ComponentWatcher;

/// The default route component: the seed service's routes.
pub static BUILTIN_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_guest.wasm"));

/// Why a deployment, rollback or reload did not happen. The routes in force
/// are unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No route has that name.
    #[error("no route is named {0:?}")]
    NoSuchRoute(String),
    /// The route has no earlier deployment to go back to.
    #[error("route {0:?} has no previous version")]
    NoPreviousVersion(String),
    /// The component cannot serve routes.
    #[error(transparent)]
    Invalid(#[from] ComponentError),
    /// The manifest cannot be used.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A route of a reloaded manifest failed to load.
    #[error("{0}")]
    Reload(String),
}

/// Everything the server shares between requests.
pub struct App {
    runtime: Runtime,
    pool: Arc<ClickHousePool>,
    components: Arc<ComponentCache>,
    routes: ArcSwap<RouteTable>,
    in_flight: Arc<Semaphore>,
    config: ServeConfig,
    request_ids: RequestIds,
    watcher: Mutex<Option<ComponentWatcher>>,
}

impl App {
    /// Compile the configured components and set up the engine and pool.
    pub fn new(config: &ServeConfig) -> anyhow::Result<Self> {
        let runtime = Runtime::new(config.sizing, config.compile_cache.as_deref())?;
        let pool = Arc::new(
            ClickHousePool::new(config.clickhouse.clone())
                .context("creating the ClickHouse connection pool")?,
        );
        let app = Self {
            runtime,
            pool,
            components: Arc::default(),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            in_flight: Arc::new(Semaphore::new(config.sizing.max_instances as usize)),
            config: config.clone(),
            request_ids: RequestIds::new(),
            watcher: Mutex::new(None),
        };
        let table = app
            .build_routes(&config.routes)
            .map_err(anyhow::Error::msg)?;
        app.routes.store(Arc::new(table));
        Ok(app)
    }

    /// The configuration the app was started with.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The admin API's settings.
    pub fn admin(&self) -> &AdminConfig {
        &self.config.admin
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

    /// Answer one request on the main listener.
    pub async fn dispatch(
        self: &Arc<Self>,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<ResponseBody> {
        if self.config.admin.on_main_listener() && admin::is_admin_path(request.uri().path()) {
            return admin::handle(self, request).await;
        }
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
        let max_body = self.config.max_body_size;
        if let Some(length) = content_length(&request)
            && length > max_body as u64
        {
            return respond::error(
                413,
                "body_too_large",
                &format!("the request body is {length} bytes; the limit is {max_body}"),
                &request_id,
            );
        }
        // Backpressure: wait a bounded time for a free instance, then shed.
        let permit = match tokio::time::timeout(
            self.config.queue_timeout,
            self.in_flight.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            _ => return respond::overloaded(&request_id),
        };
        let mut request = request;
        if let Some(token) = &self.config.admin.token
            && admin::strip_admin_token(request.headers_mut(), token)
        {
            tracing::warn!(
                request_id,
                route = route.name(),
                "removed the admin token from a request for a route"
            );
        }
        let request = request.map(|body| {
            http_body_util::Limited::new(body, max_body)
                .map_err(move |_| {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body as u64))
                })
                .boxed_unsync()
        });
        // A host bug must cost one request, never the process or the worker.
        let invoked = invoke::handle(&self.runtime, &route, &request_id, request, permit);
        match std::panic::AssertUnwindSafe(invoked).catch_unwind().await {
            Ok(response) => response,
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
                    &request_id,
                )
            }
        }
    }

    /// Compile `specs` into a route table (not yet in force). Slow: call it
    /// off the request path.
    pub fn build_routes(&self, specs: &[RouteSpec]) -> Result<RouteTable, DeployError> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let component = self
                .load(&spec.source)
                .map_err(|err| DeployError::Reload(format!("route {:?}: {err}", spec.name)))?;
            let context = RouteContext {
                name: spec.name.as_str().into(),
                limits: spec.limits,
                policy: Arc::new(spec.policy.clone()),
                pool: self.pool.clone(),
            };
            routes.push(Arc::new(Route::new(
                spec.prefix.clone(),
                context,
                spec.source.clone(),
                component,
            )));
        }
        Ok(RouteTable::new(routes))
    }

    fn load(&self, source: &ComponentSource) -> Result<Arc<RouteComponent>, ComponentError> {
        match source {
            ComponentSource::Builtin => self.components.compile(&self.runtime, BUILTIN_COMPONENT),
            ComponentSource::File(path) => self.components.compile_file(&self.runtime, path),
        }
    }

    /// Compile `bytes` (off the async threads) and make them the live
    /// component of route `name`. An invalid component changes nothing.
    pub async fn deploy(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        origin: &'static str,
    ) -> Result<Arc<Deployment>, DeployError> {
        let route = self.route(name)?;
        let runtime = self.runtime.clone();
        let components = self.components.clone();
        let component = tokio::task::spawn_blocking(move || components.compile(&runtime, &bytes))
            .await
            .map_err(|err| DeployError::Reload(format!("compiling: {err}")))??;
        let deployment = route.deploy(component, origin);
        tracing::info!(
            route = name,
            version = deployment.version,
            sha256 = deployment.component.sha256(),
            origin,
            "deployed"
        );
        Ok(deployment)
    }

    /// Put route `name`'s previous component back.
    pub fn rollback(&self, name: &str) -> Result<Arc<Deployment>, DeployError> {
        let route = self.route(name)?;
        let deployment = route
            .rollback()
            .ok_or_else(|| DeployError::NoPreviousVersion(name.to_owned()))?;
        tracing::info!(
            route = name,
            version = deployment.version,
            sha256 = deployment.component.sha256(),
            "rolled back"
        );
        Ok(deployment)
    }

    /// Re-read the manifest (or the component file without one), compile
    /// what changed, and swap the whole route table in one step.
    pub async fn reload(self: &Arc<Self>) -> Result<usize, DeployError> {
        let specs = match self.config.reload_routes() {
            Some(specs) => specs?,
            None => self.config.routes.clone(),
        };
        let app = self.clone();
        let table = tokio::task::spawn_blocking(move || app.build_routes(&specs))
            .await
            .map_err(|err| DeployError::Reload(format!("compiling: {err}")))??;
        let old = self.routes.load_full();
        for route in table.routes() {
            if let Some(previous) = old.by_name(route.name()) {
                route.inherit(previous);
            }
        }
        let count = table.routes().len();
        self.routes.store(Arc::new(table));
        tracing::info!(routes = count, "reloaded routes");
        self.watch_component_files();
        Ok(count)
    }

    /// Watch every route's component file and deploy it when it changes.
    /// Replaces any earlier watcher; failure to watch is logged, not fatal.
    pub fn watch_component_files(self: &Arc<Self>) {
        let watcher = match ComponentWatcher::start(self) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::error!(error = %err, "cannot watch component files; deploy with SIGHUP or the admin API");
                None
            }
        };
        *self.watcher.lock().unwrap_or_else(PoisonError::into_inner) = watcher;
    }

    fn route(&self, name: &str) -> Result<Arc<Route>, DeployError> {
        self.routes
            .load()
            .by_name(name)
            .cloned()
            .ok_or_else(|| DeployError::NoSuchRoute(name.to_owned()))
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
