//! Test guests: the Rust ones built by the build (`tests/programs`), the
//! JavaScript one with componentize-js when its source changed.

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
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        // The seed imports the router and the glue beside it: any of them newer
        // than the component means a rebuild.
        let newest_source = std::fs::read_dir(root.join("guest-js"))
            .expect("guest-js/")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "js"))
            .filter_map(|path| modified(&path))
            .max();
        if modified(&output).is_some() && modified(&output) >= newest_source {
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
