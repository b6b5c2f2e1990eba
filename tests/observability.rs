//! What an operator sees: `/metrics` (parsed here as Prometheus exposition
//! text, and checked to move by exactly the traffic sent), request ids, logs.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Wasmhouse, get};

/// One scrape: every sample by its name and sorted labels.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    families: Vec<String>,
}

impl Scrape {
    /// Parse the exposition text strictly: every line is a comment
    /// (`# TYPE`, `# HELP`, `# UNIT`, `# EOF`) or `name{labels} value`, every
    /// sample's family has a `# TYPE`, and the text ends with `# EOF`.
    fn parse(text: &str) -> Self {
        let mut scrape = Self::default();
        let mut typed = Vec::new();
        assert!(text.trim_end().ends_with("# EOF"), "no # EOF:\n{text}");
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.split_whitespace();
                match words.next() {
                    Some("TYPE") => typed.push(words.next().expect("TYPE name").to_owned()),
                    Some("HELP" | "UNIT" | "EOF") => {}
                    other => panic!("unexpected comment {other:?} in {line:?}"),
                }
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("closing brace");
                    let mut pairs: Vec<&str> = split_labels(labels);
                    pairs.sort_unstable();
                    (name, pairs.join(","))
                }
                None => (series, String::new()),
            };
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "bad metric name in {line:?}"
            );
            assert!(
                typed.iter().any(|family| name.starts_with(family.as_str())),
                "{name} has no # TYPE"
            );
            scrape.samples.insert(format!("{name}{{{labels}}}"), value);
        }
        scrape.families = typed;
        scrape
    }

    /// The value of `name` with exactly `labels` (`k="v"`, any order).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        pairs.sort_unstable();
        self.samples
            .get(&format!("{name}{{{}}}", pairs.join(",")))
            .copied()
            .unwrap_or(0.0)
    }
}

/// `a="x",b="y,z"` into its pairs, commas inside values kept.
fn split_labels(labels: &str) -> Vec<&str> {
    let mut pairs = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pairs.push(&labels[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        pairs.push(&labels[start..]);
    }
    pairs
}

async fn scrape(url: &str) -> Scrape {
    let reply = get(url).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.headers
    );
    Scrape::parse(&reply.text)
}

fn hostile(clickhouse: &ClickHouse) -> (Wasmhouse, common::Manifest) {
    let manifest = common::Manifest::with_hostile_guest(
        r#"
[[route]]
name = "app"
prefix = "/"
component = "{guest}"
timeout = "1s"
memory = "32MiB"
"#,
    );
    let host = HostBuilder::new(clickhouse)
        .args(&["--manifest", manifest.path()])
        .start_in_process();
    (host, manifest)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_by_exactly_the_traffic_sent() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let (host, _manifest) = hostile(&clickhouse);
    // Warm up (the first query also asks the server's version).
    assert_eq!(get(&host.url("/sql?q=SELECT%201")).await.status, 200);
    let before = scrape(&host.url("/metrics")).await;

    let mut sent: BTreeMap<u16, usize> = BTreeMap::new();
    let mut send = |status: u16| *sent.entry(status).or_default() += 1;
    for _ in 0..3 {
        assert_eq!(get(&host.url("/health")).await.status, 200);
        send(200);
    }
    // The SDK's allocator starts in an arena inside the initial memory: a
    // small request never grows its memory.
    let grows = "wasmhouse_guest_memory_grows_total";
    let middle = scrape(&host.url("/metrics")).await;
    assert_eq!(
        middle.get(grows, &[("route", "app")]) - before.get(grows, &[("route", "app")]),
        0.0,
        "/health grew its memory"
    );
    for (path, status) in [
        ("/trap", 500),
        ("/loop", 504),
        ("/alloc", 500),
        ("/sql?q=SELECT%20throwIf(1)", 502),
        ("/sql?q=KILL%20QUERY%20WHERE%201", 403),
        (
            "/sql?q=SELECT%20number%20FROM%20system.numbers%20LIMIT%205",
            200,
        ),
    ] {
        let reply = get(&host.url(path)).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        send(status);
    }
    let after = scrape(&host.url("/metrics")).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);

    let route = [("route", "app"), ("version", "1")];
    let class = |c: &str| {
        let mut labels = route.to_vec();
        labels.push(("status", c));
        delta("wasmhouse_requests_total", &labels)
    };
    assert_eq!(class("2xx"), 4.0, "200s");
    assert_eq!(class("4xx"), 1.0, "403s");
    assert_eq!(class("5xx"), 4.0, "500, 504, 500, 502");
    assert_eq!(
        delta(
            "wasmhouse_request_duration_seconds_count",
            &[("route", "app")]
        ),
        9.0
    );
    for (kind, expected) in [
        ("trap", 1.0),
        ("timeout", 1.0),
        ("memory_limit", 1.0),
        ("no_response", 0.0),
    ] {
        assert_eq!(
            delta(
                "wasmhouse_guest_faults_total",
                &[("route", "app"), ("kind", kind)]
            ),
            expected,
            "{kind}"
        );
    }
    assert_eq!(
        delta("wasmhouse_instantiation_duration_seconds_count", &[]),
        9.0
    );
    // `/alloc` grows until it hits the limit: 32 MiB in 1 MiB steps.
    assert!(
        delta(grows, &[("route", "app")]) >= 16.0,
        "{}",
        delta(grows, &[("route", "app")])
    );
    // Two queries reached ClickHouse; the KILL never left the host.
    assert_eq!(delta("wasmhouse_clickhouse_queries_total", &[]), 2.0);
    assert_eq!(
        delta(
            "wasmhouse_clickhouse_errors_total",
            &[("kind", "server"), ("code", "395")]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "wasmhouse_clickhouse_errors_total",
            &[("kind", "refused"), ("code", "0")]
        ),
        1.0
    );
    // 18.16 sends no summary: rows and bytes come from the result ("0\n" … "4\n").
    assert_eq!(delta("wasmhouse_clickhouse_read_rows_total", &[]), 5.0);
    assert_eq!(delta("wasmhouse_clickhouse_result_bytes_total", &[]), 10.0);
    assert_eq!(after.get("wasmhouse_clickhouse_pool_in_use", &[]), 0.0);
    assert_eq!(after.get("wasmhouse_clickhouse_pool_capacity", &[]), 64.0);
    assert_eq!(after.get("wasmhouse_instances_in_flight", &[]), 0.0);
    assert_eq!(after.get("wasmhouse_instance_queue_length", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_deployments_and_are_never_a_guests() {
    let clickhouse = ClickHouse::start();
    let token = "metrics-test-token-0123456789";
    let guest = common::guests::hostile(1);
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8")])
        .env("WASMHOUSE_ADMIN_TOKEN", token)
        .start_in_process();
    // The hostile guest answers every path, /metrics included: the host's wins.
    let first = scrape(&host.url("/metrics")).await;
    let name = guest
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("route name")
        .to_owned();
    let live = first
        .samples
        .iter()
        .find(|(series, value)| series.starts_with("wasmhouse_component_info{") && **value == 1.0)
        .map(|(series, _)| series.clone())
        .expect("a live component");
    assert!(
        live.contains(&format!("route=\"{name}\"")) && live.contains("version=\"1\""),
        "{live}"
    );

    let client = common::client();
    let v2 = std::fs::read(common::guests::hostile(2)).expect("v2 bytes");
    let deployed = common::send(
        client
            .put(host.url(&format!("/admin/components/{name}")))
            .bearer_auth(token)
            .body(v2),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    let rejected = common::send(
        client
            .put(host.url(&format!("/admin/components/{name}")))
            .bearer_auth(token)
            .body(b"not wasm".to_vec()),
    )
    .await;
    assert_eq!(rejected.status, 400, "{}", rejected.text);

    let after = scrape(&host.url("/metrics")).await;
    let components: Vec<_> = after
        .samples
        .iter()
        .filter(|(series, _)| series.starts_with("wasmhouse_component_info{"))
        .collect();
    assert_eq!(
        components.len(),
        1,
        "only the live deployment: {components:?}"
    );
    assert!(components[0].0.contains("version=\"2\""), "{components:?}");
    let sha = deployed.json["sha256"].as_str().expect("sha256");
    assert!(components[0].0.contains(sha), "{components:?}");
    assert_eq!(
        after.get(
            "wasmhouse_deploys_total",
            &[("route", &name), ("origin", "upload")]
        ),
        1.0
    );
    assert_eq!(
        after.get("wasmhouse_rejected_uploads_total", &[("route", &name)]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_to_the_admin_listener_when_there_is_one() {
    let clickhouse = ClickHouse::start();
    let host = HostBuilder::new(&clickhouse)
        .env("WASMHOUSE_ADMIN_TOKEN", "admin-listener-token-0123456789")
        .args(&["--admin-listen", "127.0.0.1:0"])
        .start_in_process();
    let admin = host.admin_url("/metrics").expect("admin listener");
    let scraped = scrape(&admin).await;
    assert!(
        scraped
            .samples
            .keys()
            .any(|k| k.starts_with("wasmhouse_requests_total"))
            || scraped
                .samples
                .keys()
                .any(|k| k.starts_with("wasmhouse_deploys_total"))
    );
    // On the main port, /metrics is the guest's path again (the seed's 404).
    let main = get(&host.url("/metrics")).await;
    assert_eq!(main.status, 404, "{}", main.text);
    // The host's own readiness answer, whatever the routes serve on /health.
    let health = get(&host.admin_url("/health").expect("admin listener")).await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.json["status"], "ok", "{}", health.text);
    assert_eq!(health.json["routes"], 1, "{}", health.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_kept_or_made_and_reach_guest_and_clickhouse() {
    // query_log on, as deploy/clickhouse/wasmhouse-user.xml has it.
    let clickhouse = ClickHouse::start_with_users(
        "<yandex><profiles><default><log_queries>1</log_queries></default></profiles></yandex>",
    );
    let guest = common::guests::hostile(1);
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8")])
        .start_in_process();
    let client = common::client();

    // Kept when well-formed, seen by the guest.
    let echoed = common::send(
        client
            .get(host.url("/headers"))
            .header("x-request-id", "trace.42_a-B"),
    )
    .await;
    assert_eq!(echoed.headers["x-request-id"], "trace.42_a-B");
    assert_eq!(
        echoed.json["headers"]["x-request-id"], "trace.42_a-B",
        "{}",
        echoed.text
    );

    // Replaced when not.
    for bad in ["", "has space", "a/b", &"x".repeat(65)] {
        let reply = common::send(client.get(host.url("/health")).header("x-request-id", bad)).await;
        let id = reply.headers["x-request-id"].to_str().expect("ASCII");
        assert!(!id.is_empty() && id != bad, "{bad:?} → {id:?}");
    }
    // Made when absent, unique, on errors too.
    let mut ids = std::collections::HashSet::new();
    for path in [
        "/health",
        "/health",
        "/trap",
        "/sql?q=KILL%20QUERY%20WHERE%201",
    ] {
        let reply = get(&host.url(path)).await;
        let id = reply.headers["x-request-id"]
            .to_str()
            .expect("ASCII")
            .to_owned();
        if let Some(body_id) = reply.json["request_id"].as_str() {
            assert_eq!(body_id, id, "{}", reply.text);
        }
        assert!(ids.insert(id), "ids repeat: {ids:?}");
    }

    // ClickHouse knows the query by it.
    let url = host.url("/sql?q=SELECT%20sleep(2)");
    let slow = tokio::spawn(async move {
        common::send(
            common::client()
                .get(url)
                .header("x-request-id", "join-me-7"),
        )
        .await
    });
    let sql = "SELECT count() FROM system.processes WHERE query_id LIKE 'wasmhouse-join-me-7-%' FORMAT TabSeparated";
    let deadline = Instant::now() + Duration::from_secs(10);
    while clickhouse.query(sql).trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "no query id carries the request id"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(slow.await.expect("request").status, 200);
    // … and system.query_log joins with it.
    let logged =
        clickhouse.query_log_count("query_id LIKE 'wasmhouse-join-me-7-%' AND type = 2", 1);
    assert_eq!(logged, 1, "the finished query is not in system.query_log");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_a_line_with_the_request_id() {
    let clickhouse = ClickHouse::start();
    let guest = common::guests::hostile(1);
    let host = HostBuilder::new(&clickhouse)
        .args(&[
            "--component",
            guest.to_str().expect("UTF-8"),
            "--log-format",
            "json",
        ])
        .start();
    let client = common::client();
    for (path, id) in [
        ("/stderr", "log-me-1"),
        ("/panic", "log-me-2"),
        ("/sql?q=SELECT%201", "log-me-3"),
    ] {
        let reply = common::send(client.get(host.url(path)).header("x-request-id", id)).await;
        assert_eq!(reply.headers["x-request-id"], id);
    }
    let wanted = [
        ("log-me-1", "guest wrote to stderr", "a note from the guest"),
        ("log-me-2", "guest trapped", "deliberate panic"),
        ("log-me-3", "connected to ClickHouse", ""),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = host.log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect();
        let found = |(id, message, text): &(&str, &str, &str)| {
            lines.iter().any(|line| {
                let request_id = line["span"]["request_id"]
                    .as_str()
                    .or_else(|| line["fields"]["request_id"].as_str());
                request_id == Some(*id)
                    && line["fields"]["message"] == *message
                    && line.to_string().contains(text)
            })
        };
        if wanted.iter().all(found) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing {:?} in:\n{log}",
            wanted.iter().filter(|w| !found(w)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the collector received: (path, body) of every POST.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A collector that keeps every OTLP/HTTP body posted to it.
struct Collector {
    addr: std::net::SocketAddr,
    bodies: Received,
}

impl Collector {
    fn start() -> Self {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("collector port");
        let addr = listener.local_addr().expect("collector address");
        let bodies = Received::default();
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let kept = kept.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request_line
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("")
                            .to_owned();
                        let mut length = 0usize;
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            let header = header.trim_end();
                            if header.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        kept.lock().expect("bodies").push((path, body));
                        let _ = reader
                            .get_mut()
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                    }
                });
            }
        });
        Self { addr, bodies }
    }

    fn received(&self, needle: &[u8]) -> bool {
        self.bodies
            .lock()
            .expect("bodies")
            .iter()
            .any(|(path, body)| {
                path == "/v1/traces" && body.windows(needle.len()).any(|window| window == needle)
            })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_otlp_collector_and_continue_the_callers_trace() {
    let clickhouse = ClickHouse::start();
    let collector = Collector::start();
    let host = HostBuilder::new(&clickhouse)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collector.addr),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "wasmhouse-under-test")
        .start();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let reply = common::send(
        common::client()
            .get(host.url("/concurrent/simple-query"))
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let trace_bytes: Vec<u8> = (0..trace_id.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&trace_id[at..at + 2], 16).expect("hex"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(collector.received(&trace_bytes)
        && collector.received(b"wasmhouse-under-test")
        && collector.received(b"clickhouse_ms"))
    {
        assert!(
            Instant::now() < deadline,
            "no span of the caller's trace reached the collector ({} bodies)",
            collector.bodies.lock().expect("bodies").len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
