//! Test guests, built for wasm32-wasip2 on first use by the test run itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The misbehaving test guest (`tests/guests/hostile`); `version` 2 is the
/// build with the `v2` feature, which answers `/version` with 2.
pub fn hostile(version: u32) -> PathBuf {
    static V1: OnceLock<PathBuf> = OnceLock::new();
    static V2: OnceLock<PathBuf> = OnceLock::new();
    let (cell, features, target) = match version {
        1 => (&V1, None, "wasm-test-v1"),
        2 => (&V2, Some("v2"), "wasm-test-v2"),
        other => panic!("no test guest version {other}"),
    };
    cell.get_or_init(|| {
        build(
            "wasmhouse-test-guest",
            "wasmhouse_test_guest.wasm",
            features,
            target,
        )
    })
    .clone()
}

/// The smallest wasi:http handler (`bench/guests/empty`): 200, no body.
pub fn empty() -> PathBuf {
    static EMPTY: OnceLock<PathBuf> = OnceLock::new();
    EMPTY
        .get_or_init(|| {
            build(
                "wasmhouse-bench-empty",
                "wasmhouse_bench_empty.wasm",
                None,
                "wasm-test-v1",
            )
        })
        .clone()
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
        let source = root.join("guest-js/seed.js");
        let output = root.join("target/js/seed-js.wasm");
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified(&output).is_some() && modified(&output) >= modified(&source) {
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

/// Build `package` into `target/<target_dir>` and return its component.
/// Each feature set has its own target directory, so concurrent test
/// processes never overwrite each other's artefact.
fn build(package: &str, artefact: &str, features: Option<&str>, target_dir: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let target = root.join("target").join(target_dir);
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            package,
        ])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        // Under `cargo clippy` this would lint the guests instead of building them.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    let status = command.status().expect("running cargo for a test guest");
    assert!(status.success(), "building test guest {package} failed");
    target.join("wasm32-wasip2").join("release").join(artefact)
}
