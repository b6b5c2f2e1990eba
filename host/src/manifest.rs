//! The route manifest: which component serves which path prefix, with what
//! limits and guard-rails. Read from `wasmhouse.toml`, or from the HTTP
//! triggers and component sources of a Spin `spin.toml`.
//!
//! ```toml
//! [defaults]                      # every key optional, for every route
//! timeout = "30s"                 # whole request, ClickHouse included
//! memory = "64MiB"                # linear memory per instance
//! readonly = true                 # true: reads only (ClickHouse readonly=1);
//!                                 # "relaxed": readonly=2, table functions and
//!                                 # SETTINGS clauses; false: writes allowed
//! max_result_rows = 0             # 0: no limit
//! max_execution_time = "0s"       # per query; 0: the request's budget only
//! max_memory_usage = "1GiB"       # per query, on the ClickHouse server
//! max_request_memory_usage = "2GiB" # a request's open queries together
//! max_threads = 4                 # per query, on the ClickHouse server
//! max_rows_to_read = 1000000000   # per query
//! max_bytes_to_read = "100GiB"    # per query
//! allowed_settings = ["max_block_size"] # route-class settings guests may set
//! allowed_functions = ["url"]     # denied or unknown functions the route may use
//! api_key = true                  # callers need an API key (401/403)
//! rate_limit_per_key = "100/s"    # token bucket per API key (429)
//! rate_limit_per_client = "20/s"  # token bucket per client address (429)
//! rate_limit_burst = 50           # bucket size; the rate's count by default
//! cache_ttl = "5s"                # serve every read from the result cache
//!                                 # for this long (0s: only reads that ask)
//! cache_stale = "30s"             # then serve it stale while one refresh runs
//!
//! [[route]]
//! name = "reports"                # admin API and log name
//! prefix = "/reports"             # also matches /reports/...
//! component = "build/reports.wasm" # relative to this file; "builtin" = seed routes;
//!                                 # or oci://HOST/REPO:TAG (or @sha256:…) in a registry
//! follow = "30s"                  # with a tag: look for a new digest this often
//! timeout = "5s"                  # any [defaults] key, for this route only
//! config = { region = "eu" }      # what the component reads (wasi:config/store)
//!
//! [[route]]
//! prefix = "/api"
//! sql = "queries/"                # a .sql file, or a directory: one route per file
//! ```
//!
//! A `sql` route is served by the built-in SQL route component: each file
//! is a route named after it (a single file: the entry's name), at the
//! entry's prefix followed by the file's `@path` (`/` + its name by
//! default); [`wasmhouse_sql_route`] reads the files, here at load (a file
//! it refuses stops the load, naming file and line) and in the component.
//!
//! The keys and their checks are [`crate::route_settings`]'s, shared with
//! the flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use wasmhouse_clickhouse::QueryPolicy;

use crate::access::AccessRules;
use crate::registry::OciReference;
use crate::route_settings::{RouteConfig, RouteSettings};
use crate::runtime::InstanceLimits;

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is wrong; the message names the route and the key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Where a route's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ComponentSource {
    /// The seed's routes, built into the binary.
    Builtin,
    /// A component file.
    File(PathBuf),
    /// The built-in SQL route component, serving this `.sql` file.
    Sql(PathBuf),
    /// A component in an OCI registry.
    Oci(OciReference),
}

impl ComponentSource {
    /// `builtin`, an `oci://` reference, or a file path (relative to
    /// `base`).
    pub(crate) fn parse(text: &str, base: &Path) -> Result<Self, String> {
        if text == "builtin" {
            Ok(Self::Builtin)
        } else if OciReference::is_reference(text) {
            OciReference::parse(text.trim())
                .map(Self::Oci)
                .map_err(|err| err.to_string())
        } else {
            Ok(Self::File(base.join(text)))
        }
    }

    /// Check a `follow` interval for this source: only a tag in a registry
    /// can move.
    pub(crate) fn check_follow(&self, follow: Duration) -> Result<(), String> {
        if follow < MIN_FOLLOW {
            return Err(format!(
                "follow must be at least {}",
                humantime::format_duration(MIN_FOLLOW)
            ));
        }
        match self {
            Self::Oci(reference) if reference.tag.is_some() && reference.digest.is_none() => Ok(()),
            Self::Oci(_) => Err(
                "follow needs a tag to follow (oci://HOST/REPO:TAG); a digest never moves".into(),
            ),
            _ => Err("follow needs a component in a registry (oci://HOST/REPO:TAG)".into()),
        }
    }
}

/// The shortest `follow` interval: a registry is not asked more often.
pub(crate) const MIN_FOLLOW: Duration = Duration::from_secs(1);

/// One route, resolved and validated.
#[derive(Debug, Clone)]
pub(crate) struct RouteSpec {
    /// Its name (unique).
    pub(crate) name: String,
    /// The path prefix it serves.
    pub(crate) prefix: String,
    /// Its component.
    pub(crate) source: ComponentSource,
    /// How often its registry tag is looked at for a new digest.
    pub(crate) follow: Option<Duration>,
    /// Per-request limits.
    pub(crate) limits: InstanceLimits,
    /// Guard-rails for its queries.
    pub(crate) policy: QueryPolicy,
    /// API key and rate limits.
    pub(crate) access: AccessRules,
    /// What its component reads through `wasi:config/store`.
    pub(crate) config: BTreeMap<String, String>,
}

/// Where the routes come from, and how to read them again (SIGHUP, the
/// admin API's reload).
#[derive(Debug, Clone)]
pub(crate) struct RouteSource {
    /// The routes at start.
    pub(crate) routes: Vec<RouteSpec>,
    /// The manifest they came from; without one a reload keeps `routes`
    /// (and reads their component files again).
    pub(crate) manifest: Option<PathBuf>,
    /// What the manifest leaves unsaid (from flags and environment).
    pub(crate) base: RouteConfig,
}

impl RouteSource {
    /// The routes as they are now: the manifest read again, or the same routes.
    pub(crate) fn reload(&self) -> Result<Vec<RouteSpec>, ManifestError> {
        match &self.manifest {
            Some(path) => load(path, &self.base),
            None => Ok(self.routes.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    defaults: RouteSettings,
    #[serde(default, rename = "route")]
    routes: Vec<RouteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    name: Option<String>,
    prefix: String,
    component: Option<String>,
    sql: Option<String>,
    follow: Option<String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(flatten)]
    settings: RouteSettings,
}

/// Read the manifest at `path`: a `wasmhouse.toml`, or a `spin.toml` (its
/// HTTP triggers and component sources), told apart by the file's content.
/// `base` (from flags and environment) applies where it is silent.
pub(crate) fn load(path: &Path, base: &RouteConfig) -> Result<Vec<RouteSpec>, ManifestError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: display.clone(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, &display, dir, base)
}

/// Parse manifest text; relative component paths resolve against `dir`,
/// and `base` applies where the manifest is silent.
pub(crate) fn parse(
    text: &str,
    display: &str,
    dir: &Path,
    base: &RouteConfig,
) -> Result<Vec<RouteSpec>, ManifestError> {
    let parse_error = |err: toml::de::Error| ManifestError::Parse {
        path: display.to_owned(),
        message: err.to_string(),
    };
    let invalid = |message: String| ManifestError::Invalid {
        path: display.to_owned(),
        message,
    };
    let value: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let entries = if value.contains_key("spin_manifest_version") {
        spin_routes(&value).map_err(invalid)?
    } else {
        let file: ManifestFile = toml::from_str(text).map_err(parse_error)?;
        file.routes
            .into_iter()
            .map(|entry| RouteEntry {
                settings: entry.settings.over(&file.defaults),
                ..entry
            })
            .collect()
    };
    if entries.is_empty() {
        return Err(invalid(
            "no routes: add a [[route]] with prefix and component".into(),
        ));
    }

    let mut specs: Vec<RouteSpec> = Vec::with_capacity(entries.len());
    let mut expanded = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let prefix = entry.prefix.trim().to_owned();
        if !prefix.starts_with('/') {
            return Err(invalid(format!(
                "route {}: prefix {prefix:?} must start with '/'",
                index + 1
            )));
        }
        let name = entry.name.clone().unwrap_or_else(|| default_name(&prefix));
        let follow = match &entry.follow {
            Some(text) => Some(
                humantime::parse_duration(text)
                    .map_err(|err| invalid(format!("route {name:?}: follow {text:?}: {err}")))?,
            ),
            None => None,
        };
        if follow.is_some() && entry.component.is_none() {
            return Err(invalid(format!(
                "route {name:?}: follow needs a component in a registry (oci://HOST/REPO:TAG)"
            )));
        }
        match (&entry.component, &entry.sql) {
            (Some(component), None) => {
                let source = ComponentSource::parse(component, dir)
                    .map_err(|why| invalid(format!("route {name:?}: component: {why}")))?;
                if let Some(follow) = follow {
                    source
                        .check_follow(follow)
                        .map_err(|why| invalid(format!("route {name:?}: {why}")))?;
                }
                expanded.push(Expanded {
                    name,
                    prefix,
                    source,
                    follow,
                    config: entry.config,
                    settings: entry.settings,
                    needs_key: false,
                });
            }
            (None, Some(sql)) => {
                for file in sql_routes(&dir.join(sql), &name, &prefix)
                    .map_err(|why| invalid(format!("route {name:?}: {why}")))?
                {
                    let mut config = entry.config.clone();
                    config.extend(file.config);
                    expanded.push(Expanded {
                        name: file.name,
                        prefix: file.prefix,
                        source: ComponentSource::Sql(file.path),
                        follow: None,
                        config,
                        settings: entry.settings.clone(),
                        needs_key: file.needs_key,
                    });
                }
            }
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "route {name:?}: give `component` or `sql`, not both"
                )));
            }
            (None, None) => {
                return Err(invalid(format!(
                    "route {name:?}: needs `component` (a .wasm file, or \"builtin\") or `sql` (a .sql file or a directory of them)"
                )));
            }
        }
    }
    for Expanded {
        name,
        prefix,
        source,
        follow,
        config,
        settings,
        needs_key,
    } in expanded
    {
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(invalid(format!(
                "route name {name:?} may only use letters, digits, '-' and '_'"
            )));
        }
        if specs.iter().any(|spec| spec.name == name) {
            return Err(invalid(format!("two routes are named {name:?}")));
        }
        let normalised = normalise_prefix(&prefix);
        if specs
            .iter()
            .any(|spec| normalise_prefix(&spec.prefix) == normalised)
        {
            return Err(invalid(format!("two routes serve prefix {normalised:?}")));
        }
        let RouteConfig {
            limits,
            policy,
            access,
        } = settings
            .apply(base, &|key| format!("route {name:?}: {key}"))
            .map_err(|err| invalid(err.to_string()))?;
        if needs_key && !access.api_key {
            return Err(invalid(format!(
                "route {name:?}: its query takes a from_key parameter, so it needs api_key = true"
            )));
        }
        if access.per_key.is_some() && !access.api_key {
            return Err(invalid(format!(
                "route {name:?}: rate_limit_per_key counts per API key, so it needs api_key = true \
                 (without it every caller shares one bucket; rate_limit_per_client counts per address)"
            )));
        }
        specs.push(RouteSpec {
            name,
            prefix,
            source,
            follow,
            limits,
            policy,
            access,
            config,
        });
    }
    Ok(specs)
}

/// A manifest entry's route before its settings are applied: one per
/// component entry, one per file of a `sql` entry.
struct Expanded {
    name: String,
    prefix: String,
    source: ComponentSource,
    follow: Option<Duration>,
    config: BTreeMap<String, String>,
    settings: RouteSettings,
    /// A parameter comes from the caller's API key (`api_key` is needed).
    needs_key: bool,
}

/// One `.sql` file as a route.
struct SqlFile {
    name: String,
    prefix: String,
    path: PathBuf,
    config: BTreeMap<String, String>,
    /// A parameter comes from the caller's API key.
    needs_key: bool,
}

/// The routes of `path`, a `.sql` file or a directory of them, for the
/// manifest entry `name` at `prefix`. Each file's `@path` is split: its
/// literal head goes on the prefix (so every file is a route of its own in
/// the route table), the rest (from the first parameter) is the pattern the
/// component matches below it.
fn sql_routes(path: &Path, name: &str, prefix: &str) -> Result<Vec<SqlFile>, String> {
    let read_dir = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql") && p.is_file())
            .collect();
        files.sort();
        Ok(files)
    };
    let (files, single) = if path.is_dir() {
        let files = read_dir(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
        if files.is_empty() {
            return Err(format!("{} has no .sql files", path.display()));
        }
        (files, false)
    } else {
        (vec![path.to_path_buf()], true)
    };
    let mut routes = Vec::with_capacity(files.len());
    for file in files {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| format!("{}: the file name is not UTF-8", file.display()))?
            .to_owned();
        let text = std::fs::read_to_string(&file)
            .map_err(|err| format!("reading {}: {err}", file.display()))?;
        let route = wasmhouse_sql_route::SqlRoute::parse(&stem, &text)
            .map_err(|err| format!("{}: {err}", file.display()))?;
        let first_param = route.path.find('{').unwrap_or(route.path.len());
        let head = route.path[..first_param].trim_end_matches('/');
        let rest = &route.path[head.len()..];
        let rest = if rest.is_empty() { "/" } else { rest };
        let base = prefix.trim_end_matches('/');
        let full_prefix = if head.is_empty() && base.is_empty() {
            "/".to_owned()
        } else {
            format!("{base}{head}")
        };
        let config = BTreeMap::from([
            ("sql".to_owned(), text),
            ("name".to_owned(), stem.clone()),
            ("path".to_owned(), rest.to_owned()),
        ]);
        routes.push(SqlFile {
            name: if single { name.to_owned() } else { stem },
            prefix: full_prefix,
            path: file,
            config,
            needs_key: route.needs_key(),
        });
    }
    Ok(routes)
}

/// `/api/` → `/api`, `api` → `/api`, `` → `/`.
pub(crate) fn normalise_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

/// A route name from its prefix: `/api/v1` → `api-v1`, `/` → `root`.
fn default_name(prefix: &str) -> String {
    let name = prefix
        .trim_matches('/')
        .replace('/', "-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect::<String>();
    if name.is_empty() { "root".into() } else { name }
}

/// Routes from a Spin 2+ manifest: each `[[trigger.http]]` with a `route`
/// and a `component` whose `source` is a local file.
fn spin_routes(value: &toml::Table) -> Result<Vec<RouteEntry>, String> {
    let triggers = value
        .get("trigger")
        .and_then(|t| t.get("http"))
        .and_then(toml::Value::as_array)
        .ok_or("spin.toml has no [[trigger.http]] entries")?;
    let components = value.get("component").and_then(toml::Value::as_table);
    let mut entries = Vec::new();
    for trigger in triggers {
        let route = trigger
            .get("route")
            .and_then(toml::Value::as_str)
            .ok_or("a [[trigger.http]] has no route")?;
        let component = trigger
            .get("component")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| {
                format!(
                    "trigger for {route:?} names no component (inline components are not supported)"
                )
            })?;
        let source = components
            .and_then(|c| c.get(component))
            .and_then(|c| c.get("source"))
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("component {component:?} has no local `source` file"))?;
        // Spin's `/api/...` is a prefix; an exact route serves as a prefix too.
        let prefix = route.trim_end_matches("...").to_owned();
        entries.push(RouteEntry {
            name: Some(component.to_owned()),
            prefix: if prefix.is_empty() {
                "/".into()
            } else {
                prefix
            },
            component: Some(source.to_owned()),
            sql: None,
            follow: None,
            config: BTreeMap::new(),
            settings: RouteSettings::default(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use wasmhouse_clickhouse::ReadOnly;

    use super::*;

    fn parse_ok(text: &str) -> Vec<RouteSpec> {
        parse(
            text,
            "test.toml",
            Path::new("/app"),
            &RouteConfig::default(),
        )
        .expect("valid manifest")
    }

    fn parse_err(text: &str) -> String {
        parse(
            text,
            "test.toml",
            Path::new("/app"),
            &RouteConfig::default(),
        )
        .expect_err("invalid manifest")
        .to_string()
    }

    #[test]
    fn a_route_has_a_component_or_sql_and_may_have_config() {
        let routes = parse_ok(
            "[[route]]\nprefix = \"/\"\ncomponent = \"builtin\"\nconfig = { region = \"eu\" }\n",
        );
        assert_eq!(
            routes[0].config.get("region").map(String::as_str),
            Some("eu")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\nsql = \"q.sql\"\n")
                .contains("give `component` or `sql`, not both")
        );
        assert!(parse_err("[[route]]\nprefix = \"/\"\n").contains("needs `component`"));
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\nsql = \"no/such.sql\"\n")
                .contains("reading /app/no/such.sql")
        );
    }

    #[test]
    fn a_route_may_come_from_a_registry_and_follow_its_tag() {
        let routes = parse_ok(
            "[[route]]\nprefix = \"/\"\ncomponent = \"oci://registry.example:5000/team/app:live\"\nfollow = \"30s\"\n",
        );
        let ComponentSource::Oci(reference) = &routes[0].source else {
            panic!("not a registry source: {:?}", routes[0].source);
        };
        assert_eq!(reference.registry, "registry.example:5000");
        assert_eq!(reference.repository, "team/app");
        assert_eq!(reference.tag.as_deref(), Some("live"));
        assert_eq!(routes[0].follow, Some(Duration::from_secs(30)));

        let pinned = format!("oci://r.example/app@sha256:{}", "a".repeat(64));
        assert!(
            parse_err(&format!(
                "[[route]]\nprefix = \"/\"\ncomponent = \"{pinned}\"\nfollow = \"30s\"\n"
            ))
            .contains("a digest never moves")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"app.wasm\"\nfollow = \"30s\"\n")
                .contains("follow needs a component in a registry")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"oci://r.example/app:1\"\nfollow = \"10ms\"\n")
                .contains("at least 1s")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"oci://r.example/app:1\"\nfollow = \"often\"\n")
                .contains("follow \"often\"")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"oci://no-repository\"\n")
                .contains("component:")
        );
    }

    #[test]
    fn sql_files_become_routes_below_the_prefix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let queries = dir.path().join("queries");
        std::fs::create_dir(&queries).expect("queries/");
        std::fs::write(queries.join("top.sql"), "SELECT 1").expect("top");
        std::fs::write(
            queries.join("user_events.sql"),
            "-- @path /events/{user}\nSELECT {user:String}",
        )
        .expect("user_events");
        std::fs::write(queries.join("notes.txt"), "not a query").expect("notes");
        let text = "[[route]]\nprefix = \"/api\"\nsql = \"queries\"\nconfig = { extra = \"1\" }\n";
        let routes =
            parse(text, "test.toml", dir.path(), &RouteConfig::default()).expect("valid manifest");
        let seen: Vec<(&str, &str, Option<&str>)> = routes
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.prefix.as_str(),
                    r.config.get("path").map(String::as_str),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("top", "/api/top", Some("/")),
                ("user_events", "/api/events", Some("/{user}"))
            ]
        );
        assert_eq!(
            routes[1].source,
            ComponentSource::Sql(queries.join("user_events.sql"))
        );
        assert_eq!(routes[1].config["extra"], "1");
        assert_eq!(routes[1].config["name"], "user_events");
        assert!(routes[1].config["sql"].starts_with("-- @path"));

        std::fs::write(queries.join("clash.sql"), "-- @path /top\nSELECT 2").expect("clash");
        let err = parse(text, "test.toml", dir.path(), &RouteConfig::default())
            .expect_err("two files at one path")
            .to_string();
        assert!(
            err.contains("two routes serve prefix \"/api/top\""),
            "{err}"
        );

        std::fs::remove_file(queries.join("clash.sql")).expect("clash gone");
        std::fs::write(
            queries.join("mine.sql"),
            "-- @param tenant from_key\nSELECT {tenant:String}",
        )
        .expect("mine");
        let err = parse(text, "test.toml", dir.path(), &RouteConfig::default())
            .expect_err("from_key without api_key")
            .to_string();
        assert!(
            err.contains(
                "route \"mine\": its query takes a from_key parameter, so it needs api_key = true"
            ),
            "{err}"
        );
        let keyed = text.replace("sql = ", "api_key = true\nsql = ");
        assert!(parse(&keyed, "test.toml", dir.path(), &RouteConfig::default()).is_ok());
    }

    #[test]
    fn a_rate_per_key_needs_keys() {
        let text = |keyed: &str| {
            format!(
                "[defaults]\nrate_limit_per_key = \"10/s\"\n\n[[route]]\nprefix = \"/r\"\ncomponent = \"builtin\"\n{keyed}\n"
            )
        };
        let err = parse(
            &text(""),
            "test.toml",
            Path::new("/app"),
            &RouteConfig::default(),
        )
        .expect_err("a rate per key on a route without keys")
        .to_string();
        assert!(
            err.contains("rate_limit_per_key counts per API key, so it needs api_key = true"),
            "{err}"
        );
        let routes = parse_ok(&text("api_key = true"));
        assert!(routes[0].access.per_key.is_some());
    }

    #[test]
    fn routes_take_defaults_and_override_them() {
        let routes = parse_ok(
            r#"
            [defaults]
            timeout = "5s"
            max_result_rows = 100

            [[route]]
            prefix = "/reports"
            component = "reports.wasm"
            memory = "16MiB"

            [[route]]
            name = "seed"
            prefix = "/"
            component = "builtin"
            timeout = "1s"
            readonly = false
            "#,
        );
        assert_eq!(routes[0].name, "reports");
        assert_eq!(
            routes[0].source,
            ComponentSource::File("/app/reports.wasm".into())
        );
        assert_eq!(routes[0].limits.timeout, Duration::from_secs(5));
        assert_eq!(routes[0].limits.memory_bytes, 16 << 20);
        assert_eq!(routes[0].policy.max_result_rows, Some(100));
        assert_eq!(routes[0].policy.readonly, ReadOnly::Strict);
        assert_eq!(routes[1].source, ComponentSource::Builtin);
        assert_eq!(routes[1].limits.timeout, Duration::from_secs(1));
        assert_eq!(routes[1].policy.readonly, ReadOnly::Off);
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\ntimeot = \"1s\"")
                .contains("timeot")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"x\"\ncomponent = \"a.wasm\"")
                .contains("must start with '/'")
        );
        assert!(
            parse_err("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\ntimeout = \"soon\"")
                .contains("timeout")
        );
        assert!(parse_err("").contains("no routes"));
        assert!(parse_err(
            "[[route]]\nprefix = \"/a\"\ncomponent = \"a.wasm\"\n[[route]]\nprefix = \"/a/\"\ncomponent = \"b.wasm\""
        )
        .contains("two routes"));
    }

    #[test]
    fn spin_manifests_give_their_http_routes() {
        let routes = parse_ok(
            r#"
            spin_manifest_version = 2
            [application]
            name = "seed"
            [[trigger.http]]
            route = "/..."
            component = "seed"
            [[trigger.http]]
            route = "/reports/..."
            component = "reports"
            [component.seed]
            source = "seed.wasm"
            [component.reports]
            source = "target/reports.wasm"
            allowed_outbound_hosts = ["http://127.0.0.1:8123"]
            "#,
        );
        assert_eq!(routes.len(), 2);
        assert_eq!(
            (routes[0].name.as_str(), routes[0].prefix.as_str()),
            ("seed", "/")
        );
        assert_eq!(routes[1].prefix, "/reports/");
        assert_eq!(
            routes[1].source,
            ComponentSource::File("/app/target/reports.wasm".into())
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever the file holds, loading it is an answer, never a crash.
        #[test]
        fn any_text_is_a_manifest_or_an_error(text in "\\PC{0,400}") {
            let _ = parse(&text, "fuzz.toml", Path::new("/app"), &RouteConfig::default());
        }

        /// Deep nesting and odd values in otherwise valid structure.
        #[test]
        fn odd_values_are_errors(
            depth in 0usize..5000,
            value in "\\PC{0,40}",
            key in proptest::sample::select(vec!["timeout", "memory", "readonly", "max_memory_usage", "max_bytes_to_read", "allowed_settings", "allowed_functions", "prefix", "name"]),
        ) {
            let nested = format!("{}\"{}\"{}", "[".repeat(depth), value.replace(['"', '\\'], ""), "]".repeat(depth));
            let text = format!("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\n{key} = {nested}\n");
            let _ = parse(&text, "fuzz.toml", Path::new("/app"), &RouteConfig::default());
        }
    }
}
