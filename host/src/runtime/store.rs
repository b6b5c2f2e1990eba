//! What one request's store holds (WASI contexts, the resource table, the
//! memory budget and the ClickHouse capability), the limits on it, and the
//! views the bindings reach it by.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use wasmhouse_clickhouse::{ClickHouseView, QueryContext};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

/// How much of a guest's stderr is kept for the log when it fails.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Most host resources (HTTP fields, bodies, streams, results, …) one
/// instance may hold at once. Each costs host memory the instance's memory
/// limit does not see; a Rust guest needs a few dozen.
pub(crate) const MAX_RESOURCES: usize = 256;

/// Largest header set (`fields`) a guest may build, in bytes of the host's
/// in-memory representation.
pub(crate) const MAX_FIELDS_BYTES: usize = 64 * 1024;

/// Most elements all of an instance's tables may have together.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The instance tried to grow its memory past its limit.
#[derive(Debug, thiserror::Error)]
#[error("the instance tried to use more than its {limit} bytes of memory")]
pub(crate) struct MemoryLimitExceeded {
    /// The limit, in bytes.
    pub(crate) limit: usize,
}

/// One instance's memory budget, counted over all of its linear memories
/// together (a composed component has several): a per-memory limit would
/// let four memories use four times the budget.
pub(crate) struct InstanceMemory {
    limit: usize,
    used: usize,
    tables: usize,
    grows: u64,
}

impl InstanceMemory {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            tables: 0,
            grows: 0,
        }
    }

    /// How often the instance grew a linear memory past its initial size.
    pub(crate) fn grows(&self) -> u64 {
        self.grows
    }
}

impl ResourceLimiter for InstanceMemory {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self.used.saturating_add(desired.saturating_sub(current));
        if used > self.limit {
            // An error, not `Ok(false)`: guests rarely check `memory.grow`,
            // and a trap names the cause where a failed allocation would not.
            return Err(MemoryLimitExceeded { limit: self.limit }.into());
        }
        self.used = used;
        // Creating a memory at its initial size counts here too; only later
        // growth is a `memory.grow`.
        if current > 0 {
            self.grows += 1;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let tables = self.tables.saturating_add(desired.saturating_sub(current));
        if tables > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.tables = tables;
        Ok(true)
    }
}

/// The data of one request's store: WASI contexts, the resource table, the
/// memory limiter and the ClickHouse capability. Created per request, dropped
/// with the instance; nothing in it outlives the request.
pub(crate) struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: GuestHttpPolicy,
    table: ResourceTable,
    pub(crate) memory: InstanceMemory,
    query: QueryContext,
    stderr: MemoryOutputPipe,
    config: Arc<WasiConfigVariables>,
}

impl RequestState {
    /// State for one request with `memory_limit` bytes of linear memory,
    /// querying through `query`, reading its route's `config`.
    pub(crate) fn new(
        memory_limit: usize,
        query: QueryContext,
        config: Arc<WasiConfigVariables>,
    ) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No environment, no preopened directories, no sockets: the guest's
        // only way out is its ClickHouse import.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(MAX_FIELDS_BYTES);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        Self {
            wasi,
            http,
            hooks: GuestHttpPolicy,
            table,
            memory: InstanceMemory::new(memory_limit),
            query,
            stderr,
            config,
        }
    }

    /// `wasi:config/store`'s view of this state: the route's configuration.
    pub(crate) fn config(&mut self) -> WasiConfig<'_> {
        WasiConfig::new(&self.config)
    }

    /// What the guest wrote to stderr (a panic message, say), lossily decoded.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// The ClickHouse capability's view of this state.
    pub(crate) fn clickhouse(&mut self) -> ClickHouseView<'_> {
        ClickHouseView {
            ctx: &mut self.query,
            table: &mut self.table,
        }
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Guests may not send HTTP requests of their own: ClickHouse is reached
/// through the query interface, and nothing else is reachable at all.
struct GuestHttpPolicy;

impl WasiHttpHooks for GuestHttpPolicy {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
