//! Several ClickHouse servers: queries spread across both (checked in each
//! server's own `system.query_log`); a server killed under continuous load
//! costs no failed reads once a health check has run, and its traffic moves
//! to the other; restarted, it gets traffic again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{ClickHouse, HostBuilder, Wasmhouse};

const LOG_QUERIES: &str =
    "<yandex><profiles><default><log_queries>1</log_queries></default></profiles></yandex>";
const HEALTH_INTERVAL: Duration = Duration::from_millis(300);

/// Queries this server has logged so far for request ids starting with `prefix`.
fn logged(clickhouse: &ClickHouse, prefix: &str) -> u64 {
    clickhouse.query_log_count(
        &format!("query_id LIKE 'wasmhouse-{prefix}%' AND type = 2"),
        0,
    )
}

/// `wasmhouse_clickhouse_replica_<name>{replica="127.0.0.1:<port>"}`.
async fn replica_metric(host: &Wasmhouse, name: &str, port: u16) -> f64 {
    let text = common::get(&host.url("/metrics")).await.text;
    let series = format!("wasmhouse_clickhouse_replica_{name}{{replica=\"127.0.0.1:{port}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Requests sent by [`Load`], and failures, counted from `since`.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    failed: AtomicU64,
}

/// Continuous simple-query traffic from a few clients until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<std::sync::Mutex<Arc<Counts>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(host: &Wasmhouse, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(std::sync::Mutex::new(Arc::new(Counts::default())));
        let tasks = (0..clients)
            .map(|client| {
                let (stop, counts) = (stop.clone(), counts.clone());
                let url = host.url("/concurrent/simple-query");
                tokio::spawn(async move {
                    let http = common::client();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let current = counts.lock().expect("counts").clone();
                        let reply = http
                            .get(&url)
                            .header("x-request-id", format!("load-{client}-{n}"))
                            .send()
                            .await;
                        let ok = match reply {
                            Ok(reply) => reply.status().is_success() && reply.text().await.is_ok(),
                            Err(_) => false,
                        };
                        current.sent.fetch_add(1, Ordering::Relaxed);
                        if !ok {
                            current.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            counts,
            tasks,
        }
    }

    /// Count from now on, afresh; the counts so far.
    fn restart_counts(&self) -> Arc<Counts> {
        std::mem::replace(
            &mut *self.counts.lock().expect("counts"),
            Arc::new(Counts::default()),
        )
    }

    async fn stop(self) -> Arc<Counts> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        self.counts.lock().expect("counts").clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_spread_fail_over_and_come_back() {
    let first = ClickHouse::start_with_users(LOG_QUERIES);
    let mut second = ClickHouse::start_with_users(LOG_QUERIES);
    let host = HostBuilder::without_clickhouse()
        .env(
            "CLICKHOUSE_HOST",
            format!(
                "127.0.0.1:{},127.0.0.1:{}",
                first.http_port(),
                second.http_port()
            ),
        )
        .env(
            "CLICKHOUSE_HEALTH_INTERVAL",
            format!("{}ms", HEALTH_INTERVAL.as_millis()),
        )
        .start_in_process();
    let client = common::client();

    // Spread: one at a time (the least busy is a tie, so they take turns),
    // then many at once.
    for n in 0..20 {
        let reply = common::send(
            client
                .get(host.url("/concurrent/simple-query"))
                .header("x-request-id", format!("spread-{n}")),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Each server's share is unknown: wait for the total.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (on_first, on_second) = loop {
        let counts = (logged(&first, "spread-"), logged(&second, "spread-"));
        if counts.0 + counts.1 >= 20 || std::time::Instant::now() >= deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(on_first + on_second, 20, "{on_first} + {on_second}");
    assert!(
        on_first >= 5 && on_second >= 5,
        "uneven: {on_first} and {on_second}"
    );

    // Kill the second under continuous load.
    let load = Load::start(&host, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = load.restart_counts();
    assert!(before.sent.load(Ordering::Relaxed) > 0, "no load went out");
    let second_before = replica_metric(&host, "queries_total", second.http_port()).await;
    second.stop();
    // Queries running on it when it died may fail; none may after a health
    // check has run.
    tokio::time::sleep(HEALTH_INTERVAL * 2).await;
    let during_kill = load.restart_counts();
    assert_eq!(
        replica_metric(&host, "healthy", second.http_port()).await,
        0.0
    );
    // /clickhouse-status shows both, the dead one out of service and why.
    let status = common::get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    let replicas = status.json["replicas"].as_array().expect("replicas listed");
    assert_eq!(replicas.len(), 2, "{}", status.text);
    let dead = replicas
        .iter()
        .find(|r| r["port"] == second.http_port())
        .expect("the dead replica listed");
    assert_eq!(dead["healthy"], false, "{}", status.text);
    assert!(dead["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        replicas.iter().any(|r| r["port"] != second.http_port()
            && r["healthy"] == true
            && r["error"].is_null())
    );
    let second_down = replica_metric(&host, "queries_total", second.http_port()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kill = load.restart_counts();
    let (sent, failed) = (
        after_kill.sent.load(Ordering::Relaxed),
        after_kill.failed.load(Ordering::Relaxed),
    );
    assert!(sent > 10, "only {sent} requests in 2 s");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} reads failed with one replica down"
    );
    assert_eq!(
        replica_metric(&host, "queries_total", second.http_port()).await,
        second_down,
        "queries still went to the dead replica"
    );
    eprintln!(
        "killing a replica under load: {} of {} requests failed while it died, 0 of {sent} after",
        during_kill.failed.load(Ordering::Relaxed),
        during_kill.sent.load(Ordering::Relaxed)
    );
    assert!(second_down >= second_before);

    // Back: the health check puts it in rotation, and it gets traffic.
    second.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replica_metric(&host, "healthy", second.http_port()).await != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the restarted replica never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = replica_metric(&host, "queries_total", second.http_port()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        replica_metric(&host, "queries_total", second.http_port()).await > back,
        "the restarted replica gets no traffic"
    );
    let end = load.stop().await;
    assert_eq!(
        end.failed.load(Ordering::Relaxed),
        0,
        "reads failed after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_dead_replica_goes_to_the_other_before_any_health_check() {
    let alive = ClickHouse::start();
    let mut dying = ClickHouse::start();
    // Health checks far apart: only the query path can notice.
    let host = HostBuilder::without_clickhouse()
        .env(
            "CLICKHOUSE_HOST",
            format!(
                "127.0.0.1:{},127.0.0.1:{}",
                dying.http_port(),
                alive.http_port()
            ),
        )
        .env("CLICKHOUSE_HEALTH_INTERVAL", "1h")
        .start_in_process();
    for _ in 0..4 {
        assert_eq!(
            common::get(&host.url("/concurrent/simple-query"))
                .await
                .status,
            200
        );
    }
    dying.stop();
    for _ in 0..6 {
        let reply = common::get(&host.url("/concurrent/simple-query")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let metrics = common::get(&host.url("/metrics")).await.text;
    let failovers: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("wasmhouse_clickhouse_failovers_total "))
        .and_then(|value| value.trim().parse().ok())
        .expect("the failovers counter");
    assert!(
        failovers >= 1.0,
        "no read was sent on to the live replica:\n{metrics}"
    );
    // A refused connection took it out of rotation at once.
    assert_eq!(
        replica_metric(&host, "healthy", dying.http_port()).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_may_mix_https_and_http_and_one_may_die_under_load() {
    let certs = common::certs::Certs::generate();
    let mut secure = ClickHouse::start_with(common::clickhouse::Setup {
        https: Some(common::clickhouse::Https {
            cert: certs.path("server.crt"),
            key: certs.path("server.key"),
            client_ca: None,
        }),
        ..Default::default()
    });
    let plain = ClickHouse::start();
    let tls_port = secure.https_port().expect("an https port");
    let host = HostBuilder::without_clickhouse()
        .env(
            "CLICKHOUSE_URL",
            format!(
                "https://127.0.0.1:{tls_port},http://127.0.0.1:{}",
                plain.http_port()
            ),
        )
        .env("CLICKHOUSE_CA_CERT", certs.path("ca.crt"))
        .env(
            "CLICKHOUSE_HEALTH_INTERVAL",
            format!("{}ms", HEALTH_INTERVAL.as_millis()),
        )
        .start_in_process();
    let load = Load::start(&host, 4);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let both = load.restart_counts();
    assert_eq!(
        both.failed.load(Ordering::Relaxed),
        0,
        "reads failed with both up"
    );
    assert!(
        replica_metric(&host, "queries_total", tls_port).await > 0.0,
        "no query went to the https replica"
    );
    assert!(replica_metric(&host, "queries_total", plain.http_port()).await > 0.0);
    // Kill the https one: once a health check has run, nothing fails.
    secure.stop();
    tokio::time::sleep(HEALTH_INTERVAL * 2).await;
    load.restart_counts();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = load.stop().await;
    let (sent, failed) = (
        after.sent.load(Ordering::Relaxed),
        after.failed.load(Ordering::Relaxed),
    );
    assert!(sent > 10, "only {sent} requests in 2 s");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} reads failed with the https replica down"
    );
    assert_eq!(replica_metric(&host, "healthy", tls_port).await, 0.0);
}
