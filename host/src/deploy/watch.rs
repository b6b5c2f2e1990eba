//! Hot deployment from disk: when a route's component file changes, the new
//! file is compiled, validated and swapped in; a broken file is logged and the
//! running version keeps serving. The set of files follows the route table
//! (a reload may name other files).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::Deployer;
use crate::manifest::ComponentSource;

/// How long a file must be quiet before it is loaded: editors and copies
/// write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watch the component files of `deployer`'s routes, in the background on
/// the current tokio runtime, for as long as the deployer lives. Failing to
/// watch is logged, not fatal: SIGHUP and the admin API still deploy.
pub fn watch_component_files(deployer: &Arc<Deployer>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(deployer);
    let mut changes = deployer.subscribe();
    tokio::spawn(async move {
        loop {
            let watcher = match weak.upgrade() {
                Some(deployer) => match ComponentWatcher::start(&deployer) {
                    Ok(watcher) => watcher,
                    Err(err) => {
                        tracing::error!(error = %err, "cannot watch component files; deploy with SIGHUP or the admin API");
                        None
                    }
                },
                None => return,
            };
            // A new route table (or the deployer gone): watch anew.
            if changes.changed().await.is_err() {
                return;
            }
            drop(watcher);
        }
    })
}

/// Watches the directories of all component files; stops when dropped.
struct ComponentWatcher {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl ComponentWatcher {
    /// Watch `deployer`'s component files. `Ok(None)` when no route has one.
    ///
    /// Directories are watched rather than files, so a component replaced by
    /// an atomic rename is seen like one written in place.
    fn start(deployer: &Arc<Deployer>) -> notify_debouncer_mini::notify::Result<Option<Self>> {
        // File (as the watcher will report it) → names of the routes it serves.
        let mut files: HashMap<PathBuf, Vec<String>> = HashMap::new();
        for route in deployer.routes().routes() {
            if let ComponentSource::File(path) = route.source() {
                files
                    .entry(absolute(path))
                    .or_default()
                    .push(route.name().to_owned());
            }
        }
        if files.is_empty() {
            return Ok(None);
        }
        let directories: HashSet<PathBuf> = files
            .keys()
            .filter_map(|file| file.parent().map(Path::to_path_buf))
            .collect();

        let weak: Weak<Deployer> = Arc::downgrade(deployer);
        let runtime = tokio::runtime::Handle::current();
        let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
            let events = match result {
                Ok(events) => events,
                Err(err) => {
                    tracing::warn!(error = %err, "component file watcher error");
                    return;
                }
            };
            let Some(deployer) = weak.upgrade() else {
                return;
            };
            let changed: HashSet<&PathBuf> = events.iter().map(|event| &event.path).collect();
            for file in changed {
                let Some(routes) = files.get(file) else {
                    continue;
                };
                for route in routes {
                    runtime.spawn(redeploy(deployer.clone(), route.clone(), file.clone()));
                }
            }
        })?;
        for directory in &directories {
            debouncer
                .watcher()
                .watch(directory, RecursiveMode::NonRecursive)?;
        }
        tracing::info!(
            directories = directories.len(),
            "watching component files for changes"
        );
        Ok(Some(Self {
            _debouncer: debouncer,
        }))
    }
}

async fn redeploy(deployer: Arc<Deployer>, route: String, file: PathBuf) {
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        // Removed or mid-rename: the next event brings the new file.
        Err(err) => {
            tracing::debug!(route, file = %file.display(), error = %err, "component file not readable yet");
            return;
        }
    };
    if let Err(err) = deployer.deploy(&route, bytes, "file").await {
        tracing::error!(
            route,
            file = %file.display(),
            error = %err,
            "rejected the changed component file; the previous version keeps serving"
        );
    }
}

/// `path` made absolute with a canonical directory, as the watcher reports it.
fn absolute(path: &Path) -> PathBuf {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let directory = std::fs::canonicalize(directory).unwrap_or_else(|_| directory.to_path_buf());
    match path.file_name() {
        Some(name) => directory.join(name),
        None => directory,
    }
}
