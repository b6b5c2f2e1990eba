//! The host half of the capability: the pooled client that runs guests'
//! queries, their streamed results, cancellation, and the Wasmtime bindings.
//!
//! - [`client`]: [`ClickHousePool`], keep-alive connections and the one retry.
//! - [`rows`]: [`RowStream`], a result read chunk by chunk, cancelled with
//!   `KILL QUERY` (on connections of its own, bounded) when abandoned.
//! - [`transport`]: transport failures, retries and error bodies.
//! - [`capability`]: `wasmhouse:clickhouse/query` for guests, on top.

pub mod capability;
pub mod client;
pub mod rows;
pub mod transport;

pub use capability::{ClickHouseView, QueryContext, add_to_linker};
pub use client::{ClickHouseConfig, ClickHousePool, PoolError, QueryRequest, ServerInfo};
pub use rows::RowStream;
