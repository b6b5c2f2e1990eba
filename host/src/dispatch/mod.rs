//! The [`Dispatcher`]: one request from hyper to a guest and back, in
//! order: `/metrics` and the admin API, a request id, `/openapi.json` and
//! `/docs`, the route lookup, the route's API key and rate limits, the
//! limits that apply before any instance exists (body size, the bounded
//! wait for an instance slot), what the guest sees of the request
//! ([`guest_view`]), then a fresh instance of the route's live component.

mod describe;
mod guest_view;

pub(crate) use describe::SqlCheck;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::FutureExt as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument as _;
use wasmhouse_clickhouse::{ClickHousePool, QueryContext, ResultCache};

use crate::access::{self, Access, Admission, Denied};
use crate::admin;
use crate::config::ServeConfig;
use crate::deploy::Deployer;
use crate::deploy::routes::{Deployment, Route};
use crate::metrics::{DenialKind, InstanceSlot, METRICS_PATH, metrics_response};
use crate::request_id::{RequestIds, request_id, set_request_id};
use crate::respond::{self, ResponseBody};
use crate::runtime::{Invocation, instance};
use crate::{docs, openapi, telemetry};

/// On answers of routes whose reads the result cache served: `hit`, `stale`
/// or `miss` (see [`wasmhouse_clickhouse::CacheReport`]).
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Everything requests share: the routes, the ClickHouse pool, the slots
/// instances run in.
pub(crate) struct Dispatcher {
    deployer: Arc<Deployer>,
    pool: Arc<ClickHousePool>,
    result_cache: Option<ResultCache>,
    pub(super) in_flight: Arc<Semaphore>,
    access: Arc<Access>,
    config: ServeConfig,
    pub(super) request_ids: RequestIds,
}

impl Dispatcher {
    /// Dispatch to `deployer`'s routes, querying through `pool`, letting in
    /// the callers `access` allows.
    pub(crate) fn new(
        deployer: Arc<Deployer>,
        pool: Arc<ClickHousePool>,
        access: Arc<Access>,
        config: ServeConfig,
    ) -> Self {
        // The result cache sits beside the pool, which runs its queries.
        let result_cache = ResultCache::new(config.clickhouse.cache_bytes, pool.metrics().clone());
        Self {
            in_flight: Arc::new(Semaphore::new(config.sizing.max_instances as usize)),
            deployer,
            result_cache,
            pool,
            access,
            config,
            request_ids: RequestIds::new(),
        }
    }

    /// The routes and what changes them.
    pub(crate) fn deployer(&self) -> &Arc<Deployer> {
        &self.deployer
    }

    /// The configuration served.
    pub(crate) fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// The ClickHouse servers and connections.
    pub(crate) fn pool(&self) -> &Arc<ClickHousePool> {
        &self.pool
    }

    /// API keys and trusted proxies.
    pub(crate) fn access(&self) -> &Arc<Access> {
        &self.access
    }

    /// Answer one request on the main listener, with its access-log line
    /// when that is on.
    pub(crate) async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        if !self.config.access_log {
            return self.answer(request, peer, &mut None).await;
        }
        let started = std::time::Instant::now();
        let method = request.method().clone();
        // The path only: query strings carry parameter values, which may be
        // personal data or secrets.
        let path = crate::respond::shorten(request.uri().path(), 200).into_owned();
        let mut served = None;
        let response = self.answer(request, peer, &mut served).await;
        let request_id = response
            .headers()
            .get(crate::request_id::REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        // Answers no route gave (404, /docs, /metrics) have no route fields.
        tracing::info!(
            target: "wasmhouse::access",
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0,
            request_id = %request_id,
            route = served.as_ref().map(|(route, _)| route.as_str()),
            version = served.as_ref().map(|(_, version)| *version),
            "request"
        );
        response
    }

    /// Answer one request; `served` gets the route and version that
    /// answered it, when one did.
    async fn answer(
        &self,
        request: hyper::Request<Incoming>,
        peer: SocketAddr,
        served: &mut Option<(String, u64)>,
    ) -> hyper::Response<ResponseBody> {
        let admin = &self.config.admin;
        let path = request.uri().path();
        if path == METRICS_PATH && admin.listen.is_none() {
            return metrics_response(self.deployer.metrics());
        }
        if admin.on_main_listener() && admin::is_admin_path(path) {
            return admin::handle(&self.deployer, admin, request).await;
        }
        let started = std::time::Instant::now();
        let request_id = request_id(request.headers()).unwrap_or_else(|| self.request_ids.next());
        if self.config.docs {
            let page = if path == openapi::OPENAPI_PATH {
                Some(self.openapi().await)
            } else {
                docs::asset(path)
            };
            if let Some(mut response) = page {
                set_request_id(&mut response, &request_id);
                return response;
            }
        }
        let Some(route) = self.deployer.routes().find(path).cloned() else {
            self.deployer.metrics().unrouted(404);
            let mut response = respond::error(
                404,
                "no_route",
                &format!("no component serves {}", crate::respond::shorten(path, 200)),
                &request_id,
            );
            set_request_id(&mut response, &request_id);
            return response;
        };
        let deployment = route.current();
        if self.config.access_log {
            *served = Some((route.name().to_owned(), deployment.version));
        }
        // Created with what is known up front: a log layer formats a span's
        // fields when it is created and again on every `record`, so the
        // fields only exporters read are recorded only when exporting.
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            route = route.name(),
            version = deployment.version,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            clickhouse_ms = tracing::field::Empty,
        );
        let exporting = telemetry::continue_trace(&span, request.headers());
        let mut response = match self.check_access(&route, &request, peer) {
            Ok(admission) => {
                let allowance = admission.allowance;
                let mut response = self
                    .serve_route(&route, &deployment, request, admission, &request_id)
                    .instrument(span.clone())
                    .await;
                if let Some(allowance) = allowance {
                    respond::rate_limit_headers(
                        response.headers_mut(),
                        allowance.limit,
                        allowance.remaining,
                        allowance.reset,
                    );
                }
                response
            }
            Err(denied) => {
                deployment.metrics.denied(match denied {
                    Denied::Unauthorized => DenialKind::unauthorized,
                    Denied::Forbidden => DenialKind::forbidden,
                    Denied::TooManyRequests { .. } => DenialKind::rate_limited,
                });
                respond::denied(&denied, &request_id)
            }
        };
        let status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        deployment.metrics.answered(status, elapsed);
        if exporting {
            span.record("status", status);
            span.record("duration_ms", elapsed * 1000.0);
        }
        tracing::debug!(parent: &span, status, "answered");
        set_request_id(&mut response, &request_id);
        response
    }

    /// The route's API key and rate limit checks (none on most routes).
    fn check_access<B>(
        &self,
        route: &Route,
        request: &hyper::Request<B>,
        peer: SocketAddr,
    ) -> Result<Admission, Denied> {
        let access = route.access();
        if access.is_open() {
            return Ok(Admission::default());
        }
        let headers = request.headers();
        let client = self.access.proxies().client(peer.ip(), headers);
        access.check(
            route.name(),
            &self.access.keys(),
            access::presented_key(headers),
            client,
        )
    }

    async fn serve_route(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
        request: hyper::Request<Incoming>,
        admission: Admission,
        request_id: &str,
    ) -> hyper::Response<ResponseBody> {
        let max_body = self.config.max_body_size;
        if let Some(length) = content_length(&request)
            && length > max_body as u64
        {
            return respond::error(
                413,
                "body_too_large",
                &format!("the request body is {length} bytes; the limit is {max_body}"),
                request_id,
            );
        }
        // Backpressure: wait a bounded time for a free instance, then shed.
        let metrics = self.deployer.metrics();
        let permit = match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Only requests that wait are counted in the queue.
            Err(_) => {
                let waiting = metrics.queued();
                match tokio::time::timeout(
                    self.config.queue_timeout,
                    self.in_flight.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => {
                        drop(waiting);
                        permit
                    }
                    _ => {
                        metrics.shed();
                        return respond::overloaded(request_id);
                    }
                }
            }
        };
        let slot = metrics.slot(permit);

        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        guest_view::prepare(
            &mut parts.headers,
            route,
            &path,
            request_id,
            self.config.admin.token.as_deref(),
            &self.access.keys(),
            &admission,
        );
        let body = http_body_util::Limited::new(body, max_body)
            .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body as u64)))
            .boxed_unsync();
        let request = hyper::Request::from_parts(parts, body);

        self.invoke(route, deployment, request, request_id, slot)
            .await
    }

    /// Run `request` on a fresh instance of `deployment`, in `slot`.
    pub(super) async fn invoke(
        &self,
        route: &Route,
        deployment: &Arc<Deployment>,
        request: hyper::Request<instance::RequestBody>,
        request_id: &str,
        slot: InstanceSlot,
    ) -> hyper::Response<ResponseBody> {
        let limits = route.limits();
        let deadline = Instant::now() + limits.timeout;
        let query = QueryContext::new(self.pool.clone(), route.policy().clone(), deadline)
            .with_result_cache(self.result_cache.clone())
            .with_request_id(request_id)
            .with_span_timing(telemetry::exporting());
        let cache_report = query.cache_report();
        let invocation = Invocation {
            label: route.name(),
            request_id,
            limits,
            deadline,
            query,
            slot,
            metrics: deployment.metrics.clone(),
            config: route.config().clone(),
        };
        let run = instance::run(
            self.deployer.runtime(),
            deployment.component.clone(),
            invocation,
            request,
        );
        // A host bug must cost one request, never the process or the worker.
        match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(mut response) => {
                // Reads made before the response head: how the cache answered.
                if let Some(outcome) = cache_report.header() {
                    response
                        .headers_mut()
                        .insert(X_CACHE, HeaderValue::from_static(outcome));
                }
                response
            }
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(
                    request_id,
                    route = route.name(),
                    panic = why,
                    "host bug: panicked while serving a request"
                );
                respond::error(
                    500,
                    "internal",
                    "the host failed while serving this request",
                    request_id,
                )
            }
        }
    }
}

/// The declared body length, if any.
fn content_length<B>(request: &hyper::Request<B>) -> Option<u64> {
    request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
