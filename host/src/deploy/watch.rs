//! Hot deployment from disk: when a route's component file changes, the new
//! file is compiled, validated and swapped in; a broken file is logged and the
//! running version keeps serving. The set of files follows the route table
//! (a reload may name other files).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};

use super::Deployer;
use super::routes::Route;
use crate::manifest::ComponentSource;

/// How long a file must be quiet before it is loaded: editors and copies
/// write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watch the component files of `deployer`'s routes, in the background on
/// the current tokio runtime, for as long as the deployer lives. Failing to
/// watch is logged, not fatal: SIGHUP and the admin API still deploy.
pub(crate) fn watch_component_files(deployer: &Arc<Deployer>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(deployer);
    let mut changes = deployer.subscribe();
    // The first watch starts now, so a file changed as soon as the host
    // serves is seen.
    let mut watcher = start_or_log(deployer);
    tokio::spawn(async move {
        loop {
            // A new route table (or the deployer gone): watch anew.
            if changes.changed().await.is_err() {
                return;
            }
            drop(watcher.take());
            match weak.upgrade() {
                Some(deployer) => watcher = start_or_log(&deployer),
                None => return,
            }
        }
    })
}

fn start_or_log(deployer: &Arc<Deployer>) -> Option<ComponentWatcher> {
    ComponentWatcher::start(deployer).unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot watch component files; deploy with SIGHUP or the admin API");
        None
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
        // File (as the watcher will report it) → the routes it serves, and
        // what it looked like when last loaded.
        let mut files: HashMap<PathBuf, WatchedFile> = HashMap::new();
        for route in deployer.routes().routes() {
            let (path, sql) = match route.source() {
                ComponentSource::File(path) => (path, false),
                ComponentSource::Sql(path) => (path, true),
                ComponentSource::Builtin | ComponentSource::Oci(_) => continue,
            };
            let path = absolute(path);
            let fingerprint = Fingerprint::of(&path);
            files
                .entry(path)
                .or_insert_with(|| WatchedFile {
                    routes: Vec::new(),
                    fingerprint,
                    sql,
                })
                .routes
                .push(Arc::downgrade(route));
        }
        if files.is_empty() {
            return Ok(None);
        }
        let directories: HashSet<PathBuf> = files
            .keys()
            .filter_map(|file| file.parent().map(Path::to_path_buf))
            .collect();
        // A new `.sql` file beside a route's is a new route (a directory of
        // queries): it reloads the routes too.
        let sql_directories: HashSet<PathBuf> = files
            .iter()
            .filter(|(_, file)| file.sql)
            .filter_map(|(path, _)| path.parent().map(Path::to_path_buf))
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
            // SQL files changed in this batch: one reload reads them all.
            let mut sql_changed: Vec<&PathBuf> = Vec::new();
            for path in changed {
                let Some(file) = files.get_mut(path) else {
                    let new_sql = path.extension().is_some_and(|e| e == "sql")
                        && path
                            .parent()
                            .is_some_and(|dir| sql_directories.contains(dir))
                        && path.is_file();
                    if new_sql {
                        sql_changed.push(path);
                    }
                    continue;
                };
                // Opening a file is an event too (our own reads among
                // them): only new contents are deployed.
                let fingerprint = Fingerprint::of(path);
                if fingerprint == file.fingerprint {
                    continue;
                }
                file.fingerprint = fingerprint;
                if file.sql {
                    // Saved, or removed (an atomic rename never leaves the
                    // path missing, and the debounce outlasts an editor's
                    // delete-and-write): either way the routes are read
                    // again.
                    sql_changed.push(path);
                    continue;
                }
                if fingerprint.is_none() {
                    // Removed or mid-rename: the next event brings the new file.
                    continue;
                }
                for route in file.routes.iter().filter_map(Weak::upgrade) {
                    runtime.spawn(redeploy(deployer.clone(), route, path.clone()));
                }
            }
            if !sql_changed.is_empty() {
                let files = sql_changed.into_iter().cloned().collect();
                runtime.spawn(reload_sql(deployer.clone(), files));
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

/// A watched component file: the routes it serves (of the table the watcher
/// was started for) and what it looked like last.
struct WatchedFile {
    routes: Vec<Weak<Route>>,
    fingerprint: Option<Fingerprint>,
    /// A route's `.sql` file, not a component: a change reloads the routes.
    sql: bool,
}

/// What tells one version of a file from the next without reading it: an
/// atomic rename brings a new inode, a write in place a new change time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    length: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
    #[cfg(unix)]
    changed: (i64, i64),
}

impl Fingerprint {
    /// `path`'s fingerprint; `None` when it cannot be read.
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Some(Self {
            length: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
            #[cfg(unix)]
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }
}

async fn redeploy(deployer: Arc<Deployer>, route: Arc<Route>, file: PathBuf) {
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        // Removed or mid-rename: the next event brings the new file.
        Err(err) => {
            tracing::debug!(route = route.name(), file = %file.display(), error = %err, "component file not readable yet");
            return;
        }
    };
    tracing::debug!(route = route.name(), file = %file.display(), "component file changed");
    // A reload may have replaced the route (and maybe its file) meanwhile:
    // then this change is not deployed over the reloaded table.
    if let Err(err) = deployer.deploy_if_live(&route, bytes, "file").await {
        tracing::error!(
            route = route.name(),
            file = %file.display(),
            error = %err,
            "rejected the changed component file; the previous version keeps serving"
        );
    }
}

/// Read the routes again for the changed SQL `files`. The manifest read
/// again checks every file before any goes live; a refused one leaves all
/// routes as they are.
async fn reload_sql(deployer: Arc<Deployer>, files: Vec<PathBuf>) {
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let shown = shown.join(", ");
    tracing::debug!(files = %shown, "SQL files changed");
    match deployer.reload().await {
        Ok(routes) => {
            tracing::info!(files = %shown, routes, "SQL file changed: routes reloaded")
        }
        Err(err) => tracing::error!(
            files = %shown,
            error = %err,
            "rejected the changed SQL file; the previous version keeps serving"
        ),
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
