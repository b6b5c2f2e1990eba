//! The `wasmhouse:clickhouse` capability: what a route component may ask of
//! ClickHouse, and how it is done for it.
//!
//! Built like wasmtime's `wasi-config` and Spin's outbound-pg factor: one
//! crate holds the capability's WIT bindings, its `Host` implementation, the
//! connection pool and the guard-rails. Its plain-logic half has no I/O and
//! builds for `wasm32-wasip2`, so the adapter component (the same interface
//! over outgoing `wasi:http`, for other runtimes) shares every rule with the
//! host instead of copying it.
//!
//! # Layout
//!
//! Plain logic, shared with the adapter:
//!
//! - [`endpoint`]: where ClickHouse is; `CLICKHOUSE_URL` parsing.
//! - [`policy`]: a route's guard-rails: read-only level, server-side caps,
//!   allowed settings, and the settings that enforce them on every query.
//! - [`lexer`]: the one reading of guest SQL, ClickHouse's lexer as every
//!   supported server runs it; what servers read differently is refused.
//! - [`catalog`]: every function, engine, system table and setting the
//!   servers list, classified; only what is known and safe is allowed.
//! - [`statement`]: the statement check, on the tokens ClickHouse will read
//!   (after binding) before anything reaches ClickHouse.
//! - [`params`]: `{name:Type}` placeholders, values checked and bound as data.
//! - [`settings`]: which settings a guest may pass, and which are the host's.
//! - [`response`]: ClickHouse's error texts, and holding back a result's tail
//!   until it is known not to be an exception appended after `200 OK`.
//! - [`error`]: [`QueryError`], the failures a guest sees.
//!
//! With the `host` feature (default), the host half:
//!
//! - `host::capability`: the WIT bindings and the `Host` implementation.
//! - `host::client`: the pooled keep-alive HTTP client, query ids, retries;
//!   results streamed chunk by chunk.
//! - `host::result_cache`: reads answered from memory, beside the pool.
//! - `host::replicas`: several servers, least-busy choice, health checks.
//! - `host::cancel`: abandoned queries cancelled with `KILL QUERY`, bounded.
//! - `host::transport`: transport failures in words a guest may see.

pub mod catalog;
pub mod endpoint;
pub mod error;
pub mod lexer;
pub mod params;
pub mod policy;
pub mod response;
pub mod settings;
pub mod statement;

#[cfg(feature = "host")]
pub mod host;

pub use endpoint::{Endpoint, Scheme};
pub use error::QueryError;
pub use policy::{QueryPolicy, ReadOnly};

#[cfg(feature = "host")]
pub use host::{
    CacheReport, ClickHouseConfig, ClickHouseMetrics, ClickHousePool, ClickHouseView, OnWait,
    QueryContext, ResultCache, add_to_linker,
};
