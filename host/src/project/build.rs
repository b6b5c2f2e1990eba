//! `wasmhouse build`: a project's component, with the language's own tools
//! (cargo for Rust, componentize-js through npm for JavaScript,
//! componentize-py installed with pip for Python). Their
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
        Lang::Python => build_python(&project.dir),
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

/// What `pyproject.toml` says about the build.
#[derive(Debug, PartialEq, Eq)]
struct PythonProject {
    /// `[project] name`: the component is `dist/{name}.wasm`.
    name: String,
    /// `[project] dependencies`: bundled into the component.
    dependencies: Vec<String>,
    /// `[tool.wasmhouse] module`: the module componentize-py builds.
    module: String,
    /// `[tool.wasmhouse] componentize-py`: the builder's version.
    componentize_py: String,
}

impl PythonProject {
    fn parse(text: &str) -> anyhow::Result<Self> {
        let doc: toml::Table = toml::from_str(text).context("pyproject.toml is not valid TOML")?;
        let project = doc
            .get("project")
            .and_then(|p| p.as_table())
            .context("pyproject.toml has no [project] table")?;
        let name = project
            .get("name")
            .and_then(|n| n.as_str())
            .context("pyproject.toml has no [project] name")?
            .to_owned();
        // The component is written to dist/{name}.wasm: a name is a file
        // name, never a path out of dist/.
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!(
                "[project] name = {name:?} is not a package name (letters, digits, '-', '_' and '.', not first)"
            );
        }
        let dependencies = match project.get("dependencies") {
            None => Vec::new(),
            Some(list) => list
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|item| item.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .context("[project] dependencies must be a list of requirement strings")?,
        };
        // Each goes to pip as a requirement, never as one of its options
        // (`--target`, `--index-url`: where it installs, where it downloads).
        if let Some(option) = dependencies
            .iter()
            .find(|d| d.trim().is_empty() || d.trim_start().starts_with('-'))
        {
            bail!(
                "[project] dependencies: {option:?} is not a requirement (a package name, with a version or extras if wanted); pip's options cannot be given here"
            );
        }
        let tool = doc
            .get("tool")
            .and_then(|t| t.get("wasmhouse"))
            .and_then(|t| t.as_table());
        let setting = |key: &str| tool.and_then(|t| t.get(key)).and_then(|v| v.as_str());
        let module = setting("module").unwrap_or("app").to_owned();
        if module.is_empty()
            || !module.split('.').all(|part| {
                !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
        {
            bail!("[tool.wasmhouse] module = {module:?} is not a Python module name");
        }
        let componentize_py = setting("componentize-py")
            .map(str::to_owned)
            .unwrap_or_else(super::template::componentize_py_version);
        Ok(Self {
            name,
            dependencies,
            module,
            componentize_py,
        })
    }
}

/// Where a Python project's build keeps its tools and bundled packages.
const PYTHON_STATE: &str = ".wasmhouse/python";
/// The build tools' virtual environment, under [`PYTHON_STATE`].
const PYTHON_TOOLS: &str = "tools";

fn build_python(dir: &Path) -> anyhow::Result<PathBuf> {
    let project = PythonProject::parse(
        &std::fs::read_to_string(dir.join("pyproject.toml")).context("reading pyproject.toml")?,
    )?;
    let state = dir.join(PYTHON_STATE);
    let componentize = ensure_componentize_py(&state, &project.componentize_py)?;
    let mut paths = vec![dir.join("src"), dir.join("lib")];
    if !project.dependencies.is_empty() {
        paths.push(bundle_dependencies(&state, &project.dependencies)?);
    }
    std::fs::create_dir_all(dir.join("dist")).context("creating dist/")?;
    let component = dir.join("dist").join(format!("{}.wasm", project.name));
    let mut command = Command::new(&componentize);
    command
        .current_dir(dir)
        .args(["--wit-path", "wit", "--world", "route", "componentize"])
        .arg(&project.module)
        .arg("--output")
        .arg(&component);
    for path in paths.iter().filter(|path| path.is_dir()) {
        command.arg("--python-path").arg(path);
    }
    let status = command
        .stdout(to_stderr()?)
        .status()
        .with_context(|| format!("running {}", componentize.display()))?;
    if !status.success() {
        bail!(
            "the build failed (componentize-py's messages are above: a Python error there is raised while src/{}.py is imported)",
            project.module.replace('.', "/")
        );
    }
    Ok(component)
}

/// The project's own componentize-py, installed with pip in a virtual
/// environment under `state` the first time (and when the pin changes).
fn ensure_componentize_py(state: &Path, version: &str) -> anyhow::Result<PathBuf> {
    let venv = state.join(PYTHON_TOOLS);
    let componentize = venv.join("bin/componentize-py");
    let stamp = venv.join("componentize-py.version");
    if componentize.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|v| v == version) {
        return Ok(componentize);
    }
    eprintln!("installing componentize-py {version} with pip (once, about 20 s)");
    let status = Command::new(python3()?)
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .stdout(to_stderr()?)
        .status()
        .context("running python3 -m venv")?;
    if !status.success() {
        bail!(
            "python3 -m venv failed (its messages are above): install Python's venv module (apt-get install python3-venv)"
        );
    }
    let status = pip_install(&venv)?
        .arg(format!("componentize-py=={version}"))
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!("pip could not install componentize-py=={version} (its messages are above)");
    }
    std::fs::write(&stamp, version).context("recording componentize-py's version")?;
    Ok(componentize)
}

/// `pip install` in the virtual environment `venv`, quiet, its output on
/// standard error; the caller adds what to install.
fn pip_install(venv: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(venv.join("bin/python"));
    command
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .stdout(to_stderr()?);
    Ok(command)
}

/// The interpreter that runs the build tools: Python 3.11 or later.
fn python3() -> anyhow::Result<PathBuf> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info >= (3, 11))"])
        .output()
        .context("running python3: install Python 3.11 or later (it runs componentize-py)")?;
    if String::from_utf8_lossy(&output.stdout).trim() != "True" {
        bail!("python3 is older than 3.11: componentize-py needs Python 3.11 or later");
    }
    Ok(PathBuf::from("python3"))
}

/// The project's `dependencies`, installed with pip into a directory
/// bundled into the component; reinstalled only when the list changes.
/// Only pure-Python wheels can run inside the component.
fn bundle_dependencies(state: &Path, dependencies: &[String]) -> anyhow::Result<PathBuf> {
    let site = state.join("site");
    let stamp = state.join("site.requirements");
    let wanted = dependencies.join("\n");
    if site.is_dir() && std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(site);
    }
    eprintln!("bundling {} with pip", dependencies.join(", "));
    if site.exists() {
        std::fs::remove_dir_all(&site).with_context(|| format!("clearing {}", site.display()))?;
    }
    let status = pip_install(&state.join(PYTHON_TOOLS))?
        .args([
            "--only-binary",
            ":all:",
            "--platform",
            "any",
            "--implementation",
            "py",
        ])
        .arg("--target")
        .arg(&site)
        // What follows are requirements, whatever they look like.
        .arg("--")
        .args(dependencies)
        .status()
        .context("running pip")?;
    if !status.success() {
        bail!(
            "pip could not bundle {} (its messages are above): only pure-Python packages (py3-none-any wheels) run inside a component",
            dependencies.join(", ")
        );
    }
    std::fs::write(&stamp, &wanted).context("recording the bundled packages")?;
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyproject_settings_and_their_defaults() {
        let project = PythonProject::parse(
            "[project]\nname = \"ev\"\ndependencies = [\"humanize==4.9.0\"]\n[tool.wasmhouse]\nmodule = \"routes\"\ncomponentize-py = \"0.25.0\"\n",
        )
        .expect("valid");
        assert_eq!(
            project,
            PythonProject {
                name: "ev".into(),
                dependencies: vec!["humanize==4.9.0".into()],
                module: "routes".into(),
                componentize_py: "0.25.0".into(),
            }
        );
        let bare = PythonProject::parse("[project]\nname = \"ev\"\n").expect("valid");
        assert_eq!(bare.module, "app");
        assert_eq!(
            bare.componentize_py,
            super::super::template::componentize_py_version()
        );
        assert!(bare.dependencies.is_empty());
        for (bad, says) in [
            ("name = 1", "[project] table"),
            ("[project]\nversion = \"1\"", "[project] name"),
            (
                "[project]\nname = \"a\"\ndependencies = [1]",
                "list of requirement strings",
            ),
            (
                "[project]\nname = \"a\"\n[tool.wasmhouse]\nmodule = \"a-b\"",
                "not a Python module name",
            ),
            ("[project", "not valid TOML"),
            ("[project]\nname = \"../x\"", "not a package name"),
            ("[project]\nname = \"/tmp/x\"", "not a package name"),
            ("[project]\nname = \".hidden\"", "not a package name"),
            ("[project]\nname = \"\"", "not a package name"),
            (
                "[project]\nname = \"a\"\ndependencies = [\"--target=/x\", \"evil\"]",
                "pip's options cannot be given here",
            ),
            (
                "[project]\nname = \"a\"\ndependencies = [\" -i\", \"https://evil/simple\"]",
                "pip's options cannot be given here",
            ),
            (
                "[project]\nname = \"a\"\ndependencies = [\"\"]",
                "is not a requirement",
            ),
        ] {
            let err = PythonProject::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
