//! Builds the test guests for `wasm32-wasip2` and tells the crate where they
//! are (`WASMHOUSE_TEST_*` compile-time variables).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (variable, package, artefact, features, target directory under target/).
const GUESTS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "WASMHOUSE_TEST_HOSTILE_V1",
        "wasmhouse-test-guest",
        "wasmhouse_test_guest.wasm",
        None,
        "wasm-test-v1",
    ),
    (
        "WASMHOUSE_TEST_HOSTILE_V2",
        "wasmhouse-test-guest",
        "wasmhouse_test_guest.wasm",
        Some("v2"),
        "wasm-test-v2",
    ),
    (
        "WASMHOUSE_TEST_EMPTY",
        "wasmhouse-bench-empty",
        "wasmhouse_bench_empty.wasm",
        None,
        "wasm-test-v1",
    ),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .ancestors()
        .nth(2)
        .expect("tests/programs is inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for watched in [
        "tests/guests/hostile",
        "bench/guests/empty",
        "sdk",
        "wit",
        ".cargo/config.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (variable, package, artefact, features, target_dir) in GUESTS {
        let built = build(&root, package, *features, target_dir).join(artefact);
        // Copied out: two builds of one package share an artefact name.
        let copy = out_dir.join(format!("{}.wasm", variable.to_ascii_lowercase()));
        std::fs::copy(&built, &copy)
            .unwrap_or_else(|err| panic!("copying {}: {err}", built.display()));
        println!("cargo:rustc-env={variable}={}", copy.display());
    }
}

/// `cargo build --release --target wasm32-wasip2 -p <package>` into a target
/// directory of its own, so the nested cargo never waits on the outer one's
/// lock; returns the directory the artefacts are in.
fn build(root: &Path, package: &str, features: Option<&str>, target_dir: &str) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = root.join("target").join(target_dir);
    let mut command = Command::new(cargo);
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
        // The host's flags (and its profile's) are not the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        // Under `cargo clippy` this would lint the guests instead of building them.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    if let Some(features) = features {
        command.args(["--features", features]);
    }
    let status = command
        .status()
        .unwrap_or_else(|err| panic!("running cargo to build {package}: {err}"));
    assert!(
        status.success(),
        "building test guest {package} for wasm32-wasip2 failed; is the target installed? \
         (rustup target add wasm32-wasip2)"
    );
    target.join("wasm32-wasip2").join("release")
}
