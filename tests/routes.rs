//! The seed's routes, served by the real binary against a real ClickHouse.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Wasmhouse, get};

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_like_the_seed() {
    let clickhouse = ClickHouse::start();
    let host = Wasmhouse::start_in_process(&clickhouse);
    common::seed::assert_routes(&host.url(""), &clickhouse).await;
    let isolation = get(&host.url("/concurrent/test-isolation?delay=0.1")).await;
    assert_eq!(isolation.json["instance_requests"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sleeps_run_side_by_side_in_fresh_instances() {
    let clickhouse = ClickHouse::start();
    let host = Wasmhouse::start_in_process(&clickhouse);
    let url = host.url("/concurrent/test-isolation?delay=1");

    let started = Instant::now();
    let replies = futures::future::join_all((0..20).map(|_| get(&url))).await;
    let wall = started.elapsed();

    let mut request_ids = HashSet::new();
    let mut instance_ids = HashSet::new();
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["delay"], 1);
        assert_eq!(reply.json["instance_requests"], 1, "an instance was reused");
        request_ids.insert(
            reply.json["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        instance_ids.insert(
            reply.json["instance_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(request_ids.len(), 20);
    assert_eq!(instance_ids.len(), 20);
    // Twenty one-second sleeps one after another would take 20 s.
    assert!(
        wall < Duration::from_secs(10),
        "took {wall:?}: requests were serialised"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_delays_are_client_errors() {
    let clickhouse = ClickHouse::start();
    let host = Wasmhouse::start_in_process(&clickhouse);
    common::seed::assert_client_errors(&host.url("")).await;
    common::seed::assert_router(&host.url("")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_outage_is_503_and_recovers() {
    let mut clickhouse = ClickHouse::start();
    let host = Wasmhouse::start_in_process(&clickhouse);
    assert_eq!(get(&host.url("/concurrent/simple-query")).await.status, 200);

    clickhouse.stop();
    common::seed::assert_clickhouse_down(&host.url("")).await;

    clickhouse.restart();
    let status = get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(get(&host.url("/concurrent/simple-query")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn host_starts_while_clickhouse_is_down() {
    let host = HostBuilder::without_clickhouse().start_in_process();
    common::seed::assert_clickhouse_down(&host.url("")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_after_an_idle_pause_succeed() {
    let clickhouse = ClickHouse::start();
    // Default idle timeout (below the server's 3 s keep-alive), and one far
    // above it, where the pooled connection is dead when reused and only the
    // retry saves the request.
    for idle in ["2s", "30s"] {
        let host = HostBuilder::new(&clickhouse)
            .args(&["--pool-idle-timeout", idle])
            .start();
        for round in 0..2 {
            let reply = get(&host.url("/concurrent/simple-query")).await;
            assert_eq!(
                reply.status, 200,
                "idle {idle}, round {round}: {}",
                reply.text
            );
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_url_and_bad_values_are_named() {
    let clickhouse = ClickHouse::start();
    // CLICKHOUSE_URL alone is enough.
    let url = format!(
        "http://default:@127.0.0.1:{}/default",
        clickhouse.http_port()
    );
    let via_url = HostBuilder::without_clickhouse()
        .env("CLICKHOUSE_URL", &url)
        .start();
    let status = get(&via_url.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["port"], clickhouse.http_port());

    for (variable, value) in [
        ("CLICKHOUSE_PORT", "abc"),
        ("POOL_MGR_MAX_SIZE", "0"),
        ("CLICKHOUSE_URL", "ftp://example"),
        ("WASMHOUSE_MEMORY_LIMIT", "lots"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env(variable, value)
            .output()
            .expect("run wasmhouse");
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}={value}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dotenv_file_configures_clickhouse() {
    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "# like the FastAPI service's .env\nCLICKHOUSE_HOST=127.0.0.1\nCLICKHOUSE_PORT={}\nCLICKHOUSE_USER=default\nCLICKHOUSE_PASSWORD=\n",
            clickhouse.http_port()
        ),
    )
    .expect("write .env");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("CLICKHOUSE_HOST")
        .env_remove("CLICKHOUSE_PORT")
        .env_remove("CLICKHOUSE_URL");
    let host = HostBuilder::from_command(command).start();
    let status = get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["port"], clickhouse.http_port());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_requests_in_flight_finish() {
    let clickhouse = ClickHouse::start();
    let mut host = Wasmhouse::start(&clickhouse);
    let url = host.url("/concurrent/test-isolation?delay=1");
    let in_flight = tokio::spawn(async move { get(&url).await });
    // In flight once its query runs in ClickHouse.
    tokio::task::block_in_place(|| clickhouse.wait_for_query("sleep("));
    host.signal("TERM");
    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(host.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn load_command_reports_distinct_instances() {
    let clickhouse = ClickHouse::start();
    let host = Wasmhouse::start(&clickhouse);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args([
            "load",
            &host.url("/concurrent/test-isolation?delay=0.2"),
            "-n",
            "8",
            "--json",
        ])
        .output()
        .await
        .expect("run wasmhouse load");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["requests"], 8);
    assert_eq!(report["statuses"]["200"], 8);
    assert_eq!(report["distinct_instance_ids"], 8);
    assert_eq!(report["distinct_request_ids"], 8);
    assert!(report["p95_ms"].as_f64().is_some_and(|p95| p95 >= 200.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn load_command_runs_for_a_duration() {
    let clickhouse = ClickHouse::start();
    let host = Wasmhouse::start(&clickhouse);
    // `output()` pipes stdout and stderr: no terminal, so no progress bar.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args([
            "load",
            &host.url("/health"),
            "-d",
            "2s",
            "-c",
            "4",
            "--json",
        ])
        .output()
        .await
        .expect("run wasmhouse load");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\r'),
        "progress bar drawn on a pipe: {stderr:?}"
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");

    let requests = report["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{report}");
    assert_eq!(report["statuses"], serde_json::json!({ "200": requests }));
    assert_eq!(report["non_2xx"], 0);
    assert_eq!(
        report["errors"],
        serde_json::json!({ "timeout": 0, "connect": 0, "other": 0 })
    );
    assert_eq!(report["concurrency"], 4);
    assert!(
        report["wall_s"].as_f64().is_some_and(|wall| wall >= 2.0),
        "{report}"
    );
    assert!(
        report["requests_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0)
    );
    let ms = |field: &str| report[field].as_f64().expect(field);
    let (p50, p90, p99, max) = (ms("p50_ms"), ms("p90_ms"), ms("p99_ms"), ms("max_ms"));
    assert!(
        ms("min_ms") <= p50
            && p50 <= p90
            && p90 <= ms("p95_ms")
            && ms("p95_ms") <= p99
            && p99 <= max,
        "{report}"
    );
}
