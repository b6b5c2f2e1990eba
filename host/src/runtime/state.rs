//! What one request's `Store` holds, and the views the bindings reach it by.

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::clickhouse::{ClickHouseView, QueryContext};

/// How much of a guest's stderr is kept for the log when it fails.
const STDERR_CAPACITY: usize = 16 * 1024;

/// The data of one request's store: WASI contexts, the resource table, the
/// memory limiter and the ClickHouse capability. Created per request, dropped
/// with the instance; nothing in it outlives the request.
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: GuestHttpPolicy,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    query: QueryContext,
    stderr: MemoryOutputPipe,
}

impl RequestState {
    /// State for one request under `limits`, querying through `query`.
    pub fn new(limits: StoreLimits, query: QueryContext) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // No environment, no preopened directories, no sockets: the guest's
        // only way out is its ClickHouse import.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            hooks: GuestHttpPolicy,
            table: ResourceTable::new(),
            limits,
            query,
            stderr,
        }
    }

    /// What the guest wrote to stderr (a panic message, say), lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    /// The ClickHouse capability's view of this state.
    pub fn clickhouse(&mut self) -> ClickHouseView<'_> {
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
