//! Route projects: `wasmhouse new` writes one, `wasmhouse build` builds its
//! component, `wasmhouse dev` serves it against a local ClickHouse and
//! rebuilds it on every save.
//!
//! A project is a directory with a `wasmhouse.toml` beside the language's
//! own build file (`Cargo.toml`, `package.json`, `pyproject.toml`); the
//! language is read from which one is there, so a kind added later is one
//! more [`Lang`] with its template and its build step.

mod build;
mod dev;
mod local_clickhouse;
mod template;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

pub use build::{BuildArgs, build};
pub use dev::{DevArgs, dev};

/// The languages a route project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the wasmhouse SDK (built with cargo for wasm32-wasip2).
    Rust,
    /// JavaScript, with the wasmhouse router (built with componentize-js).
    #[value(name = "js", alias = "javascript")]
    JavaScript,
    /// Python, with the wasmhouse Python SDK (built with componentize-py).
    #[value(name = "python", alias = "py")]
    Python,
}

impl Lang {
    /// The file that says a directory is a project in this language.
    fn marker(self) -> &'static str {
        match self {
            Self::Rust => "Cargo.toml",
            Self::JavaScript => "package.json",
            Self::Python => "pyproject.toml",
        }
    }

    /// Every language, in the order a directory's markers are looked for.
    const ALL: [Self; 3] = [Self::Rust, Self::JavaScript, Self::Python];

    /// Its name, for messages.
    fn display(self) -> &'static str {
        match self {
            Self::Rust => "Rust",
            Self::JavaScript => "JavaScript",
            Self::Python => "Python",
        }
    }

    /// Where a new project's routes are.
    fn routes(self) -> &'static str {
        match self {
            Self::Rust => "src/lib.rs",
            Self::JavaScript => "src/routes.js",
            Self::Python => "src/app.py",
        }
    }

    /// How a new project's declarations are tested.
    fn test_command(self) -> &'static str {
        match self {
            Self::Rust => "cargo test",
            Self::JavaScript => "npm test  (after the first build, which runs npm install)",
            Self::Python => "python3 -m unittest",
        }
    }
}

/// Flags of `wasmhouse new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The project's directory; its last part names the project (lower-case
    /// letters, digits and `-`, starting with a letter).
    pub path: PathBuf,
    /// The language of the routes.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
}

/// A route project on disk.
#[derive(Debug, Clone)]
pub(crate) struct Project {
    /// Its directory.
    pub(crate) dir: PathBuf,
    /// Its language.
    pub(crate) lang: Lang,
}

impl Project {
    /// The project in `dir`: an error naming what is missing when there is
    /// none.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("the project directory {}", dir.display()))?;
        if !dir.join("wasmhouse.toml").is_file() {
            bail!(
                "{} has no wasmhouse.toml: this is not a route project (`wasmhouse new NAME` makes one)",
                dir.display()
            );
        }
        let lang = Lang::ALL
            .into_iter()
            .find(|lang| dir.join(lang.marker()).is_file())
            .with_context(|| {
                format!(
                    "{} has a wasmhouse.toml but no Cargo.toml (Rust), package.json (JavaScript) or pyproject.toml (Python)",
                    dir.display()
                )
            })?;
        Ok(Self { dir, lang })
    }

    /// Its route manifest.
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join("wasmhouse.toml")
    }
}

/// Write a new project (`wasmhouse new`); prints what to do next.
pub fn new_project(args: &NewArgs) -> anyhow::Result<()> {
    let name = args
        .path
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} does not end in a project name", args.path.display()))?;
    check_name(name)?;
    if args.path.exists()
        && std::fs::read_dir(&args.path)
            .with_context(|| format!("reading {}", args.path.display()))?
            .next()
            .is_some()
    {
        bail!("{} already exists and is not empty", args.path.display());
    }
    for file in template::files(args.lang, name) {
        let path = args.path.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote a {} route project in {dir}\n\n  cd {dir}\n  wasmhouse dev     # build, serve on http://127.0.0.1:8000 with a local ClickHouse, rebuild on save\n  {test}\n  wasmhouse build   # the component, for `wasmhouse serve --manifest wasmhouse.toml`\n\nThe routes are in {routes}; README.md says more.",
        args.lang.display(),
        dir = args.path.display(),
        test = args.lang.test_command(),
        routes = args.lang.routes(),
    );
    Ok(())
}

/// A name Cargo, npm and Python packaging all take: `my-routes`, `events2`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        bail!(
            "{name:?} cannot name a project: use lower-case letters, digits and '-', starting with a letter (my-routes)"
        );
    }
    if matches!(name, "wasmhouse-sdk" | "test" | "std" | "core") {
        bail!("{name:?} is taken (by the SDK or by Rust itself): choose another name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_suit_cargo_and_npm() {
        for good in ["events", "my-routes", "top10"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "My", "9lives", "a_b", "a b", "x-", "wasmhouse-sdk", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
