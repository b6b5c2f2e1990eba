//! The host half of the capability: the pooled client that runs guests'
//! queries, their streamed results, cancellation, and the Wasmtime bindings.
//!
//! - [`client`]: [`ClickHousePool`], keep-alive connections and the one
//!   retry (to another replica when there is one); [`RowStream`], a result
//!   read chunk by chunk.
//! - [`replicas`]: the servers behind the pool, the least-busy choice among
//!   them, their health checks and server facts.
//! - [`result_cache`]: results of reads kept for a while, concurrent
//!   identical reads coalesced into one query; beside the pool, which runs
//!   the queries it needs.
//! - [`cancel`]: `KILL QUERY` for abandoned queries (on connections of its
//!   own, bounded).
//! - [`config`]: what the pool is built from.
//! - [`transport`]: transport failures, retries and error bodies.
//! - [`tls`]: HTTPS to ClickHouse: the roots, client certificates, and
//!   TLS failures in words.
//! - [`capability`]: `wasmhouse:clickhouse/query` for guests, on top.
//! - [`metrics`]: what all of it counts, for the host's Prometheus registry.

pub mod cancel;
pub mod capability;
pub mod client;
pub mod config;
pub mod metrics;
pub mod replicas;
pub mod result_cache;
pub mod tls;
pub mod transport;

pub use capability::{CacheReport, ClickHouseView, OnWait, QueryContext, add_to_linker};
pub use client::{ClickHousePool, QueryRequest, RowStream};
pub use config::{ClickHouseConfig, PoolError};
pub use metrics::{CacheLookup, ClickHouseMetrics};
pub use replicas::{Replica, ServerInfo};
pub use result_cache::{Freshness, ResultCache};
