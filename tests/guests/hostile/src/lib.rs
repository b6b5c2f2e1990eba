//! A route component that misbehaves on request, so the integration tests can
//! prove that no request hurts another: it loops, allocates without end,
//! panics, traps, streams huge bodies, and sends awkward queries.

use serde_json::json;
use wasmhouse_sdk::clickhouse::Query;
use wasmhouse_sdk::http::write_all;
use wasmhouse_sdk::{Handler, Request, Response};

/// Which build this is; the hot-swap tests tell versions apart by it.
const VERSION: u32 = if cfg!(feature = "v2") { 2 } else { 1 };

/// Types `/echo` accepts; the SQL text is never built from raw client input.
const ECHO_TYPES: &[&str] = &[
    "String",
    "UInt8",
    "Int64",
    "UInt64",
    "Float64",
    "Date",
    "DateTime",
    "UUID",
    "Array(String)",
    "Array(UInt32)",
    "Nullable(String)",
    "Decimal(10, 2)",
];

struct Routes;

impl Handler for Routes {
    fn handle(request: Request) -> Response {
        let number = |name: &str, default: u64| {
            request
                .query_param(name)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        match request.path_info().as_str() {
            "/version" | "/" => Response::json(200, &json!({ "version": VERSION })),
            "/health" => Response::json(200, &json!({ "status": "healthy", "version": VERSION })),
            "/loop" => spin_forever(),
            "/alloc" => allocate_forever(),
            "/panic" => panic!("deliberate panic from the test guest"),
            "/trap" => trap(),
            "/huge" => huge(number("mb", 64)),
            "/rows" => rows(number("n", 1_000_000)),
            "/rows-collected" => rows_collected(number("n", 1_000_000)),
            "/echo" => echo(&request),
            "/write" => query_status(Query::new(
                "CREATE TABLE IF NOT EXISTS wasmhouse_write_test (x UInt8) ENGINE = Memory",
            )),
            "/setting" => query_status(Query::new("SELECT 1 AS one").setting(
                request.query_param("name").unwrap_or_default(),
                request.query_param("value").unwrap_or_default(),
            )),
            "/many-rows" => query_status(Query::new("SELECT number FROM numbers(1000)")),
            "/midstream" => midstream(false),
            "/midstream-forward" => midstream(true),
            "/slow-query" => query_status(Query::new(
                "SELECT count() AS c FROM numbers(1000000000000)",
            )),
            "/sleep" => query_status(
                Query::new("SELECT sleep({s:Float64}) AS slept")
                    .param("s", request.query_param("s").unwrap_or_else(|| "1".into())),
            ),
            "/body" => match request.body() {
                Ok(body) => Response::json(200, &json!({ "bytes": body.len() })),
                Err(err) => Response::error(413, "body", &err),
            },
            other => Response::error(404, "not_found", &format!("no route {other}")),
        }
    }
}

wasmhouse_sdk::serve!(Routes);

fn spin_forever() -> Response {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn allocate_forever() -> Response {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used.
        hoard.push(vec![0xA5; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn trap() -> Response {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    unreachable!("only traps on wasm32")
}

/// `mb` MiB of body written from guest memory in 64 KiB pieces.
fn huge(mb: u64) -> Response {
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = mb * 16;
    Response::streamed(200, "application/octet-stream", move |out| {
        for _ in 0..chunks {
            write_all(out, &chunk).map_err(|_| ())?;
        }
        Ok(())
    })
}

/// `SELECT number FROM numbers(n)` forwarded straight to the client.
fn rows(n: u64) -> Response {
    match Query::new("SELECT number FROM numbers({n:UInt64})")
        .param("n", n)
        .format("TabSeparated")
        .run()
    {
        Ok(rows) => Response::rows(200, "text/tab-separated-values", rows),
        Err(err) => Response::from_query_error(&err),
    }
}

/// The same rows pulled chunk by chunk through guest memory and checked.
fn rows_collected(n: u64) -> Response {
    let rows = match Query::new("SELECT number FROM numbers({n:UInt64})")
        .param("n", n)
        .format("TabSeparated")
        .run()
    {
        Ok(rows) => rows,
        Err(err) => return Response::from_query_error(&err),
    };
    let mut expected = 0u64;
    let mut partial = Vec::new();
    let mut chunks = 0u64;
    loop {
        match rows.next_chunk() {
            Ok(Some(chunk)) => {
                chunks += 1;
                partial.extend_from_slice(&chunk);
                let complete = partial
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                for line in partial[..complete]
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                {
                    let value: u64 = std::str::from_utf8(line)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u64::MAX);
                    if value != expected {
                        return Response::error(
                            500,
                            "out_of_order",
                            &format!("row {expected} arrived as {value}"),
                        );
                    }
                    expected += 1;
                }
                partial.drain(..complete);
            }
            Ok(None) => break,
            Err(err) => return Response::from_query_error(&err),
        }
    }
    Response::json(
        200,
        &json!({ "rows": expected, "chunks": chunks, "in_order": partial.is_empty() }),
    )
}

fn echo(request: &Request) -> Response {
    let ty = request
        .query_param("type")
        .unwrap_or_else(|| "String".into());
    if !ECHO_TYPES.contains(&ty.as_str()) {
        return Response::error(400, "bad_type", &format!("type {ty} is not on the list"));
    }
    let value = request.query_param("value").unwrap_or_default();
    let query =
        Query::new(format!("SELECT {{v:{ty}}} AS v, toTypeName(v) AS type")).param("v", value);
    match query.json_rows() {
        Ok(rows) => Response::json(200, &json!({ "rows": rows })),
        Err(err) => Response::from_query_error(&err),
    }
}

fn query_status(query: Query) -> Response {
    match query.bytes() {
        Ok(bytes) => Response::json(200, &json!({ "bytes": bytes.len() })),
        Err(err) => Response::from_query_error(&err),
    }
}

/// A result that fails after ClickHouse has already sent `200 OK` and rows.
fn midstream(forward: bool) -> Response {
    let query = Query::new("SELECT number, throwIf(number = 300000) AS boom FROM numbers(2000000)")
        .setting("max_block_size", "1000");
    if forward {
        match query.run() {
            Ok(rows) => Response::rows(200, "application/x-ndjson", rows),
            Err(err) => Response::from_query_error(&err),
        }
    } else {
        match query.bytes() {
            Ok(bytes) => Response::json(200, &json!({ "bytes": bytes.len() })),
            Err(err) => Response::from_query_error(&err),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn echo_types_do_not_contain_braces() {
        assert!(
            super::ECHO_TYPES
                .iter()
                .all(|t| !t.contains('{') && !t.contains('}'))
        );
    }
}
