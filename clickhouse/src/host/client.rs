//! The shared keep-alive connection pool to ClickHouse's HTTP interface: how
//! one guest query is sent through it, how its result is streamed back chunk
//! by chunk, and how it is cancelled on the server when it is abandoned.
//!
//! A client that hangs up, or a deadline that passes, must not leave a query
//! running for nobody: the result's [`QueryGuard`] sends `KILL QUERY` when it
//! is dropped unfinished. Cancellation has connections of its own (the
//! [`Canceller`]), so it never competes with the query pool, and a bound on
//! how many cancellations are in flight: a flood of abandoned requests
//! cannot become a flood of requests to ClickHouse. A query that cannot be
//! cancelled at once still ends at its `max_execution_time`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::AUTHORIZATION;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::cancel::QueryGuard;
use super::config::{ClickHouseConfig, PoolError};
use super::metrics::ClickHouseMetrics;
use super::replicas::{self, InFlight, Replica, Replicas, ServerInfo};
use super::tls;
use super::transport::{self, is_retryable, read_error_body, unavailable};
use crate::error::QueryError;
use crate::params::BindMode;
use crate::policy::{Admitted, QueryPolicy, ReadOnly, classify_error_body};
use crate::response::{DEFAULT_HOLD_BACK, HoldBack, Next, truncate};
use crate::statement::StatementKind;

/// A query as the guest asked for it.
#[derive(Debug, Clone, Copy)]
pub struct QueryRequest<'a> {
    /// SQL with `{name:Type}` placeholders.
    pub sql: &'a str,
    /// Values for the placeholders.
    pub params: &'a [(String, String)],
    /// ClickHouse settings the guest wants.
    pub settings: &'a [(String, String)],
    /// Output format; `JSONEachRow` when `None`.
    pub format: Option<&'a str>,
    /// The id of the request the query is for: it leads the query id, so
    /// `system.query_log` can be joined with the host's log.
    pub request_id: Option<&'a str>,
    /// Most memory the query may use on the server, when less than the
    /// route's cap (its request holds other results open).
    pub max_memory: Option<u64>,
}

/// How a guest's query is sent.
#[derive(Debug, Clone, Copy)]
struct GuestQuery {
    /// Whether the route's `readonly` level is sent (not when the account's
    /// profile is read-only already).
    send_readonly: bool,
}

/// Keep-alive HTTP connections to the ClickHouse servers, shared by every
/// request, with a bound on concurrent queries.
pub struct ClickHousePool {
    /// One HTTP client, and so one set of pooled connections, per worker
    /// thread: a connection's driver task then runs on the thread that uses
    /// it, and a query costs no cross-thread wake-ups.
    clients: thread_local::ThreadLocal<reqwest::Client>,
    config: ClickHouseConfig,
    /// The servers, each with its address parsed once: parsing a URL per
    /// query (host name normalisation included) is measurable at thousands
    /// of queries per second.
    replicas: Replicas,
    permits: Arc<Semaphore>,
    metrics: Arc<ClickHouseMetrics>,
    /// Every connection's TLS configuration (for `https://` servers).
    tls: Arc<rustls::ClientConfig>,
}

/// Why one attempt at a query failed.
struct Failed {
    err: QueryError,
    /// Nothing reached the server's answer (the connection failed first):
    /// a read may be sent again, to another replica if there is one.
    before_response: bool,
    /// No connection could be made at all: the server is taken out of
    /// rotation at once, without waiting for its next health check.
    unreachable: bool,
}

impl From<QueryError> for Failed {
    fn from(err: QueryError) -> Self {
        Self {
            err,
            before_response: false,
            unreachable: false,
        }
    }
}

impl ClickHousePool {
    /// Build the pool. No connection is opened until the first query, so a
    /// host can start while ClickHouse is still down.
    pub fn new(config: ClickHouseConfig) -> Result<Self, PoolError> {
        let tls = tls::client_config(&config.tls)?;
        // Fail at start-up, not on the first query, if the client cannot be built.
        transport::http_client(&config, &tls, config.pool_max_size)?;
        let metrics = Arc::new(ClickHouseMetrics::default());
        metrics
            .capacity
            .set(i64::try_from(config.pool_max_size.max(1)).unwrap_or(i64::MAX));
        let replicas = Replicas::new(&config, &tls, &metrics)?;
        Ok(Self {
            metrics,
            clients: thread_local::ThreadLocal::new(),
            permits: Arc::new(Semaphore::new(config.pool_max_size.max(1))),
            tls,
            config,
            replicas,
        })
    }

    /// The configuration this pool was built from.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.config
    }

    /// What the pool counts (register it with the host's registry).
    pub fn metrics(&self) -> &Arc<ClickHouseMetrics> {
        &self.metrics
    }

    /// The servers and their state.
    pub fn replicas(&self) -> &[Arc<Replica>] {
        self.replicas.all()
    }

    /// With several replicas, a task that checks each every
    /// `health_interval` until it is aborted; `None` with one (there is no
    /// other to send its queries to).
    pub fn spawn_health_checks(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.replicas.all().len() < 2 {
            return None;
        }
        Some(tokio::spawn(replicas::check_health(
            self.replicas.all().to_vec(),
            transport::http_client(&self.config, &self.tls, 1).ok()?,
            self.config.health_interval,
            self.config.connect_timeout.max(Duration::from_secs(1)),
            self.config.max_replica_delay,
        )))
    }

    /// A server's version and features, asking it once on first use.
    async fn server_info<'r>(
        &self,
        replica: &'r Arc<Replica>,
        deadline: Instant,
    ) -> Result<&'r ServerInfo, Failed> {
        let info = replica
            .server
            .get_or_try_init(|| async {
                let request = QueryRequest {
                    sql: "SELECT version(), (SELECT value FROM system.settings WHERE name = 'readonly')",
                    params: &[],
                    settings: &[],
                    format: Some("TabSeparated"),
                    request_id: None,
                    max_memory: None,
                };
                // The host's own query: none of a route's settings.
                let policy = Arc::new(QueryPolicy::default());
                let sent = self
                    .send(replica, &request, request.sql, &[], &policy, None, deadline)
                    .await;
                let mut rows = sent.map_err(|failed| self.first_query_failed(replica, failed))?;
                let mut text = Vec::new();
                while let Some(chunk) = rows.next_chunk().await? {
                    text.extend_from_slice(&chunk);
                }
                let info = ServerInfo::from_probe(&String::from_utf8_lossy(&text));
                tracing::info!(
                    replica = replica.label(),
                    version = info.version,
                    profile_readonly = info.profile_readonly,
                    "connected to ClickHouse"
                );
                match info.profile_readonly {
                    0 => {}
                    1 => tracing::error!(
                        replica = replica.label(),
                        "the ClickHouse account's profile has readonly = 1, so the host cannot set per-query limits; give it readonly = 0 (see deploy/clickhouse/wasmhouse-user.xml)"
                    ),
                    _ => tracing::error!(
                        replica = replica.label(),
                        "the ClickHouse account's profile has readonly = 2, so the host cannot run strict routes at readonly = 1 and refuses their queries; give it readonly = 0 (see deploy/clickhouse/wasmhouse-user.xml)"
                    ),
                }
                Ok::<_, Failed>(info)
            })
            .await?;
        if info.profile_readonly == 1 {
            return Err(QueryError::Unavailable(
                "wasmhouse's ClickHouse account is misconfigured (see the host log)".into(),
            )
            .into());
        }
        Ok(info)
    }

    /// The host's first query to `replica` failed: a server error there is
    /// the account's or the configuration's (a wrong password, a database
    /// the account may not use or that does not exist, a read-only
    /// profile), which no guest can fix: logged with what to check, and a
    /// 503 for the guests.
    fn first_query_failed(&self, replica: &Replica, failed: Failed) -> Failed {
        // The server answered, and said no (a transport failure is not this).
        if failed.before_response || failed.unreachable || failed.err == QueryError::Timeout {
            return failed;
        }
        let endpoint = replica.endpoint();
        tracing::error!(
            replica = replica.label(),
            user = endpoint.user,
            database = endpoint.database,
            error = %failed.err,
            "ClickHouse refused wasmhouse's first query: check CLICKHOUSE_USER, CLICKHOUSE_PASSWORD and CLICKHOUSE_DATABASE (a database the account may read, that exists), and that the account's profile has readonly = 0 (deploy/clickhouse/wasmhouse-user.xml)"
        );
        let why = "ClickHouse refuses wasmhouse's account (see the host log)";
        replica.set_healthy(false, why);
        Failed {
            err: QueryError::Unavailable(why.into()),
            ..failed
        }
    }

    /// Run a guest's query under `policy`, giving up at `deadline`. Returns
    /// once the server has accepted the query; the rows follow as a stream.
    ///
    /// A read whose server fails before answering (a refused or reset
    /// connection) is sent once more: to another replica when there is one,
    /// else on a fresh connection to the same server.
    pub async fn execute(
        &self,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        let admitted = policy.admit(request.sql, request.params, request.settings)?;
        self.execute_admitted(request, &admitted, policy, deadline)
            .await
    }

    /// [`ClickHousePool::execute`] for a request `policy` admitted already.
    pub(crate) async fn execute_admitted(
        &self,
        request: &QueryRequest<'_>,
        admitted: &Admitted<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        if let Some(format) = request.format
            && !is_format_name(format)
        {
            return Err(QueryError::Refused(format!(
                "{:?} is not a ClickHouse format name",
                truncate(format, 64)
            )));
        }
        let first = self.replicas.pick(None).ok_or_else(no_server)?;
        let failed = match self
            .execute_on(first, request, admitted, policy, deadline)
            .await
        {
            Ok(rows) => {
                // Alone, a server has no health checks: an answer is one.
                if !first.is_healthy() && self.replicas.all().len() == 1 {
                    first.set_healthy(true, "");
                }
                return Ok(rows);
            }
            Err(failed) => failed,
        };
        if failed.unreachable {
            first.set_healthy(false, &failed.err.to_string());
        }
        if !(failed.before_response && admitted.kind() == StatementKind::Read) {
            return Err(failed.err);
        }
        let second = match self.replicas.pick(Some(first)) {
            Some(other) => {
                self.metrics.failovers.inc();
                tracing::debug!(from = first.label(), to = other.label(), error = %failed.err, "sending the read to another replica");
                other
            }
            None => {
                tracing::debug!(error = %failed.err, "retrying the read on a fresh connection");
                first
            }
        };
        self.metrics.retries.inc();
        self.execute_on(second, request, admitted, policy, deadline)
            .await
            .map_err(|failed| failed.err)
    }

    /// One attempt at a guest's query, on `replica`: bound for that
    /// server (native parameters or typed literals), checked again as
    /// bound, and sent with the route's settings.
    async fn execute_on(
        &self,
        replica: &Arc<Replica>,
        request: &QueryRequest<'_>,
        admitted: &Admitted<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
    ) -> Result<RowStream, Failed> {
        let info = self.server_info(replica, deadline).await?;
        // The route's read-only level is ClickHouse's to enforce too. A
        // read-only profile (readonly = 2) refuses any change to `readonly`:
        // it forbids writes and keeps relaxed routes relaxed, but strict
        // routes cannot be held at readonly = 1, so their queries are refused
        // rather than sent with one wall instead of two.
        let send_readonly = info.profile_readonly == 0;
        if !send_readonly && policy.readonly == ReadOnly::Strict {
            return Err(QueryError::Unavailable(
                "wasmhouse's ClickHouse account cannot run strict routes (see the host log)".into(),
            )
            .into());
        }
        let guest = GuestQuery { send_readonly };
        let mode = if info.native_params {
            BindMode::Server
        } else {
            BindMode::Inline
        };
        let prepared = admitted.prepare(policy, mode)?;
        self.send(
            replica,
            request,
            &prepared.sql,
            &prepared.url_params,
            policy,
            Some(guest),
            deadline,
        )
        .await
    }

    /// Send one query to `replica`: a guest's (with its route's settings),
    /// or the host's own (`guest` is `None`: no route settings, a read).
    #[allow(clippy::too_many_arguments, reason = "one query's parts, all needed")]
    async fn send(
        &self,
        replica: &Arc<Replica>,
        request: &QueryRequest<'_>,
        sql: &str,
        url_params: &[(String, String)],
        policy: &Arc<QueryPolicy>,
        guest: Option<GuestQuery>,
        deadline: Instant,
    ) -> Result<RowStream, Failed> {
        let permit = self.acquire(deadline).await?;
        // Random, so no request can guess (and target) another's query; the
        // request id in front joins it to its request in system.query_log.
        let random = uuid::Uuid::new_v4().simple();
        let query_id = match request.request_id {
            Some(request_id) => format!("wasmhouse-{request_id}-{random}"),
            None => format!("wasmhouse-{random}"),
        };
        let url = self.url(
            replica, request, &query_id, url_params, policy, guest, deadline,
        );
        let body = bytes::Bytes::copy_from_slice(sql.as_bytes());
        // Cancels the query server-side if we stop waiting for it.
        let mut guard = replica.canceller.guard(query_id);
        let running = replica.begin();

        let started = Instant::now();
        if guest.is_some() {
            self.metrics.queries.inc();
        }
        let sent = tokio::time::timeout_at(
            deadline,
            self.client()
                .post(url)
                .header(AUTHORIZATION, replica.authorization.clone())
                .body(body)
                .send(),
        )
        .await;
        let response = match sent {
            Err(_) => return Err(QueryError::Timeout.into()),
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                // Nothing was answered: there is no query to cancel.
                guard.finished();
                return Err(Failed {
                    before_response: is_retryable(&err),
                    unreachable: err.is_connect(),
                    err: unavailable(guard.query_id(), err),
                });
            }
        };

        if guest.is_some() {
            self.metrics
                .latency
                .observe(started.elapsed().as_secs_f64());
        }
        // The host's own queries are not the guests' traffic.
        let summarised = guest.is_none() || self.count_summary(&response);
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout_at(deadline, read_error_body(response))
                .await
                .map_err(|_| QueryError::Timeout)?;
            guard.finished();
            return Err(classify_error_body(policy, status.as_u16(), &text).into());
        }
        Ok(RowStream::live(LiveRows::new(
            response,
            guard,
            PoolSlot::new(permit, &self.metrics, running),
            deadline,
            policy.clone(),
            Counting {
                metrics: self.metrics.clone(),
                summarised,
                guest: guest.is_some(),
            },
        )))
    }

    /// Count what `X-ClickHouse-Summary` says the query read (servers from
    /// 19.x send it); whether it was there.
    fn count_summary(&self, response: &reqwest::Response) -> bool {
        #[derive(serde::Deserialize)]
        struct Summary {
            read_rows: String,
            read_bytes: String,
        }
        let Some(summary) = response
            .headers()
            .get("x-clickhouse-summary")
            .and_then(|value| serde_json::from_slice::<Summary>(value.as_bytes()).ok())
        else {
            return false;
        };
        self.metrics
            .read_rows
            .inc_by(summary.read_rows.parse().unwrap_or(0));
        self.metrics
            .read_bytes
            .inc_by(summary.read_bytes.parse().unwrap_or(0));
        true
    }

    async fn acquire(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, QueryError> {
        match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(QueryError::Unavailable(
                "the connection pool is closed".into(),
            )),
            Err(_) => Err(QueryError::Timeout),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one query's parts, all needed")]
    fn url(
        &self,
        replica: &Replica,
        request: &QueryRequest<'_>,
        query_id: &str,
        url_params: &[(String, String)],
        policy: &QueryPolicy,
        guest: Option<GuestQuery>,
        deadline: Instant,
    ) -> reqwest::Url {
        let mut query = String::with_capacity(replica.base_query.len() + 320);
        query.push_str(&replica.base_query);
        let mut push = |name: &str, value: &str| {
            query.push('&');
            query.extend(url::form_urlencoded::byte_serialize(name.as_bytes()));
            query.push('=');
            query.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        };
        push("query_id", query_id);
        push("default_format", request.format.unwrap_or("JSONEachRow"));
        for (name, value) in request.settings {
            push(name, value);
        }
        if let Some(guest) = guest {
            // After the guest's settings: where a name repeats, the last wins.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let memory = request.max_memory.unwrap_or(policy.max_memory_usage);
            for (name, value) in policy.settings_within(Some(remaining), memory) {
                if name != "readonly" || guest.send_readonly {
                    push(name, &value);
                }
            }
        }
        for (name, value) in url_params {
            push(name, value);
        }
        let mut url = replica.base_url.clone();
        url.set_query(Some(&query));
        url
    }

    /// This thread's HTTP client.
    fn client(&self) -> &reqwest::Client {
        self.clients.get_or(|| {
            // Built once successfully in `new`; the same settings cannot fail now.
            transport::http_client(&self.config, &self.tls, self.config.pool_max_size)
                .unwrap_or_else(|_| reqwest::Client::new())
        })
    }
}

fn no_server() -> QueryError {
    QueryError::Unavailable("no ClickHouse server is configured".into())
}

/// Output formats are names (`JSONEachRow`, `TabSeparated`, …); anything
/// else in the URL would be the guest writing query-string syntax.
fn is_format_name(format: &str) -> bool {
    !format.is_empty() && format.len() <= 64 && format.bytes().all(|b| b.is_ascii_alphanumeric())
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A query's result: streamed from ClickHouse as it runs, or (from the
/// result cache) from memory.
///
/// A running query holds one of the pool's permits until it is finished or
/// dropped; dropping it before the end cancels the query on the server.
pub struct RowStream {
    source: Source,
    /// The server memory the query was started with, counted against its
    /// request's budget until the result is dropped.
    memory: u64,
}

enum Source {
    Live(LiveRows),
    Buffered(Buffered),
}

/// Chunks read already (a cached result, or the start of one too large to
/// cache), then the live rest if the query still runs.
struct Buffered {
    chunks: VecDeque<Bytes>,
    query_id: String,
    rest: Option<LiveRows>,
}

impl RowStream {
    fn live(rows: LiveRows) -> Self {
        Self {
            source: Source::Live(rows),
            memory: 0,
        }
    }

    /// `chunks` read already, then `rest` when the query is still running.
    pub(crate) fn buffered(
        chunks: VecDeque<Bytes>,
        query_id: String,
        rest: Option<LiveRows>,
    ) -> Self {
        Self {
            source: Source::Buffered(Buffered {
                chunks,
                query_id,
                rest,
            }),
            memory: 0,
        }
    }

    /// Count `bytes` of server memory against this result's request.
    pub(crate) fn holding(mut self, bytes: u64) -> Self {
        self.memory = bytes;
        self
    }

    /// The server memory this result counts against its request.
    pub(crate) fn memory(&self) -> u64 {
        self.memory
    }

    /// This result with `chunks`, read from it already, put back in front.
    pub(crate) fn prepend(self, mut chunks: VecDeque<Bytes>) -> Self {
        let memory = self.memory;
        let stream = match self.source {
            Source::Live(rows) => {
                let query_id = rows.query_id().to_owned();
                Self::buffered(chunks, query_id, Some(rows))
            }
            Source::Buffered(mut buffered) => {
                chunks.append(&mut buffered.chunks);
                buffered.chunks = chunks;
                Self {
                    source: Source::Buffered(buffered),
                    memory,
                }
            }
        };
        stream.holding(memory)
    }

    /// The id ClickHouse knows this query by (for a cached result: the
    /// query that produced it).
    pub fn query_id(&self) -> &str {
        match &self.source {
            Source::Live(rows) => rows.query_id(),
            Source::Buffered(buffered) => &buffered.query_id,
        }
    }

    /// The next chunk of the result, `None` once it is complete.
    ///
    /// Chunks arrive as the server sends them, so memory stays flat however
    /// large the result; the guest pulls, which is the backpressure.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueryError> {
        match &mut self.source {
            Source::Live(rows) => rows.next_chunk().await,
            Source::Buffered(buffered) => match buffered.chunks.pop_front() {
                Some(chunk) => Ok(Some(chunk)),
                None => match &mut buffered.rest {
                    Some(rows) => rows.next_chunk().await,
                    None => Ok(None),
                },
            },
        }
    }
}

/// The rows of a running query.
pub(crate) struct LiveRows {
    body: ByteStream,
    /// The result's tail, held until it is known not to be an exception
    /// ClickHouse appended after `200 OK`.
    held: HoldBack<Bytes>,
    failed: bool,
    guard: QueryGuard,
    deadline: Instant,
    policy: Arc<QueryPolicy>,
    counting: Counting,
    _slot: PoolSlot,
}

/// What a result counts as it streams.
struct Counting {
    metrics: Arc<ClickHouseMetrics>,
    /// Whether the server's summary counted the rows and bytes read already.
    summarised: bool,
    /// Whether the query is a guest's (the host's own are not counted).
    guest: bool,
}

impl Counting {
    fn chunk(&self, chunk: &[u8]) {
        if !self.guest {
            return;
        }
        let bytes = chunk.len() as u64;
        self.metrics.result_bytes.inc_by(bytes);
        if !self.summarised {
            self.metrics.read_bytes.inc_by(bytes);
            self.metrics
                .read_rows
                .inc_by(chunk.iter().filter(|&&b| b == b'\n').count() as u64);
        }
    }
}

/// One of the pool's permits, counted in `pool_in_use` while held, and the
/// query's place on its replica.
struct PoolSlot {
    _permit: OwnedSemaphorePermit,
    _running: InFlight,
    in_use: prometheus_client::metrics::gauge::Gauge,
}

impl PoolSlot {
    fn new(permit: OwnedSemaphorePermit, metrics: &ClickHouseMetrics, running: InFlight) -> Self {
        metrics.in_use.inc();
        Self {
            _permit: permit,
            _running: running,
            in_use: metrics.in_use.clone(),
        }
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.in_use.dec();
    }
}

impl LiveRows {
    fn new(
        response: reqwest::Response,
        guard: QueryGuard,
        slot: PoolSlot,
        deadline: Instant,
        policy: Arc<QueryPolicy>,
        counting: Counting,
    ) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            held: HoldBack::new(DEFAULT_HOLD_BACK),
            failed: false,
            guard,
            deadline,
            policy,
            counting,
            _slot: slot,
        }
    }

    fn query_id(&self) -> &str {
        self.guard.query_id()
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueryError> {
        if self.failed {
            return Err(QueryError::Unavailable("the result already failed".into()));
        }
        loop {
            match self.held.step() {
                Next::Chunk(chunk) => return Ok(Some(chunk)),
                Next::Done => return Ok(None),
                Next::Read => {}
            }
            match tokio::time::timeout_at(self.deadline, self.body.next()).await {
                Err(_) => return Err(self.fail(QueryError::Timeout)),
                Ok(Some(Ok(chunk))) => {
                    self.counting.chunk(&chunk);
                    self.held.push(chunk);
                }
                Ok(Some(Err(err))) => {
                    let err = unavailable(self.guard.query_id(), err);
                    return Err(self.fail(err));
                }
                Ok(None) => {
                    self.guard.finished();
                    if let Err(exception) = self.held.end() {
                        let err = self.policy.classify(exception);
                        return Err(self.fail(err));
                    }
                }
            }
        }
    }

    fn fail(&mut self, err: QueryError) -> QueryError {
        self.failed = true;
        self.held.clear();
        err
    }
}

#[cfg(test)]
mod tests {
    use super::is_format_name;

    #[test]
    fn formats_are_names() {
        assert!(is_format_name("JSONEachRow"));
        assert!(!is_format_name("JSON&readonly=0"));
        assert!(!is_format_name(""));
    }
}
