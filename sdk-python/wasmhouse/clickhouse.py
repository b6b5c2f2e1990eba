"""ClickHouse queries through ``wasmhouse:clickhouse/query``: typed
parameters, rows read as they arrive, errors as the HTTP answers that fit.

    rows = query("SELECT number FROM system.numbers LIMIT {n:UInt32}", {"n": 10}).rows()

The SQL's ``{name:Type}`` placeholders are bound to ``params``; the runtime
checks each value against its type and sends it as data, never as SQL. A
failed query raises ``QueryError``, which a handler may catch; one it does
not catch becomes the JSON error the runtime would answer (502 for
ClickHouse's own errors, 503 when it cannot be reached, 504 on timeout, 403
for a query the route's policy refuses, 422 for a value not of its
placeholder's type).
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

from .router import HTTPException, Response

try:  # Inside a component: the bindings componentize-py generates.
    from componentize_py_types import Err as _Err
    from wit_world.imports import query as _wit
except ImportError:  # Under CPython (unit tests): no runtime to query.
    _wit = None

    class _Err(Exception):  # type: ignore[no-redef]
        value: Any = None


class QueryError(HTTPException):
    """A query that produced no result, or stopped producing one.

    ``kind`` is ``clickhouse_error`` (with ClickHouse's ``code``),
    ``clickhouse_unavailable``, ``timeout``, ``refused`` or
    ``invalid_parameter``; ``status_code`` the HTTP status that fits it."""

    def __init__(self, status_code: int, kind: str, message: str, code: Optional[int] = None) -> None:
        super().__init__(status_code, message, kind=kind)
        self.code = code


def _error(err: Any) -> QueryError:
    """The binding's error variant as a ``QueryError``."""
    value = getattr(err, "value", err)
    name = type(value).__name__
    if name == "Error_Server":
        server = value.value
        return QueryError(502, "clickhouse_error", f"ClickHouse error {server.code}: {server.message}", server.code)
    if name == "Error_Unavailable":
        return QueryError(503, "clickhouse_unavailable", f"ClickHouse unavailable: {value.value}")
    if name == "Error_Timeout":
        return QueryError(504, "timeout", "query timed out")
    if name == "Error_Refused":
        return QueryError(403, "refused", f"query refused: {value.value}")
    if name == "Error_InvalidParameter":
        return QueryError(422, "invalid_parameter", f"invalid query parameter: {value.value}")
    return QueryError(500, "internal", f"unexpected query error {value!r}")


def _require_runtime() -> Any:
    if _wit is None:
        raise RuntimeError(
            "wasmhouse.query runs inside a route component (wasmhouse dev, wasmhouse serve); "
            "under plain Python, test the routes' declarations with app.handle()"
        )
    return _wit


def sql_value(value: Any) -> str:
    """A Python value as the text ClickHouse parses for a parameter:
    ``True`` as ``true``, dates ISO-formatted, ``None`` as ``\\N`` (for a
    ``Nullable`` placeholder), lists and tuples as array literals."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(item) for item in value) + "]"
    return str(value)


def _literal(value: Any) -> str:
    """An array element as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, (bool, int, float)):
        return sql_value(value)
    if isinstance(value, (list, tuple)):
        return sql_value(value)
    text = sql_value(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


class Result:
    """A running query's result, read in order as ClickHouse produces it:
    ``rows()``, ``text()``, iterate it for one row at a time, or return
    ``stream(result)`` to copy it into the response as it comes."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def chunks(self) -> Iterator[bytes]:
        """The result's raw bytes, a chunk at a time (chunks may end mid-row)."""
        while True:
            try:
                chunk = self._handle.next()
            except _Err as err:
                raise _error(err) from None
            if chunk is None:
                return
            yield chunk

    def bytes(self) -> bytes:
        """The whole result."""
        return b"".join(self.chunks())

    def text(self) -> str:
        """The whole result as text."""
        return self.bytes().decode()

    def rows(self) -> list[Any]:
        """The rows of a ``JSONEachRow`` result, parsed."""
        lines = self.bytes().splitlines()
        if not lines:
            return []
        return _json.loads(b"[" + b",".join(line for line in lines if line) + b"]")

    def __iter__(self) -> Iterator[Any]:
        """The rows of a ``JSONEachRow`` result one at a time, as they arrive."""
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield _json.loads(line)
        if pending.strip():
            yield _json.loads(pending)

    @property
    def query_id(self) -> str:
        """The id ClickHouse knows this query by (``system.query_log``, ``KILL QUERY``)."""
        return self._handle.query_id()

    def forward(self, out: Any) -> int:
        """Write the rest of the result to a ``wasi:io`` output stream without
        copying it through the component; the bytes written."""
        try:
            return self._handle.forward(out)
        except _Err as err:
            raise _error(err) from None


def query(
    sql: str,
    params: Union[Mapping[str, Any], Sequence[tuple[str, Any]], None] = None,
    *,
    settings: Optional[Mapping[str, Any]] = None,
    format: Optional[str] = None,
    cache_seconds: int = 0,
) -> Result:
    """Run ``sql`` with its ``{name:Type}`` placeholders bound to ``params``.

    ``settings`` are ClickHouse settings the route allows; ``format`` the
    output format (``JSONEachRow`` when none); ``cache_seconds`` lets the
    runtime answer a read from its result cache, fresh that long."""
    wit = _require_runtime()
    pairs = params.items() if isinstance(params, Mapping) else (params or ())
    options = wit.Options(
        params=[(name, sql_value(value)) for name, value in pairs],
        settings=[(name, sql_value(value)) for name, value in (settings or {}).items()],
        format=format,
    )
    try:
        if cache_seconds > 0:
            handle = wit.execute_cached(sql, options, wit.CacheOptions(ttl_seconds=cache_seconds))
        else:
            handle = wit.execute(sql, options)
    except _Err as err:
        raise _error(err) from None
    return Result(handle)


class Streamed(Response):
    """A response whose body is a query's result, copied as ClickHouse
    produces it (``stream(result)``)."""

    def __init__(self, result: Result, media_type: str, status: int, headers: Optional[list[tuple[str, str]]]) -> None:
        super().__init__(b"", status, headers, media_type)
        self.result = result


def stream(
    result: Result,
    media_type: str = "application/x-ndjson",
    status: int = 200,
    headers: Optional[list[tuple[str, str]]] = None,
) -> Response:
    """A response that streams ``result`` to the client without it passing
    through the component."""
    return Streamed(result, media_type, status, headers)


def server() -> Any:
    """The ClickHouse server queries go to: ``host``, ``port``, ``database``."""
    return _require_runtime().server()


def replicas() -> list[Any]:
    """Every server queries may go to, whether it is in service and its load."""
    return _require_runtime().replicas()
