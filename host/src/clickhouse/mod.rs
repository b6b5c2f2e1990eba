//! The ClickHouse capability: what guests can ask of ClickHouse, and how the
//! host does it for them.
//!
//! - [`pool`]: the shared keep-alive HTTP connection pool, credentials,
//!   query ids, the one retry on a stale connection.
//! - `{name:Type}` parameters are bound by [`wasmhouse_sql::params`], shared
//!   with the adapter component.
//! - [`policy`]: per-route guard-rails (read-only, limits, allowed settings).
//! - [`stream`]: results streamed chunk by chunk, errors after `200 OK`
//!   detected, abandoned queries cancelled.
//! - [`error`]: failures, split into the cases the guest sees.
//! - [`capability`]: the `wasmhouse:clickhouse/query` WIT interface on top.

pub mod capability;
pub mod error;
pub mod policy;
pub mod pool;
pub mod stream;

pub use capability::{ClickHouseView, QueryContext};
pub use error::QueryError;
pub use policy::QueryPolicy;
pub use pool::{ClickHouseConfig, ClickHousePool, QueryRequest, ServerInfo};
pub use stream::RowStream;
