"""The glue between an ``App`` and ``wasi:http``: ``serve(app)`` is the class
componentize-py exports as the component's ``wasi:http/incoming-handler``.

    IncomingHandler = serve(app)

Paths are matched below the route's prefix (the ``spin-path-info`` header the
host and Spin send), so the component works at ``/`` and under any prefix,
on every runtime. A ``QueryError`` or ``HTTPException`` out of a handler is
its JSON error; a ``MemoryError`` traps the instance (the host answers 500,
``memory_limit``); anything else is a 500 naming the exception, with the
traceback on standard error (the host logs it).
"""

from __future__ import annotations

import gc
import sys
import traceback
import weakref
from typing import Any, Optional

from .clickhouse import Streamed
from .router import OPENAPI_PATH, App, HTTPException, Request, Response, error_response

try:  # Inside a component: the bindings componentize-py generates.
    from componentize_py_types import Err as _Err
    from componentize_py_types import Ok as _Ok
    from wit_world import exports as _exports
    from wit_world.imports import types as _types
except ImportError:  # Under CPython (unit tests): nothing to serve.
    _exports = None

#: The most request body a handler may read.
MAX_BODY = 16 << 20
#: WASI's blocking write takes at most this much at a time.
_WRITE_CHUNK = 4096

_METHODS = {
    "Method_Get": "GET",
    "Method_Head": "HEAD",
    "Method_Post": "POST",
    "Method_Put": "PUT",
    "Method_Delete": "DELETE",
    "Method_Patch": "PATCH",
    "Method_Options": "OPTIONS",
    "Method_Connect": "CONNECT",
    "Method_Trace": "TRACE",
}


def _method(variant: Any) -> str:
    name = type(variant).__name__
    return variant.value if name == "Method_Other" else _METHODS[name]


def _read_body(incoming: Any) -> bytes:
    body = incoming.consume()
    stream = body.stream()
    parts = []
    size = 0
    try:
        while True:
            try:
                chunk = stream.blocking_read(65536)
            except _Err as err:
                if type(err.value).__name__ == "StreamError_Closed":
                    break
                raise
            size += len(chunk)
            if size > MAX_BODY:
                raise HTTPException(413, f"the request body is over {MAX_BODY >> 20} MiB")
            parts.append(chunk)
    finally:
        stream.__exit__(None, None, None)
    return b"".join(parts)


def header_list(response: Response) -> list[tuple[str, bytes]]:
    """The response's headers as ``wasi:http`` takes them; ``ValueError``
    naming the first one HTTP does not allow (a line break or NUL in a value,
    a name that is no token), which a handler may have copied from input."""
    headers = [("content-type", response.media_type)]
    headers.extend(response.headers)
    checked = []
    for name, value in headers:
        if not name or not all(c in _TOKEN for c in name):
            raise ValueError(f"the header name {name!r} is not an HTTP token")
        if any(c in "\r\n\0" for c in value):
            raise ValueError(f"the value of header {name} holds a line break or NUL")
        checked.append((name, value.encode()))
    return checked


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _send(out: Any, response: Response) -> None:
    try:
        fields = _types.Fields.from_list(header_list(response))
    except Exception as err:  # a bad header (ValueError), or one wasi:http refuses
        traceback.print_exc(file=sys.stderr)
        response = error_response(500, "internal", f"the response has a header HTTP does not allow: {err}")
        fields = _types.Fields.from_list(header_list(response))
    outgoing = _types.OutgoingResponse(fields)
    _write(out, outgoing, response, _types.ResponseOutparam, _Ok)


def _write(out: Any, outgoing: Any, response: Response, outparam: Any, ok: Any) -> None:
    outgoing.set_status_code(response.status)
    body = outgoing.body()
    if outparam is not _Rehearsal:
        outparam.set(out, ok(outgoing))
    stream = body.write()
    complete = True
    try:
        if isinstance(response, Streamed):
            response.result.forward(stream)
        else:
            data = response.body
            for offset in range(0, len(data), _WRITE_CHUNK):
                stream.blocking_write_and_flush(data[offset : offset + _WRITE_CHUNK])
    except Exception:  # the client went away, or the query failed mid-way
        complete = False
    stream.__exit__(None, None, None)
    # An unfinished body tells the client the response was cut short.
    if complete and outparam is not _Rehearsal:
        _types.OutgoingBody.finish(body, None)


def _request(incoming: Any) -> Request:
    target = incoming.path_with_query() or "/"
    path, _, query_string = target.partition("?")
    fields = incoming.headers()

    def header(name: str) -> Optional[str]:
        values = fields.get(name)
        return values[0].decode(errors="replace") if values else None

    prefixed = header("spin-path-info")
    return Request(_method(incoming.method()), prefixed or path, query_string, header, lambda: _read_body(incoming))


def _answer(app: App, incoming: Any) -> Response:
    request = _request(incoming)
    try:
        return app.handle(request)
    except HTTPException as err:
        return err.response()
    except MemoryError:
        # Out of the route's memory: let the instance trap, so the host
        # answers (and counts) it as the memory limit it is.
        raise
    except Exception as err:
        traceback.print_exc(file=sys.stderr)
        return error_response(500, "internal", f"{type(err).__name__}: {err}")


class _Rehearsal:
    """Stand-ins for the ``wasi:http`` resources, for rehearsing the glue at
    build time (see ``_warm``): each method answers what the real one would
    for a small GET."""

    def __init__(self) -> None:
        self.written = 0

    # IncomingRequest
    def path_with_query(self) -> str:
        return "/.wasmhouse-rehearsal?a=1"

    def headers(self) -> "_Rehearsal":
        return self

    def method(self) -> Any:
        return _types.Method_Get()

    # Fields
    def get(self, name: str) -> list:
        return [b"x"] if name == "host" else []

    # OutgoingResponse, OutgoingBody, OutputStream
    def set_status_code(self, status: int) -> None:
        pass

    def body(self) -> "_Rehearsal":
        return self

    def write(self) -> "_Rehearsal":
        return self

    def blocking_write_and_flush(self, data: bytes) -> None:
        self.written += len(data)

    def __exit__(self, *_: Any) -> None:
        pass


def _warm(app: App) -> None:
    """Run, at build time, what every request would otherwise do for the
    first time in its fresh instance: componentize-py snapshots the
    interpreter after the module is imported, so work done here is done once
    for all requests instead of once per request. Python rewrites code as it
    specialises it, and a page it writes in a request's instance is a page
    the host must copy and later reset.

    - The bindings wrap every resource handle (the request, the response, its
      body) with ``weakref.finalize``, whose first use imports ``atexit``:
      import machinery on every request, unless a finalizer was made before.
    - The router matches and checks a sample request for every route
      (``App.rehearse``), answers a 404, its OpenAPI document and JSON.
    - The glue turns a stand-in request into a ``Request`` and writes a
      response to stand-in resources.
    - ``gc.freeze()`` then moves every object made so far out of the
      collector's sight, so a collection during a request walks only that
      request's objects instead of writing to the snapshot's.
    """
    for _ in range(8):
        weakref.finalize(_warm, lambda: None).detach()
    app.rehearse()
    stand_in = _Rehearsal()
    for _ in range(8):
        request = _request(stand_in)
        request.header("content-type")
        _write(stand_in, stand_in, app.handle(Request("GET", OPENAPI_PATH)), _Rehearsal, lambda value: value)
        _write(stand_in, stand_in, app.handle(request), _Rehearsal, lambda value: value)
    gc.collect()
    gc.freeze()


def serve(app: App) -> type:
    """``app`` as the component's ``wasi:http/incoming-handler`` export: assign
    it to ``IncomingHandler`` in the module componentize-py builds."""
    base = _exports.IncomingHandler if _exports is not None else object
    if _exports is not None:
        _warm(app)

    class IncomingHandler(base):  # type: ignore[misc, valid-type]
        def handle(self, request: Any, response_out: Any) -> None:
            _send(response_out, _answer(app, request))

    return IncomingHandler
