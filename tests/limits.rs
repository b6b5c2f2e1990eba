//! Sandbox limits, guard-rails and failure handling: hostile guests and a
//! broken ClickHouse must never hurt other requests.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Wasmhouse, get, guests};

/// The hostile test guest on every path, with extra flags.
fn hostile(clickhouse: &ClickHouse, args: &[&str]) -> Wasmhouse {
    let guest = guests::hostile(1);
    HostBuilder::new(clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .args(args)
        .start()
}

/// The hostile test guest on every path, served in this process.
fn hostile_in_process(clickhouse: &ClickHouse, args: &[&str]) -> Wasmhouse {
    let guest = guests::hostile(1);
    HostBuilder::new(clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .args(args)
        .start_in_process()
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    common::status_bytes(pid, "VmRSS").expect("VmRSS line")
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loops_are_stopped_without_starving_others() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &["--request-timeout", "8s"]);
    // As many spinning guests as the host has worker threads, and more.
    common::spinning_guests_time_out_while_others_answer(
        &host,
        "/loop",
        4,
        &["/health", "/sleep?s=0"],
        10,
    )
    .await;
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

async fn get_owned(url: String) -> common::Reply {
    get(&url).await
}

/// Heavy guests give their CPU slot up while they wait for ClickHouse. With
/// one pooled connection, a heavy guest that held its slot while queueing
/// for the connection stalled the one holding the connection (queued for a
/// slot) until the requests' deadlines: every request a 504.
#[tokio::test(flavor = "multi_thread")]
async fn heavy_guests_waiting_for_clickhouse_do_not_stall_each_other() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(
        &clickhouse,
        &["--request-timeout", "20s", "--pool-max-size", "1"],
    );
    let replies =
        futures::future::join_all((0..8).map(|_| get_owned(host.url("/compute-then-query?ms=60"))))
            .await;
    for reply in replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_bombs_hit_the_limit_and_host_memory_stays_bounded() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let host = hostile(&clickhouse, &["--memory-limit", "32MiB"]);
    let bombs = futures::future::join_all((0..6).map(|_| get_owned(host.url("/alloc")))).await;
    for reply in bombs {
        assert_eq!(reply.status, 500, "{}", reply.text);
        assert_eq!(reply.json["kind"], "memory_limit");
        assert!(
            reply.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("32 MiB"))
        );
    }
    assert_eq!(get(&host.url("/health")).await.status, 200);
    // Six 32 MiB instances at most were ever alive; the pool keeps only a
    // small resident part of each slot afterwards.
    let resident = rss(host.pid());
    assert!(resident < 400 << 20, "host RSS {} MiB", resident >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn panics_and_traps_are_500s_with_logged_request_ids() {
    let clickhouse = ClickHouse::start();
    let host = hostile(&clickhouse, &[]);
    for path in ["/panic", "/trap"] {
        let reply = get(&host.url(path)).await;
        assert_eq!(reply.status, 500, "{path}: {}", reply.text);
        assert_eq!(reply.json["kind"], "trap", "{path}");
        let request_id = reply.json["request_id"]
            .as_str()
            .expect("request id")
            .to_owned();
        // The log line carries the request id, the guest's stderr and the trap.
        host.wait_for_log(&request_id, Duration::from_secs(5)).await;
        let log = host.log();
        let at = log
            .find(&request_id)
            .unwrap_or_else(|| panic!("no log entry for {request_id} in:\n{log}"));
        // The entry spans lines: the message, then the wasm backtrace.
        let entry: String = log[at..].chars().take(4000).collect();
        let expected = if path == "/panic" {
            "deliberate panic"
        } else {
            "unreachable"
        };
        assert!(
            entry.contains(expected),
            "{path}: no {expected:?} in:\n{entry}"
        );
    }
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_concurrency_bound_are_shed_with_retry_after() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(
        &clickhouse,
        &["--max-instances", "2", "--queue-timeout", "300ms"],
    );
    let replies =
        futures::future::join_all((0..6).map(|_| get_owned(host.url("/sleep?s=1.5")))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let shed: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        ok,
        2,
        "statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(shed.len(), 4);
    for reply in shed {
        assert_eq!(reply.json["kind"], "overloaded");
        assert_eq!(
            reply
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("")),
            Some("1")
        );
    }
    // Once the slots are free again, requests are served.
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_malformed_requests_are_rejected() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &["--max-body-size", "1KiB"]);
    let client = common::client();

    let small = common::send(client.post(host.url("/body")).body(vec![b'a'; 512])).await;
    assert_eq!(small.status, 200, "{}", small.text);
    assert_eq!(small.json["bytes"], 512);

    let large = common::send(client.post(host.url("/body")).body(vec![b'a'; 4096])).await;
    assert_eq!(large.status, 413, "{}", large.text);
    assert_eq!(large.json["kind"], "body_too_large");

    // Chunked, so no Content-Length: the guest's read fails at the limit.
    let stream = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 512])));
    let chunked = common::send(
        client
            .post(host.url("/body"))
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(chunked.status, 413, "{}", chunked.text);

    let addr = host.addr();
    let status = tokio::task::spawn_blocking(move || {
        let garbage = common::raw_status(addr, b"THIS IS NOT HTTP\r\n\r\n");
        let mut many_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..200 {
            many_headers.extend_from_slice(format!("X-Header-{i}: v\r\n").as_bytes());
        }
        many_headers.extend_from_slice(b"Connection: close\r\n\r\n");
        let too_many = common::raw_status(addr, &many_headers);
        (garbage, too_many)
    })
    .await
    .expect("raw requests");
    assert_eq!(status.0, 400, "malformed request line");
    assert_eq!(status.1, 431, "too many headers");
    assert_eq!(get(&host.url("/health")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_disconnect_cancels_the_running_query() {
    let clickhouse = ClickHouse::start();
    let host = hostile(&clickhouse, &[]);
    let running = "SELECT count() FROM system.processes WHERE query_id LIKE 'wasmhouse-%' FORMAT TabSeparated";

    let addr = host.addr();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET /slow-query HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while clickhouse.query(running).trim() != "1" {
        assert!(Instant::now() < deadline, "the slow query never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    while clickhouse.query(running).trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "the query kept running after the client left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The host logs the cancellation once ClickHouse has answered the KILL,
    // which may be just after the query is gone from system.processes.
    host.wait_for_log("cancelled abandoned query", Duration::from_secs(10))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_are_read_only_and_settings_allow_listed() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &[]);
    let write = get(&host.url("/write")).await;
    assert_eq!(write.status, 403, "{}", write.text);
    assert_eq!(write.json["kind"], "refused");
    assert!(
        write.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("read-only"))
    );

    for (name, value, status) in [
        ("output_format_json_quote_denormals", "1", 200),
        // Resource settings are off the default allow-list.
        ("max_block_size", "1000", 403),
        ("max_memory_usage", "1", 403),
        ("readonly", "0", 403),
        ("max_execution_time", "1000", 403),
    ] {
        let reply = get(&host.url(&format!("/setting?name={name}&value={value}"))).await;
        assert_eq!(reply.status, status, "{name}={value}: {}", reply.text);
    }

    let writer = hostile_in_process(&clickhouse, &["--allow-writes"]);
    let write = get(&writer.url("/write")).await;
    assert_eq!(write.status, 200, "{}", write.text);
    assert_eq!(
        clickhouse
            .query("EXISTS TABLE wasmhouse_write_test FORMAT TabSeparated")
            .trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn per_route_limits_come_from_the_manifest() {
    let clickhouse = ClickHouse::start();
    let manifest = common::Manifest::with_hostile_guest(
        r#"
[defaults]
timeout = "10s"

[[route]]
name = "strict"
prefix = "/strict"
component = "{guest}"
max_result_rows = 10
max_execution_time = "1s"
memory = "16MiB"

[[route]]
name = "writer"
prefix = "/writer"
component = "{guest}"
readonly = false

[[route]]
name = "open"
prefix = "/"
component = "{guest}"
"#,
    );
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", manifest.path()])
        .start_in_process();

    let limited = get(&host.url("/strict/many-rows")).await;
    assert_eq!(limited.status, 403, "{}", limited.text);
    assert_eq!(limited.json["kind"], "refused");
    assert_eq!(get(&host.url("/many-rows")).await.status, 200);

    let slow = get(&host.url("/strict/sleep?s=2")).await;
    assert_eq!(slow.status, 504, "{}", slow.text);
    assert_eq!(get(&host.url("/sleep?s=0.1")).await.status, 200);

    let bomb = get(&host.url("/strict/alloc")).await;
    assert_eq!(bomb.status, 500, "{}", bomb.text);
    assert!(
        bomb.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("16 MiB"))
    );

    assert_eq!(get(&host.url("/strict/write")).await.status, 403);
    assert_eq!(get(&host.url("/writer/write")).await.status, 200);
}

/// Parameters where ClickHouse 18.16 takes only certain literals: counts
/// after `LIMIT` and `OFFSET`, the list after `IN`, arrays as function
/// arguments; a bad value is the client's 422, a broken query the route's
/// 5xx.
#[tokio::test(flavor = "multi_thread")]
async fn parameters_work_in_limit_in_lists_and_arrays_on_18_16() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &[]);
    let sql = |q: &str, params: &[(&str, &str)]| {
        let mut pairs = vec![("q".to_owned(), q.to_owned())];
        pairs.extend(
            params
                .iter()
                .map(|(n, v)| (format!("param.{n}"), (*v).to_owned())),
        );
        let url = reqwest::Url::parse_with_params(&host.url("/sql"), &pairs).expect("URL");
        async move { get(url.as_str()).await }
    };
    let rows = |reply: &common::Reply| -> Vec<String> {
        reply.json["result"]
            .as_str()
            .unwrap_or_else(|| panic!("no result: {}", reply.text))
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let page = sql(
        "SELECT number FROM system.numbers LIMIT {n:UInt32} OFFSET {o:UInt64}",
        &[("n", "3"), ("o", "5")],
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(rows(&page), ["5", "6", "7"]);
    let comma = sql(
        "SELECT number FROM system.numbers LIMIT {o:UInt8}, {n:UInt8}",
        &[("o", "2"), ("n", "2")],
    )
    .await;
    assert_eq!(rows(&comma), ["2", "3"], "{}", comma.text);

    let listed = sql(
        "SELECT number FROM (SELECT number FROM system.numbers LIMIT 10) WHERE number IN {ids:Array(UInt32)} ORDER BY number",
        &[("ids", "[7, 1, 3]")],
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(rows(&listed), ["1", "3", "7"]);
    let not_listed = sql(
        "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 10) WHERE toString(number) NOT IN {s:Array(String)}",
        &[("s", "['1', 'x\\'y']")],
    )
    .await;
    assert_eq!(rows(&not_listed), ["9"], "{}", not_listed.text);
    let has = sql(
        "SELECT number FROM (SELECT number FROM system.numbers LIMIT 10) WHERE has({ids:Array(UInt64)}, number)",
        &[("ids", "[2, 4]")],
    )
    .await;
    assert_eq!(rows(&has), ["2", "4"], "{}", has.text);

    for (q, params) in [
        (
            "SELECT number FROM system.numbers LIMIT {n:UInt32}",
            [("n", "-1")],
        ),
        (
            "SELECT number FROM system.numbers LIMIT {n:UInt32}",
            [("n", "3 OFFSET 0")],
        ),
        (
            "SELECT 1 WHERE 1 IN {ids:Array(UInt8)}",
            [("ids", "[1, 300]")],
        ),
        (
            "SELECT 1 WHERE 1 IN {ids:Array(UInt8)}",
            [("ids", "[1) OR (1")],
        ),
        ("SELECT 1 WHERE 1 IN {ids:Array(UInt8)}", [("ids", "[]")]),
    ] {
        let reply = sql(q, &params).await;
        assert_eq!(reply.status, 422, "{q} {params:?}: {}", reply.text);
        assert_eq!(reply.json["kind"], "invalid_parameter", "{}", reply.text);
    }
    // The route's own mistake (no value for its placeholder) is not the
    // client's.
    let missing = sql("SELECT number FROM system.numbers LIMIT {n:UInt32}", &[]).await;
    assert!(missing.status >= 500, "{}", missing.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_parameters_arrive_as_data() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &[]);
    let echo = |ty: &str, value: &str| {
        let url =
            reqwest::Url::parse_with_params(&host.url("/echo"), &[("type", ty), ("value", value)])
                .expect("URL");
        async move { get(url.as_str()).await }
    };
    for attack in [
        "' OR '1'='1",
        "'; DROP TABLE users; --",
        "\\'); DROP TABLE users; --",
        "{v:String}",
        "back\\slash \\\\ and \\n",
        "line\nbreak\ttab",
        "✓ ünïcödé",
        "",
    ] {
        let reply = echo("String", attack).await;
        assert_eq!(reply.status, 200, "{attack:?}: {}", reply.text);
        assert_eq!(reply.json["rows"][0]["v"], attack, "{attack:?}");
    }
    let array = echo("Array(String)", "['a', 'b\\'c']").await;
    assert_eq!(
        array.json["rows"][0]["v"],
        serde_json::json!(["a", "b'c"]),
        "{}",
        array.text
    );
    let number = echo("UInt64", "18446744073709551615").await;
    assert_eq!(
        number.json["rows"][0]["v"], 18_446_744_073_709_551_615u64,
        "{}",
        number.text
    );
    let date = echo("Date", "2024-02-29").await;
    assert_eq!(date.json["rows"][0]["v"], "2024-02-29", "{}", date.text);
    let null = echo("Nullable(String)", "\\N").await;
    assert_eq!(
        null.json["rows"][0]["v"],
        serde_json::Value::Null,
        "{}",
        null.text
    );

    for (ty, bad) in [
        ("UInt8", "300"),
        ("Int64", "1 OR 1=1"),
        ("Date", "2024-02-30"),
        ("UUID", "not-a-uuid"),
        ("Array(UInt32)", "[1, 2); DROP TABLE x; --]"),
        ("Float64", "1e400"),
    ] {
        let reply = echo(ty, bad).await;
        assert_eq!(reply.status, 422, "{ty} {bad:?}: {}", reply.text);
        assert_eq!(reply.json["kind"], "invalid_parameter", "{ty} {bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_after_200_reach_the_guest_as_errors() {
    let clickhouse = ClickHouse::start();
    let host = hostile_in_process(&clickhouse, &[]);
    let collected = get(&host.url("/midstream")).await;
    assert_eq!(collected.status, 502, "{}", collected.text);
    assert_eq!(collected.json["kind"], "clickhouse_error");
    assert!(
        collected.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("395")),
        "{}",
        collected.text
    );

    // Forwarded straight to the client, the body is cut off: the client
    // sees a failed transfer, never a body that looks complete.
    let response = common::client()
        .get(host.url("/midstream-forward"))
        .send()
        .await
        .expect("headers");
    assert_eq!(response.status(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a truncated body was delivered as complete"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_results_stream_complete_and_in_order_with_flat_memory() {
    let clickhouse = ClickHouse::start();
    let host = hostile(&clickhouse, &[]);

    let rows = 3_000_000u64;
    let body = common::client()
        .get(host.url(&format!("/rows?n={rows}")))
        .send()
        .await
        .expect("headers")
        .text()
        .await
        .expect("body");
    let mut expected = 0u64;
    for line in body.lines() {
        assert_eq!(line.parse::<u64>().ok(), Some(expected), "row {expected}");
        expected += 1;
    }
    assert_eq!(expected, rows);

    let collected = get(&host.url("/rows-collected?n=2000000")).await;
    assert_eq!(collected.status, 200, "{}", collected.text);
    assert_eq!(collected.json["rows"], 2_000_000);
    assert_eq!(collected.json["in_order"], true);
    assert!(collected.json["chunks"].as_u64().is_some_and(|c| c > 1));

    // A slow reader of a 256 MiB body: the guest is held back, the host
    // buffers nothing like the whole body.
    let before = rss(host.pid());
    let mut response = common::client()
        .get(host.url("/huge?mb=256"))
        .send()
        .await
        .expect("headers");
    let mut received = 0usize;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        received += chunk.len();
        if received < 8 << 20 {
            continue;
        }
        if received < (8 << 20) + chunk.len() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let during = rss(host.pid());
            assert!(
                during < before + (64 << 20),
                "host RSS grew from {} to {} MiB while the client was not reading",
                before >> 20,
                during >> 20
            );
        }
    }
    assert_eq!(received, 256 << 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_restart_under_load_fails_fast_and_recovers() {
    let mut clickhouse = ClickHouse::start();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--request-timeout", "5s"])
        .start_in_process();
    let url = host.url("/concurrent/simple-query");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let reply = get(&url).await;
                    seen.push((reply.status, started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| clickhouse.stop());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| clickhouse.restart());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut outage = 0;
    for worker in workers {
        let seen = worker.await.expect("worker");
        for (status, elapsed) in &seen {
            assert!(matches!(status, 200 | 503), "status {status}");
            assert!(
                *elapsed < Duration::from_secs(5),
                "a request hung for {elapsed:?}"
            );
            if *status == 503 {
                outage += 1;
            }
        }
        assert_eq!(
            seen.last().map(|s| s.0),
            Some(200),
            "not recovered: {seen:?}"
        );
    }
    assert!(outage > 0, "the outage was never noticed");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_and_normal_requests_mixed_normal_ones_all_succeed() {
    // What is measured is the host's fairness, not the machine's speed: the
    // normal route has a budget no busy machine exhausts, and the property
    // is that every normal request is answered while the loops still run.
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let manifest = common::Manifest::with_hostile_guest(
        r#"
[[route]]
name = "hostile"
prefix = "/bad"
component = "{guest}"
timeout = "15s"
memory = "32MiB"

[[route]]
name = "normal"
prefix = "/"
component = "{guest}"
timeout = "60s"
"#,
    );
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", manifest.path()])
        .start_in_process();
    let mut loops = Vec::new();
    for _ in 0..2 {
        loops.push(tokio::spawn(get_owned(host.url("/bad/loop"))));
    }
    let mut others = Vec::new();
    for path in ["/bad/alloc", "/bad/panic", "/bad/trap", "/bad/alloc"] {
        others.push(tokio::spawn(get_owned(host.url(path))));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let normal = futures::future::join_all((0..40).map(|i| {
        let path = if i % 2 == 0 {
            "/health"
        } else {
            "/sleep?s=0.05"
        };
        get_owned(host.url(path))
    }))
    .await;
    for reply in &normal {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert!(
        loops.iter().all(|task| !task.is_finished()),
        "the normal requests were only answered once the loops had ended"
    );
    for task in others {
        let reply = task.await.expect("hostile request");
        assert_eq!(reply.status, 500, "{}", reply.text);
    }
    for task in loops {
        let reply = task.await.expect("loop request");
        assert_eq!(reply.status, 504, "{}", reply.text);
    }
}

/// Baseline code (Winch), which serves a new component until its optimised
/// code is ready, keeps every limit optimised code keeps: loops end at the
/// deadline without starving others, memory stops at the limit, traps are
/// answered.
#[tokio::test(flavor = "multi_thread")]
async fn baseline_code_keeps_the_limits() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let token = "baseline-admin-token-0123456789";
    let guest = guests::hostile(1);
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .args(&["--compilation", "baseline", "--request-timeout", "4s"])
        .args(&["--memory-limit", "32MiB"])
        .env("WASMHOUSE_ADMIN_TOKEN", token)
        .start();
    let listed = common::send(
        common::client()
            .get(host.url("/admin/components"))
            .bearer_auth(token),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["components"][0]["code"], "baseline");

    common::spinning_guests_time_out_while_others_answer(
        &host,
        "/loop",
        3,
        &["/health", "/sleep?s=0"],
        5,
    )
    .await;
    let bomb = get(&host.url("/alloc")).await;
    assert_eq!(bomb.status, 500, "{}", bomb.text);
    assert_eq!(bomb.json["kind"], "memory_limit");
    for path in ["/trap", "/panic"] {
        let crashed = get(&host.url(path)).await;
        assert_eq!(crashed.status, 500, "{path}: {}", crashed.text);
        assert_eq!(crashed.json["kind"], "trap", "{path}: {}", crashed.text);
    }
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
    assert!(
        !host.log().contains("optimised code compiled"),
        "baseline-only compilation produced optimised code"
    );
}
