//! One request through one component: a fresh store (its WASI contexts,
//! its memory budget, its share of the CPU), a fresh instance, the guest's
//! `incoming-handler`, and every way that can fail mapped to a JSON response.
//! Which component, and under which limits, is the caller's business: this
//! module knows nothing of routes or deployments.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::time::Instant;
use tracing::Instrument as _;
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use wasmhouse_clickhouse::QueryContext;

use super::cpu::CpuShare;

use super::Runtime;
use super::component::RouteComponent;
use super::store::{MemoryLimitExceeded, RequestState};
use crate::metrics::{FaultKind, InstanceSlot, RouteMetrics};
use crate::respond::{self, ResponseBody};

/// A request body as the guest reads it, already capped at the size limit.
pub(crate) type RequestBody = UnsyncBoxBody<bytes::Bytes, wasmtime_wasi_http::Error>;

/// Default wall-clock budget of one request, ClickHouse time included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-request limits of a route's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InstanceLimits {
    /// Wall-clock budget for the whole request, ClickHouse time included.
    pub(crate) timeout: Duration,
    /// Largest linear memory the instance may grow to, in bytes.
    pub(crate) memory_bytes: usize,
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
pub(crate) struct Invocation<'a> {
    /// Who the instance serves, for logs (the route's name).
    pub(crate) label: &'a str,
    /// The request's id, for logs and error bodies.
    pub(crate) request_id: &'a str,
    /// The instance's limits.
    pub(crate) limits: InstanceLimits,
    /// When the whole request must be done.
    pub(crate) deadline: Instant,
    /// The request's ClickHouse capability.
    pub(crate) query: QueryContext,
    /// Its slot among the instances in flight, given back when the guest is
    /// done (after the body is streamed, not when the headers are sent).
    pub(crate) slot: InstanceSlot,
    /// Where its faults and instantiation time are counted.
    pub(crate) metrics: Arc<RouteMetrics>,
    /// What it reads through `wasi:config/store` (its route's `config`).
    pub(crate) config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
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
pub(crate) async fn run(
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
        config,
    } = invocation;
    // The code it starts with serves the whole request, even if optimised
    // code replaces it meanwhile.
    let code = component.code();
    let large = component.size() >= super::cpu::LARGE_COMPONENT_BYTES;
    let (mut store, share) = new_store(runtime, code.engine(), limits, query, deadline, config);

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
        let cpu = runtime.cpu().clone();
        let route_name = label.to_owned();
        let request_id = request_id.to_owned();
        async move {
            // The instance slot is free again only when the guest is done.
            let _slot = slot;
            let run = async {
                // An interpreter's start waits for one of the cores.
                if large {
                    cpu.take_turn(&share).await;
                }
                let started = std::time::Instant::now();
                let proxy = code
                    .pre()
                    .instantiate_async(&mut store)
                    .await
                    .map_err(classify_instantiation)?;
                share.instantiated();
                metrics.instantiated(started.elapsed().as_secs_f64());
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(classify_trap)
            };
            let outcome = tokio::time::timeout_at(deadline, run).await;
            metrics.memory_grown(store.data().memory.grows());
            let failure = match outcome {
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
    engine: &wasmtime::Engine,
    limits: InstanceLimits,
    query: QueryContext,
    deadline: Instant,
    config: Arc<wasmtime_wasi_config::WasiConfigVariables>,
) -> (Store<RequestState>, Arc<CpuShare>) {
    // Every tick, running guest code yields; past the deadline it stops.
    let (callback, share) = runtime.cpu().epoch_callback(deadline.into_std());
    let query = query.with_on_wait(share.clone());
    let state = RequestState::new(limits.memory_bytes, query, config);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_callback(callback);
    store.set_epoch_deadline(1);
    (store, share)
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
