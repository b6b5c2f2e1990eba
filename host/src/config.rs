//! Command-line flags and environment variables, validated into [`ServeConfig`].
//!
//! The ClickHouse variables keep the names of the FastAPI service wasmhouse
//! replaces (`CLICKHOUSE_HOST`, `POOL_MGR_MAX_SIZE`, ...). Every variable is
//! also a flag; flags win over the environment, the environment over `.env`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use wasmhouse_clickhouse::host::config::{
    DEFAULT_CACHE_BYTES, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEALTH_INTERVAL,
    DEFAULT_POOL_IDLE_TIMEOUT, DEFAULT_POOL_MAX_SIZE,
};
use wasmhouse_clickhouse::host::tls::TlsFiles;
use wasmhouse_clickhouse::{ClickHouseConfig, Endpoint, Scheme};

use crate::access::{KeySource, TrustedProxies};
use crate::manifest::{self, ComponentSource, RouteSource, RouteSpec};
use crate::registry::{OciReference, RegistryArgs, RegistryConfig};
use crate::route_settings::{ReadOnlySetting, RouteConfig, RouteSettings};
use crate::runtime::instance::DEFAULT_REQUEST_TIMEOUT;
use crate::runtime::{Compilation, DEFAULT_MAX_INSTANCES, PoolSizing};
use crate::units::{format_bytes, parse_bytes};

/// Default address to listen on.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8000";
/// Default wait for a free instance before a request is shed with 503.
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default largest request body.
pub(crate) const DEFAULT_MAX_BODY_SIZE: usize = 16 << 20;
/// Default largest component upload to the admin API.
pub(crate) const DEFAULT_ADMIN_MAX_UPLOAD: usize = 64 << 20;
/// Default interval between two looks at the shared deployments directory.
pub(crate) const DEFAULT_SHARED_POLL: Duration = Duration::from_millis(500);

/// Deployments shared by a fleet of hosts through a directory they all
/// mount (see [`crate::deploy::shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedDeploymentsConfig {
    /// The directory: `<route>/<sha256>.wasm` and `<route>/current`.
    pub(crate) directory: PathBuf,
    /// How often every route's `current` pointer is read.
    pub(crate) poll: Duration,
}

/// Where and how the admin API is served.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AdminConfig {
    /// The bearer token; the API is off without one.
    pub(crate) token: Option<String>,
    /// A listener of its own; under `/admin` on the main one otherwise.
    pub(crate) listen: Option<SocketAddr>,
    /// Largest component upload, in bytes.
    pub(crate) max_upload: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            listen: None,
            max_upload: DEFAULT_ADMIN_MAX_UPLOAD,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("listen", &self.listen)
            .field("max_upload", &self.max_upload)
            .finish()
    }
}

impl AdminConfig {
    /// Whether `/admin` on the main listener is the admin API.
    pub(crate) fn on_main_listener(&self) -> bool {
        self.token.is_some() && self.listen.is_none()
    }
}

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The flag or environment variable at fault.
    pub variable: String,
    /// What is wrong with its value.
    pub message: String,
}

/// The file of settings the host reads before its flags: the one
/// `WASMHOUSE_ENV_FILE` names, else `.env` in the working directory (never a
/// parent's: dotenvy's default search would pick up a stranger's file); and
/// whether it was named.
pub fn env_file() -> (PathBuf, bool) {
    match std::env::var_os("WASMHOUSE_ENV_FILE") {
        Some(named) => (PathBuf::from(named), true),
        None => (PathBuf::from(".env"), false),
    }
}

fn config_error(variable: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: variable.to_owned(),
        message: message.into(),
    }
}

/// Flags of `wasmhouse serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "WASMHOUSE_LISTEN",
        value_name = "WASMHOUSE_LISTEN",
        default_value = DEFAULT_LISTEN
    )]
    pub listen: SocketAddr,

    /// Route component to serve on every path: a .wasm file, or
    /// oci://HOST/REPO:TAG (or @sha256:…) in a registry; the built-in seed
    /// routes when neither this nor a manifest is given.
    #[arg(
        long,
        env = "WASMHOUSE_COMPONENT",
        value_name = "WASMHOUSE_COMPONENT",
        conflicts_with = "manifest"
    )]
    pub(crate) component: Option<String>,

    /// Follow the --component tag: look this often (with jitter) for a new
    /// digest and deploy it.
    #[arg(
        long,
        env = "WASMHOUSE_FOLLOW",
        value_name = "WASMHOUSE_FOLLOW",
        value_parser = humantime::parse_duration
    )]
    pub(crate) follow: Option<Duration>,

    /// Route manifest: a wasmhouse.toml (or a spin.toml) mapping path
    /// prefixes to components, each with its own limits.
    #[arg(long, env = "WASMHOUSE_MANIFEST", value_name = "WASMHOUSE_MANIFEST")]
    pub(crate) manifest: Option<PathBuf>,

    /// One log line per request (method, path without the query string,
    /// status, time to the response headers, request id, route and
    /// version); on in `wasmhouse dev`.
    #[arg(
        long = "access-log",
        env = "WASMHOUSE_ACCESS_LOG",
        value_name = "WASMHOUSE_ACCESS_LOG",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub(crate) access_log: bool,

    #[command(flatten)]
    pub(crate) clickhouse: ClickHouseArgs,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) route: RouteSettings,

    #[command(flatten)]
    pub(crate) admin: AdminArgs,

    #[command(flatten)]
    pub(crate) access: AccessArgs,

    #[command(flatten)]
    pub(crate) shared: SharedArgs,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// Deployments shared by a fleet of hosts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Shared deployments")]
pub(crate) struct SharedArgs {
    /// Directory every host of the fleet mounts: components deployed or
    /// rolled back through the admin API are published there, and the
    /// versions published by other hosts are deployed here (off when unset).
    #[arg(
        long = "shared-deployments",
        env = "WASMHOUSE_SHARED_DEPLOYMENTS",
        value_name = "WASMHOUSE_SHARED_DEPLOYMENTS"
    )]
    pub(crate) directory: Option<PathBuf>,

    /// How often the shared directory is looked at.
    #[arg(long = "shared-poll", env = "WASMHOUSE_SHARED_POLL", value_name = "WASMHOUSE_SHARED_POLL", default_value = humantime::format_duration(DEFAULT_SHARED_POLL).to_string(), value_parser = humantime::parse_duration)]
    pub(crate) poll: Duration,
}

impl SharedArgs {
    /// The shared directory, created if missing, so a path that cannot be
    /// used stops start-up with its name.
    fn into_config(self) -> Result<Option<SharedDeploymentsConfig>, ConfigError> {
        let Some(directory) = self.directory.filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(None);
        };
        if self.poll.is_zero() {
            return Err(config_error(
                "WASMHOUSE_SHARED_POLL",
                "must be more than 0s",
            ));
        }
        std::fs::create_dir_all(&directory).map_err(|err| {
            config_error(
                "WASMHOUSE_SHARED_DEPLOYMENTS",
                format!("cannot create {}: {err}", directory.display()),
            )
        })?;
        if !directory.is_dir() {
            return Err(config_error(
                "WASMHOUSE_SHARED_DEPLOYMENTS",
                format!("{} is not a directory", directory.display()),
            ));
        }
        Ok(Some(SharedDeploymentsConfig {
            directory,
            poll: self.poll,
        }))
    }
}

/// API keys and client addresses.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access")]
pub(crate) struct AccessArgs {
    /// API keys file (TOML: `[[key]]` with `name`, `sha256` or `key`, and
    /// optional `routes`), re-read on reload.
    #[arg(
        long = "api-keys-file",
        env = "WASMHOUSE_API_KEYS_FILE",
        value_name = "WASMHOUSE_API_KEYS_FILE"
    )]
    pub(crate) keys_file: Option<PathBuf>,

    /// API keys as `name=key` pairs, comma-separated.
    #[arg(
        long = "api-keys",
        env = "WASMHOUSE_API_KEYS",
        value_name = "WASMHOUSE_API_KEYS",
        hide_env_values = true
    )]
    pub(crate) keys: Option<String>,

    /// Proxies (addresses or networks, comma-separated) whose
    /// X-Forwarded-For names the client; every other peer is the client.
    #[arg(
        long = "trusted-proxies",
        env = "WASMHOUSE_TRUSTED_PROXIES",
        value_name = "WASMHOUSE_TRUSTED_PROXIES"
    )]
    pub(crate) trusted_proxies: Option<String>,

    /// Serve `/openapi.json` (every route's description) and the `/docs`
    /// page; `false` hands those paths to the routes.
    #[arg(
        long,
        env = "WASMHOUSE_DOCS",
        value_name = "WASMHOUSE_DOCS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub(crate) docs: bool,
}

/// The admin API (deploy, list, roll back components).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Admin API")]
pub(crate) struct AdminArgs {
    /// Bearer token that enables the admin API (off without one).
    #[arg(
        id = "admin_token",
        long = "admin-token",
        env = "WASMHOUSE_ADMIN_TOKEN",
        value_name = "WASMHOUSE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// Serve the admin API on this address instead of under /admin on the
    /// main one.
    #[arg(
        id = "admin_listen",
        long = "admin-listen",
        env = "WASMHOUSE_ADMIN_LISTEN",
        value_name = "WASMHOUSE_ADMIN_LISTEN"
    )]
    pub(crate) listen: Option<SocketAddr>,

    /// Largest component upload.
    #[arg(id = "admin_max_upload", long = "admin-max-upload", env = "WASMHOUSE_ADMIN_MAX_UPLOAD", value_name = "WASMHOUSE_ADMIN_MAX_UPLOAD", default_value = format_bytes(DEFAULT_ADMIN_MAX_UPLOAD as u64), value_parser = parse_bytes)]
    pub(crate) max_upload: usize,
}

impl AdminArgs {
    fn into_config(self) -> Result<AdminConfig, ConfigError> {
        let token = self.token.filter(|token| !token.is_empty());
        if let Some(token) = &token
            && token.len() < 16
        {
            return Err(config_error(
                "WASMHOUSE_ADMIN_TOKEN",
                "use at least 16 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        if token.is_none() && self.listen.is_some() {
            return Err(config_error(
                "WASMHOUSE_ADMIN_LISTEN",
                "the admin API needs WASMHOUSE_ADMIN_TOKEN as well",
            ));
        }
        Ok(AdminConfig {
            token,
            listen: self.listen,
            max_upload: self.max_upload,
        })
    }
}

/// Where ClickHouse is.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "ClickHouse")]
pub(crate) struct ClickHouseArgs {
    /// `http://user:password@host:port/database`, or several,
    /// comma-separated. It names the servers itself: CLICKHOUSE_HOST and
    /// CLICKHOUSE_PORT beside it are an error. A user, password or
    /// database in it must agree with CLICKHOUSE_USER, CLICKHOUSE_PASSWORD
    /// and CLICKHOUSE_DATABASE where those are set too; a URL user without
    /// a password takes CLICKHOUSE_PASSWORD.
    #[arg(
        long = "clickhouse-url",
        env = "CLICKHOUSE_URL",
        value_name = "CLICKHOUSE_URL",
        hide_env_values = true
    )]
    pub(crate) url: Option<String>,

    /// Server host name or address, or several, comma-separated
    /// [default: localhost].
    #[arg(
        long = "clickhouse-host",
        env = "CLICKHOUSE_HOST",
        value_name = "CLICKHOUSE_HOST"
    )]
    pub(crate) host: Option<String>,

    /// Server HTTP port [default: 8123, or 8443 with CLICKHOUSE_SECURE].
    #[arg(
        long = "clickhouse-port",
        env = "CLICKHOUSE_PORT",
        value_name = "CLICKHOUSE_PORT"
    )]
    pub(crate) port: Option<u16>,

    /// Reach the servers of CLICKHOUSE_HOST over HTTPS (an `https://` URL
    /// says so itself; a URL scheme that disagrees is an error).
    /// Certificates are always verified [default: false].
    #[arg(
        long = "clickhouse-secure",
        env = "CLICKHOUSE_SECURE",
        value_name = "CLICKHOUSE_SECURE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) secure: Option<bool>,

    /// A PEM bundle of the CAs to trust for HTTPS instead of the system's
    /// (a private CA).
    #[arg(
        long = "clickhouse-ca-cert",
        env = "CLICKHOUSE_CA_CERT",
        value_name = "CLICKHOUSE_CA_CERT"
    )]
    pub(crate) ca_cert: Option<PathBuf>,

    /// A client certificate (PEM) for servers that require one (mutual TLS).
    #[arg(
        long = "clickhouse-client-cert",
        env = "CLICKHOUSE_CLIENT_CERT",
        value_name = "CLICKHOUSE_CLIENT_CERT"
    )]
    pub(crate) client_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(
        long = "clickhouse-client-cert-key",
        env = "CLICKHOUSE_CLIENT_CERT_KEY",
        value_name = "CLICKHOUSE_CLIENT_CERT_KEY"
    )]
    pub(crate) client_cert_key: Option<PathBuf>,

    /// User name [default: default].
    #[arg(
        long = "clickhouse-user",
        env = "CLICKHOUSE_USER",
        value_name = "CLICKHOUSE_USER"
    )]
    pub(crate) user: Option<String>,

    /// Password (never shown to guests or in logs).
    #[arg(
        long = "clickhouse-password",
        env = "CLICKHOUSE_PASSWORD",
        value_name = "CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) password: Option<String>,

    /// Database for unqualified table names [default: default].
    #[arg(
        long = "clickhouse-database",
        env = "CLICKHOUSE_DATABASE",
        value_name = "CLICKHOUSE_DATABASE"
    )]
    pub(crate) database: Option<String>,

    /// Most ClickHouse queries in flight at once (pooled connections).
    #[arg(
        long = "pool-max-size",
        env = "POOL_MGR_MAX_SIZE",
        value_name = "POOL_MGR_MAX_SIZE",
        default_value_t = DEFAULT_POOL_MAX_SIZE
    )]
    pub(crate) pool_max_size: usize,

    /// How long an idle pooled connection is kept; keep it below the
    /// server's keep_alive_timeout (3 s on ClickHouse 18.16).
    #[arg(long = "pool-idle-timeout", env = "CLICKHOUSE_POOL_IDLE_TIMEOUT", value_name = "CLICKHOUSE_POOL_IDLE_TIMEOUT", default_value = humantime::format_duration(DEFAULT_POOL_IDLE_TIMEOUT).to_string(), value_parser = humantime::parse_duration)]
    pub(crate) pool_idle_timeout: Duration,

    /// Budget for opening a connection to ClickHouse.
    #[arg(long = "clickhouse-connect-timeout", env = "CLICKHOUSE_CONNECT_TIMEOUT", value_name = "CLICKHOUSE_CONNECT_TIMEOUT", default_value = humantime::format_duration(DEFAULT_CONNECT_TIMEOUT).to_string(), value_parser = humantime::parse_duration)]
    pub(crate) connect_timeout: Duration,

    /// With several servers: time between health checks (`/ping`, then
    /// `SELECT 1`) that take a failing replica out of rotation and put it
    /// back.
    #[arg(long = "clickhouse-health-interval", env = "CLICKHOUSE_HEALTH_INTERVAL", value_name = "CLICKHOUSE_HEALTH_INTERVAL", default_value = humantime::format_duration(DEFAULT_HEALTH_INTERVAL).to_string(), value_parser = humantime::parse_duration)]
    pub(crate) health_interval: Duration,

    /// With several servers: take a replica whose replicated tables are
    /// more than this behind (`system.replicas.absolute_delay`) out of
    /// rotation. Unset: not checked.
    #[arg(long = "clickhouse-max-replica-delay", env = "CLICKHOUSE_MAX_REPLICA_DELAY", value_name = "CLICKHOUSE_MAX_REPLICA_DELAY", value_parser = humantime::parse_duration)]
    pub(crate) max_replica_delay: Option<Duration>,

    /// Bytes of query results the result cache may hold (used only by
    /// routes with `cache_ttl` and reads that ask); 0 turns it off.
    #[arg(long = "cache-size", env = "WASMHOUSE_CACHE_SIZE", value_name = "WASMHOUSE_CACHE_SIZE", default_value = format_bytes(DEFAULT_CACHE_BYTES), value_parser = parse_bytes)]
    pub(crate) cache_size: usize,
}

/// Host-wide sizing and switches (the per-route limits are
/// [`RouteSettings`]).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct LimitArgs {
    /// Most instances (requests in flight) at once.
    #[arg(
        long = "max-instances",
        env = "WASMHOUSE_MAX_INSTANCES",
        value_name = "WASMHOUSE_MAX_INSTANCES",
        default_value_t = DEFAULT_MAX_INSTANCES
    )]
    pub(crate) max_instances: u32,

    /// How long a request waits for a free instance before it gets 503 with
    /// Retry-After.
    #[arg(long = "queue-timeout", env = "WASMHOUSE_QUEUE_TIMEOUT", value_name = "WASMHOUSE_QUEUE_TIMEOUT", default_value = humantime::format_duration(DEFAULT_QUEUE_TIMEOUT).to_string(), value_parser = humantime::parse_duration)]
    pub(crate) queue_timeout: Duration,

    /// Largest request body accepted (413 above it).
    #[arg(long = "max-body-size", env = "WASMHOUSE_MAX_BODY_SIZE", value_name = "WASMHOUSE_MAX_BODY_SIZE", default_value = format_bytes(DEFAULT_MAX_BODY_SIZE as u64), value_parser = parse_bytes)]
    pub(crate) max_body_size: usize,

    /// Worker threads serving requests, each with its own event loop
    /// (default: one per CPU).
    #[arg(
        long = "workers",
        env = "WASMHOUSE_WORKERS",
        value_name = "WASMHOUSE_WORKERS"
    )]
    pub(crate) workers: Option<usize>,

    /// Directory for compiled components, so restarts skip compilation
    /// ("off" to disable). Default: $XDG_CACHE_HOME/wasmhouse or
    /// ~/.cache/wasmhouse.
    #[arg(
        long = "compile-cache",
        env = "WASMHOUSE_COMPILE_CACHE",
        value_name = "WASMHOUSE_COMPILE_CACHE"
    )]
    pub(crate) compile_cache: Option<String>,

    /// How new components are compiled: `tiered` serves baseline code
    /// (Winch) within a second and swaps in optimised code (Cranelift) when
    /// its background compile is done; `optimized` serves once Cranelift is
    /// done; `baseline` never optimises.
    #[arg(
        long = "compilation",
        env = "WASMHOUSE_COMPILATION",
        value_name = "WASMHOUSE_COMPILATION",
        default_value = "tiered"
    )]
    pub(crate) compilation: Compilation,

    /// Allow guests to write (ClickHouse readonly off). Read-only by default.
    #[arg(
        long = "allow-writes",
        env = "WASMHOUSE_ALLOW_WRITES",
        value_name = "WASMHOUSE_ALLOW_WRITES"
    )]
    pub(crate) allow_writes: bool,
}

/// A validated configuration for [`crate::serve`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// What serves which path.
    pub(crate) routes: Vec<RouteSpec>,
    /// The manifest the routes came from, re-read on SIGHUP.
    pub(crate) manifest: Option<PathBuf>,
    /// How to reach ClickHouse.
    pub(crate) clickhouse: ClickHouseConfig,
    /// Limits, guard-rails and access rules for what routes leave unsaid.
    pub(crate) route_defaults: RouteConfig,
    /// Pooling allocator sizing.
    pub(crate) sizing: PoolSizing,
    /// How long a request waits for a free instance.
    pub(crate) queue_timeout: Duration,
    /// Largest request body accepted.
    pub(crate) max_body_size: usize,
    /// How long shutdown waits for requests in flight.
    pub(crate) shutdown_grace: Duration,
    /// The admin API.
    pub(crate) admin: AdminConfig,
    /// Where compiled components are cached; `None` to compile every time.
    pub(crate) compile_cache: Option<PathBuf>,
    /// Baseline code first, or optimised code only.
    pub(crate) compilation: Compilation,
    /// Worker threads of the `wasmhouse` binary.
    pub(crate) workers: usize,
    /// Where API keys come from.
    pub(crate) keys: KeySource,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: TrustedProxies,
    /// Serve `/openapi.json` and `/docs`.
    pub(crate) docs: bool,
    /// Log one line per request.
    pub(crate) access_log: bool,
    /// The fleet's shared deployments directory; `None` when this host
    /// deploys alone.
    pub(crate) shared_deployments: Option<SharedDeploymentsConfig>,
    /// How registries are reached, and where pulls are kept.
    pub(crate) registry: RegistryConfig,
}

impl ServeConfig {
    /// A configuration for the built-in routes against `clickhouse`, with
    /// every other value at its default.
    pub fn new(clickhouse: ClickHouseConfig) -> Self {
        let route_defaults = RouteConfig::default();
        Self {
            routes: vec![builtin_route(&route_defaults)],
            manifest: None,
            clickhouse,
            route_defaults,
            sizing: PoolSizing::default(),
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            shutdown_grace: DEFAULT_REQUEST_TIMEOUT,
            admin: AdminConfig::default(),
            compile_cache: None,
            compilation: Compilation::default(),
            workers: default_workers(),
            keys: KeySource::default(),
            trusted_proxies: TrustedProxies::default(),
            docs: true,
            access_log: false,
            shared_deployments: None,
            registry: RegistryConfig {
                max_component_bytes: DEFAULT_ADMIN_MAX_UPLOAD as u64,
                ..RegistryConfig::default()
            },
        }
    }

    /// The admin API's own address, when it has one (else it is served
    /// under `/admin` on the main listener, if at all).
    pub fn admin_listen(&self) -> Option<SocketAddr> {
        self.admin.listen
    }

    /// Replace the routes with those of the manifest at `path`.
    pub(crate) fn with_manifest(mut self, path: PathBuf) -> Result<Self, manifest::ManifestError> {
        self.routes = manifest::load(&path, &self.route_defaults)?;
        self.manifest = Some(path);
        self.fit_sizing();
        Ok(self)
    }

    /// Where the routes come from, for the deployer.
    pub(crate) fn route_source(&self) -> RouteSource {
        RouteSource {
            routes: self.routes.clone(),
            manifest: self.manifest.clone(),
            base: self.route_defaults.clone(),
        }
    }

    /// Size the pooling allocator for the most demanding route.
    fn fit_sizing(&mut self) {
        let largest = self
            .routes
            .iter()
            .map(|r| r.limits.memory_bytes)
            .max()
            .unwrap_or(0);
        self.sizing.max_memory_bytes = self.sizing.max_memory_bytes.max(largest);
    }
}

/// One worker thread per CPU.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// The compile cache directory: the flag's, none for "off", else the user's
/// cache directory.
fn compile_cache_directory(flag: Option<&str>) -> Option<PathBuf> {
    match flag.map(str::trim) {
        Some("off" | "false" | "0" | "none") => None,
        Some(directory) if !directory.is_empty() => Some(PathBuf::from(directory)),
        _ => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache"))
                })?;
            Some(base.join("wasmhouse"))
        }
    }
}

/// The built-in seed routes on every path.
fn builtin_route(route: &RouteConfig) -> RouteSpec {
    RouteSpec {
        name: "default".into(),
        prefix: "/".into(),
        source: ComponentSource::Builtin,
        follow: None,
        limits: route.limits,
        policy: route.policy.clone(),
        access: route.access.clone(),
        config: Default::default(),
    }
}

/// A route name from a registry reference: its repository's last part
/// (`oci://ghcr.io/acme/reports:v2` → `reports`).
fn reference_route_name(reference: &OciReference) -> String {
    let last = reference.repository.rsplit('/').next().unwrap_or_default();
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() {
        "component".into()
    } else {
        name
    }
}

/// The environment variable of the flag behind route setting `key` (clap's
/// argument ids are the field names), for error messages.
fn flag_name(command: &clap::Command, key: &str) -> String {
    command
        .get_arguments()
        .find(|arg| arg.get_id() == key)
        .and_then(|arg| arg.get_env())
        .map_or_else(|| key.to_owned(), |env| env.to_string_lossy().into_owned())
}

impl ServeArgs {
    /// Check every value and build the configuration.
    pub fn into_config(self) -> Result<ServeConfig, ConfigError> {
        let clickhouse = self.clickhouse.into_config()?;
        let admin = self.admin.into_config()?;
        let limits = &self.limits;
        // The flags' layer of every route's settings, over the defaults.
        let mut flags = self.route.clone();
        if limits.allow_writes {
            flags.readonly = Some(ReadOnlySetting::Flag(false));
        }
        let command = <RouteSettings as Args>::augment_args(clap::Command::new("serve"));
        let route_defaults = flags
            .apply(&RouteConfig::default(), &|key| flag_name(&command, key))
            .map_err(|err| ConfigError {
                variable: err.setting,
                message: err.message,
            })?;
        if limits.max_instances == 0 {
            return Err(config_error(
                "WASMHOUSE_MAX_INSTANCES",
                "must be at least 1",
            ));
        }
        if limits.workers == Some(0) {
            return Err(config_error("WASMHOUSE_WORKERS", "must be at least 1"));
        }
        if limits.max_body_size == 0 {
            return Err(config_error(
                "WASMHOUSE_MAX_BODY_SIZE",
                "must be more than 0",
            ));
        }
        let mut route = builtin_route(&route_defaults);
        if let Some(text) = self.component.as_deref().filter(|t| !t.trim().is_empty()) {
            let source = ComponentSource::parse(text, Path::new(""))
                .map_err(|why| config_error("WASMHOUSE_COMPONENT", why))?;
            route.name = match &source {
                ComponentSource::File(path) if !path.is_file() => {
                    return Err(config_error(
                        "WASMHOUSE_COMPONENT",
                        format!("{} is not a file", path.display()),
                    ));
                }
                ComponentSource::File(path) => path.file_stem().map_or_else(
                    || "component".to_owned(),
                    |s| s.to_string_lossy().into_owned(),
                ),
                ComponentSource::Oci(reference) => reference_route_name(reference),
                _ => route.name,
            };
            route.source = source;
        }
        if let Some(follow) = self.follow {
            if self.component.is_none() {
                return Err(config_error(
                    "WASMHOUSE_FOLLOW",
                    "follows the --component tag; give --component oci://HOST/REPO:TAG (in a manifest, `follow` goes on the route)",
                ));
            }
            route
                .source
                .check_follow(follow)
                .map_err(|why| config_error("WASMHOUSE_FOLLOW", why))?;
            route.follow = Some(follow);
        }
        if let Err((variable, why)) = crate::registry::auth::environment_credentials() {
            return Err(config_error(variable, why));
        }
        if let Some(admin_listen) = admin.listen
            && admin_listen.port() != 0
            && admin_listen == self.listen
        {
            return Err(config_error(
                "WASMHOUSE_ADMIN_LISTEN",
                format!(
                    "is {admin_listen}, WASMHOUSE_LISTEN's address: give the admin API another \
                     port, or unset WASMHOUSE_ADMIN_LISTEN to serve it under /admin"
                ),
            ));
        }
        let compile_cache = compile_cache_directory(limits.compile_cache.as_deref());
        let registry = self.registry.clone().into_config(
            compile_cache.as_ref().map(|dir| dir.join("oci")),
            admin.max_upload as u64,
        );
        let config = ServeConfig {
            routes: vec![route],
            manifest: None,
            clickhouse,
            sizing: PoolSizing {
                max_instances: limits.max_instances,
                max_memory_bytes: route_defaults.limits.memory_bytes,
                ..PoolSizing::default()
            },
            queue_timeout: limits.queue_timeout,
            max_body_size: limits.max_body_size,
            shutdown_grace: route_defaults.limits.timeout,
            route_defaults,
            admin,
            compile_cache,
            compilation: limits.compilation,
            workers: limits.workers.unwrap_or_else(default_workers),
            keys: KeySource {
                file: self.access.keys_file.clone(),
                inline: self
                    .access
                    .keys
                    .clone()
                    .filter(|keys| !keys.trim().is_empty()),
            },
            trusted_proxies: match &self.access.trusted_proxies {
                Some(text) => TrustedProxies::parse(text)
                    .map_err(|err| config_error("WASMHOUSE_TRUSTED_PROXIES", err))?,
                None => TrustedProxies::default(),
            },
            docs: self.access.docs,
            access_log: self.access_log,
            shared_deployments: self.shared.into_config()?,
            registry,
        };
        // Keys are read now, so a broken file stops start-up with its name.
        config.keys.load().map_err(|err| {
            config_error(
                if config.keys.file.is_some() {
                    "WASMHOUSE_API_KEYS_FILE"
                } else {
                    "WASMHOUSE_API_KEYS"
                },
                err.to_string(),
            )
        })?;
        match self.manifest {
            Some(path) => config
                .with_manifest(path)
                .map_err(|err| config_error("WASMHOUSE_MANIFEST", err.to_string())),
            None => Ok(config),
        }
    }
}

impl ClickHouseArgs {
    /// Resolve `CLICKHOUSE_URL` and the separate variables into one config.
    /// Either may list several servers, comma-separated: URLs
    /// (`http://u:p@h1:8123,http://u:p@h2:8123`; a comma inside a password
    /// is written `%2C`) or hosts (`h1,h2:8124,[::1]`, each on
    /// `CLICKHOUSE_PORT` unless it names a port).
    pub(crate) fn into_config(self) -> Result<ClickHouseConfig, ConfigError> {
        let scheme = if self.secure.unwrap_or(false) {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let default_port = match scheme {
            Scheme::Https => wasmhouse_clickhouse::endpoint::DEFAULT_HTTPS_PORT,
            Scheme::Http => wasmhouse_clickhouse::endpoint::DEFAULT_HTTP_PORT,
        };
        use wasmhouse_clickhouse::endpoint::{DEFAULT_DATABASE, DEFAULT_HOST, DEFAULT_USER};
        let base = Endpoint {
            scheme,
            host: String::new(),
            port: self.port.unwrap_or(default_port),
            user: self.user.clone().unwrap_or_else(|| DEFAULT_USER.to_owned()),
            password: self.password.clone().unwrap_or_default(),
            database: self
                .database
                .clone()
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        };
        let mut endpoints = Vec::new();
        let urls = self.url.filter(|url| !url.trim().is_empty());
        let host_given = self.host.is_some();
        let hosts = self.host.unwrap_or_else(|| DEFAULT_HOST.to_owned());
        let listed_in = if urls.is_some() {
            "CLICKHOUSE_URL"
        } else {
            "CLICKHOUSE_HOST"
        };
        match urls {
            Some(urls) => {
                for (variable, set) in [
                    ("CLICKHOUSE_HOST", host_given),
                    ("CLICKHOUSE_PORT", self.port.is_some()),
                ] {
                    if set {
                        return Err(config_error(
                            variable,
                            "is set, but CLICKHOUSE_URL names the servers (host and port) \
                             itself, and wins: unset one of the two",
                        ));
                    }
                }
                for (index, url) in urls.split(',').map(str::trim).enumerate() {
                    let mut endpoint = base.clone();
                    let server = |err: String| {
                        config_error("CLICKHOUSE_URL", format!("server {}: {err}", index + 1))
                    };
                    endpoint
                        .apply_url(url)
                        .map_err(|err| server(err.to_string()))?;
                    for (variable, given, from_url) in [
                        ("CLICKHOUSE_USER", &self.user, &endpoint.user),
                        ("CLICKHOUSE_DATABASE", &self.database, &endpoint.database),
                    ] {
                        if let Some(given) = given
                            && given != from_url
                        {
                            return Err(server(format!(
                                "names {} {from_url:?}, but {variable} is {given:?}: say it in \
                                 one place",
                                variable.trim_start_matches("CLICKHOUSE_").to_lowercase()
                            )));
                        }
                    }
                    if let Some(given) = self.password.as_ref().filter(|p| !p.is_empty())
                        && *given != endpoint.password
                    {
                        return Err(server(
                            "has a password, and CLICKHOUSE_PASSWORD another: say it in one place \
                             (a URL user without a password takes CLICKHOUSE_PASSWORD)"
                                .into(),
                        ));
                    }
                    endpoints.push(endpoint);
                }
            }
            None => {
                for host in hosts.split(',').map(str::trim) {
                    let (host, port) = split_host_port(host)
                        .map_err(|err| config_error("CLICKHOUSE_HOST", err))?;
                    endpoints.push(Endpoint {
                        host: host.to_owned(),
                        port: port.unwrap_or(base.port),
                        ..base.clone()
                    });
                }
            }
        }
        for endpoint in &endpoints {
            endpoint
                .validate()
                .map_err(|(variable, err)| config_error(variable, err.to_string()))?;
        }
        check_tls_settings(
            &endpoints,
            self.secure,
            &[
                ("CLICKHOUSE_CA_CERT", self.ca_cert.is_some()),
                ("CLICKHOUSE_CLIENT_CERT", self.client_cert.is_some()),
                ("CLICKHOUSE_CLIENT_CERT_KEY", self.client_cert_key.is_some()),
            ],
            listed_in,
        )?;
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = endpoints.iter().find(|e| !seen.insert(e.authority())) {
            return Err(config_error(
                listed_in,
                format!("{} is listed twice", twice.authority()),
            ));
        }
        if self.health_interval.is_zero() {
            return Err(config_error(
                "CLICKHOUSE_HEALTH_INTERVAL",
                "must be more than 0s",
            ));
        }
        if self.pool_max_size == 0 {
            return Err(config_error("POOL_MGR_MAX_SIZE", "must be at least 1"));
        }
        if self.pool_idle_timeout.is_zero() {
            return Err(config_error(
                "CLICKHOUSE_POOL_IDLE_TIMEOUT",
                "must be more than 0s (and below the server's keep-alive timeout)",
            ));
        }
        Ok(ClickHouseConfig {
            endpoints,
            health_interval: self.health_interval,
            max_replica_delay: self.max_replica_delay,
            pool_max_size: self.pool_max_size,
            pool_idle_timeout: self.pool_idle_timeout,
            connect_timeout: self.connect_timeout,
            cache_bytes: self.cache_size as u64,
            tls: {
                let files = TlsFiles {
                    ca_cert: self.ca_cert,
                    client_cert: self.client_cert,
                    client_key: self.client_cert_key,
                };
                // Read now, so a bad file stops start-up with its variable.
                wasmhouse_clickhouse::host::tls::client_config(&files).map_err(|err| {
                    let message = err.to_string();
                    let (variable, rest) = message
                        .split_once(": ")
                        .unwrap_or(("CLICKHOUSE_CLIENT_CERT", message.as_str()));
                    config_error(variable, rest)
                })?;
                files
            },
        })
    }
}

/// Refuse TLS settings that cannot mean what they say, naming both sides:
/// `CLICKHOUSE_SECURE` against the scheme of a URL in `CLICKHOUSE_URL`, and
/// certificate files (`files`: each variable and whether it is set) when no
/// server is reached over HTTPS, where they would be loaded and never used
/// while the operator believes the link is encrypted.
fn check_tls_settings(
    endpoints: &[Endpoint],
    secure: Option<bool>,
    files: &[(&str, bool)],
    listed_in: &str,
) -> Result<(), ConfigError> {
    if listed_in == "CLICKHOUSE_URL"
        && let Some(secure) = secure
    {
        let wanted = if secure { Scheme::Https } else { Scheme::Http };
        if let Some(other) = endpoints.iter().find(|e| e.scheme != wanted) {
            return Err(config_error(
                "CLICKHOUSE_SECURE",
                format!(
                    "is {secure}, but CLICKHOUSE_URL names {}://{}: say the scheme in the URL only, \
                     or make the two agree",
                    scheme_name(other.scheme),
                    other.authority()
                ),
            ));
        }
    }
    if endpoints.iter().all(|e| e.scheme == Scheme::Http)
        && let Some((variable, _)) = files.iter().find(|(_, set)| *set)
    {
        let how = if listed_in == "CLICKHOUSE_URL" {
            "CLICKHOUSE_URL names only http:// servers"
        } else {
            "CLICKHOUSE_SECURE is not true"
        };
        return Err(config_error(
            variable,
            format!(
                "is set, but {how}: the certificate would never be used and the link would be \
                 plain HTTP (use https:// servers, or unset {variable})"
            ),
        ));
    }
    Ok(())
}

/// A scheme as a URL spells it.
fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

/// `host`, `host:port` or `[v6]:port` → the host and the port if named.
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let port = |digits: &str| {
        digits
            .parse::<u16>()
            .map_err(|_| format!("{text:?}: {digits:?} is not a port"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: no closing ']'"))?;
        return match after.strip_prefix(':') {
            Some(digits) => Ok((host, Some(port(digits)?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(format!("{text:?}: unexpected {after:?} after the address")),
        };
    }
    match text.split_once(':') {
        // Two colons or more: a bare IPv6 address.
        Some((_, rest)) if rest.contains(':') => Ok((text, None)),
        Some((host, digits)) => Ok((host, Some(port(digits)?))),
        None => Ok((text, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("wasmhouse").chain(args.iter().copied()))
            .map_err(|err| err.to_string())?;
        cli.serve.into_config().map_err(|err| err.to_string())
    }

    #[test]
    fn the_url_and_the_separate_variables_agree_or_stop_the_start() {
        let url = "http://reader:s%40cret@db.internal:9123/analytics";
        let config = parse(&["--clickhouse-url", url]).unwrap();
        let ch = config.clickhouse.endpoint().clone();
        assert_eq!((ch.host.as_str(), ch.port), ("db.internal", 9123));
        assert_eq!(
            (ch.user.as_str(), ch.password.as_str()),
            ("reader", "s@cret")
        );
        assert_eq!(ch.database, "analytics");
        // What agrees is accepted; a URL user without a password takes
        // CLICKHOUSE_PASSWORD; a URL without a user takes CLICKHOUSE_USER.
        // (arguments, then the user, password and database they give)
        type Agreeing<'a> = (&'a [&'a str], (&'a str, &'a str, &'a str));
        let agreeing: &[Agreeing] = &[
            (
                &[
                    "--clickhouse-url",
                    url,
                    "--clickhouse-password",
                    "s@cret",
                    "--clickhouse-database",
                    "analytics",
                    "--clickhouse-user",
                    "reader",
                ],
                ("reader", "s@cret", "analytics"),
            ),
            (
                &[
                    "--clickhouse-url",
                    "http://reader@db:8123",
                    "--clickhouse-password",
                    "kept-apart",
                ],
                ("reader", "kept-apart", "default"),
            ),
            (
                &[
                    "--clickhouse-url",
                    "http://db:8123",
                    "--clickhouse-user",
                    "u",
                    "--clickhouse-password",
                    "p",
                    "--clickhouse-database",
                    "d",
                ],
                ("u", "p", "d"),
            ),
        ];
        for (args, (user, password, database)) in agreeing {
            let config = parse(args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
            let ch = config.clickhouse.endpoint();
            assert_eq!(
                (ch.user.as_str(), ch.password.as_str(), ch.database.as_str()),
                (*user, *password, *database),
                "{args:?}"
            );
        }
        // What contradicts stops the start, naming both settings.
        let contradicting: &[(&[&str], &[&str])] = &[
            (
                &["--clickhouse-host", "other", "--clickhouse-url", url],
                &["CLICKHOUSE_HOST", "CLICKHOUSE_URL"],
            ),
            (
                &["--clickhouse-port", "9000", "--clickhouse-url", url],
                &["CLICKHOUSE_PORT", "CLICKHOUSE_URL"],
            ),
            (
                &["--clickhouse-user", "writer", "--clickhouse-url", url],
                &["CLICKHOUSE_USER", "CLICKHOUSE_URL", "reader"],
            ),
            (
                &["--clickhouse-password", "other", "--clickhouse-url", url],
                &["CLICKHOUSE_PASSWORD", "CLICKHOUSE_URL"],
            ),
            (
                &["--clickhouse-database", "other", "--clickhouse-url", url],
                &["CLICKHOUSE_DATABASE", "CLICKHOUSE_URL", "analytics"],
            ),
        ];
        for (args, named) in contradicting {
            let err = parse(args).map(|_| ()).expect_err("a contradiction");
            for name in *named {
                assert!(err.contains(name), "{args:?}: {err} does not name {name}");
            }
            assert!(
                !err.contains("s@cret") && !err.contains("s%40cret"),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn several_servers_are_listed_by_url_or_by_host() {
        let config = parse(&[
            "--clickhouse-url",
            "http://a:p%2Cq@h1:8123/db, http://h2:9000",
        ])
        .expect("urls");
        let servers: Vec<(String, u16, String)> = config
            .clickhouse
            .endpoints
            .iter()
            .map(|e| (e.host.clone(), e.port, e.password.clone()))
            .collect();
        assert_eq!(
            servers,
            [
                ("h1".to_owned(), 8123, "p,q".to_owned()),
                ("h2".to_owned(), 9000, String::new())
            ]
        );
        let config = parse(&[
            "--clickhouse-host",
            "h1, h2:8124, [::1]:9, ::2",
            "--clickhouse-port",
            "8125",
        ])
        .expect("hosts");
        let servers: Vec<String> = config
            .clickhouse
            .endpoints
            .iter()
            .map(|e| e.authority())
            .collect();
        assert_eq!(servers, ["h1:8125", "h2:8124", "[::1]:9", "[::2]:8125"]);
        let twice = parse(&["--clickhouse-host", "h1,h1"]).expect_err("twice");
        assert!(
            twice.contains("CLICKHOUSE_HOST") && twice.contains("twice"),
            "{twice}"
        );
        let bad = parse(&["--clickhouse-host", "h1:port"]).expect_err("bad port");
        assert!(bad.contains("CLICKHOUSE_HOST"), "{bad}");
    }

    #[test]
    fn tls_settings_that_cannot_mean_what_they_say_stop_the_start() {
        // (arguments, the variables the error names; none: accepted)
        let table: &[(&[&str], &[&str])] = &[
            (
                &[
                    "--clickhouse-secure",
                    "true",
                    "--clickhouse-url",
                    "http://h:8123",
                ],
                &["CLICKHOUSE_SECURE", "CLICKHOUSE_URL", "http://h:8123"],
            ),
            (
                &[
                    "--clickhouse-secure",
                    "false",
                    "--clickhouse-url",
                    "https://h:8443",
                ],
                &["CLICKHOUSE_SECURE", "CLICKHOUSE_URL", "https://h:8443"],
            ),
            (
                &[
                    "--clickhouse-secure",
                    "yes",
                    "--clickhouse-url",
                    "https://a:1,http://b:2",
                ],
                &["CLICKHOUSE_SECURE", "CLICKHOUSE_URL", "http://b:2"],
            ),
            (
                &[
                    "--clickhouse-url",
                    "http://h:8123",
                    "--clickhouse-ca-cert",
                    "/ca.pem",
                ],
                &["CLICKHOUSE_CA_CERT", "CLICKHOUSE_URL"],
            ),
            (
                &["--clickhouse-host", "h", "--clickhouse-ca-cert", "/ca.pem"],
                &["CLICKHOUSE_CA_CERT", "CLICKHOUSE_SECURE"],
            ),
            (
                &[
                    "--clickhouse-host",
                    "h",
                    "--clickhouse-client-cert",
                    "/c.pem",
                    "--clickhouse-client-cert-key",
                    "/k.pem",
                ],
                &["CLICKHOUSE_CLIENT_CERT", "CLICKHOUSE_SECURE"],
            ),
            (
                &[
                    "--clickhouse-url",
                    "http://h:1",
                    "--clickhouse-client-cert-key",
                    "/k.pem",
                ],
                &["CLICKHOUSE_CLIENT_CERT_KEY", "CLICKHOUSE_URL"],
            ),
            (
                &[
                    "--clickhouse-secure",
                    "true",
                    "--clickhouse-url",
                    "https://h:8443",
                ],
                &[],
            ),
            (
                &[
                    "--clickhouse-secure",
                    "false",
                    "--clickhouse-url",
                    "http://h:8123",
                ],
                &[],
            ),
            (&["--clickhouse-url", "https://a:1,http://b:2"], &[]),
            (
                &["--clickhouse-secure", "true", "--clickhouse-host", "h"],
                &[],
            ),
            (&["--clickhouse-host", "h"], &[]),
        ];
        for (args, named) in table {
            match parse(args) {
                Ok(_) => assert!(named.is_empty(), "{args:?} was accepted"),
                Err(err) => {
                    assert!(!named.is_empty(), "{args:?}: {err}");
                    for name in *named {
                        assert!(err.contains(name), "{args:?}: {err} does not name {name}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = parse(&["--clickhouse-port", "abc"]).unwrap_err();
        assert!(err.contains("CLICKHOUSE_PORT"), "{err}");
        let err = parse(&["--pool-max-size", "0"]).unwrap_err();
        assert!(err.contains("POOL_MGR_MAX_SIZE"), "{err}");
        let err = parse(&["--clickhouse-url", "ftp://x"]).unwrap_err();
        assert!(err.contains("CLICKHOUSE_URL"), "{err}");
        // Per-route limits: the flags' layer, checked by the manifests' check.
        for (flag, value, variable) in [
            ("--memory-limit", "lots", "WASMHOUSE_MEMORY_LIMIT"),
            ("--memory-limit", "512KiB", "WASMHOUSE_MEMORY_LIMIT"),
            ("--request-timeout", "0s", "WASMHOUSE_REQUEST_TIMEOUT"),
            ("--max-threads", "0", "WASMHOUSE_MAX_THREADS"),
            ("--max-memory-usage", "0", "WASMHOUSE_MAX_MEMORY_USAGE"),
            (
                "--max-request-memory-usage",
                "1MiB",
                "WASMHOUSE_MAX_REQUEST_MEMORY_USAGE",
            ),
            (
                "--max-execution-time",
                "soon",
                "WASMHOUSE_MAX_EXECUTION_TIME",
            ),
        ] {
            let err = parse(&[flag, value]).unwrap_err();
            assert!(
                err.starts_with(&format!("{variable}: ")),
                "{flag} {value}: {err}"
            );
        }
        let err = parse(&["--clickhouse-database", "a;b"]).unwrap_err();
        assert!(err.contains("CLICKHOUSE_DATABASE"), "{err}");
    }

    #[test]
    fn defaults_are_the_seed_defaults() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.clickhouse.endpoint().host, "localhost");
        assert_eq!(config.clickhouse.endpoint().port, 8123);
        assert_eq!(config.clickhouse.endpoint().user, "default");
        assert_eq!(config.routes[0].source, ComponentSource::Builtin);
        assert_eq!(
            config.route_defaults.policy.readonly,
            wasmhouse_clickhouse::ReadOnly::Strict
        );
    }
}
