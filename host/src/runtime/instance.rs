//! One request through one component: a fresh store (its WASI contexts,
//! its memory budget, its share of the CPU), a fresh instance, the guest's
//! `incoming-handler`, and every way that can fail mapped to a JSON response.
//! Which component, and under which limits, is the caller's business: this
//! module knows nothing of routes or deployments.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument as _;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, StoreContextMut, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use wasmhouse_clickhouse::{ClickHouseView, OnWait, QueryContext};

use super::Runtime;
use super::component::RouteComponent;
use crate::metrics::{FaultKind, InstanceSlot, RouteMetrics};
use crate::respond::{self, ResponseBody};

/// A request body as the guest reads it, already capped at the size limit.
pub type RequestBody = UnsyncBoxBody<bytes::Bytes, wasmtime_wasi_http::Error>;

/// Default wall-clock budget of one request, ClickHouse time included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-request limits of a route's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Wall-clock budget for the whole request, ClickHouse time included.
    pub timeout: Duration,
    /// Largest linear memory the instance may grow to, in bytes.
    pub memory_bytes: usize,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_REQUEST_TIMEOUT,
            memory_bytes: super::DEFAULT_MEMORY_LIMIT,
        }
    }
}

/// One request's instance: what it runs under, besides the component.
pub struct Invocation<'a> {
    /// Who the instance serves, for logs (the route's name).
    pub label: &'a str,
    /// The request's id, for logs and error bodies.
    pub request_id: &'a str,
    /// The instance's limits.
    pub limits: InstanceLimits,
    /// When the whole request must be done.
    pub deadline: Instant,
    /// The request's ClickHouse capability.
    pub query: QueryContext,
    /// Its slot among the instances in flight, given back when the guest is
    /// done (after the body is streamed, not when the headers are sent).
    pub slot: InstanceSlot,
    /// Where its faults and instantiation time are counted.
    pub metrics: Arc<RouteMetrics>,
}

/// How a guest failed to produce a response.
#[derive(Debug)]
enum GuestFailure {
    /// It ran past the request's budget.
    Timeout,
    /// It tried to grow its memory past the limit.
    MemoryLimit,
    /// No instance slot was free.
    Exhausted(String),
    /// It trapped (a panic, an `unreachable`, a bad access...).
    Trap(wasmtime::Error),
    /// It returned without setting a response.
    NoResponse,
}

impl GuestFailure {
    /// How the failure is counted; `None` when it is not the guest's doing.
    fn kind(&self) -> Option<FaultKind> {
        match self {
            Self::Timeout => Some(FaultKind::timeout),
            Self::MemoryLimit => Some(FaultKind::memory_limit),
            Self::Exhausted(_) => None,
            Self::Trap(_) => Some(FaultKind::trap),
            Self::NoResponse => Some(FaultKind::no_response),
        }
    }
}

/// Serve `request` with a fresh instance of `component`.
pub async fn run(
    runtime: &Runtime,
    component: Arc<RouteComponent>,
    invocation: Invocation<'_>,
    mut request: hyper::Request<RequestBody>,
) -> hyper::Response<ResponseBody> {
    let Invocation {
        label,
        request_id,
        limits,
        deadline,
        query,
        slot,
        metrics,
    } = invocation;
    let mut store = new_store(runtime, limits, query, deadline);

    // wasi:http needs an authority; HTTP/1.0 clients may send no Host.
    if !request.headers().contains_key(hyper::header::HOST) {
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("localhost"),
        );
    }
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let setup = (|| -> wasmtime::Result<_> {
        let mut http = store.data_mut().http();
        let incoming = http.new_incoming_request(Scheme::Http, request)?;
        let outparam = http.new_response_outparam(sender)?;
        Ok((incoming, outparam))
    })();
    let (incoming, outparam) = match setup {
        Ok(handles) => handles,
        Err(err) => {
            tracing::error!(request_id, route = label, error = ?err, "host bug: preparing the request for the guest");
            return respond::error(
                500,
                "internal",
                "the host could not prepare the request",
                request_id,
            );
        }
    };

    // The guest runs in its own task: after it sets the response it keeps
    // running to stream the body, while hyper sends what it writes.
    let task = tokio::spawn({
        let metrics = metrics.clone();
        let route_name = label.to_owned();
        let request_id = request_id.to_owned();
        async move {
            // The instance slot is free again only when the guest is done.
            let _slot = slot;
            let run = async {
                let started = std::time::Instant::now();
                let proxy = component
                    .pre()
                    .instantiate_async(&mut store)
                    .await
                    .map_err(classify_instantiation)?;
                metrics.instantiated(started.elapsed().as_secs_f64());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(classify_trap)
            };
            let failure = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => {
                    // A guest's own diagnostics, attributed to its request.
                    let stderr = store.data().stderr();
                    if !stderr.trim().is_empty() {
                        tracing::info!(guest_stderr = stderr.trim(), "guest wrote to stderr");
                    }
                    return Ok(());
                }
                Ok(Err(failure)) => failure,
                Err(_) => GuestFailure::Timeout,
            };
            // Logged here, where the guest's stderr is: after the headers
            // went out nobody else hears of it (the body is cut short, so the
            // client sees an error rather than a short body).
            log_failure(&route_name, &request_id, &failure, &store.data().stderr());
            if let Some(kind) = failure.kind() {
                metrics.fault(kind);
            }
            Err(failure)
        }
        // The request's span, so the guest's log lines carry its id.
        .instrument(tracing::Span::current())
    });

    // If the client goes away before the response starts, this future is
    // dropped; take the guest (and its query) down with it.
    let mut task = AbortOnDrop(Some(task));
    match receiver.await {
        Ok(Ok(response)) if response.status().is_informational() => {
            metrics.fault(FaultKind::error_response);
            // hyper cannot send a 1xx (or a 101 upgrade) as the final answer.
            tracing::warn!(request_id, route = label, status = %response.status(), "guest answered with an informational status");
            respond::error(
                500,
                "guest_error",
                &format!(
                    "the route answered {}, which is not a final response",
                    response.status().as_u16()
                ),
                request_id,
            )
        }
        Ok(Ok(response)) => {
            // The guest streams the body on; its task lives until it is done.
            drop(task.disarm());
            response.map(|body| body.map_err(respond::BodyError::from).boxed_unsync())
        }
        Ok(Err(code)) => {
            metrics.fault(FaultKind::error_response);
            tracing::warn!(
                request_id,
                route = label,
                ?code,
                "guest answered with an error code"
            );
            respond::error(
                500,
                "guest_error",
                &format!("the route answered with error {code:?}"),
                request_id,
            )
        }
        Err(_) => {
            let failure = match task.disarm().await {
                Ok(Ok(())) => {
                    metrics.fault(FaultKind::no_response);
                    tracing::warn!(
                        request_id,
                        route = label,
                        "guest returned without a response"
                    );
                    GuestFailure::NoResponse
                }
                Ok(Err(failure)) => failure,
                Err(join) => {
                    tracing::error!(request_id, route = label, error = %join, "host bug: the guest task failed");
                    GuestFailure::Trap(wasmtime::format_err!("guest task failed: {join}"))
                }
            };
            failure_response(&failure, limits, request_id)
        }
    }
}

fn new_store(
    runtime: &Runtime,
    limits: InstanceLimits,
    query: QueryContext,
    deadline: Instant,
) -> Store<RequestState> {
    // Every tick, running guest code yields; past the deadline it stops.
    let (callback, share) = runtime.cpu().epoch_callback(deadline.into_std());
    let query = query.with_on_wait(share);
    let state = RequestState::new(limits.memory_bytes, query);
    let mut store = Store::new(runtime.engine(), state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_callback(callback);
    store.set_epoch_deadline(1);
    store
}

fn classify_instantiation(err: wasmtime::Error) -> GuestFailure {
    if err.is::<wasmtime::PoolConcurrencyLimitError>() {
        GuestFailure::Exhausted(format!("{err:#}"))
    } else {
        classify_trap(err)
    }
}

fn classify_trap(err: wasmtime::Error) -> GuestFailure {
    if let Some(trap) = err.downcast_ref::<Trap>()
        && *trap == Trap::Interrupt
    {
        return GuestFailure::Timeout;
    }
    if err.is::<MemoryLimitExceeded>() {
        return GuestFailure::MemoryLimit;
    }
    GuestFailure::Trap(err)
}

fn failure_response(
    failure: &GuestFailure,
    limits: InstanceLimits,
    request_id: &str,
) -> hyper::Response<ResponseBody> {
    match failure {
        GuestFailure::Timeout => respond::error(
            504,
            "timeout",
            &format!(
                "the route did not answer within its {} ms budget",
                limits.timeout.as_millis()
            ),
            request_id,
        ),
        GuestFailure::MemoryLimit => respond::error(
            500,
            "memory_limit",
            &format!(
                "the route tried to use more than its {} MiB memory limit",
                limits.memory_bytes >> 20
            ),
            request_id,
        ),
        GuestFailure::Exhausted(_) => respond::overloaded(request_id),
        GuestFailure::Trap(_) => respond::error(
            500,
            "trap",
            "the route crashed (trapped); see the host log",
            request_id,
        ),
        GuestFailure::NoResponse => respond::error(
            500,
            "no_response",
            "the route returned without sending a response",
            request_id,
        ),
    }
}

fn log_failure(route: &str, request_id: &str, failure: &GuestFailure, stderr: &str) {
    let stderr = stderr.trim();
    match failure {
        GuestFailure::Trap(err) => {
            tracing::error!(request_id, route, guest_stderr = stderr, error = ?err, "guest trapped");
        }
        GuestFailure::Exhausted(why) => {
            tracing::warn!(request_id, route, why, "no instance slot free");
        }
        other => {
            tracing::warn!(request_id, route, guest_stderr = stderr, failure = ?other, "guest failed");
        }
    }
}

/// Aborts the guest's task if the request is abandoned while it runs.
struct AbortOnDrop<T>(Option<tokio::task::JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    /// Keep the task running; hand over its handle.
    fn disarm(&mut self) -> tokio::task::JoinHandle<T> {
        self.0.take().expect("disarmed once")
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// What one request's store holds, and the views the bindings reach it by.
// ---------------------------------------------------------------------------
/// How much of a guest's stderr is kept for the log when it fails.
const STDERR_CAPACITY: usize = 16 * 1024;

/// Most host resources (HTTP fields, bodies, streams, results, …) one
/// instance may hold at once. Each costs host memory the instance's memory
/// limit does not see; a Rust guest needs a few dozen.
pub const MAX_RESOURCES: usize = 256;

/// Largest header set (`fields`) a guest may build, in bytes of the host's
/// in-memory representation.
pub const MAX_FIELDS_BYTES: usize = 64 * 1024;

/// Most elements all of an instance's tables may have together.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The instance tried to grow its memory past its limit.
#[derive(Debug, thiserror::Error)]
#[error("the instance tried to use more than its {limit} bytes of memory")]
pub struct MemoryLimitExceeded {
    /// The limit, in bytes.
    pub limit: usize,
}

/// One instance's memory budget, counted over all of its linear memories
/// together (a composed component has several): a per-memory limit would
/// let four memories use four times the budget.
pub struct InstanceMemory {
    limit: usize,
    used: usize,
    tables: usize,
}

impl InstanceMemory {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            tables: 0,
        }
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
pub struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: GuestHttpPolicy,
    table: ResourceTable,
    pub(crate) memory: InstanceMemory,
    query: QueryContext,
    stderr: MemoryOutputPipe,
}

impl RequestState {
    /// State for one request with `memory_limit` bytes of linear memory,
    /// querying through `query`.
    pub fn new(memory_limit: usize, query: QueryContext) -> Self {
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

// ---------------------------------------------------------------------------
// Sharing the CPU between guests.
//
// Guest code runs on the same tokio worker threads as everything else, and
// wasm does not yield on its own. Every epoch tick a running guest is
// interrupted and yields. A guest that keeps computing for more than
// [`HEAVY_AFTER_TICKS`] ticks is *heavy*: from then on it must hold one of a
// few CPU slots to run, and heavy guests take turns on them. There is one
// slot fewer than worker threads, so a guest stuck in a loop can slow other
// heavy guests but never the ordinary requests.
// ---------------------------------------------------------------------------
/// Ticks of computing after which a guest counts as heavy.
pub const HEAVY_AFTER_TICKS: u32 = 2;

/// The slots heavy guests take turns on.
#[derive(Clone)]
pub struct CpuSlots {
    slots: Arc<Semaphore>,
}

impl CpuSlots {
    /// Slots for a runtime with `workers` worker threads.
    pub fn new(workers: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(workers.saturating_sub(1).max(1))),
        }
    }

    /// Slots for the current machine's parallelism (tokio's default number of
    /// worker threads).
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The epoch callback for one store: stop the guest at `deadline`, yield
    /// every tick, and make it queue for a slot once it is heavy; and the
    /// store's [`CpuShare`], to give the slot up while the guest waits.
    pub fn epoch_callback<T>(
        &self,
        deadline: std::time::Instant,
    ) -> (
        impl FnMut(StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> + Send + Sync + 'static,
        Arc<CpuShare>,
    ) {
        let slots = self.slots.clone();
        let share = Arc::new(CpuShare::default());
        let callback = {
            let share = share.clone();
            move |_: StoreContextMut<'_, T>| {
                if std::time::Instant::now() >= deadline {
                    return Ok(UpdateDeadline::Interrupt);
                }
                let ticks = share.ticks.fetch_add(1, Ordering::Relaxed) + 1;
                if ticks < HEAVY_AFTER_TICKS {
                    return Ok(UpdateDeadline::Yield(1));
                }
                // Give the slot up and queue for one again (the queue is fair).
                share.release();
                let slots = slots.clone();
                let share = share.clone();
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(async move {
                        if let Ok(permit) = slots.acquire_owned().await {
                            *share.lock() = Some(permit);
                        }
                    }),
                ))
            }
        };
        (callback, share)
    }
}

/// One store's claim on the CPU slots: how many ticks its guest has computed
/// since it last waited, and the slot it holds once heavy.
///
/// A guest waiting for ClickHouse computes nothing, so it gives its slot up
/// and starts counting afresh ([`CpuShare::waiting`]). Holding the slot
/// through the wait would stall every heavy guest behind one that waits for
/// a pooled connection, itself held by guests queued for the slot: under
/// overload, when every guest turns heavy from yielding alone, that was a
/// standstill until the requests' deadlines.
#[derive(Debug, Default)]
pub struct CpuShare {
    ticks: AtomicU32,
    held: Mutex<Option<OwnedSemaphorePermit>>,
}

impl OnWait for CpuShare {
    /// The guest is about to wait (for ClickHouse): give the slot up, and
    /// count its computing from zero when it runs again.
    fn waiting(&self) {
        self.ticks.store(0, Ordering::Relaxed);
        self.release();
    }
}

impl CpuShare {
    fn release(&self) {
        self.lock().take();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
