//! What the capability counts, registered into the host's Prometheus
//! registry. Label sets are bounded: error kinds and ClickHouse's own error
//! codes, never SQL, query ids or routes' request paths.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::error::QueryError;

/// Which kind of failure a guest saw.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are Prometheus' snake case"
)]
pub enum ErrorKind {
    /// ClickHouse said no.
    server,
    /// ClickHouse could not be reached.
    unavailable,
    /// The route's policy (or a cap ClickHouse enforced for it) refused.
    refused,
    /// A parameter did not bind.
    invalid_parameter,
    /// The time budget ran out.
    timeout,
}

/// Labels of `wasmhouse_clickhouse_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// ClickHouse's error code, 0 when the failure is not ClickHouse's.
    pub code: u32,
}

/// What became of an abandoned query's `KILL QUERY`.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are Prometheus' snake case"
)]
pub enum CancelOutcome {
    /// ClickHouse accepted it.
    sent,
    /// It could not be sent, or ClickHouse refused it.
    failed,
    /// Too many were in flight; the query ends at its time limit instead.
    skipped,
}

/// Labels of `wasmhouse_clickhouse_cancellations_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CancelLabels {
    /// What happened.
    pub outcome: CancelOutcome,
}

/// How the result cache answered a read.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(
    non_camel_case_types,
    reason = "label values are Prometheus' snake case"
)]
pub enum CacheLookup {
    /// A fresh result was there.
    hit,
    /// An expired result within its grace period was served while one
    /// refresh runs.
    stale,
    /// The read went to ClickHouse.
    miss,
    /// The read waited for an identical one already on its way.
    coalesced,
}

/// Labels of `wasmhouse_clickhouse_cache_lookups_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// How it was answered.
    pub outcome: CacheLookup,
}

/// Labels of the per-replica series: `host:port` of a configured server
/// (bounded by the configuration).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    /// The server's `host:port`.
    pub replica: String,
}

/// The capability's metrics.
#[derive(Debug, Clone)]
pub struct ClickHouseMetrics {
    /// Guest queries sent to ClickHouse.
    pub queries: Counter,
    /// Guest-visible failures, by kind and ClickHouse code.
    pub errors: Family<ErrorLabels, Counter>,
    /// Seconds until ClickHouse answered (the response head).
    pub latency: Histogram,
    /// Rows read by the server (`X-ClickHouse-Summary`), or, where the
    /// server does not send it (before 19.x), lines of the result.
    pub read_rows: Counter,
    /// Bytes read by the server (`X-ClickHouse-Summary`), or, where the
    /// server does not send it, bytes of the result.
    pub read_bytes: Counter,
    /// Bytes of results streamed to guests.
    pub result_bytes: Counter,
    /// Pooled queries running now.
    pub in_use: Gauge,
    /// Queries that may run at once (`POOL_MGR_MAX_SIZE`).
    pub capacity: Gauge,
    /// Queries sent a second time on a fresh connection.
    pub retries: Counter,
    /// `KILL QUERY` for abandoned queries, by outcome.
    pub cancellations: Family<CancelLabels, Counter>,
    /// Reads sent to another replica after theirs failed before answering.
    pub failovers: Counter,
    /// Queries (the host's own included) sent to each replica.
    pub replica_queries: Family<ReplicaLabels, Counter>,
    /// 1 while a replica is in rotation, 0 while taken out.
    pub replica_healthy: Family<ReplicaLabels, Gauge>,
    /// Queries running on each replica now.
    pub replica_in_flight: Family<ReplicaLabels, Gauge>,
    /// Cacheable reads, by how the cache answered them.
    pub cache_lookups: Family<CacheLabels, Counter>,
    /// Bytes of results in the cache.
    pub cache_bytes: Gauge,
    /// Results in the cache.
    pub cache_entries: Gauge,
}

impl Default for ClickHouseMetrics {
    fn default() -> Self {
        Self {
            queries: Counter::default(),
            errors: Family::default(),
            // 0.25 ms to about 16 s.
            latency: Histogram::new(exponential_buckets(0.000_25, 2.0, 17)),
            read_rows: Counter::default(),
            read_bytes: Counter::default(),
            result_bytes: Counter::default(),
            in_use: Gauge::default(),
            capacity: Gauge::default(),
            retries: Counter::default(),
            cancellations: Family::default(),
            failovers: Counter::default(),
            replica_queries: Family::default(),
            replica_healthy: Family::default(),
            replica_in_flight: Family::default(),
            cache_lookups: Family::default(),
            cache_bytes: Gauge::default(),
            cache_entries: Gauge::default(),
        }
    }
}

impl ClickHouseMetrics {
    /// Register every metric under `clickhouse_` (below the registry's own
    /// prefix: `wasmhouse_clickhouse_…` in the host's).
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("clickhouse");
        sub.register(
            "queries",
            "Guest queries sent to ClickHouse",
            self.queries.clone(),
        );
        sub.register(
            "errors",
            "Guest-visible query failures by kind and ClickHouse error code",
            self.errors.clone(),
        );
        sub.register(
            "query_duration_seconds",
            "Time until ClickHouse answered a query (response head)",
            self.latency.clone(),
        );
        sub.register(
            "read_rows",
            "Rows read by ClickHouse (X-ClickHouse-Summary), or result lines where the server does not say",
            self.read_rows.clone(),
        );
        sub.register(
            "read_bytes",
            "Bytes read by ClickHouse (X-ClickHouse-Summary), or result bytes where the server does not say",
            self.read_bytes.clone(),
        );
        sub.register(
            "result_bytes",
            "Bytes of query results streamed to guests",
            self.result_bytes.clone(),
        );
        sub.register(
            "pool_in_use",
            "Pooled queries running now",
            self.in_use.clone(),
        );
        sub.register(
            "pool_capacity",
            "Queries that may run at once (POOL_MGR_MAX_SIZE)",
            self.capacity.clone(),
        );
        sub.register(
            "retries",
            "Reads sent again after their connection failed before an answer (on another replica when there is one)",
            self.retries.clone(),
        );
        sub.register(
            "cancellations",
            "KILL QUERY for abandoned queries, by outcome",
            self.cancellations.clone(),
        );
        sub.register(
            "failovers",
            "Reads sent to another replica after theirs failed before answering",
            self.failovers.clone(),
        );
        sub.register(
            "replica_queries",
            "Queries sent to each replica",
            self.replica_queries.clone(),
        );
        sub.register(
            "replica_healthy",
            "1 while a replica is in rotation, 0 while health checks keep it out",
            self.replica_healthy.clone(),
        );
        sub.register(
            "cache_lookups",
            "Cacheable reads by how the result cache answered (hit, stale, miss, coalesced)",
            self.cache_lookups.clone(),
        );
        sub.register(
            "cache_bytes",
            "Bytes of query results held in the result cache",
            self.cache_bytes.clone(),
        );
        sub.register(
            "cache_entries",
            "Query results held in the result cache",
            self.cache_entries.clone(),
        );
        sub.register(
            "replica_in_flight",
            "Queries running on each replica now",
            self.replica_in_flight.clone(),
        );
    }

    /// Count a failure a guest sees.
    pub fn failed(&self, err: &QueryError) {
        let (kind, code) = match err {
            QueryError::Server { code, .. } => (ErrorKind::server, *code),
            QueryError::Unavailable(_) => (ErrorKind::unavailable, 0),
            QueryError::Refused(_) => (ErrorKind::refused, 0),
            QueryError::InvalidParameter(_) => (ErrorKind::invalid_parameter, 0),
            QueryError::Timeout => (ErrorKind::timeout, 0),
        };
        self.errors.get_or_create(&ErrorLabels { kind, code }).inc();
    }

    /// Count a cancellation's outcome.
    pub fn cancelled(&self, outcome: CancelOutcome) {
        self.cancellations
            .get_or_create(&CancelLabels { outcome })
            .inc();
    }
}
