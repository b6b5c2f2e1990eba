//! wasmhouse serves HTTP APIs over ClickHouse. Route logic is a WebAssembly
//! component; every request gets a fresh, sandboxed instance of it, whose only
//! capability is running queries through the host's pooled ClickHouse
//! connections (the `wasmhouse:clickhouse/query` WIT interface, implemented
//! by the `wasmhouse-clickhouse` crate).
//!
//! # Public API
//!
//! What the `wasmhouse` binary, the tests and a program embedding the host
//! use, and nothing else: [`ServeArgs`] (flags and environment) into a
//! [`ServeConfig`], then [`serve`] it on a bound listener (or
//! [`serve_until_signalled`], or [`Server`] to hold it); the built-in
//! routes' component ([`BUILTIN_COMPONENT`]); the request budget's default
//! ([`DEFAULT_REQUEST_TIMEOUT`]); and the modules of the binary's other
//! commands: [`load`], [`healthcheck`], [`compose`], [`telemetry`]. The
//! rest is private to the crate (`pub(crate)`); the benchmarks reach what
//! they measure through a hidden `bench` module.
//!
//! # Layout
//!
//! Serving a request (see ARCHITECTURE.md for the path through the files):
//!
//! - `server`: [`serve`] a configuration on a bound listener (worker
//!   threads, graceful shutdown).
//! - `dispatch`: one request in order: admin check, route lookup, access,
//!   limits, what the guest sees of it, a fresh instance.
//! - `request_id`: the `X-Request-Id` every response carries.
//! - `runtime`: the Wasmtime engine, component compilation, one request's
//!   store and instance. Knows nothing of routes.
//!
//! Changing what is served:
//!
//! - `deploy`: the route table, deploy / roll back / reload, the bounded
//!   compile cache, the file watcher, deployments shared by a fleet.
//! - `admin`: the admin HTTP API, on top of `deploy`.
//! - `access`: API keys and rate limits per route; `credentials`: bearer
//!   tokens read one way, secrets kept from guests.
//! - `openapi`: `/openapi.json`, merged from what each component says of
//!   itself; `docs`: the `/docs` page that browses and tries it.
//! - `signals`: SIGINT/SIGTERM shut down, SIGHUP reloads.
//! - [`telemetry`]: logs (human or JSON), request spans, OTLP export.
//!
//! Configuration and the rest:
//!
//! - `config`: flags and environment variables (the FastAPI service's
//!   names), validated into a [`ServeConfig`]; the defaults.
//! - `manifest`: `wasmhouse.toml` (or `spin.toml`): routes and their limits.
//! - `route_settings`: a route's settings in layers (flags, `[defaults]`,
//!   `[[route]]`), all checked by one `apply`.
//! - `metrics`: what the host counts, in Prometheus' text format.
//! - `respond`: the JSON error responses the host writes itself.
//! - `embedded`: the components built into the binary.
//! - `units`: byte sizes in flags and manifests.
//! - [`load`]: `wasmhouse load`, a small load generator.
//! - [`healthcheck`]: `wasmhouse healthcheck`, the container's health probe.
//! - [`compose`]: `wasmhouse compose`, the adapter plugged into a component.
//! - [`project`]: `wasmhouse new`, `build` and `dev`: route projects, their
//!   templates (compiled in), their builds and the development loop.

mod access;
mod admin;
mod config;
mod credentials;
mod deploy;
mod dispatch;
mod docs;
mod embedded;
mod errors;
mod log_text;
mod manifest;
mod metrics;
mod openapi;
mod registry;
mod request_id;
mod respond;
mod route_settings;
mod runtime;
mod secrets;
mod server;
mod signals;
mod units;

pub mod compose;
pub mod healthcheck;
pub mod load;
pub mod project;
pub mod publish;
pub mod telemetry;

pub use config::{ServeArgs, ServeConfig, env_file};
pub use embedded::{BUILTIN_COMPONENT, SQL_COMPONENT};
pub use runtime::Compilation;
pub use runtime::instance::DEFAULT_REQUEST_TIMEOUT;
pub use server::{Server, serve, serve_until_signalled};

#[doc(hidden)]
pub mod bench;
