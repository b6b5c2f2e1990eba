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
/// when the source is newer than the component.
pub fn javascript_seed() -> PathBuf {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let output = root.join("target/js/seed-js.wasm");
        // The seed imports the router and the glue beside it: any of them newer
        // than the component means a rebuild.
        if is_up_to_date(&output, &[root.join("guest-js")], "js") {
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
        output
    })
    .clone()
}

/// The seed routes in Python (`guest-python/app.py` on `sdk-python/`),
/// built with componentize-py; rebuilt only when a source is newer than the
/// component.
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
/// built into `target/python/{output}` by the componentize-py
/// `./scripts/test` installs.
fn python_component(source: &str, output: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let output = root.join("target/python").join(output);
    if is_up_to_date(
        &output,
        &[root.join(source), root.join("sdk-python/wasmhouse")],
        "py",
    ) {
        return output;
    }
    let componentize = root.join("target/python-tools/bin/componentize-py");
    assert!(
        componentize.exists(),
        "{} is missing: ./scripts/test installs it (see ensure_componentize_py in scripts/lib.sh)",
        componentize.display()
    );
    std::fs::create_dir_all(output.parent().expect("target/python")).expect("create target/python");
    // Built to a temporary name: another test binary may read the last build.
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
    output
}

/// Whether `output` exists and is no older than every `*.extension` file in
/// `sources` (directories, not searched below).
fn is_up_to_date(output: &Path, sources: &[PathBuf], extension: &str) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let newest_source = sources
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display()))
        })
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .filter_map(|path| modified(&path))
        .max();
    modified(output).is_some() && modified(output) >= newest_source
}
