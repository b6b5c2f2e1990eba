//! A route component that misbehaves on request, so the integration tests can
//! prove that no request hurts another: it loops, allocates without end,
//! panics, traps, streams huge bodies, and sends awkward queries.
//!
//! It is also the attacker of the security tests: `/sql` runs whatever SQL,
//! parameters, settings and format the test sends, and other routes hoard
//! host resources, read their own request headers or answer with statuses a
//! server must not send.

use serde_json::json;
use wasmhouse_sdk::bindings::wasi::http::types::Fields;
use wasmhouse_sdk::clickhouse::{Query, Rows};
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
            "/many-rows" => {
                query_status(Query::new("SELECT number FROM system.numbers LIMIT 1000"))
            }
            "/midstream" => midstream(false),
            "/midstream-forward" => midstream(true),
            // Tens of seconds of CPU on the server, within the default caps.
            "/slow-query" => query_status(Query::new(
                "SELECT sum(cityHash64(toString(number))) AS h FROM (SELECT number FROM system.numbers LIMIT 900000000)",
            )),
            "/sleep" => query_status(
                Query::new("SELECT sleep({s:Float64}) AS slept")
                    .param("s", request.query_param("s").unwrap_or_else(|| "1".into())),
            ),
            "/sql" => sql(&request),
            "/compute-then-query" => compute_then_query(number("ms", 50)),
            "/open-results" => open_results(number("n", 16)),
            "/fields" => hoard_fields(number("n", 10_000)),
            "/big-header" => big_header(number("kb", 1024)),
            "/headers" => echo_headers(&request),
            "/stderr" => {
                eprintln!("a note from the guest");
                Response::json(200, &json!({ "wrote": "stderr" }))
            }
            "/informational" => Response::json(
                u16::try_from(number("status", 101)).unwrap_or(101),
                &json!({ "informational": true }),
            ),
            "/mark" => mark(number("marker", 0), number("ms", 0)),
            "/look" => look(number("marker", 0)),
            "/mark-then-look" => {
                let _ = mark(number("marker", 0), 0);
                look(number("marker", 0))
            }
            "/body" => match request.body() {
                Ok(body) => Response::json(200, &json!({ "bytes": body.len() })),
                Err(err) => Response::error(413, "body", &err),
            },
            other => Response::error(404, "not_found", &format!("no route {other}")),
        }
    }
}

wasmhouse_sdk::serve!(Routes);

/// Run the SQL in `q` with `param.<name>=` parameters, `setting.<name>=`
/// settings and an optional `format`: the attacker's console.
fn sql(request: &Request) -> Response {
    let mut query = Query::new(request.query_param("q").unwrap_or_default());
    for (name, value) in form_pairs(request.query_string()) {
        if let Some(param) = name.strip_prefix("param.") {
            query = query.param(param, value);
        } else if let Some(setting) = name.strip_prefix("setting.") {
            query = query.setting(setting, value);
        }
    }
    if let Some(format) = request.query_param("format") {
        query = query.format(format);
    } else {
        query = query.format("TabSeparated");
    }
    // `cache=N`: through the host's result cache, fresh for N seconds.
    if let Some(ttl) = request.query_param("cache").and_then(|n| n.parse().ok()) {
        query = query.cached(std::time::Duration::from_secs(ttl));
    }
    match query.bytes() {
        Ok(bytes) => Response::json(200, &json!({ "result": String::from_utf8_lossy(&bytes) })),
        Err(err) => Response::from_query_error(&err),
    }
}

/// The query string's pairs, percent-decoded.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(text: &str) -> Option<String> {
    let text = text.replace('+', " ");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Start `n` queries and keep every result open.
fn open_results(n: u64) -> Response {
    let mut open: Vec<Rows> = Vec::new();
    let mut refused = None;
    for _ in 0..n {
        match Query::new("SELECT 1").run() {
            Ok(rows) => open.push(rows),
            Err(err) => {
                refused = Some(wasmhouse_sdk::clickhouse::describe(&err));
                break;
            }
        }
    }
    Response::json(200, &json!({ "open": open.len(), "refused": refused }))
}

/// Create `n` header sets and keep them all.
fn hoard_fields(n: u64) -> Response {
    let mut hoard = Vec::new();
    for _ in 0..n {
        hoard.push(Fields::new());
    }
    Response::json(200, &json!({ "fields": hoard.len() }))
}

/// One header of `kb` KiB.
fn big_header(kb: u64) -> Response {
    let fields = Fields::new();
    let value = vec![b'x'; usize::try_from(kb * 1024).unwrap_or(usize::MAX)];
    let accepted = fields.append("x-big", &value).is_ok();
    Response::json(200, &json!({ "accepted": accepted }))
}

/// The request's headers, as the guest sees them.
fn echo_headers(request: &Request) -> Response {
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned().into()))
        .collect();
    Response::json(200, &json!({ "headers": headers }))
}

fn spin_forever() -> Response {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Compute for `ms` milliseconds (a heavy guest, in the host's eyes), then
/// query ClickHouse.
fn compute_then_query(ms: u64) -> Response {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut counter: u64 = 0;
    while std::time::Instant::now() < until {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
    query_status(Query::new("SELECT 1 AS one"))
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

/// `n` rows of `system.numbers` forwarded straight to the client.
fn rows(n: u64) -> Response {
    match Query::new(format!("SELECT number FROM system.numbers LIMIT {n}"))
        .format("TabSeparated")
        .run()
    {
        Ok(rows) => Response::rows(200, "text/tab-separated-values", rows),
        Err(err) => Response::from_query_error(&err),
    }
}

/// The same rows pulled chunk by chunk through guest memory and checked.
fn rows_collected(n: u64) -> Response {
    let rows = match Query::new(format!("SELECT number FROM system.numbers LIMIT {n}"))
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
    // Several 65536-row blocks (megabytes of rows) are on the wire before
    // the error.
    let query = Query::new(
        "SELECT number, throwIf(number = 300000) AS boom FROM system.numbers LIMIT 2000000",
    );
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

/// What `/mark` writes and `/look` looks for: the marker's bytes, each
/// XOR 0x5a, so that the marker as `/look` holds it (its query parameter)
/// never matches itself.
fn pattern(marker: u64) -> [u8; 8] {
    marker.to_le_bytes().map(|byte| byte ^ 0x5a)
}

/// Memory `/mark` fills and `/look` takes again: past the SDK's first
/// arena and the component's initial memory, so it is grown memory.
const MARKED_BYTES: usize = 8 << 20;

/// A static the marker is written to (in the component's data, restored
/// from its image by a reset).
static MARKED: std::sync::Mutex<[u8; 64]> = std::sync::Mutex::new([0; 64]);

/// Write `marker` into a static and all over 8 MiB of grown heap, and hold
/// the instance (and its memory slot) for `ms` milliseconds, so that
/// several `/mark` requests at once use several slots.
fn mark(marker: u64, ms: u64) -> Response {
    let bytes = pattern(marker);
    if let Ok(mut marked) = MARKED.lock() {
        for piece in marked.chunks_mut(8) {
            piece.copy_from_slice(&bytes);
        }
    }
    let mut heap = vec![0u8; MARKED_BYTES];
    for piece in heap.chunks_mut(8) {
        piece.copy_from_slice(&bytes);
    }
    // Kept (not freed) until the instance ends, as a request's data is.
    std::mem::forget(heap);
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
    Response::json(200, &json!({ "marked": marker }))
}

/// Whether this instance's memory (the static of `/mark`, and a heap of
/// the same size as its) holds `marker`'s pattern: an earlier request's
/// data seen by a later instance.
fn look(marker: u64) -> Response {
    // Compared byte by byte: the pattern itself never lands in this
    // instance's memory, where the scan below would find it.
    let wanted = marker.to_le_bytes();
    let static_holds = MARKED
        .lock()
        .map(|marked| {
            marked
                .windows(8)
                .any(|w| w.iter().zip(wanted).all(|(seen, want)| seen ^ 0x5a == want))
        })
        .unwrap_or(false);
    // As much heap as `/mark` took, not written: what a fresh instance
    // finds there must be zeros.
    // (black_box: an allocation nothing reads may be left out.)
    let heap: Vec<u8> = std::hint::black_box(Vec::with_capacity(MARKED_BYTES));
    let found = memory_holds(marker);
    drop(heap);
    Response::json(
        200,
        &json!({ "static": static_holds, "memory": found, "memory_bytes": memory_bytes() }),
    )
}

/// The size of this instance's linear memory.
fn memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Whether the pattern of `marker` is anywhere in linear memory (from
/// address 8: address 0 is no Rust pointer). Only the test guest reads its
/// memory this way.
#[allow(
    unsafe_code,
    reason = "scanning the instance's own linear memory, byte by byte"
)]
fn memory_holds(marker: u64) -> bool {
    let wanted = marker.to_le_bytes();
    let size = memory_bytes();
    let mut matched = 0;
    for address in 8..size {
        // SAFETY: every address below memory.size is readable in a wasm
        // linear memory; volatile, so the reads are not optimised away.
        let byte = unsafe { std::ptr::read_volatile(address as *const u8) } ^ 0x5a;
        if byte == wanted[matched] {
            matched += 1;
            if matched == wanted.len() {
                return true;
            }
        } else {
            matched = usize::from(byte == wanted[0]);
        }
    }
    false
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
