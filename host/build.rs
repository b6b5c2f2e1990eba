//! Builds the components the host embeds (the default route component and
//! the adapter) for `wasm32-wasip2`, so `cargo build` alone produces a
//! working binary.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates built here and embedded into the binary: (package, artefact).
const EMBEDDED: &[(&str, &str)] = &[
    ("wasmhouse-guest", "wasmhouse_guest.wasm"),
    ("wasmhouse-adapter", "wasmhouse_adapter.wasm"),
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ is inside the workspace");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for watched in [
        "guest",
        "sdk",
        "wit",
        "adapter",
        ".cargo/config.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (package, artefact) in EMBEDDED {
        let built = build_guest(root, package, artefact);
        std::fs::copy(&built, out_dir.join(artefact)).expect("copy guest artefact");
    }
}

/// `cargo build --release --target wasm32-wasip2 -p <package>` into
/// `target/wasm`, a target directory of its own so the nested cargo never
/// waits on the lock the outer build holds.
fn build_guest(root: &Path, package: &str, artefact: &str) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("wasm");
    let status = Command::new(cargo)
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
        .arg(&target_dir)
        // The host's flags (and its profile's) are not the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        // Under `cargo clippy` this would lint the guests instead of building them.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .status()
        .unwrap_or_else(|err| panic!("running cargo to build {package}: {err}"));
    assert!(
        status.success(),
        "building guest {package} for wasm32-wasip2 failed; is the target installed? \
         (rustup target add wasm32-wasip2)"
    );
    target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(artefact)
}
