//! Which component answers which path, and the deployments behind each route.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::manifest::ComponentSource;
use crate::runtime::RouteComponent;
use crate::runtime::invoke::RouteContext;

/// Earlier deployments kept per route for rollback.
const HISTORY: usize = 16;

/// One component as deployed on a route.
pub struct Deployment {
    /// The compiled component.
    pub component: Arc<RouteComponent>,
    /// 1 for the first deployment on the route, then one more per deploy.
    pub version: u64,
    /// When it went live.
    pub deployed_at: SystemTime,
    /// Where it came from: `builtin`, `file`, `upload`.
    pub origin: &'static str,
}

/// A path prefix served by one component, swappable while requests run.
pub struct Route {
    prefix: String,
    /// The prefix as a header value, made once rather than per request.
    prefix_header: hyper::header::HeaderValue,
    context: RouteContext,
    source: ComponentSource,
    current: ArcSwap<Deployment>,
    history: Mutex<Vec<Arc<Deployment>>>,
    last_version: AtomicU64,
}

impl Route {
    /// `prefix` served by `component` under `context`; `source` is where the
    /// component is (re)loaded from.
    pub fn new(
        prefix: impl Into<String>,
        context: RouteContext,
        source: ComponentSource,
        component: Arc<RouteComponent>,
    ) -> Self {
        let origin = match source {
            ComponentSource::Builtin => "builtin",
            ComponentSource::File(_) => "file",
        };
        let prefix = normalise_prefix(&prefix.into());
        Self {
            // A prefix comes from the manifest; one that is no header value
            // (control characters) is reported as the root.
            prefix_header: hyper::header::HeaderValue::from_str(&prefix)
                .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("/")),
            prefix,
            context,
            source,
            current: ArcSwap::from_pointee(Deployment {
                component,
                version: 1,
                deployed_at: SystemTime::now(),
                origin,
            }),
            history: Mutex::new(Vec::new()),
            last_version: AtomicU64::new(1),
        }
    }

    /// The path prefix, always starting with `/` and without a trailing one
    /// (except the root route `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// [`Route::prefix`] as a header value.
    pub fn prefix_header(&self) -> &hyper::header::HeaderValue {
        &self.prefix_header
    }

    /// The route's name, limits and guard-rails.
    pub fn context(&self) -> &RouteContext {
        &self.context
    }

    /// The route's name.
    pub fn name(&self) -> &str {
        &self.context.name
    }

    /// Where the route's component is loaded from.
    pub fn source(&self) -> &ComponentSource {
        &self.source
    }

    /// The component serving this route now. Requests hold on to the one
    /// they started with, so a swap never disturbs them.
    pub fn component(&self) -> Arc<RouteComponent> {
        self.current.load().component.clone()
    }

    /// The live deployment.
    pub fn current(&self) -> Arc<Deployment> {
        self.current.load_full()
    }

    /// Earlier deployments, newest first.
    pub fn history(&self) -> Vec<Arc<Deployment>> {
        let mut history = self.lock_history().clone();
        history.reverse();
        history
    }

    /// Serve new requests with `component` in one atomic step; the one it
    /// replaces is kept for [`Route::rollback`]. Deploying the component
    /// already live changes nothing.
    pub fn deploy(&self, component: Arc<RouteComponent>, origin: &'static str) -> Arc<Deployment> {
        let mut history = self.lock_history();
        let live = self.current.load_full();
        if live.component.sha256() == component.sha256() {
            return live;
        }
        let deployment = Arc::new(Deployment {
            component,
            version: self.last_version.fetch_add(1, Ordering::Relaxed) + 1,
            deployed_at: SystemTime::now(),
            origin,
        });
        let replaced = self.current.swap(deployment.clone());
        history.push(replaced);
        if history.len() > HISTORY {
            history.remove(0);
        }
        deployment
    }

    /// Put the previous deployment back; `None` when there is none.
    pub fn rollback(&self) -> Option<Arc<Deployment>> {
        let mut history = self.lock_history();
        let previous = history.pop()?;
        self.current.store(previous.clone());
        Some(previous)
    }

    /// Carry `old`'s deployments over to this route (same name, after a
    /// manifest reload): if the component is unchanged, the live deployment
    /// and its version stay; otherwise this one becomes the next version.
    pub fn inherit(&self, old: &Route) {
        let old_current = old.current();
        let mut history = self.lock_history();
        *history = old.lock_history().clone();
        self.last_version
            .store(old.last_version.load(Ordering::Relaxed), Ordering::Relaxed);
        if old_current.component.sha256() == self.component().sha256() {
            self.current.store(old_current);
        } else {
            let version = self.last_version.fetch_add(1, Ordering::Relaxed) + 1;
            let fresh = self.current.load_full();
            self.current.store(Arc::new(Deployment {
                component: fresh.component.clone(),
                version,
                deployed_at: SystemTime::now(),
                origin: fresh.origin,
            }));
            history.push(old_current);
            if history.len() > HISTORY {
                history.remove(0);
            }
        }
    }

    fn lock_history(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Deployment>>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }
}

/// `/api/` → `/api`, `api` → `/api`, `` → `/`.
pub fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
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
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    /// A table of `routes`.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix.len()));
        Self { routes }
    }

    /// The route for `path`: `/api` matches `/api` and `/api/x`, not `/apix`.
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.matches(path))
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|route| route.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::{normalise_prefix, prefix_matches};

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
