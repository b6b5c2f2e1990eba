//! Test guests: the Rust ones built by the build (`tests/programs`), the
//! JavaScript one with componentize-js and the Python ones with
//! componentize-py when their sources changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The misbehaving test guest (`tests/guests/hostile`); `version` 2 is the
/// build with the `v2` feature, which answers `/version` with 2. Built once
/// per build by `wasmhouse-test-programs`.
pub fn hostile(version: u32) -> PathBuf {
    match version {
        1 => PathBuf::from(wasmhouse_test_programs::HOSTILE_V1),
        2 => PathBuf::from(wasmhouse_test_programs::HOSTILE_V2),
        other => panic!("no test guest version {other}"),
    }
}

/// The smallest wasi:http handler (`bench/guests/empty`): 200, no body.
pub fn empty() -> PathBuf {
    PathBuf::from(wasmhouse_test_programs::EMPTY)
}

/// The seed routes in JavaScript (`guest-js/seed.js`), built with
/// componentize-js from the portability tests' npm packages; rebuilt only
/// when a source changed since the last build.
pub fn javascript_seed() -> PathBuf {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let output = super::files::target_dir().join("js/seed-js.wasm");
        // Test processes run side by side: one builds, the others wait and
        // find it up to date.
        let _building = super::files::file_lock("seed-js");
        // The seed imports the router and the glue beside it.
        let inputs = inputs_hash(
            &[root.join("guest-js"), root.join("wit")],
            &["js", "wit"],
            &[root.join("tests/portability/package-lock.json")],
        );
        if is_current(&output, &inputs) {
            return output;
        }
        let componentize = root.join("tests/portability/node_modules/.bin/componentize-js");
        assert!(
            componentize.exists(),
            "{} is missing: run `npm ci --prefix tests/portability` (./scripts/test does)",
            componentize.display()
        );
        std::fs::create_dir_all(output.parent().expect("target/js")).expect("create target/js");
        // componentize-js reads the WIT relative to the working directory.
        let status = Command::new(componentize)
            .current_dir(root)
            .args(["--wit", "wit", "--world-name", "route", "-o"])
            .arg(&output)
            .arg("guest-js/seed.js")
            .status()
            .expect("running componentize-js");
        assert!(status.success(), "building the JavaScript guest failed");
        mark_current(&output, &inputs);
        output
    })
    .clone()
}

/// The seed routes in Python (`guest-python/app.py` on `sdk-python/`),
/// built with componentize-py; rebuilt only when a source changed since the
/// last build.
pub fn python_seed() -> PathBuf {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| python_component("guest-python", "seed-py.wasm"))
        .clone()
}

/// A misbehaving Python route component (`tests/guests/hostile-python`):
/// routes that loop, overflow the stack, exhaust memory or raise.
pub fn python_hostile() -> PathBuf {
    static HOSTILE: OnceLock<PathBuf> = OnceLock::new();
    HOSTILE
        .get_or_init(|| python_component("tests/guests/hostile-python", "hostile-py.wasm"))
        .clone()
}

/// `app.py` in `source` (under the workspace root) with the Python SDK,
/// built into `python/{output}` in the target directory by the
/// componentize-py `./scripts/test` installs.
fn python_component(source: &str, output: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let output = super::files::target_dir().join("python").join(output);
    // Test processes run side by side: one builds, the others wait and find
    // it up to date.
    let _building = super::files::file_lock(&format!("python-{source}").replace('/', "-"));
    let tools = super::files::target_dir().join("python-tools");
    let inputs = inputs_hash(
        &[
            root.join(source),
            root.join("sdk-python/wasmhouse"),
            root.join("wit"),
        ],
        &["py", "wit"],
        &[tools.join("componentize-py.version")],
    );
    if is_current(&output, &inputs) {
        return output;
    }
    let componentize = tools.join("bin/componentize-py");
    assert!(
        componentize.exists(),
        "{} is missing: ./scripts/test installs it (see ensure_componentize_py in scripts/lib.sh)",
        componentize.display()
    );
    std::fs::create_dir_all(output.parent().expect("target/python")).expect("create target/python");
    // Built to a temporary name and renamed: no reader sees half a file.
    let building = output.with_extension(format!("{}.wasm", std::process::id()));
    let status = Command::new(componentize)
        .current_dir(root)
        .args([
            "--wit-path",
            "wit",
            "--world",
            "route",
            "componentize",
            "app",
        ])
        .args([
            "--python-path",
            source,
            "--python-path",
            "sdk-python",
            "--output",
        ])
        .arg(&building)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("running componentize-py");
    assert!(
        status.success(),
        "building the Python guest in {source} failed"
    );
    std::fs::rename(&building, &output).expect("move the Python guest into place");
    mark_current(&output, &inputs);
    output
}

/// A hash of what a guest is built from: the files with one of `extensions`
/// directly in each of `dirs` (not below), and the `files`, names and
/// contents. Contents, not modification times: a fresh clone has new times
/// and the same sources, and CI keeps the target directory across clones.
fn inputs_hash(dirs: &[PathBuf], extensions: &[&str], files: &[PathBuf]) -> String {
    use sha2::Digest as _;
    let mut paths: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        })
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| extensions.iter().any(|wanted| ext == *wanted))
        })
        .chain(files.iter().cloned())
        .collect();
    paths.sort();
    let mut hash = sha2::Sha256::new();
    for path in &paths {
        hash.update(path.display().to_string().as_bytes());
        hash.update([0]);
        // A file that is missing hashes as empty: its builder says so.
        hash.update(std::fs::read(path).unwrap_or_default());
        hash.update([0]);
    }
    format!("{:x}", hash.finalize())
}

/// The file beside `output` that names the inputs it was built from.
fn stamp(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".inputs");
    PathBuf::from(name)
}

/// Whether `output` exists and was built from `inputs` (an [`inputs_hash`]).
fn is_current(output: &Path, inputs: &str) -> bool {
    output.exists() && std::fs::read_to_string(stamp(output)).is_ok_and(|built| built == inputs)
}

/// Record that `output` was built from `inputs`.
fn mark_current(output: &Path, inputs: &str) {
    std::fs::write(stamp(output), inputs).expect("writing the guest's input stamp");
}
