//! Fleet-wide deployments through a directory every host mounts (NFS, a
//! shared volume): a component deployed or rolled back on one host reaches
//! every host that shares the directory, with the same validation and atomic
//! swap as an upload.
//!
//! # Layout
//!
//! ```text
//! <directory>/<route>/<sha256>.wasm   component bytes, named by their hash
//! <directory>/<route>/current         the hash of the fleet's live version
//! ```
//!
//! Component files are written once (temporary file in the same directory,
//! fsync, rename) and never rewritten; `current` is replaced the same way, so
//! a reader sees the old pointer or the new one, never half of one.
//!
//! # Who writes, who reads
//!
//! - A host **publishes** after an upload or a rollback through its admin
//!   API succeeded locally ([`super::Deployer::publish`]): the bytes (unless
//!   already there), then `current`. Every component a host puts in force
//!   (the manifest's, a changed file's) is stored too, without moving
//!   `current`, so a rollback to it can reach the fleet.
//! - Every host **follows**: every poll interval it reads each route's
//!   `current`; when that moved and names another component than the live
//!   one, it reads the bytes, checks their hash against the name and deploys
//!   them (origin `shared`). A refused component is logged once and the
//!   running one keeps serving. A host that starts reads `current` before it
//!   serves, so it starts with the fleet's version.
//!
//! Concurrent publishers: the last rename of `current` wins, per route. There
//! are no locks and no consensus; the directory is the only shared state. A
//! local change that is not published (a changed component file, a reload)
//! stands on its host until `current` moves again.
//!
//! Nothing is ever deleted: component files accumulate (one per version
//! deployed), and so can temporary files of writers that crashed mid-write
//! (`.<name>.<id>.tmp`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::AsyncWriteExt as _;

use super::routes::{Deployment, Route};
use super::{DeployError, Deployer};
use crate::config::SharedDeploymentsConfig;
use crate::embedded::{BUILTIN_COMPONENT, SQL_COMPONENT};
use crate::manifest::ComponentSource;
use crate::runtime::component::hex_sha256;

/// The origin of deployments that came from the shared directory; they are
/// never published back.
pub(crate) const ORIGIN: &str = "shared";

/// The pointer file in a route's directory.
const POINTER: &str = "current";

/// Longest wait for the first look at the directory before serving: a hung
/// mount must not keep the host from starting (it keeps following later).
const STARTUP_BOUND: Duration = Duration::from_secs(60);

/// Characters of a route name kept as they are in its directory name.
const ROUTE_NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Why the shared directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SharedError {
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A component file whose bytes do not hash to its name.
    #[error("{} holds bytes whose SHA-256 is {actual}, not the name's", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The hash of its bytes.
        actual: String,
    },
    /// `current` holds something else than a SHA-256.
    #[error("{} names no component: {content:?} is not a SHA-256", path.display())]
    BadPointer {
        /// The pointer file.
        path: PathBuf,
        /// What it holds (at most 80 characters).
        content: String,
    },
    /// The bytes of a component to publish are neither in the directory nor
    /// anywhere the host can read them again.
    #[error(
        "the bytes of component {sha256} are not in the shared directory and this host no longer has them"
    )]
    Missing {
        /// The component's hash.
        sha256: String,
    },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SharedError {
    let path = path.to_path_buf();
    move |source| SharedError::Io {
        action,
        path,
        source,
    }
}

/// The shared directory, as this host reads and writes it.
pub(crate) struct SharedDirectory {
    root: PathBuf,
    poll: Duration,
    /// Per route, the pointer this host last acted on (deployed, published,
    /// found live, or refused for good): only a pointer that moved since is
    /// followed, so a pointer read just before this host's own publish
    /// never undoes it.
    handled: Mutex<HashMap<String, String>>,
}

impl SharedDirectory {
    /// The directory of `config` (created if missing).
    pub(crate) fn new(config: &SharedDeploymentsConfig) -> Result<Self, SharedError> {
        std::fs::create_dir_all(&config.directory)
            .map_err(io_error("creating", &config.directory))?;
        Ok(Self {
            root: config.directory.clone(),
            poll: config.poll,
            handled: Mutex::default(),
        })
    }

    /// The directory of route `name`: the name, percent-encoded where it
    /// could climb out of the root or be no file name.
    fn route_directory(&self, name: &str) -> PathBuf {
        let mut encoded = utf8_percent_encode(name, ROUTE_NAME).to_string();
        if encoded.is_empty() {
            encoded.push('%');
        } else if encoded.chars().all(|c| c == '.') {
            encoded = encoded.replace('.', "%2E");
        }
        self.root.join(encoded)
    }

    fn component_path(&self, name: &str, sha256: &str) -> PathBuf {
        self.route_directory(name).join(format!("{sha256}.wasm"))
    }

    /// Whether the directory already holds component `sha256` of route `name`.
    async fn has_component(&self, name: &str, sha256: &str) -> bool {
        tokio::fs::try_exists(self.component_path(name, sha256))
            .await
            .unwrap_or(false)
    }

    /// Store `bytes`, hashing to `sha256`, as a component of route `name`,
    /// unless they are there already.
    async fn store(&self, name: &str, sha256: &str, bytes: &[u8]) -> Result<(), SharedError> {
        if self.has_component(name, sha256).await {
            return Ok(());
        }
        write_atomically(&self.component_path(name, sha256), bytes).await?;
        tracing::debug!(
            route = name,
            sha256,
            "stored the component in the shared directory"
        );
        Ok(())
    }

    /// Point route `name`'s `current` at `sha256`.
    async fn point(&self, name: &str, sha256: &str) -> Result<(), SharedError> {
        let path = self.route_directory(name).join(POINTER);
        write_atomically(&path, format!("{sha256}\n").as_bytes()).await
    }

    /// What route `name`'s `current` holds, trimmed; `None` when there is
    /// none (nobody published the route yet).
    async fn pointer(&self, name: &str) -> Result<Option<String>, SharedError> {
        let path = self.route_directory(name).join(POINTER);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("reading", &path)(err)),
        }
    }

    /// The bytes of component `sha256` of route `name`, checked against
    /// the name.
    async fn read_component(&self, name: &str, sha256: &str) -> Result<Vec<u8>, SharedError> {
        let path = self.component_path(name, sha256);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(io_error("reading", &path))?;
        let (bytes, actual) = hashed(bytes).await;
        if actual != sha256 {
            return Err(SharedError::Corrupt { path, actual });
        }
        Ok(bytes)
    }

    fn lock_handled(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // Every update is a single insert: a panic elsewhere leaves it whole.
        self.handled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_handled(&self, name: &str, pointer: &str) -> bool {
        self.lock_handled()
            .get(name)
            .is_some_and(|handled| handled == pointer)
    }

    fn set_handled(&self, name: &str, pointer: &str) {
        self.lock_handled()
            .insert(name.to_owned(), pointer.to_owned());
    }

    /// Make `deployment` the fleet's version of `route`: its bytes (from
    /// `bytes` when given and matching, else from the route's source),
    /// then the pointer. The last publisher wins.
    pub(super) async fn publish(
        &self,
        route: &Route,
        deployment: &Deployment,
        bytes: Option<&[u8]>,
    ) -> Result<(), SharedError> {
        let name = route.name();
        let sha256 = deployment.component.sha256();
        if !self.has_component(name, sha256).await {
            let given = match bytes {
                Some(bytes) => Some(hashed(bytes.to_vec()).await),
                None => None,
            };
            let bytes = match given {
                Some((bytes, actual)) if actual == sha256 => bytes,
                _ => source_bytes(route, sha256)
                    .await
                    .ok_or_else(|| SharedError::Missing {
                        sha256: sha256.to_owned(),
                    })?,
            };
            self.store(name, sha256, &bytes).await?;
        }
        self.point(name, sha256).await?;
        // After the pointer moved: a poll in between finds it live.
        self.set_handled(name, sha256);
        tracing::info!(
            route = name,
            sha256,
            version = deployment.version,
            "published to the shared deployments directory"
        );
        Ok(())
    }

    /// Store the bytes of a component this host put in force (not one
    /// that came from here), so a later rollback to it can be published.
    /// Failing is logged: the deployment stands.
    pub(super) async fn keep(&self, name: &str, sha256: &str, bytes: &[u8]) {
        if let Err(err) = self.store(name, sha256, bytes).await {
            tracing::error!(route = name, sha256, error = %err, "cannot store the component in the shared deployments directory");
        }
    }
}

/// `bytes` and their SHA-256, hashed off the async threads.
async fn hashed(bytes: Vec<u8>) -> (Vec<u8>, String) {
    tokio::task::spawn_blocking(move || {
        let sha256 = hex_sha256(&bytes);
        (bytes, sha256)
    })
    .await
    .unwrap_or_else(|_| (Vec::new(), String::new()))
}

/// The bytes `route` was loaded from, if they still hash to `sha256`.
async fn source_bytes(route: &Route, sha256: &str) -> Option<Vec<u8>> {
    let bytes = match route.source() {
        ComponentSource::Builtin => BUILTIN_COMPONENT.to_vec(),
        ComponentSource::Sql(_) => SQL_COMPONENT.to_vec(),
        ComponentSource::File(path) => tokio::fs::read(path).await.ok()?,
        // A registry is the fleet's store for these: push and move the tag.
        ComponentSource::Oci(_) => return None,
    };
    let (bytes, actual) = hashed(bytes).await;
    (actual == sha256).then_some(bytes)
}

/// Write `bytes` to `target` so that readers see the old file or the whole
/// new one: a temporary file beside it, synced, then renamed over it.
async fn write_atomically(target: &Path, bytes: &[u8]) -> Result<(), SharedError> {
    let directory = target.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(directory)
        .await
        .map_err(io_error("creating", directory))?;
    let file_name = target
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    // Unique across hosts, so two writers never share a temporary file.
    let temporary = directory.join(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let written = async {
        let mut file = tokio::fs::File::create(&temporary)
            .await
            .map_err(io_error("creating", &temporary))?;
        file.write_all(bytes)
            .await
            .map_err(io_error("writing", &temporary))?;
        file.sync_all()
            .await
            .map_err(io_error("syncing", &temporary))?;
        drop(file);
        tokio::fs::rename(&temporary, target)
            .await
            .map_err(io_error("renaming into", target))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    written?;
    // The rename lasts across a crash once the directory is synced; some
    // file systems cannot sync a directory, and the rename stands anyway.
    if let Ok(directory) = tokio::fs::File::open(directory).await {
        let _ = directory.sync_all().await;
    }
    Ok(())
}

/// Whether `text` is a SHA-256 as this module writes it: 64 lowercase hex
/// digits.
fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Follows the shared directory in the background; stops when dropped.
#[must_use = "following stops when this is dropped"]
pub(crate) struct Following {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Following {
    /// Stop `task` when the result is dropped.
    pub(crate) fn new(task: tokio::task::JoinHandle<()>) -> Self {
        Self { task: Some(task) }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Share `deployer`'s deployments through the directory of `config` (nothing
/// when `None`): publish from now on, deploy what the directory names for
/// each route before returning (bounded), then follow it every poll
/// interval on the current tokio runtime until the result is dropped.
pub(crate) async fn follow(
    deployer: &Arc<Deployer>,
    config: Option<&SharedDeploymentsConfig>,
) -> Result<Following, SharedError> {
    let Some(config) = config else {
        return Ok(Following { task: None });
    };
    let shared = Arc::new(SharedDirectory::new(config)?);
    if deployer.shared.set(shared.clone()).is_err() {
        tracing::warn!("the deployer already follows a shared directory");
        return Ok(Following { task: None });
    }
    let mut follower = Follower {
        deployer: Arc::downgrade(deployer),
        shared,
        kept: HashSet::new(),
        reported: HashSet::new(),
    };
    // A host that starts later serves the fleet's version from its first
    // request.
    if tokio::time::timeout(STARTUP_BOUND, follower.look(deployer))
        .await
        .is_err()
    {
        tracing::warn!(
            directory = %config.directory.display(),
            "the shared deployments directory did not answer in {STARTUP_BOUND:?}; serving the local versions meanwhile"
        );
    }
    tracing::info!(
        directory = %config.directory.display(),
        poll = ?config.poll,
        "following the shared deployments directory"
    );
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(follower.shared.poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(deployer) = follower.deployer.upgrade() else {
                return;
            };
            follower.look(&deployer).await;
        }
    });
    Ok(Following { task: Some(task) })
}

/// The state of the background follower.
struct Follower {
    deployer: Weak<Deployer>,
    shared: Arc<SharedDirectory>,
    /// `(route, sha256)` of live components known to be in the directory.
    kept: HashSet<(String, String)>,
    /// `(route, problem)` already logged, so each is logged once.
    reported: HashSet<(String, String)>,
}

impl Follower {
    /// One look at every route of the table in force.
    async fn look(&mut self, deployer: &Arc<Deployer>) {
        let routes: Vec<Arc<Route>> = deployer.routes().routes().to_vec();
        for route in routes {
            self.keep_live(&route).await;
            self.follow_pointer(deployer, &route).await;
        }
    }

    /// Make sure the live component of `route` is in the directory, if
    /// this host can still read its bytes (a manifest's or built-in one).
    async fn keep_live(&mut self, route: &Route) {
        let live = route.current();
        let key = (route.name().to_owned(), live.component.sha256().to_owned());
        if self.kept.contains(&key) {
            return;
        }
        let (name, sha256) = (&key.0, &key.1);
        if !self.shared.has_component(name, sha256).await {
            match source_bytes(route, sha256).await {
                Some(bytes) => {
                    if let Err(err) = self.shared.store(name, sha256, &bytes).await {
                        let problem = format!("store {sha256}");
                        self.report(name, problem, || {
                            tracing::error!(route = %name, sha256 = %sha256, error = %err, "cannot store the component in the shared deployments directory");
                        });
                        return;
                    }
                }
                // Uploaded and deployed stored it already, or it is gone.
                None => {
                    tracing::debug!(route = %name, sha256 = %sha256, "the live component's bytes are not at hand to store")
                }
            }
        }
        self.kept.insert(key);
    }

    /// Deploy what `route`'s pointer names, if it moved and is not live.
    async fn follow_pointer(&mut self, deployer: &Arc<Deployer>, route: &Arc<Route>) {
        let name = route.name();
        let pointer = match self.shared.pointer(name).await {
            Ok(Some(pointer)) => pointer,
            Ok(None) => return,
            Err(err) => {
                self.report(name, format!("pointer {}", err), || {
                    tracing::error!(route = name, error = %err, "cannot read the shared deployment pointer");
                });
                return;
            }
        };
        if self.shared.is_handled(name, &pointer) {
            return;
        }
        if route.current().component.sha256() == pointer {
            self.shared.set_handled(name, &pointer);
            return;
        }
        if !is_sha256(&pointer) {
            let err = SharedError::BadPointer {
                path: self.shared.route_directory(name).join(POINTER),
                content: pointer.chars().take(80).collect(),
            };
            tracing::error!(route = name, error = %err, "refused the shared deployment; the running version keeps serving");
            self.shared.set_handled(name, &pointer);
            return;
        }
        let bytes = match self.shared.read_component(name, &pointer).await {
            Ok(bytes) => bytes,
            Err(err @ SharedError::Corrupt { .. }) => {
                tracing::error!(route = name, sha256 = %pointer, error = %err, "refused the shared deployment; the running version keeps serving");
                self.shared.set_handled(name, &pointer);
                return;
            }
            // Maybe not visible here yet (a network file system): tried
            // again next time, logged once.
            Err(err) => {
                self.report(name, format!("read {pointer}"), || {
                    tracing::error!(route = name, sha256 = %pointer, error = %err, "cannot read the shared deployment; the running version keeps serving");
                });
                return;
            }
        };
        match deployer.deploy_if_live(route, bytes, ORIGIN).await {
            Ok(_) => {
                self.shared.set_handled(name, &pointer);
                self.reported.retain(|(route, _)| route != name);
            }
            // Shutting down: nothing to report.
            Err(DeployError::Interrupted(_)) => {}
            Err(err) => {
                tracing::error!(route = name, sha256 = %pointer, error = %err, "refused the shared deployment; the running version keeps serving");
                self.shared.set_handled(name, &pointer);
            }
        }
    }

    /// Run `log` unless `problem` of route `name` was logged already.
    fn report(&mut self, name: &str, problem: String, log: impl FnOnce()) {
        if self.reported.insert((name.to_owned(), problem)) {
            log();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(root: &Path) -> SharedDirectory {
        SharedDirectory::new(&SharedDeploymentsConfig {
            directory: root.to_path_buf(),
            poll: Duration::from_millis(100),
        })
        .expect("shared directory")
    }

    #[test]
    fn route_names_stay_inside_the_root() {
        let root = tempfile::tempdir().expect("temp dir");
        let shared = directory(root.path());
        for (name, expected) in [
            ("app", "app"),
            ("api.v1", "api.v1"),
            ("a/../b", "a%2F..%2Fb"),
            ("..", "%2E%2E"),
            ("", "%"),
        ] {
            assert_eq!(
                shared.route_directory(name),
                root.path().join(expected),
                "{name:?}"
            );
        }
    }

    #[test]
    fn pointers_are_lowercase_sha256() {
        assert!(is_sha256(&hex_sha256(b"x")));
        assert!(!is_sha256(&hex_sha256(b"x").to_uppercase()));
        assert!(!is_sha256("garbage"));
        assert!(!is_sha256(&format!("{}0", hex_sha256(b"x"))));
    }

    #[tokio::test]
    async fn components_and_pointers_round_trip_and_corruption_is_refused() {
        let root = tempfile::tempdir().expect("temp dir");
        let shared = directory(root.path());
        let bytes = b"component bytes".to_vec();
        let sha256 = hex_sha256(&bytes);
        assert_eq!(shared.pointer("app").await.expect("read"), None);
        shared.store("app", &sha256, &bytes).await.expect("store");
        shared.point("app", &sha256).await.expect("point");
        assert_eq!(
            shared.pointer("app").await.expect("read"),
            Some(sha256.clone())
        );
        assert_eq!(
            shared.read_component("app", &sha256).await.expect("read"),
            bytes
        );
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(root.path().join("app"))
            .expect("route directory")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        std::fs::write(shared.component_path("app", &sha256), b"tampered").expect("write");
        assert!(matches!(
            shared.read_component("app", &sha256).await,
            Err(SharedError::Corrupt { .. })
        ));
    }
}
