//! The host half of the capability: the pooled client that runs guests'
//! queries, their streamed results, cancellation, and the Wasmtime bindings.
//!
//! - [`client`]: [`ClickHousePool`], keep-alive connections and the one
//!   retry; [`RowStream`], a result read chunk by chunk, cancelled with
//!   `KILL QUERY` (on connections of its own, bounded) when abandoned.
//! - [`transport`]: transport failures, retries and error bodies.
//! - [`capability`]: `wasmhouse:clickhouse/query` for guests, on top.
//! - [`metrics`]: what all of it counts, for the host's Prometheus registry.

pub mod capability;
pub mod client;
pub mod metrics;
pub mod transport;

pub use capability::{ClickHouseView, QueryContext, add_to_linker};
pub use client::{
    ClickHouseConfig, ClickHousePool, PoolError, QueryRequest, RowStream, ServerInfo,
};
pub use metrics::ClickHouseMetrics;
