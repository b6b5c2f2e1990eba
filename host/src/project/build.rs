//! `wasmhouse build`: a project's component, with the language's own tools
//! (cargo for Rust, componentize-js through npm for JavaScript). Their
//! output goes to standard error; standard output gets one line, the
//! component's path, so `wasmhouse build | tail -1` is the path.

use std::io::{BufRead as _, BufReader};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

use super::{Lang, Project};

/// The Rust target route components are built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Flags of `wasmhouse build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The project's directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// Build the project in `args.dir` and print its component's path.
pub fn build(args: &BuildArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.dir)?;
    let started = Instant::now();
    let component = build_project(&project)?;
    eprintln!(
        "built {} in {:.1} s",
        component.display(),
        started.elapsed().as_secs_f64()
    );
    println!("{}", component.display());
    Ok(())
}

/// Build `project`'s component; its path.
pub(crate) fn build_project(project: &Project) -> anyhow::Result<PathBuf> {
    match project.lang {
        Lang::Rust => build_rust(&project.dir),
        Lang::JavaScript => build_javascript(&project.dir),
    }
}

/// The tools' standard output, sent to ours for errors.
fn to_stderr() -> anyhow::Result<Stdio> {
    let fd = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating standard error")?;
    Ok(Stdio::from(fd))
}

fn build_rust(dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_wasm_target()?;
    let mut child = Command::new("cargo")
        .current_dir(dir)
        .args(["build", "--release", "--target", WASM_TARGET])
        // The manifest names target/ here: a CARGO_TARGET_DIR set for other
        // projects must not move the component elsewhere.
        .args(["--target-dir", "target"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running cargo (install Rust from https://rustup.rs)")?;
    // Cargo's messages: the artifact is the cdylib's .wasm file.
    let mut component = None;
    let stdout = child.stdout.take().context("cargo's output")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"));
        if message["reason"] == "compiler-artifact" && is_cdylib {
            component = message["filenames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|name| name.as_str())
                .find(|name| name.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(component);
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("the build failed (cargo's messages are above)");
    }
    component.context("cargo built no .wasm component: is the crate's type cdylib ([lib] crate-type = [\"cdylib\"])?")
}

/// Route components need the wasm32-wasip2 standard library; rustup says
/// whether it is installed (without rustup, cargo's own error says).
fn ensure_wasm_target() -> anyhow::Result<()> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && !installed.lines().any(|line| line.trim() == WASM_TARGET) {
        bail!("the {WASM_TARGET} target is not installed: rustup target add {WASM_TARGET}");
    }
    Ok(())
}

fn build_javascript(dir: &Path) -> anyhow::Result<PathBuf> {
    let package: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("package.json")).context("reading package.json")?,
    )
    .context("package.json is not valid JSON")?;
    let name = package["name"]
        .as_str()
        .context("package.json has no \"name\"")?;
    if !dir.join("node_modules/.bin/componentize-js").exists() {
        eprintln!("installing the JavaScript build tools (npm install, once)");
        let status = Command::new("npm")
            .current_dir(dir)
            .args(["install", "--no-audit", "--no-fund"])
            .stdout(to_stderr()?)
            .status()
            .context("running npm (install Node.js 20 or later, with npm)")?;
        if !status.success() {
            bail!("npm install failed (its messages are above)");
        }
    }
    std::fs::create_dir_all(dir.join("dist")).context("creating dist/")?;
    let status = Command::new("npm")
        .current_dir(dir)
        .args(["run", "--silent", "build"])
        .stdout(to_stderr()?)
        .status()
        .context("running npm")?;
    if !status.success() {
        bail!("the build failed (componentize-js's messages are above)");
    }
    let component = dir.join("dist").join(format!("{name}.wasm"));
    if !component.is_file() {
        bail!(
            "`npm run build` wrote no {}: the build script in package.json must write dist/{name}.wasm",
            component.display()
        );
    }
    Ok(component)
}
