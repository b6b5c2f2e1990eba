//! Which component answers which path.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::runtime::RouteComponent;
use crate::runtime::invoke::RouteContext;

/// A path prefix served by one component, swappable while requests run.
pub struct Route {
    prefix: String,
    context: RouteContext,
    component: ArcSwap<RouteComponent>,
    previous: ArcSwap<Option<Arc<RouteComponent>>>,
}

impl Route {
    /// `prefix` served by `component` under `context`.
    pub fn new(
        prefix: impl Into<String>,
        context: RouteContext,
        component: Arc<RouteComponent>,
    ) -> Self {
        Self {
            prefix: normalise_prefix(&prefix.into()),
            context,
            component: ArcSwap::new(component),
            previous: ArcSwap::from_pointee(None),
        }
    }

    /// The path prefix, always starting with `/` and without a trailing one
    /// (except the root route `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The route's name, limits and guard-rails.
    pub fn context(&self) -> &RouteContext {
        &self.context
    }

    /// The component serving this route now. Requests hold on to the one
    /// they started with, so a swap never disturbs them.
    pub fn component(&self) -> Arc<RouteComponent> {
        self.component.load_full()
    }

    /// Serve new requests with `component`; returns the one it replaces.
    pub fn swap(&self, component: Arc<RouteComponent>) -> Arc<RouteComponent> {
        let old = self.component.swap(component);
        self.previous.store(Arc::new(Some(old.clone())));
        old
    }

    /// The component served before the last swap, if any.
    pub fn previous(&self) -> Option<Arc<RouteComponent>> {
        self.previous.load().as_ref().clone()
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
        self.routes
            .iter()
            .find(|route| &*route.context.name == name)
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
