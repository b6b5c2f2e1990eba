//! Components built into the binary by `build.rs`, so `cargo build` alone
//! makes a working `wasmhouse`.

/// The default route component: the seed service's routes (`guest/`).
pub static BUILTIN_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_guest.wasm"));

/// The SQL route component: serves the `.sql` file its configuration
/// holds (`sql-route/`, `guest-sql/`), for manifest routes with `sql = …`.
pub static SQL_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_sql_guest.wasm"));

/// The adapter: `wasmhouse:clickhouse/query` over outgoing `wasi:http`
/// (`adapter/`), plugged into route components by `wasmhouse compose`.
pub(crate) static ADAPTER_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/wasmhouse_adapter.wasm"));
