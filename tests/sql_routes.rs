//! SQL routes against ClickHouse 18.16: a directory of `.sql` files served
//! by the built-in SQL route component, each file a route with typed,
//! checked parameters, formats, OpenAPI, and hot reload on save.

mod common;

use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Wasmhouse, client, get, send};
use serde_json::json;

const TOP_USERS: &str = "\
-- The most active users of one kind of event.
-- Ties are broken by name.
-- @path /top-users
-- @param kind values=click,view description=\"Which events count\"
-- @param limit default=10 min=1 max=1000
SELECT user, count() AS events, sum(value) AS total
FROM events
WHERE kind = {kind:String}
GROUP BY user
ORDER BY events DESC, user
LIMIT {limit:UInt32}
";

const USER_EVENTS: &str = "\
-- One user's events, newest first.
-- @path /events/{user}
-- @param limit default=100 max=1000
SELECT ts, kind, value
FROM events
WHERE user = {user:String}
ORDER BY ts DESC, kind
LIMIT {limit:UInt32}
";

const NUMBERS: &str = "\
-- Numbers, for paging and streaming; `from` is optional.
-- @param n max=10000000
SELECT number FROM system.numbers
WHERE number >= ifNull({from:Nullable(UInt64)}, 0)
LIMIT {n:UInt64}
";

const PAGES: &str = "\
-- Numbers, a page at a time.
-- @paging max=100 default=3
SELECT number FROM (SELECT number FROM system.numbers LIMIT 1000) ORDER BY number
";

/// A project directory: the manifest and its `queries/`.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("queries")).expect("queries/");
        std::fs::write(
            dir.path().join("wasmhouse.toml"),
            "[[route]]\nname = \"api\"\nprefix = \"/api\"\nsql = \"queries\"\n",
        )
        .expect("manifest");
        let project = Self { dir };
        project.write("top_users", TOP_USERS);
        project.write("user_events", USER_EVENTS);
        project.write("numbers", NUMBERS);
        project.write("pages", PAGES);
        project
    }

    fn query_file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join("queries").join(format!("{name}.sql"))
    }

    /// Replace a query file atomically, as an editor's save does.
    fn write(&self, name: &str, text: &str) {
        let target = self.query_file(name);
        let temporary = target.with_extension("sql.tmp");
        std::fs::write(&temporary, text).expect("write query");
        std::fs::rename(&temporary, &target).expect("rename query");
    }

    fn manifest(&self) -> String {
        self.dir.path().join("wasmhouse.toml").display().to_string()
    }
}

fn events_table(clickhouse: &ClickHouse) {
    clickhouse.query(
        "CREATE TABLE events (ts DateTime, user String, kind String, value Float64) \
         ENGINE = MergeTree() ORDER BY ts",
    );
    clickhouse.query(
        "INSERT INTO events VALUES \
         ('2024-01-01 00:00:01', 'ann', 'click', 1), \
         ('2024-01-01 00:00:02', 'ann', 'click', 2), \
         ('2024-01-01 00:00:03', 'bob', 'click', 4), \
         ('2024-01-01 00:00:04', 'user 3', 'view', 8), \
         ('2024-01-01 00:00:05', 'user 3', 'click', 16), \
         ('2024-01-01 00:00:06', 'cid', 'view', 32)",
    );
}

/// A ClickHouse with the events table, the project, and the host serving
/// it (the ClickHouse lives as long as the first).
fn served() -> (ClickHouse, Project, Wasmhouse) {
    let clickhouse = ClickHouse::start();
    events_table(&clickhouse);
    let project = Project::new();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", &project.manifest()])
        .start();
    (clickhouse, project, host)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_of_sql_files_serves_typed_checked_routes() {
    let (_clickhouse, _project, host) = served();

    // Parameters from the query string; the default limit; rows in order.
    let top = get(&host.url("/api/top-users?kind=click")).await;
    assert_eq!(top.status, 200, "{}", top.text);
    assert_eq!(
        top.json,
        json!([
            { "user": "ann", "events": 2, "total": 3 },
            { "user": "bob", "events": 1, "total": 4 },
            { "user": "user 3", "events": 1, "total": 16 },
        ]),
        "counts are numbers (the host asks for unquoted 64-bit integers)"
    );
    let two = get(&host.url("/api/top-users?kind=click&limit=1")).await;
    assert_eq!(two.json.as_array().map(Vec::len), Some(1), "{}", two.text);

    // The same from a JSON body.
    let posted = send(
        client()
            .post(host.url("/api/top-users"))
            .header("content-type", "application/json")
            .body(json!({ "kind": "view", "limit": 5 }).to_string()),
    )
    .await;
    assert_eq!(posted.status, 200, "{}", posted.text);
    assert_eq!(posted.json[0]["user"], "cid");
    assert_eq!(posted.json.as_array().map(Vec::len), Some(2));

    // A path parameter, percent-decoded.
    let events = get(&host.url("/api/events/user%203")).await;
    assert_eq!(events.status, 200, "{}", events.text);
    assert_eq!(events.json.as_array().map(Vec::len), Some(2));
    assert_eq!(events.json[0]["kind"], "click");

    // Values are data, never SQL.
    let injected = get(&host.url("/api/events/x'%20OR%20'1'='1")).await;
    assert_eq!(injected.status, 200, "{}", injected.text);
    assert_eq!(injected.json, json!([]));

    // Each mistake is a 422 naming the parameter, before any query runs.
    for (target, parameter, rule) in [
        ("/api/top-users", "kind", "is required"),
        (
            "/api/top-users?kind=buy",
            "kind",
            "must be one of click, view",
        ),
        (
            "/api/top-users?kind=click&limit=0",
            "limit",
            "must be at least 1",
        ),
        (
            "/api/top-users?kind=click&limit=ten",
            "limit",
            "must be a non-negative integer",
        ),
        (
            "/api/top-users?kind=click&limt=3",
            "limt",
            "is not a parameter of this route",
        ),
        (
            "/api/top-users?kind=click&format=xml",
            "format",
            "must be one of",
        ),
        ("/api/numbers?n=10000001", "n", "must be at most 10000000"),
    ] {
        let refused = get(&host.url(target)).await;
        assert_eq!(refused.status, 422, "{target}: {}", refused.text);
        assert_eq!(refused.json["kind"], "invalid_parameter", "{target}");
        assert_eq!(
            refused.json["parameter"], parameter,
            "{target}: {}",
            refused.text
        );
        assert!(
            refused.json["rule"]
                .as_str()
                .unwrap_or_default()
                .starts_with(rule),
            "{target}: {}",
            refused.text
        );
    }
    let bad_body = send(
        client()
            .post(host.url("/api/top-users"))
            .body("{\"kind\": [\"click\"]}"),
    )
    .await;
    assert_eq!(bad_body.status, 422, "{}", bad_body.text);
    assert_eq!(bad_body.json["parameter"], "kind");
    assert_eq!(get(&host.url("/api/nowhere")).await.status, 404);
    let deleted = send(client().delete(host.url("/api/top-users"))).await;
    assert_eq!(deleted.status, 405);

    // A Nullable parameter may be left out (NULL).
    let from = get(&host.url("/api/numbers?n=3&from=10")).await;
    assert_eq!(
        from.json,
        json!([{ "number": 10 }, { "number": 11 }, { "number": 12 }])
    );
    let none = get(&host.url("/api/numbers?n=2")).await;
    assert_eq!(none.json, json!([{ "number": 0 }, { "number": 1 }]));
    // Paging: limit and offset, bounded.
    let first = get(&host.url("/api/pages")).await;
    assert_eq!(
        first.json,
        json!([{ "number": 0 }, { "number": 1 }, { "number": 2 }]),
        "{}",
        first.text
    );
    let later = get(&host.url("/api/pages?limit=2&offset=5")).await;
    assert_eq!(
        later.json,
        json!([{ "number": 5 }, { "number": 6 }]),
        "{}",
        later.text
    );
    for target in [
        "/api/pages?limit=101",
        "/api/pages?limit=0",
        "/api/pages?offset=-1",
    ] {
        assert_eq!(get(&host.url(target)).await.status, 422, "{target}");
    }
    let empty = get(&host.url("/api/numbers?n=0")).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.text, "[]");
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_come_in_four_formats() {
    let (_clickhouse, _project, host) = served();

    let ndjson = get(&host.url("/api/top-users?kind=click&format=ndjson")).await;
    assert_eq!(ndjson.status, 200);
    assert_eq!(
        ndjson.headers["content-type"], "application/x-ndjson",
        "{}",
        ndjson.text
    );
    let lines: Vec<serde_json::Value> = ndjson
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["user"], "ann");

    let csv = get(&host.url("/api/top-users?kind=view&format=csv")).await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text,
        "\"user\",\"events\",\"total\"\n\"cid\",1,32\n\"user 3\",1,8\n"
    );
    let accepted = send(
        client()
            .get(host.url("/api/top-users?kind=view"))
            .header("accept", "text/csv"),
    )
    .await;
    assert_eq!(accepted.text, csv.text, "Accept chooses too");

    let meta = get(&host.url("/api/top-users?kind=view&format=meta")).await;
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(
        meta.json["meta"],
        json!([
            { "name": "user", "type": "String" },
            { "name": "events", "type": "UInt64" },
            { "name": "total", "type": "Float64" },
        ])
    );
    assert_eq!(meta.json["rows"], 2);
    assert_eq!(meta.json["data"][0]["user"], "cid");
    assert!(
        meta.json["statistics"]["rows_read"].is_number(),
        "{}",
        meta.text
    );

    // A large answer streams: a million JSON lines, and as one JSON array.
    let million = client()
        .get(host.url("/api/numbers?n=1000000&format=ndjson"))
        .send()
        .await
        .expect("request");
    assert_eq!(million.status(), 200);
    let body = million.bytes().await.expect("body");
    assert_eq!(body.iter().filter(|&&b| b == b'\n').count(), 1_000_000);
    let array = client()
        .get(host.url("/api/numbers?n=1000000"))
        .send()
        .await
        .expect("request")
        .bytes()
        .await
        .expect("body");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&array).expect("one JSON array");
    assert_eq!(rows.len(), 1_000_000);
    assert_eq!(rows[999_999]["number"], 999_999);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_routes_describe_themselves() {
    let (_clickhouse, _project, host) = served();

    let doc = get(&host.url("/openapi.json")).await;
    assert_eq!(doc.status, 200);
    let top = &doc.json["paths"]["/api/top-users"]["get"];
    assert_eq!(
        top["summary"], "The most active users of one kind of event.",
        "{}",
        doc.text
    );
    assert_eq!(top["description"], "Ties are broken by name.");
    let param = |name: &str| {
        top["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {top}"))
    };
    assert_eq!(param("kind")["schema"]["enum"], json!(["click", "view"]));
    assert_eq!(param("kind")["required"], true);
    assert_eq!(
        param("kind")["description"],
        "Which events count (ClickHouse String)"
    );
    assert_eq!(param("limit")["schema"]["maximum"], 1000);
    assert_eq!(param("limit")["schema"]["default"], 10);
    let post = &doc.json["paths"]["/api/top-users"]["post"];
    assert!(
        post["requestBody"]["content"]["application/json"]["schema"]["properties"]["kind"]
            .is_object(),
        "{post}"
    );
    // The rows' shape, from the server's DESCRIBE of the query.
    let rows = &top["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(rows["type"], "array", "{top}");
    assert_eq!(
        rows["items"]["required"],
        json!(["user", "events", "total"])
    );
    assert_eq!(rows["items"]["properties"]["events"]["type"], "integer");
    assert_eq!(
        rows["items"]["properties"]["events"]["description"],
        "ClickHouse UInt64"
    );
    assert_eq!(rows["items"]["properties"]["total"]["type"], "number");
    assert_eq!(rows["items"]["properties"]["user"]["type"], "string");
    let events = &doc.json["paths"]["/api/events/{user}"]["get"];
    assert_eq!(events["parameters"][0]["in"], "path", "{}", doc.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_file_goes_live_and_a_broken_one_changes_nothing() {
    let (_clickhouse, project, host) = served();
    assert_eq!(
        get(&host.url("/api/numbers?n=1")).await.json,
        json!([{ "number": 0 }])
    );
    // Requests run the whole time: not one may fail.
    let load = Load::start(&host.url("/api/top-users?kind=click"), 8);

    project.write(
        "numbers",
        &NUMBERS.replace(
            "SELECT number FROM",
            "SELECT number, number * 2 AS twice FROM",
        ),
    );
    let answer = wait_for(&host, "/api/numbers?n=1", |body| body.contains("twice")).await;
    assert_eq!(answer, json!([{ "number": 0, "twice": 0 }]));

    // A mistake in the header: refused, named in the log, the last good
    // version keeps serving.
    project.write("numbers", &NUMBERS.replace("@param n", "@parm n"));
    host.wait_for_log("rejected the changed SQL file", Duration::from_secs(30))
        .await;
    let log = host.log();
    assert!(
        log.contains("numbers.sql: line 2: unknown directive @parm"),
        "{log}"
    );
    assert_eq!(
        get(&host.url("/api/numbers?n=1")).await.json,
        json!([{ "number": 0, "twice": 0 }])
    );

    // A query the header parser accepts but the server cannot type (a
    // column it does not know): the host asks the server before the file
    // goes live, and refuses it with the server's own words.
    project.write(
        "numbers",
        &NUMBERS.replace("SELECT number FROM", "SELECT number, no_such_column FROM"),
    );
    host.wait_for_log_line(
        "the rejection of no_such_column",
        Duration::from_secs(30),
        |line| line.contains("rejected the changed SQL file") && line.contains("no_such_column"),
    )
    .await;
    let log = host.log();
    let refusal = log
        .lines()
        .rfind(|line| line.contains("rejected the changed SQL file"))
        .expect("the rejection");
    assert!(
        refusal.contains("numbers.sql") && refusal.contains("no_such_column"),
        "{refusal}"
    );
    assert_eq!(
        get(&host.url("/api/numbers?n=1")).await.json,
        json!([{ "number": 0, "twice": 0 }])
    );

    // Mended, and a new file in the directory: a new route.
    project.write("numbers", NUMBERS);
    project.write("answer", "-- @path /answer\nSELECT 42 AS answer\n");
    // The answer, not a 404 whose request id happens to hold "42".
    let answer = wait_for(&host, "/api/answer", |body| body.contains("\"answer\":42")).await;
    assert_eq!(answer, json!([{ "answer": 42 }]));
    assert_eq!(
        get(&host.url("/api/numbers?n=1")).await.json,
        json!([{ "number": 0 }])
    );
    // And a removed file takes its route with it.
    std::fs::remove_file(project.query_file("answer")).expect("remove answer.sql");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&host.url("/api/answer")).await.status != 404 {
        assert!(
            Instant::now() < deadline,
            "/api/answer still served:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (answered, failed) = load.stop().await;
    assert!(answered > 0, "the load ran");
    assert_eq!(failed, Vec::<String>::new(), "of {answered} requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_checks_each_query_at_start_and_a_change_made_while_it_is_down_goes_live() {
    let mut clickhouse = ClickHouse::start();
    events_table(&clickhouse);
    let project = Project::new();
    project.write(
        "typo",
        "-- @path /typo\nSELECT count() AS n FROM default.no_such_table\n",
    );
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", &project.manifest()])
        .start();
    // Named at start, before any request (the route serves anyway: the
    // server may only be down, and the error is its answer).
    host.wait_for_log("the SQL route's query fails", Duration::from_secs(30))
        .await;
    let log = host.log();
    let failure = log
        .lines()
        .find(|line| line.contains("the SQL route's query fails"))
        .expect("the failure");
    assert!(
        failure.contains("typo.sql") && failure.contains("no_such_table"),
        "{failure}"
    );
    assert_eq!(get(&host.url("/api/typo")).await.status, 502);

    // With the server down nobody can say no: the mended file goes live
    // unchecked, with a warning, rather than never.
    clickhouse.stop();
    project.write("typo", "-- @path /typo\nSELECT 2 AS two\n");
    host.wait_for_log(
        "could not be checked against the server",
        Duration::from_secs(60),
    )
    .await;
    clickhouse.restart();
    let answer = wait_for(&host, "/api/typo", |body| body.contains("two")).await;
    assert_eq!(answer, json!([{ "two": 2 }]));
}

/// Requests to one URL from `workers` loops until stopped: how many were
/// answered, and what any that failed got.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, Vec<String>)>>,
}

impl Load {
    fn start(url: &str, workers: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|_| {
                let (url, stop) = (url.to_owned(), stop.clone());
                tokio::spawn(async move {
                    let (mut answered, mut failed) = (0, Vec::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let reply = get(&url).await;
                        answered += 1;
                        if reply.status != 200 {
                            failed.push(format!("{}: {}", reply.status, reply.text));
                        }
                    }
                    (answered, failed)
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (mut answered, mut failed) = (0, Vec::new());
        for task in self.tasks {
            let (n, mut f) = task.await.expect("load task");
            answered += n;
            failed.append(&mut f);
        }
        (answered, failed)
    }
}

/// GET `path` until `done` accepts its body (bounded): the body as JSON.
async fn wait_for(host: &Wasmhouse, path: &str, done: impl Fn(&str) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = get(&host.url(path)).await;
        if done(&reply.text) {
            return reply.json;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never changed: {}\n{}",
            reply.text,
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_file_the_parser_refuses_stops_the_start_naming_file_and_line() {
    let project = Project::new();
    project.write("broken", "-- @param n min=x\nSELECT {n:UInt8}\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--manifest",
            &project.manifest(),
        ])
        .env("CLICKHOUSE_URL", "http://127.0.0.1:9")
        .output()
        .expect("wasmhouse runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = project.query_file("broken");
    assert!(
        stderr.contains(&format!(
            "{}: line 1: @param n: min=x is not a number",
            file.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_database_routes_as_sql_files() {
    let clickhouse = ClickHouse::start();
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/sql-routes/wasmhouse.toml"
    );
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", manifest])
        .start();
    let status = get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert!(
        status.json[0]["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("18."))
    );
    assert_eq!(
        get(&host.url("/concurrent/simple-query")).await.json,
        json!([{ "value": 1 }])
    );
    assert_eq!(
        get(&host.url("/concurrent/heavy-query")).await.json,
        json!([{ "c": 10000000, "s": 49999995000000u64 }])
    );
    let slept = get(&host.url("/concurrent/test-isolation?delay=0.2")).await;
    assert_eq!(
        slept.json,
        json!([{ "slept": 0, "delay": 0.2 }]),
        "{}",
        slept.text
    );
    assert_eq!(
        get(&host.url("/concurrent/test-isolation?delay=4"))
            .await
            .status,
        422
    );
    let streamed = get(&host.url("/stream/numbers?n=3&format=ndjson")).await;
    assert_eq!(
        streamed.text,
        "{\"number\":0}\n{\"number\":1}\n{\"number\":2}\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_from_key_parameter_comes_from_the_api_key_alone() {
    let clickhouse = ClickHouse::start();
    clickhouse
        .query("CREATE TABLE orders (id UInt32, tenant String, amount Float64) ENGINE = Memory");
    clickhouse.query(
        "INSERT INTO orders VALUES (1, 'acme', 10), (2, 'globex', 20), (3, 'acme', 30), (4, 'globex', 40)",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("orders.sql"),
        "-- The caller's tenant's orders.\n-- @path /orders\n-- @param tenant from_key\n\
         SELECT id, amount FROM orders WHERE tenant = {tenant:String} ORDER BY id\n",
    )
    .expect("orders.sql");
    std::fs::write(
        dir.path().join("wasmhouse.toml"),
        "[[route]]\nname = \"orders\"\nprefix = \"/\"\nsql = \"orders.sql\"\napi_key = true\ncache_ttl = \"30s\"\n",
    )
    .expect("manifest");
    std::fs::write(
        dir.path().join("keys.toml"),
        "[[key]]\nname = \"acme\"\nkey = \"acme-key-0123456789\"\nparams = { tenant = \"acme\" }\n\n\
         [[key]]\nname = \"globex\"\nkey = \"globex-key-0123456789\"\nparams = { tenant = \"globex\" }\n\n\
         [[key]]\nname = \"ops\"\nkey = \"ops-key-0123456789\"\n",
    )
    .expect("keys");
    let host = HostBuilder::new(&clickhouse)
        .args(&[
            "--manifest",
            &dir.path().join("wasmhouse.toml").display().to_string(),
        ])
        .env("WASMHOUSE_API_KEYS_FILE", dir.path().join("keys.toml"))
        .start();
    let as_key = |key: &str, target: &str| {
        client()
            .get(host.url(target))
            .header("x-api-key", key.to_owned())
    };
    let acme = json!([{ "id": 1, "amount": 10 }, { "id": 3, "amount": 30 }]);
    let globex = json!([{ "id": 2, "amount": 20 }, { "id": 4, "amount": 40 }]);
    // Each tenant its own rows, answered from the cache the second time,
    // never from the other tenant's entry.
    for round in 0..2 {
        let a = send(as_key("acme-key-0123456789", "/orders")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json, acme, "round {round}");
        let g = send(as_key("globex-key-0123456789", "/orders")).await;
        assert_eq!(g.json, globex, "round {round}");
        if round == 1 {
            assert_eq!(a.headers["x-cache"], "hit", "{:?}", a.headers);
            assert_eq!(g.headers["x-cache"], "hit");
        }
    }
    // The request cannot set it, by query string, body or a made-up header.
    let overridden = send(as_key("acme-key-0123456789", "/orders?tenant=globex")).await;
    assert_eq!(overridden.status, 403, "{}", overridden.text);
    assert_eq!(overridden.json["kind"], "forbidden");
    let posted = send(
        client()
            .post(host.url("/orders"))
            .header("x-api-key", "acme-key-0123456789")
            .body("{\"tenant\": \"globex\"}"),
    )
    .await;
    assert_eq!(posted.status, 422, "{}", posted.text);
    assert_eq!(posted.json["parameter"], "tenant");
    let forged = send(
        as_key("acme-key-0123456789", "/orders").header("wasmhouse-key-params", "tenant=globex"),
    )
    .await;
    assert_eq!(forged.json, acme, "the host replaces the client's header");
    // A key that fixes no tenant, and no key at all.
    let ops = send(as_key("ops-key-0123456789", "/orders")).await;
    assert_eq!(ops.status, 403, "{}", ops.text);
    assert!(
        ops.text.contains("tenant comes from the API key"),
        "{}",
        ops.text
    );
    assert_eq!(get(&host.url("/orders")).await.status, 401);
    // No statistics over every tenant's rows: ClickHouse's `meta` document
    // counts the rows the query read, the other tenant's too.
    for asked in ["/orders?format=meta", "/orders?format=META"] {
        let meta = send(as_key("acme-key-0123456789", asked)).await;
        assert_eq!(meta.status, 422, "{asked}: {}", meta.text);
        assert_eq!(meta.json["parameter"], "format", "{}", meta.text);
        assert!(!meta.text.contains("rows_read"), "{}", meta.text);
    }
    let csv = send(as_key("acme-key-0123456789", "/orders?format=csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.text);
    // Not the client's parameter: not in the description.
    let doc = get(&host.url("/openapi.json")).await;
    let get_orders = &doc.json["paths"]["/orders"]["get"];
    assert!(
        !get_orders["parameters"].to_string().contains("tenant"),
        "{get_orders}"
    );
    let format = get_orders["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == "format"))
        .unwrap_or_else(|| panic!("no format parameter: {get_orders}"));
    assert!(!format.to_string().contains("meta"), "{format}");
}
