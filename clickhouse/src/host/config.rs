//! How the pool is configured: the servers, the pool's bounds, the health
//! checks; and why a pool cannot be built.

use std::time::Duration;

use super::tls::{TlsError, TlsFiles};
use crate::endpoint::Endpoint;

/// Default time between two health checks of every replica.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Default most queries in flight at once (`POOL_MGR_MAX_SIZE`).
pub const DEFAULT_POOL_MAX_SIZE: usize = 64;
/// Default idle time after which a pooled connection is closed: below
/// ClickHouse 18.16's 3 s keep-alive, or a request after a pause would be
/// written into a socket the server has already closed.
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default budget for opening a TCP connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound of the result cache: 64 MiB (only routes and queries that
/// opt in use it).
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Where ClickHouse is and how to reach it; credentials stay in the host.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// The servers (replicas) and the account wasmhouse uses on each; at
    /// least one. Queries go to the least busy healthy one.
    pub endpoints: Vec<Endpoint>,
    /// Time between health checks of the replicas (only with several).
    pub health_interval: Duration,
    /// A replica whose `system.replicas.absolute_delay` is over this is
    /// taken out of rotation (checked only when set).
    pub max_replica_delay: Option<Duration>,
    /// Most queries in flight at once (`POOL_MGR_MAX_SIZE`).
    pub pool_max_size: usize,
    /// How long an idle connection is kept; see [`DEFAULT_POOL_IDLE_TIMEOUT`].
    pub pool_idle_timeout: Duration,
    /// Budget for opening a TCP connection.
    pub connect_timeout: Duration,
    /// Bytes the result cache may hold; 0 turns it off.
    pub cache_bytes: u64,
    /// Private CAs and client certificates for `https://` servers.
    pub tls: TlsFiles,
}

impl ClickHouseConfig {
    /// `endpoint` with the default pool settings.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoints: vec![endpoint],
            health_interval: DEFAULT_HEALTH_INTERVAL,
            max_replica_delay: None,
            pool_max_size: DEFAULT_POOL_MAX_SIZE,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            cache_bytes: DEFAULT_CACHE_BYTES,
            tls: TlsFiles::default(),
        }
    }

    /// The first server: the one named to guests (`endpoint()` in the WIT)
    /// and in logs.
    pub fn endpoint(&self) -> &Endpoint {
        static NONE: std::sync::LazyLock<Endpoint> = std::sync::LazyLock::new(Endpoint::default);
        self.endpoints.first().unwrap_or(&NONE)
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
    /// The TLS configuration cannot be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No server is configured.
    #[error("no ClickHouse server is configured")]
    NoEndpoint,
    /// The credentials cannot be sent in a header.
    #[error("the ClickHouse user or password contains characters HTTP headers cannot carry")]
    Credentials,
}
