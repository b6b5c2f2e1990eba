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
//! The routes are declared with the SDK's router: it matches paths below the
//! route's prefix (`spin-path-info`, so the component serves the same routes
//! mounted anywhere, here or on Spin), checks `delay` and `n` (422 naming
//! the parameter and its rule), answers 404 and 405, and describes all of it
//! at `/.well-known/openapi.json`.
//! Every query works under the host's strict read-only default (ClickHouse
//! `readonly = 1`), which refuses table functions on older servers: numbers
//! come from the `system.numbers` table, not the `numbers()` function.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime};

use serde_json::json;
use wasmhouse_sdk::Response;
use wasmhouse_sdk::bindings::wasi::random::random::get_random_bytes;
use wasmhouse_sdk::clickhouse::{self, Query};
use wasmhouse_sdk::router::{Call, Param, Route, Router};

const SIMPLE_QUERY: &str = "SELECT 1 AS value";
const HEAVY_QUERY: &str =
    "SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)";
const ISOLATION_QUERY: &str = "SELECT sleep({delay:Float64}) AS slept";
/// `sleep()` refuses more than 3 s per call, and so does this route.
const MAX_DELAY_S: f64 = 3.0;
/// Most rows `/stream/numbers` streams (well below the host's default cap
/// on rows read per query).
const MAX_STREAM_ROWS: u64 = 100_000_000;

/// The routes, their parameters and their description, declared once.
fn routes() -> Router {
    // Only validation is built per request: each route's documentation is
    // made when the OpenAPI document is asked for (`Route::docs`).
    Router::new("wasmhouse built-in routes", "1.0.0")
        .description("The FastAPI + clickhouse-connect seed service's routes, each answered by a fresh WebAssembly instance.")
        .tag("service", "Liveness and the ClickHouse connection")
        .tag("queries", "Queries that show throughput and isolation")
        .tag("streaming", "Results streamed straight from ClickHouse")
        .schemas_json(SCHEMAS)
        .route(Route::get("/health", health).docs(|route| {
            route
                .tag("service")
                .operation_id("health")
                .summary("Liveness: answers without touching ClickHouse")
                .json_response(200, "The service is up", schema("Health"), json!({ "status": "healthy" }))
        }))
        .route(Route::get("/clickhouse-status", clickhouse_status).docs(|route| {
            route
                .tag("service")
                .operation_id("clickhouseStatus")
                .summary("ClickHouse's version, or why it cannot be reached")
                .description("Runs `SELECT version()`, and lists every ClickHouse server the host may send queries to, with its health.")
                .json_response(
                    200,
                    "Connected",
                    schema("ClickHouseStatus"),
                    json!({ "status": "connected", "version": "18.16.1", "host": "127.0.0.1", "port": 8123 }),
                )
                .json_response(
                    503,
                    "ClickHouse cannot be reached",
                    json!({
                        "type": "object",
                        "required": ["status", "error"],
                        "properties": {
                            "status": { "type": "string", "enum": ["disconnected"] },
                            "error": { "type": "string" },
                            "replicas": { "type": "array", "items": schema("Replica") }
                        }
                    }),
                    json!({ "status": "disconnected", "error": "ClickHouse unavailable: cannot connect to ClickHouse (connection refused)" }),
                )
        }))
        .route(
            Route::get("/concurrent/simple-query", |_| timed_query(SIMPLE_QUERY))
                .queries_clickhouse()
                .docs(|route| {
                    route
                        .tag("queries")
                        .operation_id("simpleQuery")
                        .summary("SELECT 1, with ClickHouse's time")
                        .json_response(
                            200,
                            "The query's rows",
                            schema("QueryResult"),
                            json!({ "query": SIMPLE_QUERY, "result": [{ "value": 1 }], "elapsed_ms": 0.8 }),
                        )
                }),
        )
        .route(
            Route::get("/concurrent/heavy-query", |_| timed_query(HEAVY_QUERY))
                .queries_clickhouse()
                .docs(|route| {
                    route
                        .tag("queries")
                        .operation_id("heavyQuery")
                        .summary("count() and sum() over ten million numbers")
                        .json_response(
                            200,
                            "The query's rows",
                            schema("QueryResult"),
                            json!({ "query": HEAVY_QUERY, "result": [{ "c": 10_000_000, "s": 49_999_995_000_000_u64 }], "elapsed_ms": 25.0 }),
                        )
                }),
        )
        .route(
            Route::get("/concurrent/test-isolation", test_isolation)
                .query(
                    Param::float("delay")
                        .range(0, MAX_DELAY_S)
                        .default(1)
                        .describe("Seconds to sleep in ClickHouse, from 0 to 3"),
                )
                .queries_clickhouse()
                .docs(|route| {
                    route
                        .tag("queries")
                        .operation_id("testIsolation")
                        .summary("Sleep in ClickHouse; shows that every request gets a fresh instance")
                        .json_response(
                            200,
                            "Which instance served the request, and when",
                            schema("Isolation"),
                            json!({ "request_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "instance_id": "9f86d081884c7d65", "instance_requests": 1, "delay": 1, "started_at": "2026-01-01T00:00:00.000Z", "finished_at": "2026-01-01T00:00:01.002Z", "elapsed_s": 1.002 }),
                        )
                }),
        )
        .route(
            Route::get("/stream/numbers", stream_numbers)
                .query(
                    Param::uint("n")
                        .max(MAX_STREAM_ROWS as f64)
                        .default(1000)
                        .describe("How many rows, up to 100,000,000"),
                )
                .queries_clickhouse()
                .docs(|route| {
                    route
                        .tag("streaming")
                        .operation_id("streamNumbers")
                        .summary("Stream n rows of system.numbers as JSON lines")
                        .response(
                            200,
                            json!({
                                "description": "One JSON object per line",
                                "content": { "application/x-ndjson": { "schema": { "type": "string" }, "example": "{\"number\":\"0\"}\n{\"number\":\"1\"}\n" } }
                            }),
                        )
                }),
        )
}

/// A reference to one of [`SCHEMAS`].
fn schema(name: &str) -> serde_json::Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

wasmhouse_sdk::serve_router!(routes);

/// The response bodies' schemas, for the OpenAPI document.
const SCHEMAS: &str = include_str!("schemas.json");

fn health(_: Call) -> Response {
    Response::json(200, &json!({ "status": "healthy" }))
}

fn clickhouse_status(_: Call) -> Response {
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
fn test_isolation(call: Call) -> Response {
    let delay = call.float("delay");
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

/// Stream `n` rows straight from ClickHouse to the client as JSON lines: the
/// rows never pass through guest memory, and memory stays flat at any size.
fn stream_numbers(call: Call) -> Response {
    let n = call.uint("n");
    let query = Query::new("SELECT number FROM system.numbers LIMIT {n:UInt64}").param("n", n);
    match query.run() {
        Ok(rows) => Response::rows(200, "application/x-ndjson", rows),
        Err(err) => Response::from_query_error(&err),
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
