//! The default wasmhouse route component: the FastAPI + clickhouse-connect
//! seed service's routes, answered by a fresh instance per request.
//!
//! | route | query |
//! |---|---|
//! | `GET /health` | none |
//! | `GET /clickhouse-status` | `SELECT version()` |
//! | `GET /concurrent/simple-query` | `SELECT 1 AS value` |
//! | `GET /concurrent/heavy-query` | `count()` and `sum()` over 10M numbers |
//! | `GET /concurrent/test-isolation?delay=N` | `SELECT sleep(N)`, 0 ≤ N ≤ 3 |
//! | `GET /stream/numbers?n=N` | `N` rows of `system.numbers`, streamed as JSON lines |
//! | `GET /.well-known/openapi.json` | none: this table as an OpenAPI document |
//!
//! Paths are matched below the route's prefix (`spin-path-info`), so the
//! component serves the same routes mounted anywhere, here or on Spin.
//! Every query works under the host's strict read-only default (ClickHouse
//! `readonly = 1`), which refuses table functions on older servers: numbers
//! come from the `system.numbers` table, not the `numbers()` function.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::json;
use wasmhouse_sdk::bindings::wasi::random::random::get_random_bytes;
use wasmhouse_sdk::clickhouse::{self, Query};
use wasmhouse_sdk::{Handler, Request, Response};

const SIMPLE_QUERY: &str = "SELECT 1 AS value";
const HEAVY_QUERY: &str =
    "SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)";
const ISOLATION_QUERY: &str = "SELECT sleep({delay:Float64}) AS slept";
/// `sleep()` refuses more than 3 s per call, and so does this route.
const MAX_DELAY_S: f64 = 3.0;

struct Routes;

impl Handler for Routes {
    fn handle(request: Request) -> Response {
        let path = request.path_info();
        let route: fn(&Request) -> Response = match path.as_str() {
            "/health" => health,
            OPENAPI_PATH => openapi,
            "/clickhouse-status" => clickhouse_status,
            "/concurrent/simple-query" => |_| timed_query(SIMPLE_QUERY),
            "/concurrent/heavy-query" => |_| timed_query(HEAVY_QUERY),
            "/concurrent/test-isolation" => test_isolation,
            "/stream/numbers" => stream_numbers,
            path => return Response::error(404, "not_found", &format!("no route for {path}")),
        };
        if !matches!(request.method(), "GET" | "HEAD") {
            let message = format!("use GET for {path}, not {}", request.method());
            return Response::error(405, "method_not_allowed", &message)
                .with_header("allow", "GET, HEAD");
        }
        route(&request)
    }
}

wasmhouse_sdk::serve!(Routes);

/// Where a wasmhouse component describes its routes (the host gathers these
/// into its `/openapi.json`).
const OPENAPI_PATH: &str = "/.well-known/openapi.json";

/// This component's routes, parameters and error bodies, as OpenAPI 3.
const OPENAPI: &str = include_str!("openapi.json");

fn openapi(_: &Request) -> Response {
    Response::json_raw(200, OPENAPI.to_owned())
}

fn health(_: &Request) -> Response {
    Response::json(200, &json!({ "status": "healthy" }))
}

fn clickhouse_status(_: &Request) -> Response {
    let endpoint = clickhouse::endpoint();
    let replicas: Vec<_> = clickhouse::replicas()
        .into_iter()
        .map(|replica| {
            json!({
                "host": replica.endpoint.host,
                "port": replica.endpoint.port,
                "healthy": replica.healthy,
                "in_flight": replica.in_flight,
                "error": replica.error,
            })
        })
        .collect();
    let version = Query::new("SELECT version() AS version")
        .json_rows()
        .map(|rows| rows.first().and_then(|row| row.get("version")).cloned());
    match version {
        Ok(version) => Response::json(
            200,
            &json!({
                "status": "connected",
                "version": version,
                "host": endpoint.host,
                "port": endpoint.port,
                "replicas": replicas,
            }),
        ),
        Err(err) => Response::json(
            503,
            &json!({
                "status": "disconnected",
                "error": clickhouse::describe(&err),
                "replicas": replicas,
            }),
        ),
    }
}

/// Run `sql` and answer with its rows and how long ClickHouse took. The rows
/// are spliced into the body as ClickHouse wrote them, without re-parsing.
fn timed_query(sql: &str) -> Response {
    let started = Instant::now();
    match Query::new(sql).json_array() {
        Ok(rows) => {
            let elapsed_ms = round3(started.elapsed().as_secs_f64() * 1000.0);
            let sql = serde_json::Value::from(sql);
            Response::json_raw(
                200,
                format!(r#"{{"query":{sql},"result":{rows},"elapsed_ms":{elapsed_ms}}}"#),
            )
        }
        Err(err) => Response::from_query_error(&err),
    }
}

/// Sleep in ClickHouse for `delay` seconds and report which request and
/// which instance did it: run many at once to see that every request gets a
/// fresh instance and none waits for another.
fn test_isolation(request: &Request) -> Response {
    let delay = match parse_delay(request.query_param("delay").as_deref()) {
        Ok(delay) => delay,
        Err(message) => return Response::error(422, "invalid_parameter", &message),
    };
    let served = INSTANCE_REQUESTS.fetch_add(1, Ordering::Relaxed) + 1;
    let started_at = SystemTime::now();
    let started = Instant::now();
    if let Err(err) = Query::new(ISOLATION_QUERY).param("delay", delay).bytes() {
        return Response::from_query_error(&err);
    }
    let elapsed_s = round3(started.elapsed().as_secs_f64());
    Response::json(
        200,
        &json!({
            "request_id": random_uuid(),
            "instance_id": instance_id(),
            "instance_requests": served,
            "delay": number(delay),
            "started_at": humantime::format_rfc3339_millis(started_at).to_string(),
            "finished_at": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "elapsed_s": elapsed_s,
        }),
    )
}

/// Most rows `/stream/numbers` streams (well below the host's default cap
/// on rows read per query).
const MAX_STREAM_ROWS: u64 = 100_000_000;

/// Stream `n` rows straight from ClickHouse to the client as JSON lines: the
/// rows never pass through guest memory, and memory stays flat at any size.
fn stream_numbers(request: &Request) -> Response {
    let n = match request.query_param("n") {
        None => 1_000,
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if n <= MAX_STREAM_ROWS => n,
            _ => {
                return Response::error(
                    422,
                    "invalid_parameter",
                    &format!(
                        "query parameter n must be a whole number up to {MAX_STREAM_ROWS}, got {raw:?}"
                    ),
                );
            }
        },
    };
    // `n` is a parsed integer, so formatting it into the SQL is safe; LIMIT
    // takes no typed placeholder on servers before 19.11.
    let query = Query::new(format!("SELECT number FROM system.numbers LIMIT {n}"));
    match query.run() {
        Ok(rows) => Response::rows(200, "application/x-ndjson", rows),
        Err(err) => Response::from_query_error(&err),
    }
}

/// `delay` as seconds: missing means 1; anything but a number in 0..=3 is
/// the client's mistake.
fn parse_delay(raw: Option<&str>) -> Result<f64, String> {
    let Some(raw) = raw else { return Ok(1.0) };
    match raw.trim().parse::<f64>() {
        Ok(delay) if (0.0..=MAX_DELAY_S).contains(&delay) => Ok(delay),
        _ => Err(format!(
            "query parameter delay must be a number of seconds from 0 to {MAX_DELAY_S}, got {raw:?}"
        )),
    }
}

/// Requests this instance has served: always 1, because wasmhouse never
/// reuses an instance.
static INSTANCE_REQUESTS: AtomicU32 = AtomicU32::new(0);

/// A random id drawn when this instance first needs it.
fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        get_random_bytes(8)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    })
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&get_random_bytes(16)[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A whole number of seconds prints as an integer (`1`, not `1.0`).
fn number(value: f64) -> serde_json::Value {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        json!(value as i64)
    } else {
        json!(value)
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::parse_delay;

    #[test]
    fn delay_defaults_to_one_second() {
        assert_eq!(parse_delay(None), Ok(1.0));
    }

    #[test]
    fn delay_accepts_numbers_in_range() {
        assert_eq!(parse_delay(Some("0")), Ok(0.0));
        assert_eq!(parse_delay(Some("2.5")), Ok(2.5));
        assert_eq!(parse_delay(Some("3")), Ok(3.0));
    }

    #[test]
    fn delay_rejects_everything_else() {
        for bad in ["abc", "-1", "4", "1;DROP TABLE x", "", "NaN", "inf", "1e9"] {
            assert!(parse_delay(Some(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
