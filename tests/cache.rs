//! The result cache, against a real ClickHouse: concurrent identical reads
//! become one query (counted in `system.query_log`), entries expire after
//! their TTL, a stale entry is served while one refresh runs, the byte bound
//! holds, and writes, errors and uncached routes always reach ClickHouse.

mod common;

use std::time::Duration;

use common::{ClickHouse, HostBuilder, Manifest, Wasmhouse, get};

const LOG_QUERIES: &str =
    "<yandex><profiles><default><log_queries>1</log_queries></default></profiles></yandex>";

/// Routes on the hostile guest: `/cached` caches every read for 30 s,
/// `/short` for 1 s (then 30 s stale), `/plain` nothing unless asked.
const ROUTES: &str = r#"
[[route]]
name = "cached"
prefix = "/cached"
component = "{guest}"
cache_ttl = "30s"

[[route]]
name = "short"
prefix = "/short"
component = "{guest}"
cache_ttl = "1s"

[[route]]
name = "stale"
prefix = "/stale"
component = "{guest}"
cache_ttl = "1s"
cache_stale = "30s"

[[route]]
name = "plain"
prefix = "/plain"
component = "{guest}"

[[route]]
name = "limited"
prefix = "/limited"
component = "{guest}"
cache_ttl = "30s"
max_result_rows = 5

[[route]]
name = "writer"
prefix = "/writer"
component = "{guest}"
readonly = false
cache_ttl = "30s"
"#;

/// Finished queries whose text contains `marker`.
/// Assert that ClickHouse ran `expected` queries with `marker`.
fn assert_finished(clickhouse: &ClickHouse, marker: &str, expected: u64) {
    let condition =
        format!("type = 2 AND query LIKE '%{marker}%' AND query NOT LIKE '%system.query_log%'");
    assert_eq!(
        clickhouse.query_log_count(&condition, expected),
        expected,
        "queries ClickHouse ran with {marker}"
    );
}

/// `/sql` on `route` running `sql`; `cache` adds the per-query opt-in.
fn sql_url(host: &Wasmhouse, route: &str, sql: &str, cache: Option<u32>) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(sql.as_bytes()).collect();
    let mut url = host.url(&format!("{route}/sql?q={encoded}"));
    if let Some(ttl) = cache {
        url.push_str(&format!("&cache={ttl}"));
    }
    url
}

fn x_cache(reply: &common::Reply) -> Option<&str> {
    reply
        .headers
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
}

/// A gauge or counter of the host's metrics (the sum of its series).
async fn metric(host: &Wasmhouse, name: &str) -> f64 {
    let text = get(&host.url("/metrics")).await.text;
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn start(clickhouse: &ClickHouse, manifest: &Manifest, cache_size: &str) -> Wasmhouse {
    HostBuilder::new(clickhouse)
        .args(&["--manifest", manifest.path()])
        .env("WASMHOUSE_CACHE_SIZE", cache_size)
        .env("WASMHOUSE_MAX_INSTANCES", "64")
        .start()
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_reads_coalesce_into_one_query_and_expire() {
    let clickhouse = ClickHouse::start_with_users(LOG_QUERIES);
    let manifest = Manifest::with_hostile_guest(ROUTES);
    let host = start(&clickhouse, &manifest, "64MiB");

    // 50 at once, each a read that takes a while on the server.
    let sql = "SELECT 'coalesce-marker' AS m, sleep(0.5) AS s";
    let url = sql_url(&host, "/cached", sql, None);
    let replies =
        futures::future::join_all((0..50).map(|_| common::send(common::client().get(&url)))).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            reply.json["result"]
                .as_str()
                .is_some_and(|r| r.starts_with("coalesce-marker"))
        );
    }
    let misses = replies
        .iter()
        .filter(|r| x_cache(r) == Some("miss"))
        .count();
    let hits = replies.iter().filter(|r| x_cache(r) == Some("hit")).count();
    assert_eq!((misses, hits), (1, 49), "one query, 49 answers from it");
    assert_finished(&clickhouse, "coalesce-marker", 1);
    assert_eq!(
        metric(&host, "wasmhouse_clickhouse_cache_lookups_total").await,
        50.0
    );

    // The same read later: a hit, still one query.
    let again = get(&url).await;
    assert_eq!(x_cache(&again), Some("hit"));
    assert_eq!(again.json, replies[0].json);
    // Layout does not matter; parameters and quoted text do.
    let spaced = get(&sql_url(
        &host,
        "/cached",
        "SELECT  'coalesce-marker'  AS m,\n sleep(0.5) AS s",
        None,
    ))
    .await;
    assert_eq!(x_cache(&spaced), Some("hit"));
    let other = get(&sql_url(
        &host,
        "/cached",
        "SELECT 'coalesce-marker ' AS m",
        None,
    ))
    .await;
    assert_eq!(x_cache(&other), Some("miss"));

    // A route without a cache asks ClickHouse every time, and says nothing.
    let plain = sql_url(&host, "/plain", "SELECT 'plain-marker' AS m", None);
    for _ in 0..5 {
        let reply = get(&plain).await;
        assert_eq!(reply.status, 200);
        assert_eq!(x_cache(&reply), None);
    }
    assert_finished(&clickhouse, "plain-marker", 5);
    // ... unless the read asks.
    let asked = sql_url(&host, "/plain", "SELECT 'asked-marker' AS m", Some(30));
    assert_eq!(x_cache(&get(&asked).await), Some("miss"));
    assert_eq!(x_cache(&get(&asked).await), Some("hit"));
    assert_finished(&clickhouse, "asked-marker", 1);
    // And a read on a caching route can opt out with a TTL of 0.
    let fresh = sql_url(&host, "/cached", "SELECT 'optout-marker' AS m", Some(0));
    for _ in 0..2 {
        assert_eq!(x_cache(&get(&fresh).await), None);
    }
    assert_finished(&clickhouse, "optout-marker", 2);

    // TTL: 1 s on /short.
    let short = sql_url(&host, "/short", "SELECT 'ttl-marker' AS m", None);
    assert_eq!(x_cache(&get(&short).await), Some("miss"));
    assert_eq!(x_cache(&get(&short).await), Some("hit"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(x_cache(&get(&short).await), Some("miss"));
    assert_finished(&clickhouse, "ttl-marker", 2);

    // Grace: past its TTL the entry is served stale while one refresh runs.
    let stale = sql_url(&host, "/stale", "SELECT 'stale-marker' AS m", None);
    assert_eq!(x_cache(&get(&stale).await), Some("miss"));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let served = get(&stale).await;
    assert_eq!(served.status, 200);
    assert_eq!(x_cache(&served), Some("stale"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if x_cache(&get(&stale).await) == Some("hit") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_finished(&clickhouse, "stale-marker", 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_errors_and_large_results_are_never_cached_and_the_bound_holds() {
    let clickhouse = ClickHouse::start_with_users(LOG_QUERIES);
    let manifest = Manifest::with_hostile_guest(ROUTES);
    // 64 KiB: no entry over 8 KiB is kept.
    let host = start(&clickhouse, &manifest, "64KiB");

    // An error is not cached: the same failing read reaches ClickHouse twice.
    let failing = sql_url(
        &host,
        "/cached",
        "SELECT * FROM error_marker_no_such_table",
        None,
    );
    for _ in 0..2 {
        let reply = get(&failing).await;
        assert_ne!(reply.status, 200, "{}", reply.text);
        assert_eq!(x_cache(&reply), None);
    }
    let failures = clickhouse.query_log_count(
        "type IN (3, 4) AND query LIKE '%error_marker_no_such_table%' AND query NOT LIKE '%query_log%'",
        2,
    );
    assert_eq!(failures, 2, "each failing read reached ClickHouse");

    // A result cached for a route without a row limit never reaches a
    // route whose limit it is over: the limits are part of the key.
    let ten = "SELECT number, 'limits-marker' FROM system.numbers LIMIT 10";
    let unlimited = get(&sql_url(&host, "/cached", ten, None)).await;
    assert_eq!(unlimited.status, 200, "{}", unlimited.text);
    assert_eq!(
        x_cache(&get(&sql_url(&host, "/cached", ten, None)).await),
        Some("hit")
    );
    let limited = get(&sql_url(&host, "/limited", ten, None)).await;
    assert_eq!(limited.status, 403, "{}", limited.text);
    assert!(limited.text.contains("limit"), "{}", limited.text);

    // A write on a caching route runs every time.
    clickhouse.query("CREATE TABLE default.cache_writes (x UInt8) ENGINE = Memory");
    let write = sql_url(
        &host,
        "/writer",
        "INSERT INTO default.cache_writes VALUES (1)",
        None,
    );
    for _ in 0..2 {
        let reply = get(&write).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(x_cache(&reply), None);
    }
    assert_eq!(
        clickhouse
            .query("SELECT count() FROM default.cache_writes FORMAT TabSeparated")
            .trim(),
        "2"
    );

    // A result over an eighth of the cache is served whole but not kept.
    let large = sql_url(
        &host,
        "/cached",
        "SELECT number, 'large-marker' FROM system.numbers LIMIT 2000",
        None,
    );
    for _ in 0..2 {
        let reply = get(&large).await;
        assert_eq!(reply.status, 200);
        assert_eq!(x_cache(&reply), Some("miss"));
        let text = reply.json["result"].as_str().expect("result");
        assert_eq!(text.lines().count(), 2000);
        assert!(text.ends_with("1999\tlarge-marker\n"));
    }
    assert_finished(&clickhouse, "large-marker", 2);

    // Many distinct results of about 3 KiB each: the cache stays in bounds.
    for n in 0..100 {
        let sql = format!("SELECT number + {n}, 'fill-marker' FROM system.numbers LIMIT 200");
        let reply = get(&sql_url(&host, "/cached", &sql, None)).await;
        assert_eq!(reply.status, 200);
    }
    let bytes = metric(&host, "wasmhouse_clickhouse_cache_bytes").await;
    let entries = metric(&host, "wasmhouse_clickhouse_cache_entries").await;
    assert!(bytes <= 64.0 * 1024.0, "{bytes} bytes cached");
    assert!(bytes > 16.0 * 1024.0, "the cache holds something: {bytes}");
    assert!(entries > 4.0 && entries < 100.0, "{entries} entries");
}
