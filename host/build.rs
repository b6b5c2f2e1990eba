//! Builds the components the host embeds (the default route component and
//! the adapter) for `wasm32-wasip2`, so `cargo build` alone produces a
//! working binary.

#[path = "build_guest.rs"]
mod build_guest;

use std::env;
use std::path::PathBuf;

/// Guest crates built here and embedded into the binary: (package, artefact).
const EMBEDDED: &[(&str, &str)] = &[
    ("wasmhouse-guest", "wasmhouse_guest.wasm"),
    ("wasmhouse-sql-guest", "wasmhouse_sql_guest.wasm"),
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
        "guest-sql",
        "sql-route",
        "sdk",
        "wit",
        "adapter",
        ".cargo/config.toml",
        "Cargo.lock",
        // What `wasmhouse new` writes (include_dir! does not see new files).
        "host/templates",
        "guest-js/router.js",
        "guest-js/wasmhouse.js",
        "tests/portability/package.json",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (package, artefact) in EMBEDDED {
        let built = build_guest::build_guest(root, package, None, "wasm").join(artefact);
        std::fs::copy(&built, out_dir.join(artefact)).expect("copy guest artefact");
    }
}
