//! Builds the test guests for `wasm32-wasip2` and tells the crate where they
//! are (`WASMHOUSE_TEST_*` compile-time variables).

#[path = "../../host/build_guest.rs"]
mod build_guest;

use std::env;
use std::path::PathBuf;

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
        let built = build_guest::build_guest(&root, package, *features, target_dir).join(artefact);
        // Copied out: two builds of one package share an artefact name.
        let copy = out_dir.join(format!("{}.wasm", variable.to_ascii_lowercase()));
        std::fs::copy(&built, &copy)
            .unwrap_or_else(|err| panic!("copying {}: {err}", built.display()));
        println!("cargo:rustc-env={variable}={}", copy.display());
    }
}
