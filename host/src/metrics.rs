//! What the host counts, in Prometheus' text format at `/metrics`.
//!
//! Label sets stay bounded: routes come from the manifest, versions are the
//! deployments a route keeps (a version's series go when it leaves the
//! rollback history), status classes and fault kinds are enums. No path, id
//! or SQL is ever a label. A route's series are resolved once per
//! deployment ([`RouteMetrics`]), so a request only touches atomics.

use std::sync::Arc;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::OwnedSemaphorePermit;
use wasmhouse_clickhouse::ClickHouseMetrics;

/// The content type of the text exposition format.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A response's status class (`1xx` … `5xx`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 1xx.
    Informational,
    /// 2xx.
    Success,
    /// 3xx.
    Redirection,
    /// 4xx.
    ClientError,
    /// 5xx.
    ServerError,
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
        let class = match self {
            Self::Informational => "1xx",
            Self::Success => "2xx",
            Self::Redirection => "3xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
        };
        encoder.write_str(class)
    }
}

impl StatusClass {
    const ALL: [Self; 5] = [
        Self::Informational,
        Self::Success,
        Self::Redirection,
        Self::ClientError,
        Self::ServerError,
    ];

    fn of(status: u16) -> Self {
        match status {
            ..200 => Self::Informational,
            200..300 => Self::Success,
            300..400 => Self::Redirection,
            400..500 => Self::ClientError,
            _ => Self::ServerError,
        }
    }
}

/// How a guest failed.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are Prometheus' snake case"
)]
pub(crate) enum FaultKind {
    /// It trapped (a panic, an `unreachable`, a bad access, a full table).
    trap,
    /// It ran past its budget.
    timeout,
    /// It tried to grow its memory past the limit.
    memory_limit,
    /// It returned without a response.
    no_response,
    /// It answered with a `wasi:http` error code, or an informational status.
    error_response,
}

impl FaultKind {
    const ALL: [Self; 5] = [
        Self::trap,
        Self::timeout,
        Self::memory_limit,
        Self::no_response,
        Self::error_response,
    ];
}

/// Why a request was turned away before reaching its guest.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are Prometheus' snake case"
)]
pub(crate) enum DenialKind {
    /// No API key, or an unknown one (401).
    unauthorized,
    /// A key not allowed on the route (403).
    forbidden,
    /// Over a rate limit (429).
    rate_limited,
}

impl DenialKind {
    const ALL: [Self; 3] = [Self::unauthorized, Self::forbidden, Self::rate_limited];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    route: String,
    reason: DenialKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    version: String,
    status: StatusClass,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    route: String,
    kind: FaultKind,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    route: String,
    version: String,
    sha256: String,
    /// The registry manifest digest it was pulled as ("" when not pulled).
    digest: String,
}

/// One deployment as the metrics name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeployedComponent<'a> {
    /// The route's version number for it.
    pub(crate) version: u64,
    /// The component's content hash.
    pub(crate) sha256: &'a str,
    /// The registry manifest digest it was pulled as ("" when not pulled).
    pub(crate) digest: &'a str,
}

impl DeployedComponent<'_> {
    fn labels(&self, route: &str) -> ComponentLabels {
        ComponentLabels {
            route: route.to_owned(),
            version: self.version.to_string(),
            sha256: self.sha256.to_owned(),
            digest: self.digest.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeployLabels {
    route: String,
    origin: String,
}

/// Every metric the host exposes.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    faults: Family<FaultLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    instantiation: Histogram,
    memory_grows: Family<RouteLabels, Counter>,
    in_flight: Gauge,
    queue_length: Gauge,
    queue_wait: Histogram,
    shed: Counter,
    components: Family<ComponentLabels, Gauge>,
    deploys: Family<DeployLabels, Counter>,
    rejected: Family<RouteLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 26 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

impl Metrics {
    /// A registry with the host's metrics and `clickhouse`'s.
    pub(crate) fn new(clickhouse: &ClickHouseMetrics) -> Self {
        let mut registry = Registry::with_prefix("wasmhouse");
        let metrics = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            faults: Family::default(),
            denials: Family::default(),
            instantiation: Histogram::new(exponential_buckets(0.000_002, 2.0, 16)),
            memory_grows: Family::default(),
            in_flight: Gauge::default(),
            queue_length: Gauge::default(),
            queue_wait: latency_histogram(),
            shed: Counter::default(),
            components: Family::default(),
            deploys: Family::default(),
            rejected: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by route, component version and status class",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its response head, by route",
            metrics.duration.clone(),
        );
        registry.register(
            "guest_faults",
            "Requests a guest failed, by route and kind",
            metrics.faults.clone(),
        );
        registry.register(
            "access_denied",
            "Requests turned away by a route's API key or rate limit, by route and reason",
            metrics.denials.clone(),
        );
        registry.register(
            "instantiation_duration_seconds",
            "Time to instantiate a component for one request",
            metrics.instantiation.clone(),
        );
        registry.register(
            "guest_memory_grows",
            "Times guests grew a linear memory past its initial size, by route: each costs the host two changes of memory protection (a route whose requests fit their initial memory, as the Rust SDK's allocator arranges, counts none)",
            metrics.memory_grows.clone(),
        );
        registry.register(
            "instances_in_flight",
            "Instances alive now (requests being served)",
            metrics.in_flight.clone(),
        );
        registry.register(
            "instance_queue_length",
            "Requests waiting for a free instance slot",
            metrics.queue_length.clone(),
        );
        registry.register(
            "instance_queue_wait_seconds",
            "Time requests that found no free instance slot waited for one",
            metrics.queue_wait.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests answered 503 because no instance slot came free in time",
            metrics.shed.clone(),
        );
        registry.register(
            "component_info",
            "The component each route serves now: version, content hash and registry digest",
            metrics.components.clone(),
        );
        registry.register(
            "deploys",
            "Components put in force, by route and origin (builtin, file, sql, registry, upload, rollback, reload, shared)",
            metrics.deploys.clone(),
        );
        registry.register(
            "rejected_uploads",
            "Components refused by the admin API, the file watcher or a followed registry tag, by route",
            metrics.rejected.clone(),
        );
        clickhouse.register(&mut registry);
        Self {
            registry,
            ..metrics
        }
    }

    /// The exposition text.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The series of one route's deployment, resolved once.
    pub(crate) fn route(&self, route: &str, version: u64) -> Arc<RouteMetrics> {
        let version = version.to_string();
        Arc::new(RouteMetrics {
            requests: StatusClass::ALL.map(|status| {
                self.requests
                    .get_or_create(&RequestLabels {
                        route: route.to_owned(),
                        version: version.clone(),
                        status,
                    })
                    .clone()
            }),
            duration: self
                .duration
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .clone(),
            faults: FaultKind::ALL.map(|kind| {
                self.faults
                    .get_or_create(&FaultLabels {
                        route: route.to_owned(),
                        kind,
                    })
                    .clone()
            }),
            denials: DenialKind::ALL.map(|reason| {
                self.denials
                    .get_or_create(&DenialLabels {
                        route: route.to_owned(),
                        reason,
                    })
                    .clone()
            }),
            instantiation: self.instantiation.clone(),
            memory_grows: self
                .memory_grows
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .clone(),
        })
    }

    /// Requests that matched no route.
    pub(crate) fn unrouted(&self, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: String::new(),
                version: String::new(),
                status: StatusClass::of(status),
            })
            .inc();
    }

    /// Forget a deployment's series (it left the rollback history).
    pub(crate) fn forget(&self, route: &str, version: u64) {
        let version = version.to_string();
        for status in StatusClass::ALL {
            self.requests.remove(&RequestLabels {
                route: route.to_owned(),
                version: version.clone(),
                status,
            });
        }
    }

    /// Route `route` now serves `live`, replacing `previous`, from `origin`.
    pub(crate) fn deployed(
        &self,
        route: &str,
        live: DeployedComponent<'_>,
        previous: Option<DeployedComponent<'_>>,
        origin: &str,
    ) {
        if let Some(previous) = previous {
            self.components.remove(&previous.labels(route));
        }
        self.components.get_or_create(&live.labels(route)).set(1);
        self.deploys
            .get_or_create(&DeployLabels {
                route: route.to_owned(),
                origin: origin.to_owned(),
            })
            .inc();
    }

    /// A component for `route` was refused.
    pub(crate) fn rejected(&self, route: &str) {
        self.rejected
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .inc();
    }

    /// A request starts waiting for an instance slot (none was free).
    pub(crate) fn queued(&self) -> QueueWait {
        self.queue_length.inc();
        QueueWait {
            started: std::time::Instant::now(),
            length: self.queue_length.clone(),
            wait: self.queue_wait.clone(),
        }
    }

    /// No slot came free in time.
    pub(crate) fn shed(&self) {
        self.shed.inc();
    }

    /// Hold `permit` as an instance slot, counted in `instances_in_flight`.
    pub(crate) fn slot(&self, permit: OwnedSemaphorePermit) -> InstanceSlot {
        self.in_flight.inc();
        InstanceSlot {
            _permit: permit,
            in_flight: self.in_flight.clone(),
        }
    }
}

/// The series of one route's deployment.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    requests: [Counter; 5],
    duration: Histogram,
    faults: [Counter; 5],
    denials: [Counter; 3],
    instantiation: Histogram,
    memory_grows: Counter,
}

impl RouteMetrics {
    /// A response with `status` went out after `seconds`.
    pub(crate) fn answered(&self, status: u16, seconds: f64) {
        self.requests[StatusClass::of(status) as usize].inc();
        self.duration.observe(seconds);
    }

    /// The guest failed.
    pub(crate) fn fault(&self, kind: FaultKind) {
        self.faults[kind as usize].inc();
    }

    /// A request was turned away by the route's access rules.
    pub(crate) fn denied(&self, kind: DenialKind) {
        self.denials[kind as usize].inc();
    }

    /// An instance took `seconds` to create.
    pub(crate) fn instantiated(&self, seconds: f64) {
        self.instantiation.observe(seconds);
    }

    /// An instance grew its memory `times` times.
    pub(crate) fn memory_grown(&self, times: u64) {
        if times > 0 {
            self.memory_grows.inc_by(times);
        }
    }
}

/// A request waiting for a slot; the wait is recorded when this is dropped.
pub(crate) struct QueueWait {
    started: std::time::Instant,
    length: Gauge,
    wait: Histogram,
}

impl Drop for QueueWait {
    fn drop(&mut self) {
        self.length.dec();
        self.wait.observe(self.started.elapsed().as_secs_f64());
    }
}

/// An instance slot, held until the guest is done (after its body).
pub(crate) struct InstanceSlot {
    _permit: OwnedSemaphorePermit,
    in_flight: Gauge,
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// Where the metrics are served.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// `GET /metrics`: the registry in Prometheus' text format.
pub(crate) fn metrics_response(metrics: &Metrics) -> hyper::Response<crate::respond::ResponseBody> {
    let mut response = hyper::Response::new(crate::respond::full(metrics.encode()));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    response
}
