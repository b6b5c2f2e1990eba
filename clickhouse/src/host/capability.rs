//! The `wasmhouse:clickhouse/query` interface, served to guests from the pool.
//!
//! Guest-caused failures come back as the WIT `error` variant; only host
//! bugs (a resource the guest cannot have) are traps.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynOutputStream;

use super::client::{ClickHousePool, QueryRequest, RowStream};
use super::metrics::CacheLookup;
use super::result_cache::{Freshness, ResultCache};
use crate::error::QueryError;
use crate::policy::QueryPolicy;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmhouse:clickhouse/host",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasmhouse:clickhouse/query.rows": crate::host::client::RowStream,
        },
    });
}

use bindings::wasmhouse::clickhouse::query;

/// Most results one request may have open at once: each holds a pooled
/// connection, so a guest must not be able to take the whole pool.
pub const MAX_OPEN_RESULTS: usize = 8;

/// Per-request state behind the ClickHouse capability.
pub struct QueryContext {
    pool: Arc<ClickHousePool>,
    /// Reads that may be answered from memory; `None` when there is no cache.
    cache: Option<ResultCache>,
    policy: Arc<QueryPolicy>,
    deadline: Instant,
    request_id: Option<String>,
    open_results: usize,
    /// Server memory the open results were started with, in bytes.
    memory_held: u64,
    /// Time spent waiting for ClickHouse to answer, over the request.
    clickhouse_time: std::time::Duration,
    /// Whether to record that time on the request's span.
    span_timing: bool,
    /// How the result cache answered the request's reads.
    cache_report: Arc<CacheReport>,
    /// Told before the guest waits for ClickHouse.
    on_wait: Option<Arc<dyn OnWait>>,
}

/// Told that a guest is about to wait for ClickHouse: the host gives up
/// what the guest holds only while it computes (its share of the CPU).
pub trait OnWait: Send + Sync {
    /// The guest is about to wait.
    fn waiting(&self);
}

impl QueryContext {
    /// Queries of one request: through `pool`, under `policy`, done by `deadline`.
    pub fn new(pool: Arc<ClickHousePool>, policy: Arc<QueryPolicy>, deadline: Instant) -> Self {
        Self {
            pool,
            cache: None,
            policy,
            deadline,
            request_id: None,
            open_results: 0,
            memory_held: 0,
            clickhouse_time: std::time::Duration::ZERO,
            span_timing: false,
            cache_report: Arc::default(),
            on_wait: None,
        }
    }

    /// Answer reads that opt in (a route's `cache_ttl`, `execute-cached`)
    /// from `cache`, the host's result cache beside the pool.
    pub fn with_result_cache(mut self, cache: Option<ResultCache>) -> Self {
        self.cache = cache;
        self
    }

    /// Tell `on_wait` whenever the guest is about to wait for ClickHouse.
    pub fn with_on_wait(mut self, on_wait: Arc<dyn OnWait>) -> Self {
        self.on_wait = Some(on_wait);
        self
    }

    fn waiting(&self) {
        if let Some(on_wait) = &self.on_wait {
            on_wait.waiting();
        }
    }

    /// How the result cache answered this request's reads (for its
    /// `X-Cache` header), shared with the store that will own this context.
    pub fn cache_report(&self) -> Arc<CacheReport> {
        self.cache_report.clone()
    }

    /// Lead every query id with `request_id` (letters, digits, `.`, `_`,
    /// `-`), so `system.query_log` joins with the host's log.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Record the time spent in ClickHouse on the current span's
    /// `clickhouse_ms` field (when spans are exported: recording makes log
    /// layers format the span's fields again).
    pub fn with_span_timing(mut self, on: bool) -> Self {
        self.span_timing = on;
        self
    }

    /// Count `err` and hand it on in WIT form.
    fn failed(&self, err: QueryError) -> query::Error {
        self.pool.metrics().failed(&err);
        err.into()
    }
}

/// How the result cache answered one request's reads, summed up for its
/// `X-Cache` header: `miss` if any read went to ClickHouse, else `stale` if
/// any was served past its time, else `hit`; nothing when no read was
/// cacheable.
#[derive(Debug, Default)]
pub struct CacheReport(AtomicU8);

impl CacheReport {
    /// Count one read's answer.
    pub fn record(&self, lookup: CacheLookup) {
        let rank = match lookup {
            CacheLookup::hit | CacheLookup::coalesced => 1,
            CacheLookup::stale => 2,
            CacheLookup::miss => 3,
        };
        self.0.fetch_max(rank, Ordering::Relaxed);
    }

    /// The `X-Cache` value; `None` when no read was cacheable.
    pub fn header(&self) -> Option<&'static str> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some("hit"),
            2 => Some("stale"),
            3 => Some("miss"),
            _ => None,
        }
    }
}

/// What the capability needs from a store: its query context and the
/// resource table the guest's handles live in.
pub struct ClickHouseView<'a> {
    /// This request's query context.
    pub ctx: &'a mut QueryContext,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// Marker type tying [`ClickHouseView`] to the generated bindings.
pub struct ClickHouse;

impl HasData for ClickHouse {
    type Data<'a> = ClickHouseView<'a>;
}

/// Add `wasmhouse:clickhouse/query` to `linker`, reaching each store's state
/// through `view`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> ClickHouseView<'_>,
) -> wasmtime::Result<()> {
    query::add_to_linker::<T, ClickHouse>(linker, view)
}

impl From<QueryError> for query::Error {
    fn from(err: QueryError) -> Self {
        crate::wit_error!(err, query)
    }
}

impl ClickHouseView<'_> {
    /// Run a guest's query; through the result cache with `freshness`.
    async fn run(
        &mut self,
        sql: String,
        options: query::Options,
        freshness: Option<Freshness>,
    ) -> wasmtime::Result<Result<Resource<RowStream>, query::Error>> {
        if self.ctx.open_results >= MAX_OPEN_RESULTS {
            return Ok(Err(self.ctx.failed(QueryError::Refused(format!(
                "a request may have at most {MAX_OPEN_RESULTS} results open at once; drop finished ones"
            )))));
        }
        // One request's open results together stay within its budget of
        // server memory, however many it opens.
        let memory = match self.ctx.policy.query_memory(self.ctx.memory_held) {
            Ok(memory) => memory,
            Err(err) => return Ok(Err(self.ctx.failed(err))),
        };
        let request = QueryRequest {
            sql: &sql,
            params: &options.params,
            settings: &options.settings,
            format: options.format.as_deref(),
            request_id: self.ctx.request_id.as_deref(),
            max_memory: Some(memory),
        };
        self.ctx.waiting();
        let started = std::time::Instant::now();
        let executed = match (freshness, &self.ctx.cache) {
            (Some(freshness), Some(cache)) => cache
                .execute(
                    &self.ctx.pool,
                    &request,
                    &self.ctx.policy,
                    self.ctx.deadline,
                    freshness,
                )
                .await
                .map(|(rows, lookup)| {
                    if let Some(lookup) = lookup {
                        self.ctx.cache_report.record(lookup);
                    }
                    rows
                }),
            _ => {
                self.ctx
                    .pool
                    .execute(&request, &self.ctx.policy, self.ctx.deadline)
                    .await
            }
        };
        self.ctx.clickhouse_time += started.elapsed();
        if self.ctx.span_timing {
            // The request's span has the field; elsewhere this records nothing.
            tracing::Span::current().record(
                "clickhouse_ms",
                self.ctx.clickhouse_time.as_secs_f64() * 1000.0,
            );
        }
        let rows = match executed {
            Ok(rows) => rows,
            Err(err) => return Ok(Err(self.ctx.failed(err))),
        };
        let handle = self.table.push(rows.holding(memory))?;
        self.ctx.open_results += 1;
        self.ctx.memory_held += memory;
        Ok(Ok(handle))
    }
}

impl query::Host for ClickHouseView<'_> {
    async fn execute(
        &mut self,
        sql: String,
        options: query::Options,
    ) -> wasmtime::Result<Result<Resource<RowStream>, query::Error>> {
        // A route that caches every read.
        let policy = &self.ctx.policy;
        let freshness = policy.cache_ttl.map(|ttl| Freshness {
            ttl,
            stale: policy.cache_stale,
        });
        self.run(sql, options, freshness).await
    }

    async fn execute_cached(
        &mut self,
        sql: String,
        options: query::Options,
        cache: query::CacheOptions,
    ) -> wasmtime::Result<Result<Resource<RowStream>, query::Error>> {
        let freshness = Freshness {
            ttl: Duration::from_secs(cache.ttl_seconds.into()),
            stale: self.ctx.policy.cache_stale,
        };
        self.run(sql, options, Some(freshness)).await
    }

    async fn server(&mut self) -> wasmtime::Result<query::Endpoint> {
        let endpoint = &self.ctx.pool.config().endpoint();
        Ok(query::Endpoint {
            host: endpoint.host.clone(),
            port: endpoint.port,
            database: endpoint.database.clone(),
        })
    }

    async fn replicas(&mut self) -> wasmtime::Result<Vec<query::Replica>> {
        Ok(self
            .ctx
            .pool
            .replicas()
            .iter()
            .map(|replica| {
                let endpoint = replica.endpoint();
                query::Replica {
                    endpoint: query::Endpoint {
                        host: endpoint.host.clone(),
                        port: endpoint.port,
                        database: endpoint.database.clone(),
                    },
                    healthy: replica.is_healthy(),
                    in_flight: u32::try_from(replica.in_flight()).unwrap_or(u32::MAX),
                    error: replica.out_because(),
                }
            })
            .collect())
    }
}

impl query::HostRows for ClickHouseView<'_> {
    async fn next(
        &mut self,
        rows: Resource<RowStream>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, query::Error>> {
        self.ctx.waiting();
        let rows = self.table.get_mut(&rows)?;
        Ok(match rows.next_chunk().await {
            Ok(chunk) => Ok(chunk.map(|bytes| bytes.to_vec())),
            Err(err) => Err(self.ctx.failed(err)),
        })
    }

    async fn forward(
        &mut self,
        rows: Resource<RowStream>,
        out: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Result<u64, query::Error>> {
        self.ctx.waiting();
        let mut written = 0u64;
        loop {
            let chunk = match self.table.get_mut(&rows)?.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(err) => return Ok(Err(self.ctx.failed(err))),
            };
            written += chunk.len() as u64;
            let stream = self.table.get_mut(&out)?;
            if let Err(why) = write_all(stream, chunk).await {
                // The client went away: stop reading and let the query be
                // cancelled when the rows are dropped.
                return Ok(Err(query::Error::Unavailable(format!(
                    "the response stream closed: {why}"
                ))));
            }
        }
        let stream = self.table.get_mut(&out)?;
        if let Err(why) = flush(stream).await {
            return Ok(Err(query::Error::Unavailable(format!(
                "the response stream closed: {why}"
            ))));
        }
        Ok(Ok(written))
    }

    async fn query_id(&mut self, rows: Resource<RowStream>) -> wasmtime::Result<String> {
        Ok(self.table.get(&rows)?.query_id().to_owned())
    }

    async fn drop(&mut self, rows: Resource<RowStream>) -> wasmtime::Result<()> {
        let rows = self.table.delete(rows)?;
        self.ctx.open_results = self.ctx.open_results.saturating_sub(1);
        self.ctx.memory_held = self.ctx.memory_held.saturating_sub(rows.memory());
        Ok(())
    }
}

/// Write `chunk` to a WASI output stream, waiting for room as the reader
/// (hyper, then the client) drains it: this is the streaming backpressure.
async fn write_all(
    stream: &mut DynOutputStream,
    mut chunk: bytes::Bytes,
) -> Result<(), wasmtime_wasi::p2::StreamError> {
    while !chunk.is_empty() {
        let room = stream.check_write()?;
        if room == 0 {
            stream.ready().await;
            continue;
        }
        let part = chunk.split_to(room.min(chunk.len()));
        stream.write(part)?;
    }
    Ok(())
}

async fn flush(stream: &mut DynOutputStream) -> Result<(), wasmtime_wasi::p2::StreamError> {
    stream.flush()?;
    // Wait until the flush has gone through, as `blocking-flush` would.
    loop {
        if stream.check_write()? > 0 {
            return Ok(());
        }
        stream.ready().await;
    }
}
