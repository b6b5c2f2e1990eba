//! Which component answers which path, and the deployments behind each route.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use wasmhouse_clickhouse::QueryPolicy;
use wasmtime_wasi_config::WasiConfigVariables;

use crate::access::RouteAccess;
use crate::manifest::{ComponentSource, RouteSpec, normalise_prefix};
use crate::metrics::{DeployedComponent, Metrics, RouteMetrics};
use crate::registry::OciReference;
use crate::runtime::{InstanceLimits, RouteComponent};

/// Earlier deployments kept per route for rollback.
const HISTORY: usize = 16;

/// Where in a registry a deployment came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegistryOrigin {
    /// The reference, pinned to `digest` (its tag, if any, kept as a label).
    pub(crate) reference: OciReference,
    /// The manifest's digest.
    pub(crate) digest: String,
}

/// One component as deployed on a route.
pub(crate) struct Deployment {
    /// The compiled component.
    pub(crate) component: Arc<RouteComponent>,
    /// 1 for the first deployment on the route, then one more per deploy.
    pub(crate) version: u64,
    /// When it went live.
    pub(crate) deployed_at: SystemTime,
    /// Where it came from: `builtin`, `file`, `upload`, `registry`.
    pub(crate) origin: &'static str,
    /// The registry digest it was pulled as, if it came from one.
    pub(crate) registry: Option<Arc<RegistryOrigin>>,
    /// Its requests' series (labelled with this version).
    pub(crate) metrics: Arc<RouteMetrics>,
    /// The OpenAPI document the component gave, asked for once on first
    /// use (`None` when it describes nothing).
    pub(crate) api_description: tokio::sync::OnceCell<Option<Arc<serde_json::Value>>>,
}

impl Deployment {
    /// How the metrics name it.
    pub(crate) fn id(&self) -> DeployedComponent<'_> {
        DeployedComponent {
            version: self.version,
            sha256: self.component.sha256(),
            digest: self.digest(),
        }
    }

    /// The registry manifest digest it was pulled as, `""` if not pulled.
    pub(crate) fn digest(&self) -> &str {
        self.registry
            .as_ref()
            .map_or("", |origin| origin.digest.as_str())
    }
}

/// A path prefix served by one component, swappable while requests run.
pub(crate) struct Route {
    name: String,
    prefix: String,
    /// The prefix as a header value, made once rather than per request.
    prefix_header: hyper::header::HeaderValue,
    limits: InstanceLimits,
    policy: Arc<QueryPolicy>,
    access: RouteAccess,
    source: ComponentSource,
    follow: Option<Duration>,
    /// What its instances read through `wasi:config/store`.
    config: Arc<WasiConfigVariables>,
    /// The same, comparable: a reload that changes it is a new version.
    config_pairs: BTreeMap<String, String>,
    current: ArcSwap<Deployment>,
    history: Mutex<Vec<Arc<Deployment>>>,
    last_version: AtomicU64,
    /// Deploys begun ([`Route::begin_deploy`]): each gets the next number.
    deploys_begun: AtomicU64,
    /// The number of the latest-begun deploy that went live (written under
    /// the history lock): a background deploy begun before it, and still
    /// compiling, must not go live over it.
    newest_live_deploy: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Route {
    /// The route `spec` describes, served by `component` (compiled from
    /// `spec.source`, pulled as `registry` when it is in one).
    pub(crate) fn new(
        spec: &RouteSpec,
        component: Arc<RouteComponent>,
        registry: Option<Arc<RegistryOrigin>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let origin = match spec.source {
            ComponentSource::Builtin => "builtin",
            ComponentSource::File(_) => "file",
            ComponentSource::Sql(_) => "sql",
            ComponentSource::Oci(_) => "registry",
        };
        let prefix = normalise_prefix(&spec.prefix);
        Self {
            name: spec.name.clone(),
            limits: spec.limits,
            policy: Arc::new(spec.policy.clone()),
            access: RouteAccess::new(spec.access.clone()),
            source: spec.source.clone(),
            follow: spec.follow,
            config: Arc::new(
                spec.config
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            ),
            config_pairs: spec.config.clone(),
            // A prefix comes from the manifest; one that is no header value
            // (control characters) is reported as the root.
            prefix_header: hyper::header::HeaderValue::from_str(&prefix)
                .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("/")),
            prefix,
            current: ArcSwap::from_pointee(Deployment {
                component,
                version: 1,
                deployed_at: SystemTime::now(),
                origin,
                registry,
                metrics: metrics.route(&spec.name, 1),
                api_description: Default::default(),
            }),
            history: Mutex::new(Vec::new()),
            last_version: AtomicU64::new(1),
            deploys_begun: AtomicU64::new(0),
            newest_live_deploy: AtomicU64::new(0),
            metrics,
        }
    }

    /// The path prefix, always starting with `/` and without a trailing one
    /// (except the root route `/`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// [`Route::prefix`] as a header value.
    pub(crate) fn prefix_header(&self) -> &hyper::header::HeaderValue {
        &self.prefix_header
    }

    /// The route's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Limits of the route's instances.
    pub(crate) fn limits(&self) -> InstanceLimits {
        self.limits
    }

    /// Guard-rails of the route's queries.
    pub(crate) fn policy(&self) -> &Arc<QueryPolicy> {
        &self.policy
    }

    /// Who may call the route, and how often.
    pub(crate) fn access(&self) -> &RouteAccess {
        &self.access
    }

    /// The path below this route's prefix, starting with `/` (Spin's
    /// `spin-path-info`).
    pub(crate) fn path_info<'a>(&self, path: &'a str) -> &'a str {
        path_below(&self.prefix, path)
    }

    /// What the route's instances read through `wasi:config/store`.
    pub(crate) fn config(&self) -> &Arc<WasiConfigVariables> {
        &self.config
    }

    /// Where the route's component is loaded from.
    pub(crate) fn source(&self) -> &ComponentSource {
        &self.source
    }

    /// How often the route's registry tag is looked at, when it follows one.
    pub(crate) fn follow(&self) -> Option<Duration> {
        self.follow
    }

    /// The component serving this route now. Requests hold on to the one
    /// they started with, so a swap never disturbs them.
    pub(crate) fn component(&self) -> Arc<RouteComponent> {
        self.current.load().component.clone()
    }

    /// The live deployment.
    pub(crate) fn current(&self) -> Arc<Deployment> {
        self.current.load_full()
    }

    /// Earlier deployments, newest first.
    pub(crate) fn history(&self) -> Vec<Arc<Deployment>> {
        let mut history = self.lock_history().clone();
        history.reverse();
        history
    }

    /// The number of a deploy about to begin (before its compile), for
    /// [`Route::deploy`]: the order deploys began in is the order they
    /// count in, whatever order their compiles finish in.
    pub(crate) fn begin_deploy(&self) -> u64 {
        self.deploys_begun.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Serve new requests with `component` (pulled as `registry`, if from
    /// one) in one atomic step; the one it replaces is kept for
    /// [`Route::rollback`]. Deploying what is live already (the same bytes
    /// under the same registry digest) changes nothing.
    ///
    /// `ticket` is the deploy's number from [`Route::begin_deploy`]. With
    /// `yield_to_newer` (a file saved, a tag moved) the answer is `None`
    /// when a deploy begun after this one is live already: two saves in a
    /// row compile at once, and the second one's must be what serves even
    /// when the first one's compile finishes last.
    pub(crate) fn deploy(
        &self,
        component: Arc<RouteComponent>,
        registry: Option<Arc<RegistryOrigin>>,
        origin: &'static str,
        ticket: u64,
        yield_to_newer: bool,
    ) -> Option<Arc<Deployment>> {
        let mut history = self.lock_history();
        let newest = self.newest_live_deploy.load(Ordering::Relaxed);
        if yield_to_newer && ticket < newest {
            return None;
        }
        self.newest_live_deploy
            .store(newest.max(ticket), Ordering::Relaxed);
        let live = self.current.load_full();
        if live.component.sha256() == component.sha256() && same_digest(&live.registry, &registry) {
            return Some(live);
        }
        let version = self.last_version.fetch_add(1, Ordering::Relaxed) + 1;
        let deployment = Arc::new(Deployment {
            component,
            version,
            deployed_at: SystemTime::now(),
            origin,
            registry,
            metrics: self.metrics.route(&self.name, version),
            api_description: Default::default(),
        });
        let replaced = self.current.swap(deployment.clone());
        history.push(replaced);
        self.trim(&mut history);
        Some(deployment)
    }

    /// Put the previous deployment back; `None` when there is none.
    pub(crate) fn rollback(&self) -> Option<Arc<Deployment>> {
        let mut history = self.lock_history();
        let previous = history.pop()?;
        self.current.store(previous.clone());
        Some(previous)
    }

    /// Carry `old`'s deployments over to this route (same name, after a
    /// manifest reload): if the component is unchanged, the live deployment
    /// and its version stay; otherwise this one becomes the next version.
    pub(crate) fn inherit(&self, old: &Route) {
        let old_current = old.current();
        let mut history = self.lock_history();
        *history = old.lock_history().clone();
        self.last_version
            .store(old.last_version.load(Ordering::Relaxed), Ordering::Relaxed);
        let fresh = self.current.load_full();
        if old_current.component.sha256() == fresh.component.sha256()
            && same_digest(&old_current.registry, &fresh.registry)
            && old.config_pairs == self.config_pairs
        {
            self.current.store(old_current);
        } else {
            let version = self.last_version.fetch_add(1, Ordering::Relaxed) + 1;
            self.current.store(Arc::new(Deployment {
                component: fresh.component.clone(),
                version,
                deployed_at: SystemTime::now(),
                origin: fresh.origin,
                registry: fresh.registry.clone(),
                metrics: self.metrics.route(&self.name, version),
                api_description: Default::default(),
            }));
            history.push(old_current);
            self.trim(&mut history);
        }
    }

    /// Keep at most [`HISTORY`] earlier deployments; the series of one that
    /// goes are forgotten, so label sets stay bounded.
    fn trim(&self, history: &mut Vec<Arc<Deployment>>) {
        while history.len() > HISTORY {
            let gone = history.remove(0);
            self.metrics.forget(&self.name, gone.version);
        }
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Deployment>>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }
}

/// Whether two deployments came as the same registry digest (or neither
/// from a registry).
fn same_digest(a: &Option<Arc<RegistryOrigin>>, b: &Option<Arc<RegistryOrigin>>) -> bool {
    a.as_ref().map(|origin| &origin.digest) == b.as_ref().map(|origin| &origin.digest)
}

/// The part of `path` below normalised `prefix`, starting with `/`.
fn path_below<'a>(prefix: &str, path: &'a str) -> &'a str {
    if prefix == "/" {
        return path;
    }
    match path.strip_prefix(prefix) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

/// Whether normalised `prefix` serves `path`: `/api` serves `/api` and
/// `/api/x`, not `/apix`; `/` serves everything.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// All routes; the longest matching prefix wins.
#[derive(Default)]
pub(crate) struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// A table of `routes`.
    pub(crate) fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Self { routes }
    }

    /// The route for `path`: `/api` matches `/api` and `/api/x`, not `/apix`.
    pub(crate) fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.matches(path))
    }

    /// Every route, longest prefix first.
    pub(crate) fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route named `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{normalise_prefix, path_below, prefix_matches};

    #[test]
    fn path_info_is_the_part_below_the_prefix() {
        assert_eq!(path_below("/", "/health"), "/health");
        assert_eq!(path_below("/api", "/api/users"), "/users");
        assert_eq!(path_below("/api", "/api"), "/");
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/"));
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalise_prefix(""), "/");
        assert_eq!(normalise_prefix("/"), "/");
        assert_eq!(normalise_prefix("api/"), "/api");
        assert_eq!(normalise_prefix("/api/v1/"), "/api/v1");
    }
}
