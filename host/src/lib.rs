//! wasmhouse serves HTTP APIs over ClickHouse. Route logic is a WebAssembly
//! component; every request gets a fresh, sandboxed instance of it, whose only
//! capability is running queries through the host's pooled ClickHouse
//! connections (the `wasmhouse:clickhouse/query` WIT interface).
//!
//! # Layout
//!
//! - [`server`]: accepts HTTP, shuts down gracefully. [`serve`] takes a
//!   bound listener, so tests run servers on port 0.
//! - [`app`]: the shared state: dispatch, deploy, roll back, reload.
//! - [`routes`]: which component answers which path, with each route's
//!   deployment history.
//! - [`admin`]: the admin HTTP API; [`watch`]: redeploy when files change.
//! - [`runtime`]: the Wasmtime engine (pooling allocator, epochs), component
//!   loading, and the per-request store and instance.
//! - The capability guests get (connection pool, typed parameters,
//!   guard-rails, streamed results) is the `wasmhouse-clickhouse` crate.
//! - [`manifest`]: `wasmhouse.toml` (or `spin.toml`): routes, limits, guard-rails.
//! - [`config`]: flags and environment variables (the FastAPI service's
//!   names), validated at start-up.
//! - [`respond`]: the JSON error responses the host writes itself.
//! - [`load`]: a small concurrent load generator (`wasmhouse load`).
//! - [`compose`]: plug the adapter into a route component for other runtimes.

pub mod admin;
pub mod app;
pub mod compose;
pub mod config;
pub mod load;
pub mod manifest;
pub mod respond;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod watch;

pub use config::{ServeArgs, ServeConfig};
pub use server::serve;
