//! One request through one component: a fresh store, a fresh instance, the
//! guest's `incoming-handler`, and every way that can fail mapped to a JSON
//! response.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use wasmtime::{Store, Trap};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::state::MemoryLimitExceeded;
use super::{RequestState, Runtime};
use crate::respond::{self, ResponseBody};
use crate::routes::Route;
use wasmhouse_clickhouse::{ClickHousePool, QueryContext, QueryPolicy};

/// Header carrying the path below the route's prefix (Spin's name for it).
const PATH_INFO: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("spin-path-info");
/// Header carrying the prefix of the route that matched.
const COMPONENT_ROUTE: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("spin-component-route");

/// The part of `path` below `prefix`, starting with `/`.
fn path_info<'a>(prefix: &str, path: &'a str) -> &'a str {
    if prefix == "/" {
        return path;
    }
    match path.strip_prefix(prefix) {
        Some("") | None => "/",
        Some(rest) => rest,
    }
}

/// A request body as the guest reads it, already capped at the size limit.
pub type RequestBody = UnsyncBoxBody<bytes::Bytes, wasmtime_wasi_http::Error>;

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
            timeout: Duration::from_secs(30),
            memory_bytes: 64 << 20,
        }
    }
}

/// Everything a request needs besides the component itself.
#[derive(Clone)]
pub struct RouteContext {
    /// The route's name, for logs.
    pub name: Arc<str>,
    /// Limits for this route's instances.
    pub limits: InstanceLimits,
    /// Guard-rails for this route's queries.
    pub policy: Arc<QueryPolicy>,
    /// The shared ClickHouse pool.
    pub pool: Arc<ClickHousePool>,
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

/// Serve `request` with a fresh instance of `component`.
pub async fn handle(
    runtime: &Runtime,
    route: &Route,
    request_id: &str,
    mut request: hyper::Request<RequestBody>,
    permit: OwnedSemaphorePermit,
) -> hyper::Response<ResponseBody> {
    let component = route.component();
    let table_entry = route;
    let route = route.context();
    let deadline = Instant::now() + route.limits.timeout;
    let mut store = new_store(runtime, route, deadline);

    // wasi:http needs an authority; HTTP/1.0 clients may send no Host.
    if !request.headers().contains_key(hyper::header::HOST) {
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("localhost"),
        );
    }
    // Like Spin: the guest sees the full path, and the part after its
    // route's prefix in `spin-path-info`.
    if let Ok(value) =
        hyper::header::HeaderValue::from_str(path_info(table_entry.prefix(), request.uri().path()))
    {
        request.headers_mut().insert(PATH_INFO, value);
    }
    request
        .headers_mut()
        .insert(COMPONENT_ROUTE, table_entry.prefix_header().clone());
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
            tracing::error!(request_id, route = %route.name, error = ?err, "host bug: preparing the request for the guest");
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
        let component = component.clone();
        let route_name = route.name.clone();
        let request_id = request_id.to_owned();
        async move {
            // The instance slot is free again only when the guest is done.
            let _permit = permit;
            let run = async {
                let proxy = component
                    .pre()
                    .instantiate_async(&mut store)
                    .await
                    .map_err(classify_instantiation)?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(classify_trap)
            };
            let failure = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(failure)) => failure,
                Err(_) => GuestFailure::Timeout,
            };
            // Logged here, where the guest's stderr is: after the headers
            // went out nobody else hears of it (the body is cut short, so the
            // client sees an error rather than a short body).
            log_failure(&route_name, &request_id, &failure, &store.data().stderr());
            Err(failure)
        }
    });

    // If the client goes away before the response starts, this future is
    // dropped; take the guest (and its query) down with it.
    let mut task = AbortOnDrop(Some(task));
    match receiver.await {
        Ok(Ok(response)) if response.status().is_informational() => {
            // hyper cannot send a 1xx (or a 101 upgrade) as the final answer.
            tracing::warn!(request_id, route = %route.name, status = %response.status(), "guest answered with an informational status");
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
            tracing::warn!(request_id, route = %route.name, ?code, "guest answered with an error code");
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
                    tracing::warn!(request_id, route = %route.name, "guest returned without a response");
                    GuestFailure::NoResponse
                }
                Ok(Err(failure)) => failure,
                Err(join) => {
                    tracing::error!(request_id, route = %route.name, error = %join, "host bug: the guest task failed");
                    GuestFailure::Trap(wasmtime::format_err!("guest task failed: {join}"))
                }
            };
            failure_response(&failure, route, request_id)
        }
    }
}

fn new_store(runtime: &Runtime, route: &RouteContext, deadline: Instant) -> Store<RequestState> {
    let query = QueryContext::new(route.pool.clone(), route.policy.clone(), deadline);
    let state = RequestState::new(route.limits.memory_bytes, query);
    let mut store = Store::new(runtime.engine(), state);
    store.limiter(|state| &mut state.memory);
    // Every tick, running guest code yields; past the deadline it stops.
    store.epoch_deadline_callback(runtime.cpu().epoch_callback(deadline.into_std()));
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
    route: &RouteContext,
    request_id: &str,
) -> hyper::Response<ResponseBody> {
    match failure {
        GuestFailure::Timeout => respond::error(
            504,
            "timeout",
            &format!(
                "the route did not answer within its {} ms budget",
                route.limits.timeout.as_millis()
            ),
            request_id,
        ),
        GuestFailure::MemoryLimit => respond::error(
            500,
            "memory_limit",
            &format!(
                "the route tried to use more than its {} MiB memory limit",
                route.limits.memory_bytes >> 20
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

#[cfg(test)]
mod tests {
    use super::path_info;

    #[test]
    fn path_info_is_the_part_below_the_prefix() {
        assert_eq!(path_info("/", "/health"), "/health");
        assert_eq!(path_info("/api", "/api/users"), "/users");
        assert_eq!(path_info("/api", "/api"), "/");
    }
}
