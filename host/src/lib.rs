//! wasmhouse serves HTTP APIs over ClickHouse. Route logic is a WebAssembly
//! component; every request gets a fresh, sandboxed instance of it, whose only
//! capability is running queries through the host's pooled ClickHouse
//! connections (the `wasmhouse:clickhouse/query` WIT interface, implemented
//! by the `wasmhouse-clickhouse` crate).
//!
//! # Layout
//!
//! Serving a request (see ARCHITECTURE.md for the path through the files):
//!
//! - [`server`]: [`serve`] a configuration on a bound listener (worker
//!   threads, graceful shutdown).
//! - [`dispatch`]: one request in order: admin check, route lookup, access,
//!   limits, what the guest sees of it, a fresh instance.
//! - [`request_id`]: the `X-Request-Id` every response carries.
//! - [`runtime`]: the Wasmtime engine, component compilation, one request's
//!   store and instance. Knows nothing of routes.
//!
//! Changing what is served:
//!
//! - [`deploy`]: the route table, deploy / roll back / reload, the bounded
//!   compile cache, the file watcher, deployments shared by a fleet.
//! - [`admin`]: the admin HTTP API, on top of [`deploy`].
//! - [`access`]: API keys and rate limits per route; [`credentials`]: bearer
//!   tokens read one way, secrets kept from guests.
//! - [`openapi`]: `/openapi.json`, merged from what each component says of
//!   itself; [`docs`]: the `/docs` page that browses and tries it.
//! - [`signals`]: SIGINT/SIGTERM shut down, SIGHUP reloads.
//! - [`telemetry`]: logs (human or JSON), request spans, OTLP export.
//!
//! Configuration and the rest:
//!
//! - [`config`]: flags and environment variables (the FastAPI service's
//!   names), validated into a [`ServeConfig`]; the defaults.
//! - [`manifest`]: `wasmhouse.toml` (or `spin.toml`): routes and their limits.
//! - [`route_settings`]: a route's settings in layers (flags, `[defaults]`,
//!   `[[route]]`), all checked by one `apply`.
//! - [`metrics`]: what the host counts, in Prometheus' text format.
//! - [`respond`]: the JSON error responses the host writes itself.
//! - [`embedded`]: the components built into the binary.
//! - [`units`]: byte sizes in flags and manifests.
//! - [`load`]: `wasmhouse load`, a small load generator.
//! - [`healthcheck`]: `wasmhouse healthcheck`, the container's health probe.
//! - [`compose`]: `wasmhouse compose`, the adapter plugged into a component.

pub mod access;
pub mod admin;
pub mod compose;
pub mod config;
pub mod credentials;
pub mod deploy;
pub mod dispatch;
pub mod docs;
pub mod embedded;
pub mod healthcheck;
pub mod load;
pub mod manifest;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod respond;
pub mod route_settings;
pub mod runtime;
pub mod server;
pub mod signals;
pub mod telemetry;
pub mod units;

pub use config::{ServeArgs, ServeConfig};
pub use server::{Server, serve};
