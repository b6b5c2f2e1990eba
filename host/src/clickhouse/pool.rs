//! The shared keep-alive connection pool to ClickHouse's HTTP interface.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::error::{QueryError, ServerException};
use super::policy::QueryPolicy;
use super::stream::RowStream;
use wasmhouse_sql::params::{self, BindMode};

/// Where ClickHouse is and how to reach it; credentials stay in the host.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// Host name or address.
    pub host: String,
    /// HTTP port.
    pub port: u16,
    /// User to authenticate as.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// Database unqualified names resolve in.
    pub database: String,
    /// Most queries in flight at once (`POOL_MGR_MAX_SIZE`).
    pub pool_max_size: usize,
    /// How long an idle connection is kept. Must stay below the server's
    /// `keep_alive_timeout` (3 s on 18.16), or a request after a pause is
    /// written into a socket the server already closed.
    pub pool_idle_timeout: Duration,
    /// Budget for opening a TCP connection.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("pool_max_size", &self.pool_max_size)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
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
}

/// What the server can do, learnt from `SELECT version()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version string, e.g. `18.16.1`.
    pub version: String,
    /// Whether the server binds `{name:Type}` itself (19.11 and later).
    pub native_params: bool,
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
        }
    }
}

/// Keep-alive HTTP connections to one ClickHouse server, shared by every
/// request, with a bound on concurrent queries.
pub struct ClickHousePool {
    inner: Arc<PoolInner>,
}

pub(super) struct PoolInner {
    /// One HTTP client, and so one set of pooled connections, per worker
    /// thread: a connection's driver task then runs on the thread that uses
    /// it, and a query costs no cross-thread wake-ups.
    clients: thread_local::ThreadLocal<reqwest::Client>,
    /// Built (and checked) up front; the template for the per-thread ones.
    builder_check: reqwest::Client,
    pub(super) config: ClickHouseConfig,
    /// `http://host:port/`, parsed once: parsing a URL per query (host
    /// name normalisation included) is measurable at thousands of queries
    /// per second.
    base_url: reqwest::Url,
    /// The parts of the query string that never change.
    base_query: String,
    pub(super) authorization: HeaderValue,
    permits: Arc<Semaphore>,
    server: OnceCell<ServerInfo>,
    query_prefix: String,
    next_query: AtomicU64,
}

impl ClickHousePool {
    /// Build the pool. No connection is opened until the first query, so a
    /// host can start while ClickHouse is still down.
    pub fn new(config: ClickHouseConfig) -> Result<Self, PoolError> {
        let client = build_client(&config)?;
        let host = if config.host.contains(':') && !config.host.starts_with('[') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let database: String =
            url::form_urlencoded::byte_serialize(config.database.as_bytes()).collect();
        let address = format!("http://{host}:{}/", config.port);
        let base_url =
            reqwest::Url::parse(&address).map_err(|err| PoolError::Address(address, err))?;
        let base_query = format!("database={database}&output_format_json_quote_64bit_integers=0");
        let credentials = format!("{}:{}", config.user, config.password);
        let mut authorization =
            HeaderValue::from_str(&format!("Basic {}", base64_encode(credentials.as_bytes())))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
        authorization.set_sensitive(true);
        let permits = Arc::new(Semaphore::new(config.pool_max_size.max(1)));
        let query_prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Ok(Self {
            inner: Arc::new(PoolInner {
                clients: thread_local::ThreadLocal::new(),
                builder_check: client,
                config,
                base_url,
                base_query,
                authorization,
                permits,
                server: OnceCell::new(),
                query_prefix,
                next_query: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this pool was built from.
    pub fn config(&self) -> &ClickHouseConfig {
        &self.inner.config
    }

    /// The server's version and features, asking it once on first use.
    pub async fn server_info(&self, deadline: Instant) -> Result<&ServerInfo, QueryError> {
        self.inner
            .server
            .get_or_try_init(|| async {
                let request = QueryRequest {
                    sql: "SELECT version()",
                    params: &[],
                    settings: &[],
                    format: Some("TabSeparated"),
                };
                let policy = QueryPolicy::default();
                let mut rows = self
                    .send(&request, request.sql, &[], &policy, deadline)
                    .await?;
                let mut text = Vec::new();
                while let Some(chunk) = rows.next_chunk().await? {
                    text.extend_from_slice(&chunk);
                }
                Ok(ServerInfo::from_version(&String::from_utf8_lossy(&text)))
            })
            .await
    }

    /// Run a query under `policy`, giving up at `deadline`. Returns once the
    /// server has accepted the query; the rows follow as a stream.
    pub async fn execute(
        &self,
        request: &QueryRequest<'_>,
        policy: &QueryPolicy,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        policy.check_settings(request.settings)?;
        let mode = if request.params.is_empty() {
            BindMode::Inline
        } else if self.server_info(deadline).await?.native_params {
            BindMode::Server
        } else {
            BindMode::Inline
        };
        let bound = params::bind(request.sql, request.params, mode)
            .map_err(|err| QueryError::InvalidParameter(err.to_string()))?;
        self.send(request, &bound.sql, &bound.url_params, policy, deadline)
            .await
    }

    async fn send(
        &self,
        request: &QueryRequest<'_>,
        sql: &str,
        url_params: &[(String, String)],
        policy: &QueryPolicy,
        deadline: Instant,
    ) -> Result<RowStream, QueryError> {
        let permit = self.acquire(deadline).await?;
        let query_id = format!(
            "wasmhouse-{}-{}",
            self.inner.query_prefix,
            self.inner.next_query.fetch_add(1, Ordering::Relaxed)
        );
        let url = self.url(request, &query_id, url_params, policy, deadline);
        let body = bytes::Bytes::copy_from_slice(sql.as_bytes());
        // Cancels the query server-side if we stop waiting for it.
        let mut guard = super::stream::QueryGuard::new(self.inner.clone(), query_id);

        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent = tokio::time::timeout_at(
                deadline,
                self.inner
                    .client()
                    .post(url.clone())
                    .header(AUTHORIZATION, self.inner.authorization.clone())
                    .body(body.clone())
                    .send(),
            )
            .await;
            match sent {
                Err(_) => return Err(QueryError::Timeout),
                Ok(Ok(response)) => break response,
                // A pooled connection the server closed while idle fails
                // before any response; a read-only query is safe to send
                // once more on a fresh connection.
                Ok(Err(err)) if attempt == 1 && policy.readonly && is_retryable(&err) => {
                    tracing::debug!(error = %err, "retrying query on a fresh connection");
                }
                Ok(Err(err)) => return Err(unavailable(&self.inner.config, &err)),
            }
        };

        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout_at(deadline, read_error_body(response))
                .await
                .map_err(|_| QueryError::Timeout)?;
            guard.finished();
            return Err(match ServerException::parse(&text) {
                Some(exception) => policy.error_context().classify(exception),
                None if status.is_server_error() => QueryError::Unavailable(format!(
                    "ClickHouse answered {status}: {}",
                    text.trim()
                )),
                None => QueryError::Server {
                    code: 0,
                    message: format!("ClickHouse answered {status}: {}", text.trim()),
                },
            });
        }
        Ok(RowStream::new(
            response,
            guard,
            permit,
            deadline,
            policy.error_context(),
        ))
    }

    async fn acquire(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, QueryError> {
        match tokio::time::timeout_at(deadline, self.inner.permits.clone().acquire_owned()).await {
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
        deadline: Instant,
    ) -> reqwest::Url {
        let mut query = String::with_capacity(self.inner.base_query.len() + 160);
        query.push_str(&self.inner.base_query);
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
        for (name, value) in policy.settings(deadline) {
            push(name, &value);
        }
        for (name, value) in url_params {
            push(name, value);
        }
        let mut url = self.inner.base_url.clone();
        url.set_query(Some(&query));
        url
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

impl PoolInner {
    /// This thread's HTTP client.
    pub(super) fn client(&self) -> &reqwest::Client {
        self.clients
            .get_or(|| build_client(&self.config).unwrap_or_else(|_| self.builder_check.clone()))
    }
}

/// Whether a send failed in a way a second attempt on a new connection can
/// fix: the connection was refused or reset before a response arrived.
fn is_retryable(err: &reqwest::Error) -> bool {
    if err.is_timeout() {
        return false;
    }
    if err.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>()
            && (hyper_err.is_incomplete_message() || hyper_err.is_canceled())
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

pub(super) fn unavailable(config: &ClickHouseConfig, err: &reqwest::Error) -> QueryError {
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        source = cause.source();
    }
    let what = if err.is_connect() {
        "cannot connect to"
    } else {
        "lost the connection to"
    };
    QueryError::Unavailable(format!(
        "{what} ClickHouse at {}:{} ({detail})",
        config.host, config.port
    ))
}

/// An error body, capped: ClickHouse error texts are short, and a broken
/// proxy in between must not make us buffer without end.
async fn read_error_body(mut response: reqwest::Response) -> String {
    const MAX: usize = 64 * 1024;
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.extend_from_slice(&chunk);
        if text.len() >= MAX {
            text.truncate(MAX);
            break;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::ServerInfo;

    #[test]
    fn native_parameters_start_at_19_11() {
        assert!(!ServerInfo::from_version("18.16.1").native_params);
        assert!(!ServerInfo::from_version("19.10.1.5").native_params);
        assert!(ServerInfo::from_version("19.11.3.11").native_params);
        assert!(ServerInfo::from_version("24.8.4.13\n").native_params);
    }
}
