//! Running in production: API keys (401, 403, reload without a restart, the
//! key never reaching a guest or a log) and rate limits (429 with
//! `Retry-After` and `RateLimit-*`, recovery, keys and clients counted apart,
//! `X-Forwarded-For` from a trusted proxy only).

mod common;

use std::time::Duration;

use common::{ClickHouse, HostBuilder, Manifest, Reply, Wasmhouse, client, send};

const ADMIN_TOKEN: &str = "production-test-admin-token-42";
const OPS_KEY: &str = "ops-key-7c1d5e0a9b";
const REPORTS_KEY: &str = "reports-key-4f2e8d1c6a";
const LATER_KEY: &str = "later-key-93b0a7c2e5";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A keys file: `ops` by its key, `reports-only` by its hash and limited to
/// the `reports` route.
fn keys_file(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("keys.toml");
    let text = format!(
        r#"
[[key]]
name = "ops"
key = "{OPS_KEY}"

[[key]]
name = "reports-only"
sha256 = "{}"
routes = ["reports"]
{extra}
"#,
        sha256_hex(REPORTS_KEY)
    );
    std::fs::write(&path, text).expect("write keys file");
    path
}

/// The status of a GET of `url` claiming to be for `client`.
async fn forwarded_for(url: &str, client: &str) -> u16 {
    send(common::client().get(url).header("X-Forwarded-For", client))
        .await
        .status
}

async fn with_key(url: &str, key: Option<&str>) -> Reply {
    let request = client().get(url);
    send(match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_routes_and_reload_with_the_manifest() {
    let clickhouse = ClickHouse::start();
    let manifest = Manifest::with_hostile_guest(
        r#"
[[route]]
name = "open"
prefix = "/open"
component = "{guest}"

[[route]]
name = "app"
prefix = "/app"
component = "{guest}"
api_key = true

[[route]]
name = "reports"
prefix = "/reports"
component = "{guest}"
api_key = true
"#,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = keys_file(dir.path(), "");
    // The real binary: its log is checked for keys.
    let host = HostBuilder::new(&clickhouse)
        .env("WASMHOUSE_MANIFEST", manifest.path())
        .env("WASMHOUSE_API_KEYS_FILE", &keys)
        .env("WASMHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .start();

    // No key, a wrong key: 401 with a challenge and a JSON body.
    for key in [None, Some("not-a-key")] {
        let reply = with_key(&host.url("/app/version"), key).await;
        assert_eq!(reply.status, 401, "key {key:?}: {}", reply.text);
        assert_eq!(reply.json["kind"], "unauthorized", "{}", reply.text);
        assert!(
            reply.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("API key"))
        );
        assert_eq!(
            reply.headers["www-authenticate"], "Bearer realm=\"wasmhouse\"",
            "key {key:?}"
        );
        assert!(reply.headers.contains_key("x-request-id"));
    }
    // The right key, as a bearer token or as X-API-Key.
    let reply = with_key(&host.url("/app/version"), Some(OPS_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = send(
        client()
            .get(host.url("/app/version"))
            .header("X-API-Key", OPS_KEY),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A key limited to other routes: 403 here, 200 on its own route.
    let reply = with_key(&host.url("/app/version"), Some(REPORTS_KEY)).await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.json["kind"], "forbidden");
    let reply = with_key(&host.url("/reports/version"), Some(REPORTS_KEY)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A route without `api_key` needs none.
    assert_eq!(with_key(&host.url("/open/version"), None).await.status, 200);

    // The guest learns the key's name, never the key; a made-up name is dropped.
    let reply = send(
        client()
            .get(host.url("/app/headers"))
            .header("X-API-Key", OPS_KEY)
            .header("wasmhouse-api-key", "admin"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let seen = &reply.json["headers"];
    assert_eq!(seen["wasmhouse-api-key"], "ops", "{seen}");
    assert!(
        seen.get("x-api-key").is_none(),
        "the key reached the guest: {seen}"
    );
    let reply = send(client().get(host.url("/app/headers")).bearer_auth(OPS_KEY)).await;
    assert!(
        reply.json["headers"].get("authorization").is_none(),
        "{}",
        reply.text
    );
    let reply = send(
        client()
            .get(host.url("/open/headers"))
            .header("wasmhouse-api-key", "admin"),
    )
    .await;
    assert!(
        reply.json["headers"].get("wasmhouse-api-key").is_none(),
        "{}",
        reply.text
    );

    // Keys are read again with the manifest: a new key works, no restart.
    assert_eq!(
        with_key(&host.url("/app/version"), Some(LATER_KEY))
            .await
            .status,
        401
    );
    keys_file(
        dir.path(),
        &format!("[[key]]\nname = \"later\"\nkey = \"{LATER_KEY}\"\n"),
    );
    let reload = send(
        client()
            .post(host.url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(reload.status, 200, "{}", reload.text);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = with_key(&host.url("/app/version"), Some(LATER_KEY))
            .await
            .status;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new key never worked: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken keys file keeps the keys in force.
    std::fs::write(&keys, "[[key]]\nname = \"broken\"\n").expect("write");
    let reload = send(
        client()
            .post(host.url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(reload.status, 200, "{}", reload.text);
    // The keys are read again in the background after the reload.
    host.wait_for_log("kept the API keys in force", Duration::from_secs(10))
        .await;
    assert_eq!(
        with_key(&host.url("/app/version"), Some(OPS_KEY))
            .await
            .status,
        200
    );
    let log = host.log();
    for key in [OPS_KEY, REPORTS_KEY, LATER_KEY] {
        assert!(!log.contains(key), "a key was logged:\n{log}");
    }
}

fn header(reply: &Reply, name: &str) -> u64 {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", reply.headers))
        .to_str()
        .expect("ASCII")
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_and_recover() {
    let clickhouse = ClickHouse::start();
    // 12 a minute: one token every 5 s, two at once. Slow enough that a busy
    // machine sends three requests before a token comes back.
    let manifest = Manifest::with_hostile_guest(
        r#"
[[route]]
name = "per-key"
prefix = "/per-key"
component = "{guest}"
api_key = true
rate_limit_per_key = "12/min"
rate_limit_burst = 2

[[route]]
name = "per-client"
prefix = "/per-client"
component = "{guest}"
rate_limit_per_client = "12/min"
rate_limit_burst = 2
"#,
    );
    let host = HostBuilder::new(&clickhouse)
        .env("WASMHOUSE_MANIFEST", manifest.path())
        .env("WASMHOUSE_API_KEYS", "a=key-a-1111,b=key-b-2222")
        .env("WASMHOUSE_TRUSTED_PROXIES", "127.0.0.1")
        .start_in_process();

    let url = host.url("/per-key/version");
    let first = with_key(&url, Some("key-a-1111")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(header(&first, "ratelimit-limit"), 12);
    assert_eq!(header(&first, "ratelimit-remaining"), 1);
    assert!((1..=5).contains(&header(&first, "ratelimit-reset")));
    let second = with_key(&url, Some("key-a-1111")).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(header(&second, "ratelimit-remaining"), 0);

    let limited = with_key(&url, Some("key-a-1111")).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.json["kind"], "rate_limited", "{}", limited.text);
    let retry_after = header(&limited, "retry-after");
    assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(header(&limited, "ratelimit-limit"), 12);
    assert_eq!(header(&limited, "ratelimit-remaining"), 0);
    assert!(header(&limited, "ratelimit-reset") >= 1);

    // Another key has a bucket of its own.
    assert_eq!(with_key(&url, Some("key-b-2222")).await.status, 200);

    // After Retry-After, the first key may call again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let recovered = with_key(&url, Some("key-a-1111")).await;
    assert_eq!(
        recovered.status, 200,
        "after {retry_after} s: {}",
        recovered.text
    );

    // Per client: behind the trusted proxy (127.0.0.1), clients are told
    // apart by X-Forwarded-For.
    let url = host.url("/per-client/version");
    assert_eq!(forwarded_for(&url, "203.0.113.1").await, 200);
    assert_eq!(forwarded_for(&url, "203.0.113.1").await, 200);
    assert_eq!(forwarded_for(&url, "203.0.113.1").await, 429);
    assert_eq!(
        forwarded_for(&url, "203.0.113.2").await,
        200,
        "another client shares the bucket"
    );

    let metrics = common::get(&host.url("/metrics")).await.text;
    assert!(
        metrics
            .contains(r#"wasmhouse_access_denied_total{route="per-key",reason="rate_limited"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_without_a_trusted_proxy() {
    let clickhouse = ClickHouse::start();
    let manifest = Manifest::with_hostile_guest(
        r#"
[[route]]
name = "per-client"
prefix = "/"
component = "{guest}"
rate_limit_per_client = "1/min"
"#,
    );
    let host: Wasmhouse = HostBuilder::new(&clickhouse)
        .env("WASMHOUSE_MANIFEST", manifest.path())
        .start_in_process();
    let url = host.url("/version");
    assert_eq!(forwarded_for(&url, "203.0.113.1").await, 200);
    // A made-up X-Forwarded-For does not buy a fresh bucket.
    assert_eq!(forwarded_for(&url, "203.0.113.2").await, 429);
}
