//! Request dispatch: one request from hyper to a guest and back. The admin
//! check, the route lookup, the limits that apply before any instance
//! exists (body size, the queue for an instance slot), then a fresh instance
//! of the route's live component.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use wasmhouse_clickhouse::{ClickHousePool, QueryContext};

use crate::admin;
use crate::config::ServeConfig;
use crate::deploy::Deployer;
use crate::respond::{self, ResponseBody};
use crate::runtime::{Invocation, instance};

/// Header carrying the path below the route's prefix (Spin's name for it).
const PATH_INFO: HeaderName = HeaderName::from_static("spin-path-info");
/// Header carrying the prefix of the route that matched.
const COMPONENT_ROUTE: HeaderName = HeaderName::from_static("spin-component-route");

/// Everything requests share: the routes, the ClickHouse pool, the slots
/// instances run in.
pub struct Dispatcher {
    deployer: Arc<Deployer>,
    pool: Arc<ClickHousePool>,
    in_flight: Arc<Semaphore>,
    config: ServeConfig,
    request_ids: RequestIds,
}

impl Dispatcher {
    /// Dispatch to `deployer`'s routes, querying through `pool`.
    pub fn new(deployer: Arc<Deployer>, pool: Arc<ClickHousePool>, config: ServeConfig) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(config.sizing.max_instances as usize)),
            deployer,
            pool,
            config,
            request_ids: RequestIds::new(),
        }
    }

    /// The routes and what changes them.
    pub fn deployer(&self) -> &Arc<Deployer> {
        &self.deployer
    }

    /// The configuration served.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// Answer one request on the main listener.
    pub async fn dispatch(
        &self,
        request: hyper::Request<Incoming>,
    ) -> hyper::Response<ResponseBody> {
        let admin = &self.config.admin;
        if admin.on_main_listener() && admin::is_admin_path(request.uri().path()) {
            return admin::handle(&self.deployer, admin, request).await;
        }
        let request_id = self.request_ids.next();
        let path = request.uri().path();
        let Some(route) = self.deployer.routes().find(path).cloned() else {
            return respond::error(
                404,
                "no_route",
                &format!("no component serves {}", crate::respond::shorten(path, 200)),
                &request_id,
            );
        };
        let max_body = self.config.max_body_size;
        if let Some(length) = content_length(&request)
            && length > max_body as u64
        {
            return respond::error(
                413,
                "body_too_large",
                &format!("the request body is {length} bytes; the limit is {max_body}"),
                &request_id,
            );
        }
        // Backpressure: wait a bounded time for a free instance, then shed.
        let permit = match tokio::time::timeout(
            self.config.queue_timeout,
            self.in_flight.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            _ => return respond::overloaded(&request_id),
        };

        let (mut parts, body) = request.into_parts();
        if let Some(token) = &admin.token
            && admin::strip_admin_token(&mut parts.headers, token)
        {
            tracing::warn!(
                request_id,
                route = route.name(),
                "removed the admin token from a request for a route"
            );
        }
        // Like Spin: the guest sees the full path, and the part below its
        // route's prefix in `spin-path-info`.
        if let Ok(value) = HeaderValue::from_str(route.path_info(parts.uri.path())) {
            parts.headers.insert(PATH_INFO, value);
        }
        parts
            .headers
            .insert(COMPONENT_ROUTE, route.prefix_header().clone());
        let body = http_body_util::Limited::new(body, max_body)
            .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body as u64)))
            .boxed_unsync();
        let request = hyper::Request::from_parts(parts, body);

        let limits = route.limits();
        let deadline = Instant::now() + limits.timeout;
        let invocation = Invocation {
            label: route.name(),
            request_id: &request_id,
            limits,
            deadline,
            query: QueryContext::new(self.pool.clone(), route.policy().clone(), deadline),
            permit,
        };
        let run = instance::run(
            self.deployer.runtime(),
            route.component(),
            invocation,
            request,
        );
        // A host bug must cost one request, never the process or the worker.
        match std::panic::AssertUnwindSafe(run).catch_unwind().await {
            Ok(response) => response,
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
                    &request_id,
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

/// Short unique ids for requests: a random per-process prefix and a counter.
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().as_u128() as u32,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:08x}-{:x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
