//! The result cache: reads answered from memory for a while instead of by
//! ClickHouse, for routes and queries that opt in.
//!
//! - **Key**: the SQL with its whitespace normalised, the bound parameters,
//!   the settings and the format (each as given, in order), and the
//!   ClickHouse account. Two reads share an entry only if ClickHouse would
//!   see the same query from the same user.
//! - **Bound**: entries weigh their result's bytes; past the bound the least
//!   recently used go first (`moka`'s TinyLFU admission and LRU eviction). A
//!   result over an eighth of the bound is never kept.
//! - **Coalescing**: identical reads that miss at the same time wait for the
//!   first one's query rather than sending their own.
//! - **Staleness**: past its TTL an entry may be served for the route's
//!   grace period while one refresh runs in the background.
//! - Only complete results of reads are kept: never a write, an error, or a
//!   result an exception cut short.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use tokio::time::Instant;

use super::client::{ClickHousePool, LiveRows, QueryRequest, RowStream};
use super::metrics::{CacheLabels, CacheLookup, ClickHouseMetrics};
use crate::error::QueryError;
use crate::policy::QueryPolicy;

/// The longest a result may be cached, whatever a route or query asks.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a read's result may be served from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Fresh for this long after it was read.
    pub ttl: Duration,
    /// Then still served, while one refresh runs, for this long.
    pub stale: Duration,
}

/// What identifies a cached result.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct CacheKey {
    user: String,
    sql: String,
    params: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    format: String,
}

impl CacheKey {
    /// The key of `request` as run by ClickHouse account `user`.
    pub fn new(user: &str, request: &QueryRequest<'_>) -> Self {
        Self {
            user: user.to_owned(),
            sql: normalise_sql(request.sql),
            params: request.params.to_vec(),
            settings: request.settings.to_vec(),
            format: request.format.unwrap_or("JSONEachRow").to_owned(),
        }
    }

    fn weight(&self) -> usize {
        let pairs = |list: &[(String, String)]| -> usize {
            list.iter()
                .map(|(name, value)| name.len() + value.len())
                .sum()
        };
        self.user.len()
            + self.sql.len()
            + pairs(&self.params)
            + pairs(&self.settings)
            + self.format.len()
    }
}

/// `sql` with every run of whitespace outside quotes made one space, and
/// none at either end: layout does not change what a query means, quoted
/// text does.
pub fn normalise_sql(sql: &str) -> String {
    let mut normalised = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut pending_space = false;
    for c in sql.trim().chars() {
        if let Some(open) = quote {
            normalised.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space {
            normalised.push(' ');
            pending_space = false;
        }
        if matches!(c, '\'' | '"' | '`') {
            quote = Some(c);
        }
        normalised.push(c);
    }
    normalised
}

/// A complete result, as ClickHouse sent it.
pub struct CachedResult {
    chunks: Vec<Bytes>,
    bytes: usize,
    /// The query that produced it (to find it in `system.query_log`).
    query_id: String,
    fresh_until: Instant,
    /// How long the cache keeps it: its TTL and grace period.
    lifetime: Duration,
    /// Whether a refresh of this stale entry is on its way.
    refreshing: AtomicBool,
}

impl CachedResult {
    fn rows(&self) -> RowStream {
        RowStream::buffered(
            self.chunks.iter().cloned().collect(),
            self.query_id.clone(),
            None,
        )
    }
}

/// Why a read could not fill its entry.
enum FetchError {
    /// The query failed: nothing is cached, every waiter gets the error.
    Query(QueryError),
    /// The result is too large to keep. The first waiter to look takes the
    /// rows (what was read, then the rest); the others run the query.
    TooLarge(Box<std::sync::Mutex<Option<RowStream>>>),
}

/// Each entry lives for its own TTL and grace period.
struct Lifetime;

impl Expiry<Arc<CacheKey>, Arc<CachedResult>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &Arc<CacheKey>,
        value: &Arc<CachedResult>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }

    fn expire_after_update(
        &self,
        _key: &Arc<CacheKey>,
        value: &Arc<CachedResult>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// Results of reads, bounded in bytes, shared by every request of a host.
#[derive(Clone)]
pub struct ResultCache {
    entries: moka::future::Cache<Arc<CacheKey>, Arc<CachedResult>>,
    max_entry_bytes: usize,
    metrics: Arc<ClickHouseMetrics>,
}

impl ResultCache {
    /// A cache holding at most `max_bytes` of results; `None` for 0.
    pub fn new(max_bytes: u64, metrics: Arc<ClickHouseMetrics>) -> Option<Self> {
        if max_bytes == 0 {
            return None;
        }
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Arc<CacheKey>, value: &Arc<CachedResult>| {
                u32::try_from(key.weight() + value.bytes).unwrap_or(u32::MAX)
            })
            .expire_after(Lifetime)
            .build();
        Some(Self {
            entries,
            max_entry_bytes: usize::try_from(max_bytes / 8).unwrap_or(usize::MAX),
            metrics,
        })
    }

    /// Answer `request` from the cache, or run it on `pool` and keep the
    /// result; how it was answered.
    pub async fn read(
        &self,
        pool: &Arc<ClickHousePool>,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
    ) -> Result<(RowStream, CacheLookup), QueryError> {
        let freshness = Freshness {
            ttl: freshness.ttl.min(MAX_TTL),
            stale: freshness.stale.min(MAX_TTL),
        };
        let key = Arc::new(CacheKey::new(&pool.config().endpoint().user, request));
        if let Some(entry) = self.entries.get(&key).await {
            if Instant::now() < entry.fresh_until {
                return Ok((entry.rows(), self.counted(CacheLookup::hit)));
            }
            // Past its TTL, within its grace period: one refresh, and the
            // old result meanwhile.
            if !entry.refreshing.swap(true, Ordering::AcqRel) {
                self.refresh(pool, request, policy, freshness, key, entry.clone());
            }
            return Ok((entry.rows(), self.counted(CacheLookup::stale)));
        }
        let fill = self.fill(pool, request, policy, deadline, freshness);
        let filled =
            tokio::time::timeout_at(deadline, self.entries.entry(key).or_try_insert_with(fill))
                .await
                .map_err(|_| QueryError::Timeout)?;
        let outcome = match filled {
            Ok(entry) if entry.is_fresh() => {
                self.count_size().await;
                return Ok((entry.into_value().rows(), self.counted(CacheLookup::miss)));
            }
            Ok(entry) => {
                return Ok((
                    entry.into_value().rows(),
                    self.counted(CacheLookup::coalesced),
                ));
            }
            Err(failed) => failed,
        };
        match &*outcome {
            FetchError::Query(err) => Err(err.clone()),
            FetchError::TooLarge(rows) => {
                let taken = rows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                match taken {
                    Some(rows) => Ok((rows, self.counted(CacheLookup::miss))),
                    None => Ok((
                        pool.execute(request, policy, deadline).await?,
                        self.counted(CacheLookup::miss),
                    )),
                }
            }
        }
    }

    /// Run `request` and read its whole result, to be cached.
    async fn fill(
        &self,
        pool: &Arc<ClickHousePool>,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
    ) -> Result<Arc<CachedResult>, FetchError> {
        let mut rows = pool
            .execute(request, policy, deadline)
            .await
            .map_err(FetchError::Query)?;
        let mut chunks = Vec::new();
        let mut bytes = 0usize;
        while let Some(chunk) = rows.next_chunk().await.map_err(FetchError::Query)? {
            bytes += chunk.len();
            chunks.push(chunk);
            if bytes > self.max_entry_bytes {
                let query_id = rows.query_id().to_owned();
                let rest = rows.into_live();
                let whole = RowStream::buffered(chunks.into(), query_id, rest);
                return Err(FetchError::TooLarge(Box::new(std::sync::Mutex::new(Some(
                    whole,
                )))));
            }
        }
        Ok(Arc::new(CachedResult {
            chunks,
            bytes,
            query_id: rows.query_id().to_owned(),
            fresh_until: Instant::now() + freshness.ttl,
            lifetime: freshness.ttl + freshness.stale,
            refreshing: AtomicBool::new(false),
        }))
    }

    /// Run `request` again in the background and replace `stale` with its
    /// result; on failure the stale entry stays (until its grace ends) and
    /// the next read tries again.
    fn refresh(
        &self,
        pool: &Arc<ClickHousePool>,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        freshness: Freshness,
        key: Arc<CacheKey>,
        stale: Arc<CachedResult>,
    ) {
        let cache = self.clone();
        let pool = pool.clone();
        let policy = policy.clone();
        let owned = OwnedRequest::from(request);
        let budget = policy.max_execution_time.unwrap_or(Duration::from_secs(30));
        tokio::spawn(async move {
            let deadline = Instant::now() + budget;
            let request = owned.borrowed();
            match cache
                .fill(&pool, &request, &policy, deadline, freshness)
                .await
            {
                Ok(fresh) => {
                    cache.entries.insert(key, fresh).await;
                    cache.count_size().await;
                }
                Err(FetchError::Query(err)) => {
                    tracing::debug!(error = %err, "refreshing a cached result failed; the stale one stays for its grace period");
                    stale.refreshing.store(false, Ordering::Release);
                }
                Err(FetchError::TooLarge(_)) => {
                    cache.entries.invalidate(&key).await;
                }
            }
        });
    }

    fn counted(&self, outcome: CacheLookup) -> CacheLookup {
        self.metrics
            .cache_lookups
            .get_or_create(&CacheLabels { outcome })
            .inc();
        outcome
    }

    /// Enforce the bound now (moka does it lazily) and publish the size.
    async fn count_size(&self) {
        self.entries.run_pending_tasks().await;
        self.metrics
            .cache_bytes
            .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
        self.metrics
            .cache_entries
            .set(i64::try_from(self.entries.entry_count()).unwrap_or(i64::MAX));
    }
}

/// A request's parts owned, for a refresh that outlives it.
struct OwnedRequest {
    sql: String,
    params: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    format: Option<String>,
}

impl From<&QueryRequest<'_>> for OwnedRequest {
    fn from(request: &QueryRequest<'_>) -> Self {
        Self {
            sql: request.sql.to_owned(),
            params: request.params.to_vec(),
            settings: request.settings.to_vec(),
            format: request.format.map(str::to_owned),
        }
    }
}

impl OwnedRequest {
    fn borrowed(&self) -> QueryRequest<'_> {
        QueryRequest {
            sql: &self.sql,
            params: &self.params,
            settings: &self.settings,
            format: self.format.as_deref(),
            request_id: Some("cache-refresh"),
        }
    }
}

/// Buffered chunks, then (for a result too large to cache) the live rest.
pub(crate) struct Buffered {
    pub(crate) chunks: VecDeque<Bytes>,
    pub(crate) query_id: String,
    pub(crate) rest: Option<LiveRows>,
}

#[cfg(test)]
mod tests {
    use super::normalise_sql;

    #[test]
    fn layout_is_normalised_quoted_text_is_not() {
        assert_eq!(
            normalise_sql("  SELECT\n\t1   AS  x  "),
            normalise_sql("SELECT 1 AS x")
        );
        assert_eq!(
            normalise_sql("SELECT 'a   b'  AS  \"x  y\""),
            "SELECT 'a   b' AS \"x  y\""
        );
        assert_ne!(
            normalise_sql("SELECT 'a  b'"),
            normalise_sql("SELECT 'a b'")
        );
        assert_eq!(
            normalise_sql("SELECT 'it\\'s   ok'   "),
            "SELECT 'it\\'s   ok'"
        );
    }
}
