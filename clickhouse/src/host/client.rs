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

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::metrics::{CancelOutcome, ClickHouseMetrics};
use super::transport::{is_retryable, read_error_body, unavailable};
use crate::endpoint::{Endpoint, Scheme};
use crate::error::QueryError;
use crate::params::{self, BindMode};
use crate::policy::{QueryPolicy, classify_error_body};
use crate::response::{DEFAULT_HOLD_BACK, HoldBack, truncate};
use crate::statement::StatementKind;

/// Default most queries in flight at once (`POOL_MGR_MAX_SIZE`).
pub const DEFAULT_POOL_MAX_SIZE: usize = 64;
/// Default idle time after which a pooled connection is closed: below
/// ClickHouse 18.16's 3 s keep-alive, or a request after a pause would be
/// written into a socket the server has already closed.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default budget for opening a TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where ClickHouse is and how to reach it; credentials stay in the host.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// The server and the account wasmhouse uses there.
    pub endpoint: Endpoint,
    /// Most queries in flight at once (`POOL_MGR_MAX_SIZE`).
    pub pool_max_size: usize,
    /// How long an idle connection is kept; see [`DEFAULT_POOL_IDLE_TIMEOUT`].
    pub pool_idle_timeout: Duration,
    /// Budget for opening a TCP connection.
    pub connect_timeout: Duration,
}

impl ClickHouseConfig {
    /// `endpoint` with the default pool settings.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            pool_max_size: DEFAULT_POOL_MAX_SIZE,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The HTTP client could not be set up.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// Host and port do not make a URL.
    #[error("{0} is not a valid ClickHouse address: {1}")]
    Address(String, url::ParseError),
    /// The host speaks plain HTTP only.
    #[error(
        "https is not supported by the host; reach ClickHouse over http (a TLS-terminating proxy on loopback, for example)"
    )]
    Https,
    /// The credentials cannot be sent in a header.
    #[error("the ClickHouse user or password contains characters HTTP headers cannot carry")]
    Credentials,
}

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
}

/// How a guest's query is sent.
#[derive(Debug, Clone, Copy)]
struct GuestQuery {
    /// Reads may be retried on a fresh connection.
    kind: StatementKind,
    /// Whether the route's `readonly` level is sent (not when the account's
    /// profile is read-only already).
    send_readonly: bool,
}

/// What the server can do and what wasmhouse's account there may change,
/// learnt once from the server itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version string, e.g. `18.16.1`.
    pub version: String,
    /// Whether the server binds `{name:Type}` itself (19.11 and later).
    pub native_params: bool,
    /// The `readonly` level of the account's profile. At 2 the server
    /// refuses any change to `readonly` itself (it is read-only already);
    /// at 1 it refuses every setting, so the host's caps cannot be applied.
    pub profile_readonly: u8,
}

impl ServerInfo {
    fn from_version(version: &str) -> Self {
        let mut parts = version
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let major = parts.next().unwrap_or(0);
        let minor = parts.next().unwrap_or(0);
        Self {
            version: version.trim().to_owned(),
            native_params: (major, minor) >= (19, 11),
            profile_readonly: 0,
        }
    }

    /// From the `version\treadonly` line the probe query answers.
    fn from_probe(text: &str) -> Self {
        let (version, readonly) = text.trim().split_once('\t').unwrap_or((text, "0"));
        Self {
            profile_readonly: readonly.trim().parse().unwrap_or(0),
            ..Self::from_version(version)
        }
    }
}

/// Keep-alive HTTP connections to one ClickHouse server, shared by every
/// request, with a bound on concurrent queries.
pub struct ClickHousePool {
    /// One HTTP client, and so one set of pooled connections, per worker
    /// thread: a connection's driver task then runs on the thread that uses
    /// it, and a query costs no cross-thread wake-ups.
    clients: thread_local::ThreadLocal<reqwest::Client>,
    config: ClickHouseConfig,
    /// `http://host:port/`, parsed once: parsing a URL per query (host
    /// name normalisation included) is measurable at thousands of queries
    /// per second.
    base_url: reqwest::Url,
    /// The parts of the query string that never change.
    base_query: String,
    authorization: HeaderValue,
    permits: Arc<Semaphore>,
    server: OnceCell<ServerInfo>,
    canceller: Arc<Canceller>,
    metrics: Arc<ClickHouseMetrics>,
}

impl ClickHousePool {
    /// Build the pool. No connection is opened until the first query, so a
    /// host can start while ClickHouse is still down.
    pub fn new(config: ClickHouseConfig) -> Result<Self, PoolError> {
        let endpoint = &config.endpoint;
        if endpoint.scheme == Scheme::Https {
            return Err(PoolError::Https);
        }
        // Fail at start-up, not on the first query, if the client cannot be built.
        build_client(&config)?;
        let address = endpoint.base_url();
        let base_url =
            reqwest::Url::parse(&address).map_err(|err| PoolError::Address(address, err))?;
        let database: String =
            url::form_urlencoded::byte_serialize(endpoint.database.as_bytes()).collect();
        let base_query = format!("database={database}&output_format_json_quote_64bit_integers=0");
        let mut authorization = HeaderValue::from_str(&endpoint.basic_authorization())
            .map_err(|_| PoolError::Credentials)?;
        authorization.set_sensitive(true);
        let metrics = Arc::new(ClickHouseMetrics::default());
        metrics
            .capacity
            .set(i64::try_from(config.pool_max_size.max(1)).unwrap_or(i64::MAX));
        let canceller = Arc::new(Canceller::new(
            base_url.clone(),
            authorization.clone(),
            config.connect_timeout,
            metrics.clone(),
        )?);
        Ok(Self {
            metrics,
            clients: thread_local::ThreadLocal::new(),
            permits: Arc::new(Semaphore::new(config.pool_max_size.max(1))),
            config,
            base_url,
            base_query,
            authorization,
            server: OnceCell::new(),
            canceller,
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

    /// The server's version and features, asking it once on first use.
    pub async fn server_info(&self, deadline: Instant) -> Result<&ServerInfo, QueryError> {
        let info = self
            .server
            .get_or_try_init(|| async {
                let request = QueryRequest {
                    sql: "SELECT version(), (SELECT value FROM system.settings WHERE name = 'readonly')",
                    params: &[],
                    settings: &[],
                    format: Some("TabSeparated"),
                    request_id: None,
                };
                // The host's own query: none of a route's settings.
                let policy = Arc::new(QueryPolicy::default());
                let mut rows = self
                    .send(&request, request.sql, &[], &policy, None, deadline)
                    .await?;
                let mut text = Vec::new();
                while let Some(chunk) = rows.next_chunk().await? {
                    text.extend_from_slice(&chunk);
                }
                let info = ServerInfo::from_probe(&String::from_utf8_lossy(&text));
                tracing::info!(
                    version = info.version,
                    profile_readonly = info.profile_readonly,
                    "connected to ClickHouse"
                );
                if info.profile_readonly == 1 {
                    tracing::error!(
                        "the ClickHouse account's profile has readonly = 1, so the host cannot set per-query limits; give it readonly = 2 (see deploy/clickhouse/wasmhouse-user.xml)"
                    );
                }
                Ok::<_, QueryError>(info)
            })
            .await?;
        if info.profile_readonly == 1 {
            return Err(QueryError::Unavailable(
                "wasmhouse's ClickHouse account is misconfigured (see the host log)".into(),
            ));
        }
        Ok(info)
    }

    /// Run a guest's query under `policy`, giving up at `deadline`. Returns
    /// once the server has accepted the query; the rows follow as a stream.
    pub async fn execute(
        &self,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        let kind = policy.admit(request.sql, request.params, request.settings)?;
        if let Some(format) = request.format
            && !is_format_name(format)
        {
            return Err(QueryError::Refused(format!(
                "{:?} is not a ClickHouse format name",
                truncate(format, 64)
            )));
        }
        let info = self.server_info(deadline).await?;
        let guest = GuestQuery {
            kind,
            // A read-only profile (readonly = 2) refuses any change to
            // `readonly`; it forbids writes itself, and the statement rules
            // still hold a strict route to strict SQL.
            send_readonly: info.profile_readonly == 0,
        };
        if request.params.is_empty() {
            return self
                .send(request, request.sql, &[], policy, Some(guest), deadline)
                .await;
        }
        let mode = if info.native_params {
            BindMode::Server
        } else {
            BindMode::Inline
        };
        let bound = params::bind(request.sql, request.params, mode)
            .map_err(|err| QueryError::InvalidParameter(err.to_string()))?;
        // Binding may have grown the SQL (typed literals): check it again.
        if bound.sql.len() > policy.max_sql_bytes.saturating_mul(4) {
            return Err(QueryError::Refused(
                "the query with its parameters bound is too large".into(),
            ));
        }
        self.send(
            request,
            &bound.sql,
            &bound.url_params,
            policy,
            Some(guest),
            deadline,
        )
        .await
    }

    /// Send one query: a guest's (with its route's settings), or the
    /// host's own (`guest` is `None`: no route settings, always a read).
    async fn send(
        &self,
        request: &QueryRequest<'_>,
        sql: &str,
        url_params: &[(String, String)],
        policy: &Arc<QueryPolicy>,
        guest: Option<GuestQuery>,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        let permit = self.acquire(deadline).await?;
        // Random, so no request can guess (and target) another's query; the
        // request id in front joins it to its request in system.query_log.
        let random = uuid::Uuid::new_v4().simple();
        let query_id = match request.request_id {
            Some(request_id) => format!("wasmhouse-{request_id}-{random}"),
            None => format!("wasmhouse-{random}"),
        };
        let url = self.url(request, &query_id, url_params, policy, guest, deadline);
        let retry_safe = guest.is_none_or(|guest| guest.kind == StatementKind::Read);
        let body = bytes::Bytes::copy_from_slice(sql.as_bytes());
        // Cancels the query server-side if we stop waiting for it.
        let mut guard = self.canceller.guard(query_id);

        let mut attempt = 0;
        let started = Instant::now();
        if guest.is_some() {
            self.metrics.queries.inc();
        }
        let response = loop {
            attempt += 1;
            let sent = tokio::time::timeout_at(
                deadline,
                self.client()
                    .post(url.clone())
                    .header(AUTHORIZATION, self.authorization.clone())
                    .body(body.clone())
                    .send(),
            )
            .await;
            match sent {
                Err(_) => return Err(QueryError::Timeout),
                Ok(Ok(response)) => break response,
                // A pooled connection the server closed while idle fails
                // before any response; a read is safe to send once more on
                // a fresh connection.
                Ok(Err(err)) if attempt == 1 && retry_safe && is_retryable(&err) => {
                    self.metrics.retries.inc();
                    tracing::debug!(query_id = guard.query_id(), error = %err.without_url(), "retrying query on a fresh connection");
                }
                Ok(Err(err)) => return Err(unavailable(guard.query_id(), err)),
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
            return Err(classify_error_body(policy, status.as_u16(), &text));
        }
        Ok(RowStream::new(
            response,
            guard,
            PoolSlot::new(permit, &self.metrics),
            deadline,
            policy.clone(),
            Counting {
                metrics: self.metrics.clone(),
                summarised,
                guest: guest.is_some(),
            },
        ))
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

    fn url(
        &self,
        request: &QueryRequest<'_>,
        query_id: &str,
        url_params: &[(String, String)],
        policy: &QueryPolicy,
        guest: Option<GuestQuery>,
        deadline: Instant,
    ) -> reqwest::Url {
        let mut query = String::with_capacity(self.base_query.len() + 320);
        query.push_str(&self.base_query);
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
            for (name, value) in policy.settings(Some(remaining)) {
                if name != "readonly" || guest.send_readonly {
                    push(name, &value);
                }
            }
        }
        for (name, value) in url_params {
            push(name, value);
        }
        let mut url = self.base_url.clone();
        url.set_query(Some(&query));
        url
    }

    /// This thread's HTTP client.
    fn client(&self) -> &reqwest::Client {
        self.clients.get_or(|| {
            // Built once successfully in `new`; the same settings cannot fail now.
            build_client(&self.config).unwrap_or_else(|_| reqwest::Client::new())
        })
    }
}

fn build_client(config: &ClickHouseConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(config.pool_max_size)
        .pool_idle_timeout(config.pool_idle_timeout)
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http1_only()
        // Proxy variables in the environment must not reroute database traffic.
        .no_proxy()
        .build()
}

/// Output formats are names (`JSONEachRow`, `TabSeparated`, …); anything
/// else in the URL would be the guest writing query-string syntax.
fn is_format_name(format: &str) -> bool {
    !format.is_empty() && format.len() <= 64 && format.bytes().all(|b| b.is_ascii_alphanumeric())
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The rows of a running query.
///
/// Holds one of the pool's permits until it is finished or dropped; dropping
/// it before the end cancels the query on the server.
pub struct RowStream {
    body: ByteStream,
    /// The result's tail, held until it is known not to be an exception
    /// ClickHouse appended after `200 OK`.
    held: HoldBack<Bytes>,
    body_done: bool,
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

/// One of the pool's permits, counted in `pool_in_use` while held.
struct PoolSlot {
    _permit: OwnedSemaphorePermit,
    in_use: prometheus_client::metrics::gauge::Gauge,
}

impl PoolSlot {
    fn new(permit: OwnedSemaphorePermit, metrics: &ClickHouseMetrics) -> Self {
        metrics.in_use.inc();
        Self {
            _permit: permit,
            in_use: metrics.in_use.clone(),
        }
    }
}

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.in_use.dec();
    }
}

impl RowStream {
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
            body_done: false,
            failed: false,
            guard,
            deadline,
            policy,
            counting,
            _slot: slot,
        }
    }

    /// The id ClickHouse knows this query by.
    pub fn query_id(&self) -> &str {
        self.guard.query_id()
    }

    /// The next chunk of the result, `None` once it is complete.
    ///
    /// Chunks arrive as the server sends them, so memory stays flat however
    /// large the result; the guest pulls, which is the backpressure.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueryError> {
        if self.failed {
            return Err(QueryError::Unavailable("the result already failed".into()));
        }
        loop {
            let ready = if self.body_done {
                self.held.pop_any()
            } else {
                self.held.pop_ready()
            };
            if let Some(chunk) = ready {
                return Ok(Some(chunk));
            }
            if self.body_done {
                return Ok(None);
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
                    self.body_done = true;
                    self.guard.finished();
                    if let Err(exception) = self.held.finish() {
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

/// Most `KILL QUERY` requests in flight at once.
pub const MAX_CANCELLATIONS_IN_FLIGHT: usize = 16;

/// Budget of one `KILL QUERY` request.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `KILL QUERY` for abandoned queries.
pub struct Canceller {
    client: reqwest::Client,
    url: reqwest::Url,
    authorization: HeaderValue,
    in_flight: Arc<Semaphore>,
    metrics: Arc<ClickHouseMetrics>,
}

impl Canceller {
    /// A canceller for the server at `base_url`, logging in with `authorization`.
    pub fn new(
        base_url: reqwest::Url,
        authorization: HeaderValue,
        connect_timeout: Duration,
        metrics: Arc<ClickHouseMetrics>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(CANCEL_TIMEOUT)
            .pool_max_idle_per_host(1)
            .http1_only()
            .no_proxy()
            .build()?;
        Ok(Self {
            client,
            url: base_url,
            authorization,
            in_flight: Arc::new(Semaphore::new(MAX_CANCELLATIONS_IN_FLIGHT)),
            metrics,
        })
    }

    /// A guard that cancels query `query_id` when dropped unfinished.
    pub fn guard(self: &Arc<Self>, query_id: String) -> QueryGuard {
        QueryGuard {
            canceller: self.clone(),
            query_id,
            done: false,
        }
    }

    fn cancel(&self, query_id: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.metrics.cancelled(CancelOutcome::skipped);
            tracing::warn!(
                %query_id,
                "too many cancellations in flight; the query ends at its max_execution_time"
            );
            return;
        };
        // The id is the host's own (`wasmhouse-` and hex), never guest text.
        let sql = format!("KILL QUERY WHERE query_id = '{query_id}' ASYNC");
        let request = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .body(sql);
        let metrics = self.metrics.clone();
        runtime.spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    metrics.cancelled(CancelOutcome::sent);
                    tracing::debug!(%query_id, "cancelled abandoned query");
                }
                Ok(response) => {
                    metrics.cancelled(CancelOutcome::failed);
                    tracing::warn!(%query_id, status = %response.status(), "KILL QUERY failed");
                }
                Err(err) => {
                    metrics.cancelled(CancelOutcome::failed);
                    tracing::debug!(%query_id, error = %err.without_url(), "KILL QUERY not sent");
                }
            }
        });
    }
}

/// Cancels its query on the server unless marked finished first.
pub struct QueryGuard {
    canceller: Arc<Canceller>,
    query_id: String,
    done: bool,
}

impl QueryGuard {
    /// The id ClickHouse knows the query by.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// The query ended on the server; nothing to cancel.
    pub fn finished(&mut self) {
        self.done = true;
    }
}

impl Drop for QueryGuard {
    fn drop(&mut self) {
        if !self.done {
            self.canceller.cancel(std::mem::take(&mut self.query_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ServerInfo, is_format_name};

    #[test]
    fn native_parameters_start_at_19_11() {
        assert!(!ServerInfo::from_version("18.16.1").native_params);
        assert!(!ServerInfo::from_version("19.10.1.5").native_params);
        assert!(ServerInfo::from_version("19.11.3.11").native_params);
        assert!(ServerInfo::from_version("24.8.4.13\n").native_params);
    }

    #[test]
    fn formats_are_names() {
        assert!(is_format_name("JSONEachRow"));
        assert!(!is_format_name("JSON&readonly=0"));
        assert!(!is_format_name(""));
    }
}
