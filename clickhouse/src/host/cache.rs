//! The result cache: reads answered from memory for a while instead of by
//! ClickHouse, for routes and queries that opt in.
//!
//! - **Key**: the SQL's tokens as ClickHouse reads them (comments and layout
//!   dropped, never folded into their neighbours), the bound parameters,
//!   the settings and the format (each as given, in order), the ClickHouse
//!   account and the limits of the route's policy. Two reads share an entry
//!   only if ClickHouse would see the same query from the same user under
//!   the same limits.
//! - **Bound**: entries weigh their result's bytes; past the bound the least
//!   recently used go first (`moka`'s TinyLFU admission and LRU eviction). A
//!   result over an eighth of the bound is never kept.
//! - **Coalescing**: identical reads that miss at the same time wait for the
//!   first one's query rather than sending their own.
//! - **Staleness**: past its TTL an entry may be served for the route's
//!   grace period while one refresh runs in the background.
//! - Only complete results of reads are kept: never a write, an error, or a
//!   result an exception cut short.
//!
//! This module stores; `ClickHousePool::execute_cached` decides what to
//! store and runs the queries that fill it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use tokio::time::Instant;

use super::metrics::{CacheLabels, CacheLookup, ClickHouseMetrics};
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
    /// The limits the route's queries run under: a result read under laxer
    /// limits (more rows, more time) must not reach a stricter route.
    limits: Vec<(&'static str, String)>,
}

impl CacheKey {
    /// The key of a query as run by ClickHouse account `user` under
    /// `policy`; `sql` is its canonical text (`Admitted::canonical_sql`: the
    /// tokens ClickHouse reads, without comments or layout).
    pub fn new(
        user: &str,
        policy: &QueryPolicy,
        sql: String,
        params: &[(String, String)],
        settings: &[(String, String)],
        format: Option<&str>,
    ) -> Self {
        Self {
            user: user.to_owned(),
            sql,
            params: params.to_vec(),
            settings: settings.to_vec(),
            format: format.unwrap_or("JSONEachRow").to_owned(),
            limits: policy.settings(None),
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
            + self
                .limits
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }
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
    /// `chunks` (`bytes` in all) of query `query_id`, read just now.
    pub fn new(chunks: Vec<Bytes>, bytes: usize, query_id: String, freshness: Freshness) -> Self {
        Self {
            chunks,
            bytes,
            query_id,
            fresh_until: Instant::now() + freshness.ttl,
            lifetime: freshness.ttl + freshness.stale,
            refreshing: AtomicBool::new(false),
        }
    }

    /// The result's chunks, to be read again (cheap: shared buffers).
    pub fn chunks(&self) -> VecDeque<Bytes> {
        self.chunks.iter().cloned().collect()
    }

    /// The id of the query that produced it.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// Whether it is within its TTL.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }

    /// Claim the refresh of this stale entry: `true` for the one caller
    /// that should run it.
    pub fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// The refresh failed: the next read may try again.
    pub fn release_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }
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
/// How a read fills it is the pool's business (`ClickHousePool::execute_cached`).
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

    /// The largest result worth keeping.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// The entry for `key`, fresh or within its grace period.
    pub async fn get(&self, key: &Arc<CacheKey>) -> Option<Arc<CachedResult>> {
        self.entries.get(key).await
    }

    /// The entry for `key`, filled by `fill` if there is none. Concurrent
    /// callers for one key wait for one `fill`; whether this call's ran.
    /// A failed `fill` caches nothing: every waiter gets its error.
    pub async fn get_or_fill<E: Send + Sync + 'static>(
        &self,
        key: Arc<CacheKey>,
        fill: impl Future<Output = Result<Arc<CachedResult>, E>>,
    ) -> Result<(Arc<CachedResult>, bool), Arc<E>> {
        let entry = self.entries.entry(key).or_try_insert_with(fill).await?;
        let filled_here = entry.is_fresh();
        if filled_here {
            self.count_size().await;
        }
        Ok((entry.into_value(), filled_here))
    }

    /// Put a refreshed result in.
    pub async fn insert(&self, key: Arc<CacheKey>, result: Arc<CachedResult>) {
        self.entries.insert(key, result).await;
        self.count_size().await;
    }

    /// Drop `key`'s entry.
    pub async fn remove(&self, key: &Arc<CacheKey>) {
        self.entries.invalidate(key).await;
    }

    /// Count one lookup's outcome.
    pub fn counted(&self, outcome: CacheLookup) -> CacheLookup {
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

#[cfg(test)]
mod tests {
    use super::CacheKey;
    use crate::policy::QueryPolicy;

    fn key(sql: &str) -> CacheKey {
        let policy = QueryPolicy::default();
        let admitted = policy.admit(sql, &[], &[]).expect("admitted");
        CacheKey::new("u", &policy, admitted.canonical_sql(), &[], &[], None)
    }

    #[test]
    fn layout_and_comments_do_not_count_quoted_text_does() {
        assert_eq!(key("  SELECT\n\t1   AS  x  "), key("SELECT 1 AS x"));
        assert_eq!(key("SELECT /* c */ 1 -- c\nAS x"), key("SELECT 1 AS x"));
        assert_ne!(key("SELECT 'a  b'"), key("SELECT 'a b'"));
        assert_ne!(key("SELECT \"x  y\""), key("SELECT \"x y\""));
    }

    #[test]
    fn a_line_comment_never_swallows_what_follows_it() {
        // The old normaliser folded the line break into a space, so the
        // second WHERE landed inside the comment and both shared one entry.
        let filtered = "SELECT number FROM system.numbers -- all\nWHERE number > 5 LIMIT 3";
        let unfiltered = "SELECT number FROM system.numbers -- all WHERE number > 5 LIMIT 3";
        assert_ne!(key(filtered), key(unfiltered));
    }
}
