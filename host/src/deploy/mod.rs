//! Deployment: which compiled component serves which route, and the
//! operations that change it (deploy, roll back, reload), each validated off
//! the request path and swapped in one atomic step.
//!
//! - [`routes`]: the route table, each route's live deployment and history.
//! - [`compiled`]: compiled components in memory by content hash, bounded.
//! - [`watch`]: redeploy component files when they change on disk.
//! - [`shared`]: publish deployments to a directory the fleet shares, and
//!   follow what other hosts publish there.
//! - [`follow`]: redeploy routes whose registry tag moved.
//!
//! Requests read the route table (`Deployer::routes`); the admin API, the
//! file watcher, the shared directory and SIGHUP change it. None of those
//! knows about the others: the watcher follows the table through
//! [`Deployer::subscribe`].

pub(crate) mod compiled;
pub(crate) mod follow;
pub(crate) mod routes;
pub(crate) mod shared;
pub(crate) mod watch;

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use tokio::sync::watch as notify;

use crate::embedded::{BUILTIN_COMPONENT, SQL_COMPONENT};
use crate::manifest::{ComponentSource, ManifestError, RouteSource, RouteSpec};
use crate::metrics::Metrics;
use crate::registry::{OciReference, Pulled, Registry, RegistryError};
use crate::runtime::{ComponentError, RouteComponent, Runtime};
use compiled::CompiledComponents;
use routes::{Deployment, RegistryOrigin, Route, RouteTable};

/// Why a deployment, rollback or reload did not happen. The routes in force
/// are unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeployError {
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
    #[error("route {route:?}: {source}")]
    Route {
        /// The route's name.
        route: String,
        /// Why its component failed.
        source: ComponentError,
    },
    /// A changed SQL route's query failed its check against the server.
    #[error("route {route:?}: {why}")]
    Refused {
        /// The route's name.
        route: String,
        /// What the check met (the server's error, or the guard-rails').
        why: String,
    },
    /// A route's registry reference could not be pulled.
    #[error("route {route:?}: {failure}")]
    Registry {
        /// The route's name.
        route: String,
        /// What the registry answered, or that it did not (in the message,
        /// not a separate source: it would be printed twice).
        failure: RegistryError,
    },
    /// Compiling was cut short (the host is shutting down).
    #[error("compiling was interrupted: {0}")]
    Interrupted(String),
}

/// What asking a route whether it can serve found.
pub(crate) enum CheckOutcome {
    /// It can.
    Passed,
    /// It cannot, and says why: the route must not go live.
    Failed(String),
    /// Nobody could say (ClickHouse did not answer): it goes live unchecked.
    NotChecked(String),
}

/// Asks a route, before it is in force, whether it can serve: for a SQL
/// route, whether the server types its query's columns. Set by the server
/// (which can run an instance) through [`Deployer::check_routes_with`].
pub(crate) trait RouteCheck: Send + Sync {
    /// Check `route`'s live deployment.
    fn check<'a>(&'a self, route: &'a Route) -> futures::future::BoxFuture<'a, CheckOutcome>;
}

/// The routes in force and everything that changes them.
pub(crate) struct Deployer {
    runtime: Runtime,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    compiled: CompiledComponents,
    routes: ArcSwap<RouteTable>,
    source: RouteSource,
    /// Bumped whenever a new route table is in force.
    changes: notify::Sender<u64>,
    /// The fleet's shared directory, once [`shared::follow`] set it.
    shared: OnceLock<Arc<shared::SharedDirectory>>,
    /// How changed SQL routes are checked before they go live.
    checker: OnceLock<Arc<dyn RouteCheck>>,
}

impl Deployer {
    /// Compile the routes of `source` (slow: call it off the async threads;
    /// it pulls what routes name in registries) and put them in force.
    pub(crate) fn new(
        runtime: Runtime,
        source: RouteSource,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, DeployError> {
        let deployer = Self {
            runtime,
            metrics,
            registry,
            compiled: CompiledComponents::default(),
            routes: ArcSwap::from_pointee(RouteTable::default()),
            source,
            changes: notify::channel(0).0,
            shared: OnceLock::new(),
            checker: OnceLock::new(),
        };
        let table = deployer.build_routes(&deployer.source.routes)?;
        deployer.count_table(&table, None);
        deployer.routes.store(Arc::new(table));
        Ok(deployer)
    }

    /// The route table in force now.
    pub(crate) fn routes(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.routes.load()
    }

    /// A receiver that changes whenever a new route table is in force.
    pub(crate) fn subscribe(&self) -> notify::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Check changed SQL routes with `checker` before a reload puts them in
    /// force (the first call wins).
    pub(crate) fn check_routes_with(&self, checker: Arc<dyn RouteCheck>) {
        let _ = self.checker.set(checker);
    }

    /// Check every SQL route in force and log what fails: at start-up a
    /// broken query is named at once, not at its first request (the route
    /// serves anyway, answering the error, as the server may be down).
    pub(crate) async fn check_live_routes(&self) {
        let table = self.routes.load_full();
        for route in table.routes() {
            if matches!(route.source(), ComponentSource::Sql(_)) {
                self.check_route(route).await.ok();
            }
        }
    }

    /// Check `route` with the checker, logging the outcome; `Err` only when
    /// the check failed.
    async fn check_route(&self, route: &Route) -> Result<(), DeployError> {
        let Some(checker) = self.checker.get() else {
            return Ok(());
        };
        let file = match route.source() {
            ComponentSource::Sql(file) => file.display().to_string(),
            _ => String::new(),
        };
        match checker.check(route).await {
            CheckOutcome::Passed => {
                tracing::debug!(route = route.name(), file, "SQL route checked");
                Ok(())
            }
            CheckOutcome::NotChecked(why) => {
                tracing::warn!(
                    route = route.name(),
                    file,
                    why,
                    "the SQL route's query could not be checked against the server"
                );
                Ok(())
            }
            CheckOutcome::Failed(why) => {
                self.metrics.rejected(route.name());
                tracing::error!(
                    route = route.name(),
                    file,
                    error = why,
                    "the SQL route's query fails"
                );
                Err(DeployError::Refused {
                    route: route.name().to_owned(),
                    why: format!("{file}: {why}"),
                })
            }
        }
    }

    /// What the host counts.
    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where routes' registry references are pulled from.
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The Wasmtime runtime components are compiled for.
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Compile `bytes` (off the async threads) and make them the live
    /// component of route `name`. An invalid component changes nothing.
    pub(crate) async fn deploy(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        origin: &'static str,
    ) -> Result<Arc<Deployment>, DeployError> {
        let route = self.route(name)?;
        self.install(&route, bytes, None, origin, false)
            .await
            .map(|deployment| deployment.unwrap_or_else(|| route.current()))
    }

    /// Like [`Deployer::deploy`], for a route of a table that may have been
    /// replaced meanwhile (by a reload): `Ok(None)`, and nothing deployed,
    /// when `route` is no longer in force.
    pub(crate) async fn deploy_if_live(
        self: &Arc<Self>,
        route: &Arc<Route>,
        bytes: Vec<u8>,
        origin: &'static str,
    ) -> Result<Option<Arc<Deployment>>, DeployError> {
        self.install(route, bytes, None, origin, true).await
    }

    /// Pull `reference` and make it the live component of route `name`
    /// (origin `registry`): what `PUT /admin/components/{name}` does with a
    /// reference.
    pub(crate) async fn deploy_reference(
        self: &Arc<Self>,
        name: &str,
        reference: &OciReference,
    ) -> Result<Arc<Deployment>, DeployError> {
        let route = self.route(name)?;
        let pulled =
            self.registry
                .pull(reference)
                .await
                .map_err(|failure| DeployError::Registry {
                    route: name.to_owned(),
                    failure,
                })?;
        self.deploy_pulled(&route, pulled, false)
            .await
            .map(|deployment| deployment.unwrap_or_else(|| route.current()))
    }

    /// Make `pulled` the live component of `route` (origin `registry`);
    /// `Ok(None)` when `only_if_live` and a reload replaced the route.
    pub(crate) async fn deploy_pulled(
        self: &Arc<Self>,
        route: &Arc<Route>,
        pulled: Pulled,
        only_if_live: bool,
    ) -> Result<Option<Arc<Deployment>>, DeployError> {
        let origin = Arc::new(RegistryOrigin {
            reference: pulled.reference,
            digest: pulled.digest,
        });
        self.install(
            route,
            pulled.component,
            Some(origin),
            "registry",
            only_if_live,
        )
        .await
    }

    async fn install(
        self: &Arc<Self>,
        route: &Arc<Route>,
        bytes: Vec<u8>,
        registry: Option<Arc<RegistryOrigin>>,
        origin: &'static str,
        only_if_live: bool,
    ) -> Result<Option<Arc<Deployment>>, DeployError> {
        let name = route.name();
        let ticket = route.begin_deploy();
        let deployer = self.clone();
        let (bytes, compiled) = tokio::task::spawn_blocking(move || {
            let compiled = deployer.compiled.compile(&deployer.runtime, &bytes);
            (bytes, compiled)
        })
        .await
        .map_err(|err| DeployError::Interrupted(err.to_string()))?;
        let component = compiled.inspect_err(|_| self.metrics.rejected(name))?;
        if only_if_live && !self.is_live(route) {
            tracing::debug!(
                route = name,
                origin,
                "not deployed: the route was reloaded meanwhile"
            );
            return Ok(None);
        }
        let previous = route.current();
        let Some(deployment) = route.deploy(component, registry, origin, ticket, only_if_live)
        else {
            tracing::debug!(
                route = name,
                origin,
                "not deployed: a change made after this one is live already"
            );
            return Ok(None);
        };
        if deployment.version != previous.version {
            self.metrics
                .deployed(name, deployment.id(), Some(previous.id()), origin);
            tracing::info!(
                route = name,
                version = deployment.version,
                sha256 = deployment.component.sha256(),
                digest = deployment.digest(),
                origin,
                "deployed"
            );
            // Kept in the fleet's directory, so a rollback to it can be
            // published; what came from there is there already.
            if let Some(shared) = self.shared.get()
                && origin != shared::ORIGIN
            {
                shared
                    .keep(name, deployment.component.sha256(), &bytes)
                    .await;
            }
        }
        Ok(Some(deployment))
    }

    /// Whether `route` is in the table in force (not one a reload replaced).
    fn is_live(&self, route: &Arc<Route>) -> bool {
        self.routes
            .load()
            .by_name(route.name())
            .is_some_and(|live| Arc::ptr_eq(live, route))
    }

    /// Put route `name`'s previous component back.
    pub(crate) fn rollback(&self, name: &str) -> Result<Arc<Deployment>, DeployError> {
        let route = self.route(name)?;
        let previous = route.current();
        let deployment = route
            .rollback()
            .ok_or_else(|| DeployError::NoPreviousVersion(name.to_owned()))?;
        self.metrics
            .deployed(name, deployment.id(), Some(previous.id()), "rollback");
        tracing::info!(
            route = name,
            version = deployment.version,
            sha256 = deployment.component.sha256(),
            "rolled back"
        );
        Ok(deployment)
    }

    /// Make `deployment`, live on route `name` after an admin upload or
    /// rollback, the version of every host sharing the directory (see
    /// [`shared`]): its bytes (`bytes` when given, else what the directory
    /// or the route's source holds), then the route's pointer. `None` when
    /// deployments are not shared. The local deployment stands either way.
    pub(crate) async fn publish(
        &self,
        name: &str,
        deployment: &Deployment,
        bytes: Option<&[u8]>,
    ) -> Option<Result<(), shared::SharedError>> {
        let shared = self.shared.get()?;
        let route = self.route(name).ok()?;
        let published = shared.publish(&route, deployment, bytes).await;
        if let Err(err) = &published {
            tracing::error!(
                route = name,
                sha256 = deployment.component.sha256(),
                error = %err,
                "deployed here but not published to the shared deployments directory"
            );
        }
        Some(published)
    }

    /// Re-read the manifest (or the component file without one), compile
    /// what changed, and swap the whole route table in one step.
    pub(crate) async fn reload(self: &Arc<Self>) -> Result<usize, DeployError> {
        let specs = self.source.reload()?;
        let deployer = self.clone();
        let table = tokio::task::spawn_blocking(move || deployer.build_routes(&specs))
            .await
            .map_err(|err| DeployError::Interrupted(err.to_string()))??;
        let old = self.routes.load_full();
        for route in table.routes() {
            let previous = old.by_name(route.name());
            if let Some(previous) = previous {
                route.inherit(previous);
            }
            // A SQL route whose file changed (or that is new) goes live only
            // if the server can type its query: a broken save keeps the old
            // table.
            let changed = previous
                .is_none_or(|previous| previous.current().version != route.current().version);
            if changed && matches!(route.source(), ComponentSource::Sql(_)) {
                self.check_route(route).await?;
            }
        }
        let count = table.routes().len();
        self.count_table(&table, Some(&old));
        self.routes.store(Arc::new(table));
        self.changes.send_modify(|version| *version += 1);
        tracing::info!(routes = count, "reloaded routes");
        Ok(count)
    }

    /// Count the deployments of `table`, about to replace `old`.
    fn count_table(&self, table: &RouteTable, old: Option<&RouteTable>) {
        for route in table.routes() {
            let live = route.current();
            let previous = old
                .and_then(|old| old.by_name(route.name()))
                .map(|previous| previous.current());
            if previous
                .as_ref()
                .is_some_and(|previous| previous.version == live.version)
            {
                continue;
            }
            self.metrics.deployed(
                route.name(),
                live.id(),
                previous.as_ref().map(|previous| previous.id()),
                if old.is_some() { "reload" } else { live.origin },
            );
        }
    }

    /// Compile `specs` into a route table, not yet in force.
    fn build_routes(&self, specs: &[RouteSpec]) -> Result<RouteTable, DeployError> {
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let (component, registry) = self.load(spec)?;
            routes.push(Arc::new(Route::new(
                spec,
                component,
                registry,
                self.metrics.clone(),
            )));
        }
        Ok(RouteTable::new(routes))
    }

    /// Compile what route `spec` names (pulling it first from a registry).
    #[allow(clippy::type_complexity)]
    fn load(
        &self,
        spec: &RouteSpec,
    ) -> Result<(Arc<RouteComponent>, Option<Arc<RegistryOrigin>>), DeployError> {
        let invalid = |source| DeployError::Route {
            route: spec.name.clone(),
            source,
        };
        let component = match &spec.source {
            ComponentSource::Builtin => self.compiled.compile(&self.runtime, BUILTIN_COMPONENT),
            ComponentSource::Sql(_) => self.compiled.compile(&self.runtime, SQL_COMPONENT),
            ComponentSource::File(path) => self.compiled.compile_file(&self.runtime, path),
            ComponentSource::Oci(reference) => {
                let pulled =
                    block_on(self.registry.pull_or_last_known(reference)).map_err(|failure| {
                        DeployError::Registry {
                            route: spec.name.clone(),
                            failure,
                        }
                    })?;
                tracing::info!(
                    route = spec.name,
                    reference = %reference,
                    digest = pulled.digest,
                    from_disk = pulled.local,
                    "pulled"
                );
                let component = self
                    .compiled
                    .compile(&self.runtime, &pulled.component)
                    .map_err(invalid)?;
                let origin = RegistryOrigin {
                    reference: pulled.reference,
                    digest: pulled.digest,
                };
                return Ok((component, Some(Arc::new(origin))));
            }
        };
        Ok((component.map_err(invalid)?, None))
    }

    fn route(&self, name: &str) -> Result<Arc<Route>, DeployError> {
        self.routes
            .load()
            .by_name(name)
            .cloned()
            .ok_or_else(|| DeployError::NoSuchRoute(name.to_owned()))
    }
}

/// Run `future` to completion from a blocking thread: on the runtime the
/// thread belongs to (a `spawn_blocking` one), or a short-lived one.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(future),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a Tokio runtime for pulling components")
            .block_on(future),
    }
}
