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
//! [`ResultCache::read`] answers a read through the cache: it decides
//! (hit, stale, miss), coalesces, fills and refreshes, and runs whatever
//! queries that takes through [`RunQueries`], the pool's seam (a test's
//! fake in the unit tests below).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use tokio::time::Instant;

use super::client::{ClickHousePool, QueryRequest, RowStream};
use super::metrics::{CacheLabels, CacheLookup, ClickHouseMetrics};
use crate::error::QueryError;
use crate::policy::{Admitted, QueryPolicy};
use crate::statement::StatementKind;

/// What runs the queries the cache needs: the pool.
pub trait RunQueries: Send + Sync + 'static {
    /// Run `request`, admitted under `policy`, by `deadline`.
    fn run_query<'a>(
        &'a self,
        request: &'a QueryRequest<'a>,
        admitted: &'a Admitted<'a>,
        policy: &'a Arc<QueryPolicy>,
        deadline: Instant,
    ) -> impl Future<Output = Result<RowStream, QueryError>> + Send + 'a;
}

impl RunQueries for ClickHousePool {
    fn run_query<'a>(
        &'a self,
        request: &'a QueryRequest<'a>,
        admitted: &'a Admitted<'a>,
        policy: &'a Arc<QueryPolicy>,
        deadline: Instant,
    ) -> impl Future<Output = Result<RowStream, QueryError>> + Send + 'a {
        self.execute_admitted(request, admitted, policy, deadline)
    }
}

/// Why a read could not fill its cache entry.
enum FillError {
    /// The query failed: nothing is cached, every waiter gets the error.
    Query(QueryError),
    /// The result is too large to keep. The first waiter to look takes the
    /// rows (what was read, then the rest); the others run the query.
    TooLarge(Box<std::sync::Mutex<Option<RowStream>>>),
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
            max_memory: None,
        }
    }
}

fn cached_rows(result: &CachedResult) -> RowStream {
    RowStream::buffered(result.chunks(), result.query_id().to_owned(), None)
}

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

    /// Run a guest's query through `pool` like `ClickHousePool::execute`,
    /// answering a read from this cache when it may be (`freshness`): how
    /// the cache answered, `None` when it was not asked (a write, a TTL of
    /// 0).
    pub async fn execute(
        &self,
        pool: &Arc<ClickHousePool>,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
    ) -> Result<(RowStream, Option<CacheLookup>), QueryError> {
        let admitted = policy.admit(request.sql, request.params, request.settings)?;
        if freshness.ttl.is_zero() || admitted.kind() != StatementKind::Read {
            let rows = pool
                .execute_admitted(request, &admitted, policy, deadline)
                .await?;
            return Ok((rows, None));
        }
        let user = &pool.config().endpoint().user;
        let (rows, lookup) = self
            .read(pool, user, request, &admitted, policy, deadline, freshness)
            .await?;
        Ok((rows, Some(lookup)))
    }

    /// Answer a read (`admitted` under `policy`, for ClickHouse account
    /// `user`) from the cache when it may be, running what it takes through
    /// `runner`; how the cache answered.
    ///
    /// A fresh entry is a hit; one past its TTL, within its grace period,
    /// is served stale while one refresh runs in the background (bounded
    /// by this request's `deadline`); otherwise identical reads that miss
    /// together share one query.
    #[allow(clippy::too_many_arguments, reason = "one read's parts, all needed")]
    pub async fn read<R: RunQueries>(
        &self,
        runner: &Arc<R>,
        user: &str,
        request: &QueryRequest<'_>,
        admitted: &Admitted<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
    ) -> Result<(RowStream, CacheLookup), QueryError> {
        let freshness = Freshness {
            ttl: freshness.ttl.min(MAX_TTL),
            stale: freshness.stale.min(MAX_TTL),
        };
        let key = Arc::new(CacheKey::new(
            user,
            policy,
            admitted.canonical_sql(),
            request.params,
            request.settings,
            request.format,
        ));
        if let Some(entry) = self.get(&key).await {
            if entry.is_fresh() {
                return Ok((cached_rows(&entry), self.counted(CacheLookup::hit)));
            }
            // Past its TTL, within its grace period: one refresh, and the
            // old result meanwhile.
            if entry.claim_refresh() {
                self.refresh(
                    runner,
                    request,
                    policy,
                    deadline,
                    freshness,
                    key,
                    entry.clone(),
                );
            }
            return Ok((cached_rows(&entry), self.counted(CacheLookup::stale)));
        }
        let fill = self.fill(&**runner, request, admitted, policy, deadline, freshness);
        let filled = tokio::time::timeout_at(deadline, self.get_or_fill(key, fill))
            .await
            .map_err(|_| QueryError::Timeout)?;
        let failed = match filled {
            Ok((entry, true)) => return Ok((cached_rows(&entry), self.counted(CacheLookup::miss))),
            Ok((entry, false)) => {
                return Ok((cached_rows(&entry), self.counted(CacheLookup::coalesced)));
            }
            Err(failed) => failed,
        };
        match &*failed {
            FillError::Query(err) => Err(err.clone()),
            FillError::TooLarge(rows) => {
                let taken = rows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                let rows = match taken {
                    Some(rows) => rows,
                    // Another waiter has that result: run the query again.
                    None => {
                        runner
                            .run_query(request, admitted, policy, deadline)
                            .await?
                    }
                };
                Ok((rows, self.counted(CacheLookup::miss)))
            }
        }
    }

    /// Run `request` and read its whole result, to be cached.
    async fn fill<R: RunQueries>(
        &self,
        runner: &R,
        request: &QueryRequest<'_>,
        admitted: &Admitted<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
    ) -> Result<Arc<CachedResult>, FillError> {
        let mut rows = runner
            .run_query(request, admitted, policy, deadline)
            .await
            .map_err(FillError::Query)?;
        let mut chunks = Vec::new();
        let mut bytes = 0usize;
        while let Some(chunk) = rows.next_chunk().await.map_err(FillError::Query)? {
            bytes += chunk.len();
            chunks.push(chunk);
            if bytes > self.max_entry_bytes {
                let whole = rows.prepend(chunks.into());
                return Err(FillError::TooLarge(Box::new(std::sync::Mutex::new(Some(
                    whole,
                )))));
            }
        }
        let query_id = rows.query_id().to_owned();
        Ok(Arc::new(CachedResult::new(
            chunks, bytes, query_id, freshness,
        )))
    }

    /// Run `request` again in the background, by `deadline`, and replace
    /// `stale` with its result; on failure the stale entry stays (until its
    /// grace ends) and the next read tries again.
    #[allow(clippy::too_many_arguments, reason = "one refresh's parts, all needed")]
    fn refresh<R: RunQueries>(
        &self,
        runner: &Arc<R>,
        request: &QueryRequest<'_>,
        policy: &Arc<QueryPolicy>,
        deadline: Instant,
        freshness: Freshness,
        key: Arc<CacheKey>,
        stale: Arc<CachedResult>,
    ) {
        let (runner, cache, policy) = (runner.clone(), self.clone(), policy.clone());
        let owned = OwnedRequest::from(request);
        tokio::spawn(async move {
            let request = owned.borrowed();
            // Admitted before, under the same policy: this cannot fail now.
            let Ok(admitted) = policy.admit(request.sql, request.params, request.settings) else {
                return stale.release_refresh();
            };
            let fill = cache.fill(&*runner, &request, &admitted, &policy, deadline, freshness);
            match tokio::time::timeout_at(deadline, fill).await {
                Ok(Ok(fresh)) => cache.insert(key, fresh).await,
                Ok(Err(FillError::TooLarge(_))) => cache.remove(&key).await,
                Ok(Err(FillError::Query(err))) => {
                    tracing::debug!(error = %err, "refreshing a cached result failed; the stale one stays for its grace period");
                    stale.release_refresh();
                }
                Err(_) => {
                    tracing::debug!(
                        "refreshing a cached result ran past its budget; the stale one stays for its grace period"
                    );
                    stale.release_refresh();
                }
            }
        });
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
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Runs no query: answers with `answer`'s rows, after `delay`, counting
    /// calls. A stand-in for the pool.
    struct FakeRunner {
        calls: AtomicUsize,
        delay: Duration,
        answer: Mutex<Result<Vec<&'static str>, QueryError>>,
    }

    impl FakeRunner {
        fn new(answer: Result<Vec<&'static str>, QueryError>, delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                delay,
                answer: Mutex::new(answer),
            })
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl RunQueries for FakeRunner {
        async fn run_query<'a>(
            &'a self,
            _request: &'a QueryRequest<'a>,
            _admitted: &'a Admitted<'a>,
            _policy: &'a Arc<QueryPolicy>,
            _deadline: Instant,
        ) -> Result<RowStream, QueryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let answer = self.answer.lock().expect("answer").clone();
            answer.map(|chunks| {
                let chunks = chunks
                    .into_iter()
                    .map(|c| Bytes::from_static(c.as_bytes()))
                    .collect();
                RowStream::buffered(chunks, "fake".into(), None)
            })
        }
    }

    const SQL: &str = "SELECT 1";

    fn request() -> QueryRequest<'static> {
        QueryRequest {
            sql: SQL,
            params: &[],
            settings: &[],
            format: None,
            request_id: None,
            max_memory: None,
        }
    }

    async fn read_all(mut rows: RowStream) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = rows.next_chunk().await.expect("chunk") {
            out.extend_from_slice(&chunk);
        }
        out
    }

    async fn read(
        cache: &ResultCache,
        runner: &Arc<FakeRunner>,
        freshness: Freshness,
        deadline: Duration,
    ) -> Result<(Vec<u8>, CacheLookup), QueryError> {
        let policy = Arc::new(QueryPolicy::default());
        let request = request();
        let admitted = policy.admit(SQL, &[], &[]).expect("admitted");
        let (rows, lookup) = cache
            .read(
                runner,
                "u",
                &request,
                &admitted,
                &policy,
                Instant::now() + deadline,
                freshness,
            )
            .await?;
        Ok((read_all(rows).await, lookup))
    }

    fn cache(bytes: u64) -> ResultCache {
        ResultCache::new(bytes, Arc::default()).expect("a cache")
    }

    const FRESH: Freshness = Freshness {
        ttl: Duration::from_secs(60),
        stale: Duration::ZERO,
    };

    #[tokio::test]
    async fn reads_that_miss_together_share_one_query() {
        let cache = cache(1 << 20);
        let runner = FakeRunner::new(Ok(vec!["{\"x\":1}\n"]), Duration::from_millis(50));
        let reads: Vec<_> = (0..10)
            .map(|_| read(&cache, &runner, FRESH, Duration::from_secs(5)))
            .collect();
        let answers = futures::future::join_all(reads).await;
        assert_eq!(runner.calls(), 1);
        let lookups: Vec<_> = answers
            .into_iter()
            .map(|answer| {
                let (rows, lookup) = answer.expect("answered");
                assert_eq!(rows, b"{\"x\":1}\n");
                lookup
            })
            .collect();
        assert_eq!(
            lookups.iter().filter(|l| **l == CacheLookup::miss).count(),
            1
        );
        let (_, lookup) = read(&cache, &runner, FRESH, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(lookup, CacheLookup::hit);
        assert_eq!(runner.calls(), 1);
    }

    #[tokio::test]
    async fn failures_and_results_too_large_are_not_kept() {
        let cache = cache(1 << 20);
        let failing = FakeRunner::new(Err(QueryError::Timeout), Duration::ZERO);
        for _ in 0..2 {
            let err = read(&cache, &failing, FRESH, Duration::from_secs(5))
                .await
                .unwrap_err();
            assert_eq!(err, QueryError::Timeout);
        }
        assert_eq!(failing.calls(), 2, "an error is never cached");
        // A result over an eighth of the cache is served whole, not kept.
        let big: &'static str = Box::leak("x".repeat(200 << 10).into_boxed_str());
        let large = FakeRunner::new(Ok(vec![big, "tail"]), Duration::ZERO);
        for _ in 0..2 {
            let (rows, lookup) = read(&cache, &large, FRESH, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(rows.len(), big.len() + 4);
            assert_eq!(lookup, CacheLookup::miss);
        }
        assert_eq!(large.calls(), 2);
    }

    #[tokio::test]
    async fn a_stale_entry_is_served_while_one_refresh_runs_within_the_budget() {
        let cache = cache(1 << 20);
        let freshness = Freshness {
            ttl: Duration::from_millis(50),
            stale: Duration::from_secs(60),
        };
        let runner = FakeRunner::new(Ok(vec!["old"]), Duration::ZERO);
        read(&cache, &runner, freshness, Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        // The refresh hangs past the request's budget of 100 ms.
        *runner.answer.lock().unwrap() = Ok(vec!["new"]);
        let slow = Arc::new(FakeRunner {
            calls: AtomicUsize::new(0),
            delay: Duration::from_secs(30),
            answer: Mutex::new(Ok(vec!["never"])),
        });
        let (rows, lookup) = read(&cache, &slow, freshness, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!((rows.as_slice(), lookup), (&b"old"[..], CacheLookup::stale));
        let (_, again) = read(&cache, &slow, freshness, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(again, CacheLookup::stale);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(slow.calls(), 1, "one refresh at a time");
        // Past its budget the refresh gives up, and the next read tries again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        read(&cache, &runner, freshness, Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (rows, _) = read(&cache, &runner, freshness, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(rows, b"new", "the refresh replaced the stale result");
    }

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
