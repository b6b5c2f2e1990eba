//! The files `wasmhouse new` writes, compiled into the binary: a project per
//! language, with what it builds against (the Rust SDK with its WIT, or the
//! JavaScript router, glue and WIT), so that a project builds anywhere with
//! nothing but the package registries.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use super::Lang;

static RUST: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/rust");
static JAVASCRIPT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/js");
static PYTHON: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/python");
/// The Python SDK package, the same files the Python seed uses.
static PYTHON_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk-python/wasmhouse");
/// The SDK crate as it is in this repository (its `wit/` included).
static SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../sdk");
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
/// The JavaScript router and glue, the same files the JavaScript seed uses.
const JS_LIBRARY: [(&str, &str); 2] = [
    ("router.js", include_str!("../../../guest-js/router.js")),
    (
        "wasmhouse.js",
        include_str!("../../../guest-js/wasmhouse.js"),
    ),
];
/// The workspace's lock file: a new Rust project starts from the versions
/// this SDK was tested with (Cargo drops the entries it does not need).
const CARGO_LOCK: &str = include_str!("../../../Cargo.lock");
/// The Python SDK's project file: it pins the componentize-py every Python
/// build installs (the tests' Python guest included).
const PYTHON_SDK_PROJECT: &str = include_str!("../../../sdk-python/pyproject.toml");
/// The JavaScript build tools' versions, the ones the tests use.
const JS_TOOLS: &str = include_str!("../../../tests/portability/package.json");

/// One file to write, relative to the project's directory.
pub(crate) struct File {
    pub(crate) path: PathBuf,
    pub(crate) contents: Vec<u8>,
}

/// Every file of a new `lang` project called `name`.
pub(crate) fn files(lang: Lang, name: &str) -> Vec<File> {
    let mut values = vec![("name", name.to_owned()), ("crate", name.replace('-', "_"))];
    let mut files = Vec::new();
    match lang {
        Lang::Rust => {
            files.extend(templated(&RUST, Path::new(""), &values));
            files.extend(copied(&SDK, Path::new("wasmhouse-sdk")));
            files.push(File {
                path: "Cargo.lock".into(),
                contents: CARGO_LOCK.as_bytes().to_vec(),
            });
        }
        Lang::JavaScript => {
            values.push((
                "componentize_js_version",
                js_tool_version("@bytecodealliance/componentize-js"),
            ));
            values.push((
                "preview2_shim_version",
                js_tool_version("@bytecodealliance/preview2-shim"),
            ));
            files.extend(templated(&JAVASCRIPT, Path::new(""), &values));
            files.extend(copied(&WIT, Path::new("wit")));
            for (library, source) in JS_LIBRARY {
                files.push(File {
                    path: Path::new("lib").join(library),
                    contents: source.as_bytes().to_vec(),
                });
            }
        }
        Lang::Python => {
            values.push(("componentize_py_version", componentize_py_version()));
            files.extend(templated(&PYTHON, Path::new(""), &values));
            files.extend(copied(&WIT, Path::new("wit")));
            files.extend(
                copied(&PYTHON_SDK, Path::new("lib/wasmhouse"))
                    .into_iter()
                    .filter(|file| file.path.extension().is_some_and(|ext| ext == "py")),
            );
        }
    }
    files
}

/// The componentize-py version the SDK is built and tested with.
pub(crate) fn componentize_py_version() -> String {
    toml::from_str::<toml::Table>(PYTHON_SDK_PROJECT)
        .ok()
        .and_then(|doc| {
            doc.get("tool")?
                .get("wasmhouse")?
                .get("componentize-py")?
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            unreachable!("sdk-python/pyproject.toml pins [tool.wasmhouse] componentize-py")
        })
}

/// The template's files with `{{key}}` replaced; `gitignore` becomes
/// `.gitignore` (a dot file in the template would apply to this repository).
fn templated(dir: &Dir<'_>, under: &Path, values: &[(&str, String)]) -> Vec<File> {
    let mut out = Vec::new();
    for file in all_files(dir) {
        let mut text = String::from_utf8_lossy(file.contents()).into_owned();
        for (key, value) in values {
            text = text.replace(&format!("{{{{{key}}}}}"), value);
        }
        let mut path = under.join(file.path());
        if path.file_name().is_some_and(|name| name == "gitignore") {
            path.set_file_name(".gitignore");
        }
        out.push(File {
            path,
            contents: text.into_bytes(),
        });
    }
    out
}

fn copied(dir: &Dir<'_>, under: &Path) -> Vec<File> {
    all_files(dir)
        .into_iter()
        .map(|file| File {
            path: under.join(file.path()),
            contents: file.contents().to_vec(),
        })
        .collect()
}

fn all_files<'a>(dir: &'a Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut files: Vec<_> = dir.files().collect();
    for sub in dir.dirs() {
        files.extend(all_files(sub));
    }
    files
}

/// The version of `package` the portability tests pin.
fn js_tool_version(package: &str) -> String {
    serde_json::from_str::<serde_json::Value>(JS_TOOLS)
        .ok()
        .and_then(|doc| doc["devDependencies"][package].as_str().map(str::to_owned))
        .unwrap_or_else(|| unreachable!("tests/portability/package.json names {package}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(lang: Lang) -> Vec<String> {
        files(lang, "my-routes")
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_rust_project_carries_the_sdk_and_its_wit() {
        let paths = paths(Lang::Rust);
        for expected in [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "wasmhouse.toml",
            "README.md",
            ".gitignore",
            "wasmhouse-sdk/Cargo.toml",
            "wasmhouse-sdk/src/router.rs",
            "wasmhouse-sdk/wit/clickhouse.wit",
            "wasmhouse-sdk/wit/deps/http/types.wit",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} missing: {paths:?}"
            );
        }
        let manifest = files(Lang::Rust, "my-routes")
            .into_iter()
            .find(|f| f.path == Path::new("wasmhouse.toml"))
            .expect("manifest");
        let text = String::from_utf8(manifest.contents).expect("UTF-8");
        assert!(
            text.contains("target/wasm32-wasip2/release/my_routes.wasm"),
            "{text}"
        );
        assert!(!text.contains("{{"), "a placeholder left: {text}");
    }

    #[test]
    fn a_python_project_carries_the_sdk_and_a_pinned_builder() {
        let paths = paths(Lang::Python);
        for expected in [
            "pyproject.toml",
            "src/app.py",
            "tests/__init__.py",
            "tests/test_routes.py",
            "lib/wasmhouse/__init__.py",
            "lib/wasmhouse/router.py",
            "wit/clickhouse.wit",
            "wasmhouse.toml",
            ".gitignore",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} missing: {paths:?}"
            );
        }
        assert!(
            !paths.iter().any(|p| p.contains("__pycache__")),
            "{paths:?}"
        );
        let project = files(Lang::Python, "my-routes")
            .into_iter()
            .find(|f| f.path == Path::new("pyproject.toml"))
            .expect("pyproject.toml");
        let project: toml::Table =
            toml::from_str(std::str::from_utf8(&project.contents).expect("UTF-8")).expect("TOML");
        assert_eq!(project["project"]["name"].as_str(), Some("my-routes"));
        let pinned = project["tool"]["wasmhouse"]["componentize-py"]
            .as_str()
            .expect("pinned");
        assert_eq!(pinned, componentize_py_version());
        assert!(pinned.starts_with(|c: char| c.is_ascii_digit()), "{pinned}");
    }

    #[test]
    fn a_javascript_project_carries_the_router_and_pinned_tools() {
        let all = files(Lang::JavaScript, "my-routes");
        let paths = paths(Lang::JavaScript);
        for expected in [
            "package.json",
            "src/app.js",
            "src/routes.js",
            "lib/router.js",
            "lib/wasmhouse.js",
            "wit/clickhouse.wit",
            "test/routes.test.js",
        ] {
            assert!(
                paths.iter().any(|p| p == expected),
                "{expected} missing: {paths:?}"
            );
        }
        let package = all
            .iter()
            .find(|f| f.path == Path::new("package.json"))
            .expect("package.json");
        let package: serde_json::Value =
            serde_json::from_slice(&package.contents).expect("valid JSON");
        assert_eq!(package["name"], "my-routes");
        let componentize = package["devDependencies"]["@bytecodealliance/componentize-js"]
            .as_str()
            .expect("pinned");
        assert!(
            componentize
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()),
            "{componentize}"
        );
    }
}
