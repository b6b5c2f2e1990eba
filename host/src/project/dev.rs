//! `wasmhouse dev`: build the project, serve it (against the configured
//! ClickHouse, or a local one), and rebuild it on every save. A component
//! that builds replaces the running one through the host's own file watch
//! (the hot swap `serve` does); one that does not leaves the last good one
//! serving.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, new_debouncer_opt};

use super::build::build_project;
use super::{Project, local_clickhouse};
use crate::config::ServeArgs;

/// Saves closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Flags of `wasmhouse dev`: the project's directory, then everything
/// `wasmhouse serve` takes (the manifest is the project's).
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The project's directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,

    #[command(flatten)]
    serve: ServeArgs,
}

/// Run `wasmhouse dev` until Ctrl-C.
pub fn dev(args: DevArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.dir)?;
    let (changes, saved) = mpsc::channel();
    // A link inside the project to a directory outside it (or to itself)
    // is not followed: the project is what is under its directory.
    let watching = notify_debouncer_mini::Config::default()
        .with_timeout(DEBOUNCE)
        .with_notify_config(
            notify_debouncer_mini::notify::Config::default().with_follow_symlinks(false),
        );
    let mut watcher = new_debouncer_opt::<_, RecommendedWatcher>(watching, changes)
        .context("watching the project's files")?;
    watcher
        .watcher()
        .watch(&project.dir, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", project.dir.display()))?;

    let mut sources = Sources::scan(&project.dir);
    // The first build must succeed before there is anything to serve.
    loop {
        match timed_build(&project) {
            Ok(_) => break,
            Err(err) => {
                eprintln!("{err:#}\nwasmhouse dev: fix it and save; it builds again");
                wait_for_source_change(&mut sources, &saved)?;
            }
        }
    }

    let mut serve = args.serve;
    let _clickhouse = if clickhouse_configured(&serve) {
        None
    } else {
        let local = local_clickhouse::start(&project.dir.join(".wasmhouse"))?;
        serve.clickhouse.url = None;
        serve.clickhouse.host = Some("127.0.0.1".to_owned());
        serve.clickhouse.port = Some(local.port);
        Some(local)
    };
    serve.component = None;
    serve.manifest = Some(project.manifest());
    serve.access_log = true;
    let listen = serve.listen;
    let config = serve.into_config()?;
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("listening on {listen} (--listen)"))?;
    let address = listener.local_addr()?;

    let rebuilding = project.clone();
    std::thread::Builder::new()
        .name("wasmhouse-dev-rebuild".into())
        .spawn(move || rebuild_on_save(&rebuilding, &mut sources, &saved))
        .context("starting the rebuild thread")?;

    eprintln!(
        "wasmhouse dev: serving {} on http://{address}/ · docs at http://{address}/docs · rebuilding on save · Ctrl-C stops",
        crate::log_text::escaped(&project.dir.display().to_string())
    );
    // `.env` in the working directory is read, and a project's own `.env`
    // may ask for more than a developer expects of `dev`: say so.
    if !address.ip().is_loopback() {
        eprintln!(
            "wasmhouse dev: warning: {address} is reachable from other machines (WASMHOUSE_LISTEN or --listen{}); \
             `dev` serves on 127.0.0.1:8000 unless told otherwise",
            dotenv_says("WASMHOUSE_LISTEN")
        );
    }
    if let Some(admin) = config
        .admin_listen()
        .or(config.admin.token.is_some().then_some(address))
    {
        eprintln!(
            "wasmhouse dev: warning: the admin API is on at http://{admin}/admin (WASMHOUSE_ADMIN_TOKEN{}): \
             anyone with the token can deploy routes",
            dotenv_says("WASMHOUSE_ADMIN_TOKEN")
        );
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the control runtime")?
        .block_on(crate::serve_until_signalled(listener, config))
}

/// ", set in FILE" when the env file the host read ([`crate::env_file`])
/// sets `variable`.
fn dotenv_says(variable: &str) -> String {
    let (path, _) = crate::config::env_file();
    let sets = dotenvy::from_path_iter(&path)
        .is_ok_and(|mut pairs| pairs.any(|pair| pair.is_ok_and(|(key, _)| key == variable)));
    if sets {
        format!(
            ", set in {}",
            crate::log_text::escaped(&path.display().to_string())
        )
    } else {
        String::new()
    }
}

/// A ClickHouse named on the command line or in the environment (`.env`
/// included) is used as it is.
fn clickhouse_configured(serve: &ServeArgs) -> bool {
    serve.clickhouse.url.is_some()
        || ["CLICKHOUSE_HOST", "CLICKHOUSE_PORT"]
            .iter()
            .any(|name| std::env::var_os(name).is_some())
        || std::env::args()
            .any(|arg| arg.starts_with("--clickhouse-host") || arg.starts_with("--clickhouse-port"))
}

fn timed_build(project: &Project) -> anyhow::Result<PathBuf> {
    let started = Instant::now();
    let component = build_project(project)?;
    eprintln!(
        "wasmhouse dev: built {} in {:.1} s",
        component.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(component)
}

/// Rebuild after every save until the process ends.
fn rebuild_on_save(
    project: &Project,
    sources: &mut Sources,
    saved: &mpsc::Receiver<DebounceEventResult>,
) {
    loop {
        if wait_for_source_change(sources, saved).is_err() {
            return;
        }
        match timed_build(project) {
            Ok(_) => eprintln!("wasmhouse dev: the new component replaces the running one"),
            Err(err) => eprintln!(
                "{err:#}\nwasmhouse dev: the build failed; the last version that built keeps serving"
            ),
        }
    }
}

/// What a file looked like: a read (builds read every source) is an event
/// too, and only new contents are a change.
type Fingerprint = Option<(std::time::SystemTime, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// The project's source files as last seen.
struct Sources {
    dir: PathBuf,
    seen: HashMap<PathBuf, Fingerprint>,
}

impl Sources {
    /// Every source file under `dir` as it is now.
    fn scan(dir: &Path) -> Self {
        let mut seen = HashMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(next) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&next) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                // The entry's own type: a link is never followed (a link to
                // `.` would make the walk endless, one to `/` the disk).
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let path = entry.path();
                if kind.is_symlink() {
                    continue;
                }
                if kind.is_dir() {
                    if !is_ignored(dir, &path) {
                        pending.push(path);
                    }
                } else if is_source(dir, &path) {
                    let print = fingerprint(&path);
                    seen.insert(path, print);
                }
            }
        }
        Self {
            dir: dir.to_path_buf(),
            seen,
        }
    }

    /// Has source `path` new contents (or is it new, or gone)?
    fn changed(&mut self, path: &Path) -> bool {
        if !is_source(&self.dir, path) {
            return false;
        }
        let now = fingerprint(path);
        self.seen.insert(path.to_path_buf(), now) != Some(now)
    }
}

/// Block until a source file changes (changes that arrived during the last
/// build count); an error when the watcher is gone.
fn wait_for_source_change(
    sources: &mut Sources,
    saved: &mpsc::Receiver<DebounceEventResult>,
) -> anyhow::Result<()> {
    loop {
        let events = saved.recv().context("the file watcher stopped")?;
        let Ok(events) = events else {
            continue;
        };
        let mut changed = None;
        for event in &events {
            if sources.changed(&event.path) {
                changed.get_or_insert_with(|| event.path.clone());
            }
        }
        if let Some(path) = changed {
            let path = path.strip_prefix(&sources.dir).unwrap_or(&path);
            eprintln!(
                "wasmhouse dev: {} changed, building",
                crate::log_text::escaped(&path.display().to_string())
            );
            return Ok(());
        }
    }
}

/// Build output, installed packages and state: never sources.
fn is_ignored(dir: &Path, path: &Path) -> bool {
    let ignored = ["target", "dist", "node_modules", ".wasmhouse", ".git"];
    path.strip_prefix(dir).is_ok_and(|relative| {
        relative
            .components()
            .next()
            .is_some_and(|first| ignored.iter().any(|name| first.as_os_str() == *name))
    })
}

/// Is `path` (under `dir`) a file a build reads? Build output, installed
/// packages and lock files (which builds themselves write) are not.
fn is_source(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else {
        return false;
    };
    if is_ignored(dir, path) {
        return false;
    }
    let name = relative.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(name, "Cargo.toml" | "package.json" | "pyproject.toml")
        || relative
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|ext| matches!(ext, "rs" | "js" | "mjs" | "py" | "wit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_what_builds_read() {
        let dir = Path::new("/p");
        for source in [
            "src/lib.rs",
            "Cargo.toml",
            "src/routes.js",
            "lib/router.js",
            "wasmhouse-sdk/src/router.rs",
            "wit/clickhouse.wit",
            "src/app.py",
            "lib/wasmhouse/router.py",
            "pyproject.toml",
        ] {
            assert!(is_source(dir, &dir.join(source)), "{source}");
        }
        for other in [
            "Cargo.lock",
            "target/x.rs",
            "dist/a.wasm",
            "node_modules/a/b.js",
            ".wasmhouse/x.js",
            "README.md",
            "wasmhouse.toml",
            "package-lock.json",
            "src/__pycache__/app.cpython-311.pyc",
            ".wasmhouse/python/site/six.py",
        ] {
            assert!(!is_source(dir, &dir.join(other)), "{other}");
        }
        assert!(!is_source(dir, Path::new("/elsewhere/src/lib.rs")));
    }

    #[test]
    fn the_scan_does_not_follow_links() {
        let project = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let src = project.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        std::fs::write(src.join("app.py"), "x = 1\n").expect("write");
        std::fs::write(outside.path().join("elsewhere.py"), "y = 2\n").expect("write");
        // Two links to the directory itself (an endless walk if followed),
        // and one out of the project.
        std::os::unix::fs::symlink(".", src.join("a")).expect("link");
        std::os::unix::fs::symlink(".", src.join("b")).expect("link");
        std::os::unix::fs::symlink(outside.path(), src.join("ext")).expect("link");
        let sources = Sources::scan(project.path());
        let seen: Vec<_> = sources.seen.keys().cloned().collect();
        assert_eq!(seen, vec![src.join("app.py")]);
    }

    #[test]
    fn file_names_are_shown_escaped() {
        assert_eq!(
            crate::log_text::escaped("src/\u{1b}]0;pwned\u{7}.py"),
            "src/\\u{1b}]0;pwned\\u{7}.py"
        );
    }
}
