//! Building a guest crate for `wasm32-wasip2` from a build script: shared by
//! `host/build.rs` (the embedded components) and `tests/programs/build.rs`
//! (the test guests), included into each with `#[path]`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo build --release --target wasm32-wasip2 -p <package>` into
/// `<target>/<target_dir>`, a target directory of its own so the nested cargo
/// never waits on the lock the outer build holds (`<target>` is the outer
/// build's `CARGO_TARGET_DIR` when that is set, `target/` otherwise); returns
/// the directory the artefacts are in.
pub fn build_guest(
    root: &Path,
    package: &str,
    features: Option<&str>,
    target_dir: &str,
) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_DIR");
    let outer = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    let target = outer.join(target_dir);
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
        "building guest {package} for wasm32-wasip2 failed; is the target installed? \
         (rustup target add wasm32-wasip2)"
    );
    target.join("wasm32-wasip2").join("release")
}
