"""The seed service's routes as a Python route component: the same WIT world
(wasmhouse:clickhouse/route) and the same answers as the Rust guest in
guest/, written with the Python SDK (sdk-python/). Built with componentize-py
(see README.md in this directory)."""

import datetime
import os
import time
import uuid

from wasmhouse import App, Query, QueryError, JSONResponse, query, serve, server, stream

SIMPLE_QUERY = "SELECT 1 AS value"
HEAVY_QUERY = "SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)"
ISOLATION_QUERY = "SELECT sleep({delay:Float64}) AS slept"
MAX_DELAY_S = 3
MAX_STREAM_ROWS = 100_000_000

app = App(
    title="wasmhouse built-in routes (Python)",
    version="1.0.0",
    description="The FastAPI + clickhouse-connect seed service's routes, each answered by a fresh WebAssembly instance.",
)

# Drawn on first use in an instance, not when the module is imported at
# build time (pre-initialisation has no randomness): wasmhouse gives every
# request a fresh instance, so a second request never sees the first's.
_instance_id = None
_instance_requests = 0


def _current_instance_id():
    global _instance_id
    if _instance_id is None:
        _instance_id = os.urandom(8).hex()
    return _instance_id


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


@app.get("/health", queries=False)
def health():
    """Liveness: answers without touching ClickHouse"""
    return {"status": "healthy"}


@app.get("/clickhouse-status")
def clickhouse_status():
    """ClickHouse's version, or why it cannot be reached"""
    try:
        rows = query("SELECT version() AS version").rows()
    except QueryError as err:
        return JSONResponse({"status": "disconnected", "error": err.detail}, 503)
    endpoint = server()
    return {
        "status": "connected",
        "version": rows[0]["version"] if rows else None,
        "host": endpoint.host,
        "port": endpoint.port,
    }


def _timed(sql):
    started = time.perf_counter()
    result = query(sql).rows()
    return {"query": sql, "result": result, "elapsed_ms": round((time.perf_counter() - started) * 1000, 3)}


@app.get("/concurrent/simple-query")
def simple_query():
    """SELECT 1, with ClickHouse's time"""
    return _timed(SIMPLE_QUERY)


@app.get("/concurrent/heavy-query")
def heavy_query():
    """count() and sum() over ten million numbers"""
    return _timed(HEAVY_QUERY)


@app.get("/concurrent/test-isolation")
def test_isolation(
    delay: float = Query(1, ge=0, le=MAX_DELAY_S, description="Seconds to sleep in ClickHouse, from 0 to 3"),
):
    """Sleep in ClickHouse; shows that every request gets a fresh instance"""
    global _instance_requests
    _instance_requests += 1
    started_at = _now()
    started = time.perf_counter()
    query(ISOLATION_QUERY, {"delay": delay}).text()
    return {
        "request_id": str(uuid.uuid4()),
        "instance_id": _current_instance_id(),
        "instance_requests": _instance_requests,
        "delay": delay,
        "started_at": started_at,
        "finished_at": _now(),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


@app.get("/stream/numbers")
def stream_numbers(n: int = Query(1000, ge=0, le=MAX_STREAM_ROWS, description="How many rows, up to 100,000,000")):
    """Stream n rows of system.numbers as JSON lines"""
    # The runtime copies the rows straight into the response body.
    return stream(query("SELECT number FROM system.numbers LIMIT {n:UInt64}", {"n": n}))


IncomingHandler = serve(app)
