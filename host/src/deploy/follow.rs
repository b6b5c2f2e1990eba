//! Follow registry tags: a route served from `oci://…:tag` with a follow
//! interval looks the tag up every interval (give or take a fifth, so a
//! fleet's hosts do not ask the registry in step) and, when it names another
//! digest than it did, pulls that digest and deploys it with the same checks
//! and atomic swap as an upload (origin `registry`).
//!
//! The tag is acted on when it *moves*: a host does not undo an admin upload
//! or rollback on a followed route until the tag changes again. Rolling a
//! fleet back is moving the tag back (`wasmhouse push oci://…@sha256:… oci://…:tag`).
//!
//! What goes wrong is logged once per change of state, not once per look: the
//! registry stopped answering (and that it answers again), a digest refused
//! (not a component, a digest mismatch, too big: counted in
//! `wasmhouse_rejected_uploads_total` and not pulled again). The component in
//! force keeps serving throughout.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::Deployer;
use super::routes::Route;
use super::shared::Following;
use crate::manifest::ComponentSource;
use crate::registry::{OciReference, RegistryError};

/// Follow the tags of `deployer`'s routes that ask for it, on the current
/// tokio runtime, until the result is dropped.
pub(crate) fn follow_tags(deployer: &Arc<Deployer>) -> Following {
    let mut changes = deployer.subscribe();
    let mut follower = TagFollower {
        deployer: Arc::downgrade(deployer),
        watched: HashMap::new(),
    };
    follower.refresh(deployer);
    for (name, watched) in &follower.watched {
        tracing::info!(
            route = name,
            reference = %watched.reference,
            every = %humantime::format_duration(watched.interval),
            "following the registry tag"
        );
    }
    Following::new(tokio::spawn(async move {
        loop {
            let next = follower.watched.values().map(|watched| watched.due).min();
            tokio::select! {
                () = sleep_until(next) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            let Some(deployer) = follower.deployer.upgrade() else {
                return;
            };
            follower.refresh(&deployer);
            follower.look(&deployer).await;
        }
    }))
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The state of the background follower.
struct TagFollower {
    deployer: Weak<Deployer>,
    /// By route name, the followed routes of the table in force.
    watched: HashMap<String, Watched>,
}

/// One followed route.
struct Watched {
    /// The route it follows for (a reload makes a new one).
    route: Arc<Route>,
    reference: OciReference,
    interval: Duration,
    /// When to look next.
    due: Instant,
    /// The digest the tag named at the last look that settled it (deployed
    /// or refused); at first, the one the route serves.
    last_seen: String,
    /// The trouble last logged, so each is logged once.
    reported: Option<String>,
}

impl TagFollower {
    /// Match the watched routes to the route table in force: new and
    /// reloaded routes start from the digest they serve.
    fn refresh(&mut self, deployer: &Deployer) {
        let table = deployer.routes();
        let mut watched = HashMap::new();
        for route in table.routes() {
            let (Some(interval), ComponentSource::Oci(reference)) =
                (route.follow(), route.source())
            else {
                continue;
            };
            let entry = match self.watched.remove(route.name()) {
                Some(known) if Arc::ptr_eq(&known.route, route) => known,
                _ => Watched {
                    route: route.clone(),
                    reference: reference.clone(),
                    interval,
                    due: Instant::now() + jittered(interval),
                    last_seen: route.current().digest().to_owned(),
                    reported: None,
                },
            };
            watched.insert(route.name().to_owned(), entry);
        }
        self.watched = watched;
    }

    /// Look at every followed route that is due.
    async fn look(&mut self, deployer: &Arc<Deployer>) {
        let now = Instant::now();
        for watched in self.watched.values_mut() {
            if watched.due > now {
                continue;
            }
            watched.look(deployer).await;
            watched.due = Instant::now() + jittered(watched.interval);
        }
    }
}

impl Watched {
    async fn look(&mut self, deployer: &Arc<Deployer>) {
        let route = self.route.name().to_owned();
        let digest = match deployer.registry().resolve(&self.reference).await {
            Ok(digest) => digest,
            Err(err) => return self.trouble(&route, &err),
        };
        if self.reported.take().is_some() {
            tracing::info!(
                route,
                reference = %self.reference,
                digest,
                "the followed tag resolves again"
            );
        }
        if digest == self.last_seen {
            return;
        }
        let pinned = self.reference.at(&digest);
        let pulled = match deployer.registry().pull(&pinned).await {
            Ok(pulled) => pulled,
            Err(err @ RegistryError::Unreachable { .. }) => {
                return self.trouble(&route, &err);
            }
            // Refused for good: not pulled again until the tag moves.
            Err(err) => {
                deployer.metrics().rejected(&route);
                tracing::error!(
                    route,
                    reference = %self.reference,
                    digest,
                    error = %err,
                    "the tag names something this host will not serve; the previous version keeps serving"
                );
                self.last_seen = digest;
                return;
            }
        };
        match deployer.deploy_pulled(&self.route, pulled, true).await {
            Ok(Some(deployment)) => tracing::info!(
                route,
                reference = %self.reference,
                digest,
                version = deployment.version,
                "the tag moved: deployed what it names"
            ),
            // A reload replaced the route: the next look starts afresh.
            Ok(None) => return,
            Err(err) => tracing::error!(
                route,
                reference = %self.reference,
                digest,
                error = %err,
                "the tag names a component this host will not serve; the previous version keeps serving"
            ),
        }
        self.last_seen = digest;
    }

    /// Log `err` unless it was the last thing logged.
    fn trouble(&mut self, route: &str, err: &RegistryError) {
        let text = err.to_string();
        if self.reported.as_deref() == Some(text.as_str()) {
            return;
        }
        match err {
            RegistryError::Unreachable { .. } => tracing::warn!(
                route,
                error = %err,
                "the registry does not answer; the deployed version keeps serving"
            ),
            RegistryError::Refused { .. } => tracing::error!(
                route,
                error = %err,
                "the followed tag cannot be resolved; the deployed version keeps serving"
            ),
        }
        self.reported = Some(text);
    }
}

/// `interval`, give or take a fifth at random.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        let interval = Duration::from_secs(10);
        for _ in 0..1000 {
            let wait = jittered(interval);
            assert!(wait >= Duration::from_secs(8) && wait <= Duration::from_secs(12));
        }
    }
}
