"""Routes declared once, FastAPI-style: matched, validated and described as
OpenAPI from the handlers' own signatures.

Plain Python with no WebAssembly imports, so it runs (and is tested) under
CPython as well as inside a component; ``wasmhouse.http`` plugs it into
``wasi:http`` and ``wasmhouse.clickhouse`` into the query interface.

    app = App(title="events", version="1.0.0")

    @app.get("/events/{user}")
    def events(user: str, limit: int = Query(10, ge=1, le=1000)):
        return query("... {user:String} LIMIT {limit:UInt32}", {"user": user, "limit": limit}).rows()

A parameter named in the path is a path parameter; any other is a query
parameter, unless its default is ``Body()`` (the JSON request body) or its
type is ``Request``. Its type hint says how the text is parsed (``int``,
``float``, ``str``, ``bool``, ``date``, ``datetime``, ``Literal[...]``,
``Optional[...]``), its default (a value, or ``Query(...)``/``Path(...)``
with bounds) what it may be. A path no route has is 404, a method it does not
take 405 with ``Allow``, a parameter missing or outside its rule 422 with a
JSON body naming the parameter and the rule.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import json as _json
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, unquote

#: Where the component describes its routes; the host merges it into its own
#: ``/openapi.json`` and shows it at ``/docs``.
OPENAPI_PATH = "/.well-known/openapi.json"

# ASCII digits only, as the Rust and JavaScript routers read them: Python's
# own `\d` and `int()` also take other scripts' digits (`１２` is 12).
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
# Each text has one way to match (digits, then an optional fraction): a
# pattern with two ways to split a run of digits takes time quadratic in its
# length when the match fails (32,000 digits and an `x`: 22 s).
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\Z")
#: Longer numbers than this are refused unmatched: no parameter needs more.
_MAX_NUMBER_CHARS = 1024
#: Longer integers than this are refused unparsed (CPython refuses to parse
#: more than 4300 digits, and no bound a route sets needs as many).
_MAX_INTEGER_DIGITS = 400
_MISSING: Any = inspect.Parameter.empty


class Response:
    """An HTTP response: ``body`` (text or bytes), ``status``, ``headers``
    (name and value pairs) and ``media_type``."""

    def __init__(
        self,
        body: str | bytes = b"",
        status: int = 200,
        headers: Optional[list[tuple[str, str]]] = None,
        media_type: str = "text/plain; charset=utf-8",
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = list(headers or [])
        self.media_type = media_type

    def text(self) -> str:
        """The body as text."""
        return self.body.decode()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.body)


class JSONResponse(Response):
    """A JSON response from any value ``json.dumps`` takes."""

    def __init__(
        self,
        content: Any,
        status: int = 200,
        headers: Optional[list[tuple[str, str]]] = None,
    ) -> None:
        super().__init__(
            _json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=_json_default),
            status,
            headers,
            "application/json",
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON: return dicts, lists, numbers and strings")


def error_response(
    status: int,
    kind: str,
    message: str,
    extra: Optional[dict[str, Any]] = None,
    headers: Optional[list[tuple[str, str]]] = None,
) -> JSONResponse:
    """The JSON error every wasmhouse route answers with:
    ``{"error": message, "kind": kind, ...extra}``."""
    return JSONResponse({"error": message, "kind": kind, **(extra or {})}, status, headers)


_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid_parameter",
    429: "too_many_requests",
}


class HTTPException(Exception):
    """Raise it in a handler to answer ``status_code`` with a JSON error whose
    ``error`` is ``detail`` and whose ``kind`` is ``kind`` (by default named
    after the status: ``not_found``, ``forbidden``, …)."""

    def __init__(
        self,
        status_code: int,
        detail: str = "",
        *,
        kind: Optional[str] = None,
        headers: Optional[list[tuple[str, str]]] = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail or f"HTTP {status_code}"
        self.kind = kind or _KINDS.get(status_code, "error" if status_code < 500 else "internal")
        self.headers = headers

    def response(self) -> JSONResponse:
        """This error as the response it stands for."""
        return error_response(self.status_code, self.kind, self.detail, headers=self.headers)


@dataclass
class _Spec:
    """A parameter's declared default and rules (``Query(...)``, ``Path(...)``,
    ``Body(...)``)."""

    where: str
    default: Any = _MISSING
    ge: Optional[float] = None
    le: Optional[float] = None
    gt: Optional[float] = None
    lt: Optional[float] = None
    min_length: Optional[int] = None
    max_length: Optional[int] = None
    pattern: Optional[str] = None
    description: Optional[str] = None
    alias: Optional[str] = None


def Query(  # noqa: N802 (FastAPI's name)
    default: Any = _MISSING,
    *,
    ge: Optional[float] = None,
    le: Optional[float] = None,
    gt: Optional[float] = None,
    lt: Optional[float] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    pattern: Optional[str] = None,
    description: Optional[str] = None,
    alias: Optional[str] = None,
) -> Any:
    """A query parameter's default and rules: ``limit: int = Query(10, ge=1,
    le=1000)``. No default (or ``...``) means it is required; ``alias`` is its
    name in the URL when that is not a Python name (``alias="user-id"``)."""
    return _Spec("query", _MISSING if default is ... else default, ge, le, gt, lt, min_length, max_length, pattern, description, alias)


def Path(  # noqa: N802 (FastAPI's name)
    *,
    ge: Optional[float] = None,
    le: Optional[float] = None,
    gt: Optional[float] = None,
    lt: Optional[float] = None,
    min_length: Optional[int] = None,
    max_length: Optional[int] = None,
    pattern: Optional[str] = None,
    description: Optional[str] = None,
) -> Any:
    """A path parameter's rules: ``user_id: int = Path(ge=1)``."""
    return _Spec("path", _MISSING, ge, le, gt, lt, min_length, max_length, pattern, description)


def Body(*, description: Optional[str] = None) -> Any:  # noqa: N802 (FastAPI's name)
    """The request body parsed as JSON: ``event: dict = Body()``. Text that is
    not JSON, or JSON not of the annotated type (``dict``, ``list``), is 422."""
    return _Spec("body", description=description)


class Request:
    """The request as a handler may see it: annotate a parameter with this
    type (``request: Request``) to get its method, path, headers and body."""

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str = "",
        headers: Optional[Callable[[str], Optional[str]]] = None,
        body: Optional[Callable[[], bytes]] = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.query: dict[str, str] = {}
        # A repeated key's first value, as the Rust and JavaScript SDKs read it.
        for key, value in parse_qsl(query_string, keep_blank_values=True):
            self.query.setdefault(key, value)
        self._headers = headers or (lambda _name: None)
        self._body = body or (lambda: b"")
        self._read: Optional[bytes] = None

    def header(self, name: str) -> Optional[str]:
        """A request header's first value, or ``None``."""
        return self._headers(name.lower())

    def body(self) -> bytes:
        """The whole request body (read once, at most 16 MiB)."""
        if self._read is None:
            self._read = self._body()
        return self._read

    def json(self) -> Any:
        """The request body parsed as JSON: UTF-8 text (RFC 8259), as the
        Rust and JavaScript SDKs read it; ``ValueError`` for anything else,
        nesting too deep included."""
        text = self.body().decode("utf-8")
        try:
            return _json.loads(text)
        except RecursionError:
            raise ValueError("it nests too deeply") from None


class _Invalid(Exception):
    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@dataclass
class _Param:
    """One parameter of a handler: where it comes from, its type and rules."""

    name: str
    key: str
    where: str
    kind: str
    spec: _Spec
    required: bool
    default: Any
    choices: tuple = ()
    container: Optional[type] = None

    def parse(self, raw: Optional[str]) -> Any:
        """``raw`` (``None`` when absent) as this parameter's value, or
        ``_Invalid`` naming the rule it breaks."""
        if raw is None:
            if self.required:
                raise _Invalid("is required")
            return self.default
        text = raw.strip()
        kind = self.kind
        if kind == "int":
            if not _INTEGER.match(text):
                raise _Invalid("must be an integer")
            if len(text) > _MAX_INTEGER_DIGITS:
                raise _Invalid(f"must be an integer of at most {_MAX_INTEGER_DIGITS} digits")
            return self._bounded(int(text))
        if kind == "float":
            if len(text) > _MAX_NUMBER_CHARS or not _DECIMAL.match(text):
                raise _Invalid("must be a number")
            return self._bounded(float(text))
        if kind == "bool":
            lower = text.lower()
            if lower in ("true", "1", "yes", "on"):
                return True
            if lower in ("false", "0", "no", "off"):
                return False
            raise _Invalid("must be true or false")
        if kind == "date":
            return _parse_date(text)
        if kind == "datetime":
            date, _, time = text.replace("T", " ", 1).partition(" ")
            day = _parse_date(date)
            if not _TIME.match(time):
                raise _Invalid("must be a date and time, YYYY-MM-DD hh:mm:ss")
            hour, minute, second = (int(part) for part in time.split(":"))
            return _dt.datetime(day.year, day.month, day.day, hour, minute, second)
        if kind == "choice":
            for choice in self.choices:
                if raw == str(choice):
                    return choice
            raise _Invalid("must be one of " + ", ".join(str(c) for c in self.choices))
        # str
        spec = self.spec
        length = len(raw)
        if spec.max_length is not None and length > spec.max_length:
            raise _Invalid(f"must be at most {spec.max_length} characters")
        if spec.min_length is not None and length < spec.min_length:
            raise _Invalid(f"must be at least {spec.min_length} characters")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, raw):
            raise _Invalid(f"must match {spec.pattern}")
        return raw

    def _bounded(self, number: Any) -> Any:
        spec = self.spec
        if number != number or number in (float("inf"), float("-inf")):
            raise _Invalid("must be a finite number")
        if spec.ge is not None and number < spec.ge:
            raise _Invalid(f"must be at least {_number(spec.ge)}")
        if spec.gt is not None and number <= spec.gt:
            raise _Invalid(f"must be more than {_number(spec.gt)}")
        if spec.le is not None and number > spec.le:
            raise _Invalid(f"must be at most {_number(spec.le)}")
        if spec.lt is not None and number >= spec.lt:
            raise _Invalid(f"must be less than {_number(spec.lt)}")
        return number

    def openapi(self) -> dict[str, Any]:
        """This parameter as an OpenAPI parameter object."""
        schema: dict[str, Any] = dict(_SCHEMAS[self.kind])
        spec = self.spec
        if self.kind == "choice":
            schema = {"type": "integer" if all(isinstance(c, int) for c in self.choices) else "string", "enum": list(self.choices)}
        for key, value in (
            ("minimum", spec.ge),
            ("maximum", spec.le),
            ("exclusiveMinimum", spec.gt),
            ("exclusiveMaximum", spec.lt),
            ("minLength", spec.min_length),
            ("maxLength", spec.max_length),
            ("pattern", spec.pattern),
        ):
            if value is not None:
                schema[key] = value
        if spec.gt is not None or spec.lt is not None:
            # OpenAPI 3.0 spells an exclusive bound as a flag on the bound.
            if spec.gt is not None:
                schema["minimum"], schema["exclusiveMinimum"] = spec.gt, True
            if spec.lt is not None:
                schema["maximum"], schema["exclusiveMaximum"] = spec.lt, True
        if not self.required and self.default is not None:
            schema["default"] = _json.loads(JSONResponse(self.default).body)
        out: dict[str, Any] = {
            "name": self.key,
            "in": self.where,
            "required": self.where == "path" or self.required,
            "schema": schema,
        }
        if spec.description:
            out["description"] = spec.description
        return out


_SCHEMAS: dict[str, dict[str, str]] = {
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "choice": {"type": "string"},
}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _parse_date(text: str) -> _dt.date:
    match = _DATE.match(text)
    if not match:
        raise _Invalid("must be a date, YYYY-MM-DD")
    year, month, day = (int(part) for part in match.groups())
    if not 1 <= month <= 12:
        raise _Invalid(f"month {month} does not exist")
    try:
        return _dt.date(year, month, day)
    except ValueError:
        raise _Invalid(f"day {day} does not exist in {match.group(1)}-{match.group(2)}") from None


def _sample(param: _Param) -> str:
    """A value of ``param``'s kind as URL text, for rehearsals."""
    if param.default is not None:
        value = param.default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value).replace(" ", "%20")
    spec = param.spec
    low = spec.ge if spec.ge is not None else spec.gt + 1 if spec.gt is not None else 1
    return {
        "int": str(int(low)),
        "float": str(low),
        "bool": "true",
        "date": "2024-01-31",
        "datetime": "2024-01-31%2012:00:00",
        "choice": str(param.choices[0]) if param.choices else "x",
    }.get(param.kind, "x")


def _decode_segment(segment: str) -> Optional[str]:
    """A path segment percent-decoded; ``None`` when it is not UTF-8."""
    if "%" not in segment:
        return segment
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def _kind_of(hint: Any, where: str) -> tuple[str, tuple, bool]:
    """The parsing kind for a type hint, its choices (``Literal``) and whether
    ``None`` is allowed (``Optional``)."""
    optional = False
    origin = typing.get_origin(hint)
    if origin is typing.Union or type(hint).__name__ == "UnionType":
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        if len(members) != 1:
            raise TypeError(f"a {where} parameter takes one type (or Optional of one), not {hint}")
        hint = members[0]
        origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "choice", typing.get_args(hint), optional
    kinds = {int: "int", float: "float", str: "str", bool: "bool", _dt.date: "date", _dt.datetime: "datetime"}
    if hint is _MISSING or hint is Any:
        return "str", (), optional
    if hint not in kinds:
        raise TypeError(
            f"a {where} parameter cannot be {getattr(hint, '__name__', hint)}: "
            "use int, float, str, bool, date, datetime, Literal[...] or Optional[...] of one"
        )
    return kinds[hint], (), optional


@dataclass
class _Route:
    method: str
    pattern: str
    segments: list[tuple[bool, str]]
    handler: Callable[..., Any]
    params: list[_Param]
    body: Optional[tuple[str, Optional[type], _Spec]]
    request_arg: Optional[str]
    options: dict[str, Any] = field(default_factory=dict)


def _signature(handler: Callable[..., Any], pattern: str, path_names: list[str]) -> tuple[list[_Param], Any, Optional[str]]:
    """The parameters ``handler`` declares: path, query, body and request."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception as err:  # a hint that does not resolve is the author's to fix
        raise TypeError(f"{handler.__name__}: its type hints do not resolve: {err}") from None
    params: list[_Param] = []
    body = None
    request_arg = None
    for name, parameter in inspect.signature(handler).parameters.items():
        hint = hints.get(name, _MISSING)
        if hint is Request:
            request_arg = name
            continue
        spec = parameter.default if isinstance(parameter.default, _Spec) else None
        if spec is not None and spec.where == "body":
            container = typing.get_origin(hint) or hint
            body = (name, container if container in (dict, list) else None, spec)
            continue
        where = "path" if name in path_names else "query"
        if spec is None:
            default = parameter.default
            spec = _Spec(where, default)
        elif spec.where != where:
            raise TypeError(
                f"{handler.__name__}: {name} is declared with {spec.where.title()}() but is "
                + ("in the path" if where == "path" else f"not in the path {pattern}")
            )
        kind, choices, optional = _kind_of(hint, where)
        default = spec.default
        if default is _MISSING and optional:
            default = None
        required = where == "path" or default is _MISSING
        params.append(
            _Param(
                name=name,
                key=spec.alias or name,
                where=where,
                kind=kind,
                spec=spec,
                required=required,
                default=None if default is _MISSING else default,
                choices=choices,
            )
        )
    declared = {p.name for p in params if p.where == "path"}
    for name in path_names:
        if name not in declared:
            raise TypeError(f"{handler.__name__} takes no parameter {name}, which the path {pattern} has")
    return params, body, request_arg


class App:
    """The routes of one component, declared with decorators per method:
    ``@app.get("/events/{user}")``."""

    def __init__(self, title: str = "routes", version: str = "1.0.0", description: Optional[str] = None) -> None:
        self.info: dict[str, Any] = {"title": title, "version": version}
        if description:
            self.info["description"] = description
        self.routes: list[_Route] = []
        self.schemas: dict[str, Any] = {}
        self.tags: list[dict[str, str]] = []

    def tag(self, name: str, description: str = "") -> "App":
        """A tag routes may be grouped under (``tags=[name]``)."""
        self.tags.append({"name": name, "description": description})
        return self

    def route(self, method: str, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``method pattern`` answered by the decorated function. Options:
        ``summary`` (else the docstring's first line), ``description`` (else
        the rest of the docstring), ``tags``, ``operation_id``, ``responses``
        (OpenAPI response objects by status), ``queries`` (it queries
        ClickHouse: 502, 503 and 504 are listed; true by default)."""
        segments = []
        for segment in (s for s in pattern.split("/") if s):
            match = re.fullmatch(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", segment)
            segments.append((True, match.group(1)) if match else (False, segment))
        path_names = [name for is_param, name in segments if is_param]

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler):
                # A WASI 0.2 component has no event loop to run it on.
                raise TypeError(
                    f"{handler.__name__}: async def handlers need a WASI 0.3 component, which "
                    "wasmhouse does not serve yet; write it as def (queries block the request, "
                    "not the host)"
                )
            params, body, request_arg = _signature(handler, pattern, path_names)
            self.routes.append(_Route(method.upper(), pattern, segments, handler, params, body, request_arg, options))
            return handler

        return register

    def get(self, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A GET route (HEAD is answered too)."""
        return self.route("GET", pattern, **options)

    def post(self, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A POST route."""
        return self.route("POST", pattern, **options)

    def put(self, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A PUT route."""
        return self.route("PUT", pattern, **options)

    def patch(self, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A PATCH route."""
        return self.route("PATCH", pattern, **options)

    def delete(self, pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A DELETE route."""
        return self.route("DELETE", pattern, **options)

    def handle(self, request: Request, *, call: bool = True) -> Response:
        """Answer ``request`` (its path below the route's prefix). Exceptions
        the handler raises are the caller's: ``wasmhouse.http`` maps them.
        With ``call=False`` the request is matched and its parameters checked
        but the handler is not run (its answer is ``null``)."""
        method, path = request.method, request.path
        if path == OPENAPI_PATH and method in ("GET", "HEAD"):
            return JSONResponse(self.openapi())
        parts = [s for s in path.split("/") if s]
        allowed: list[str] = []
        for route in self.routes:
            if len(route.segments) != len(parts):
                continue
            raw: dict[str, str] = {}
            for (is_param, name), part in zip(route.segments, parts):
                if not is_param:
                    if name != part:
                        break
                else:
                    decoded = _decode_segment(part)
                    if decoded is None:
                        break
                    raw[name] = decoded
            else:
                if route.method != method and not (route.method == "GET" and method == "HEAD"):
                    allowed.append(route.method)
                    if route.method == "GET":
                        allowed.append("HEAD")
                    continue
                return self._call(route, request, raw, call)
        if not allowed:
            return error_response(404, "not_found", f"no route for {path}")
        allow = ", ".join(allowed)
        return error_response(405, "method_not_allowed", f"{path} takes {allow}, not {method}", headers=[("allow", allow)])

    def _call(self, route: _Route, request: Request, raw_path: dict[str, str], call: bool) -> Response:
        arguments: dict[str, Any] = {}
        for param in route.params:
            raw = raw_path.get(param.key) if param.where == "path" else request.query.get(param.key)
            try:
                arguments[param.name] = param.parse(raw)
            except _Invalid as invalid:
                return error_response(
                    422,
                    "invalid_parameter",
                    f"{param.key} {invalid.rule}",
                    {"parameter": param.key, "rule": invalid.rule},
                )
        if route.body is not None:
            name, container, _spec = route.body
            try:
                value = request.json()
            except (ValueError, UnicodeDecodeError) as err:
                return error_response(422, "invalid_body", f"the body is not JSON: {err}")
            if container is not None and not isinstance(value, container):
                return error_response(422, "invalid_body", f"the body must be a JSON {'object' if container is dict else 'array'}")
            arguments[name] = value
        if route.request_arg is not None:
            arguments[route.request_arg] = request
        if not call:
            return to_response(None)
        try:
            result = route.handler(**arguments)
        except HTTPException as err:
            return err.response()
        return to_response(result)

    def rehearse(self, times: int = 8) -> None:
        """Match and check a sample request for every route ``times`` times,
        without running the handlers: run at build time, so that the
        interpreter has specialised this code before the snapshot and a
        request's fresh instance does not rewrite (and copy) it."""
        for route in self.routes:
            samples = {p.key: _sample(p) for p in route.params}
            path = "/" + "/".join(samples[name] if is_param else name for is_param, name in route.segments)
            query = "&".join(f"{p.key}={samples[p.key]}" for p in route.params if p.where == "query")
            for _ in range(times):
                self.handle(Request(route.method, path, query, body=lambda: b"{}"), call=False)
        for _ in range(times):
            self.handle(Request("GET", "/.wasmhouse-rehearsal/none"))

    def openapi(self) -> dict[str, Any]:
        """The routes as an OpenAPI 3 document, paths below the component's prefix."""
        paths: dict[str, Any] = {}

        def ref(name: str) -> dict[str, str]:
            return {"$ref": f"#/components/responses/{name}"}

        for route in self.routes:
            o = route.options
            doc = inspect.getdoc(route.handler) or ""
            first, _, rest = doc.partition("\n\n")
            operation: dict[str, Any] = {}
            if o.get("tags"):
                operation["tags"] = list(o["tags"])
            operation["operationId"] = o.get("operation_id", route.handler.__name__)
            operation["summary"] = o.get("summary") or " ".join(first.split()) or f"{route.method} {route.pattern}"
            description = o.get("description") or rest.strip()
            if description:
                operation["description"] = description
            parameters = [p.openapi() for p in route.params if p.where == "path"] + [
                p.openapi() for p in route.params if p.where == "query"
            ]
            if parameters:
                operation["parameters"] = parameters
            if route.body is not None:
                _name, container, spec = route.body
                schema = {"type": "object"} if container is dict else {"type": "array"} if container is list else {}
                body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": schema}}}
                if spec.description:
                    body["description"] = spec.description
                operation["requestBody"] = body
            responses = dict(o.get("responses") or {})
            responses.setdefault("200", {"description": "Answered"})
            responses["405"] = ref("MethodNotAllowed")
            if parameters or route.body is not None:
                responses["422"] = ref("InvalidParameter")
            if o.get("queries", True):
                responses.setdefault("502", ref("ClickHouseError"))
                responses.setdefault("503", ref("ClickHouseUnavailable"))
                responses.setdefault("504", ref("Timeout"))
            operation["responses"] = responses
            paths.setdefault(route.pattern, {})[route.method.lower()] = operation

        def error(description: str) -> dict[str, Any]:
            return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

        document: dict[str, Any] = {"openapi": "3.0.3", "info": self.info}
        if self.tags:
            document["tags"] = self.tags
        document["paths"] = paths
        document["components"] = {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "kind"],
                    "properties": {
                        "error": {"type": "string", "description": "What went wrong, in words"},
                        "kind": {"type": "string", "description": "What went wrong, for programs"},
                        "parameter": {"type": "string", "description": "The parameter at fault (invalid_parameter)"},
                        "rule": {"type": "string", "description": "The rule it breaks (invalid_parameter)"},
                    },
                },
                **self.schemas,
            },
            "responses": {
                "InvalidParameter": error(
                    "A parameter is missing or breaks its rule (kind `invalid_parameter`, with `parameter` and `rule`)"
                ),
                "MethodNotAllowed": error("The path takes other methods, listed in `Allow` (kind `method_not_allowed`)"),
                "ClickHouseError": error("ClickHouse refused the query (kind `clickhouse_error`)"),
                "ClickHouseUnavailable": error("ClickHouse cannot be reached (kind `clickhouse_unavailable`)"),
                "Timeout": error("The query ran past the route's time limit (kind `timeout`)"),
            },
        }
        return document


def to_response(result: Any) -> Response:
    """What a handler returned as a response: a ``Response`` as it is, anything
    else as JSON (``None`` as ``null``)."""
    if isinstance(result, Response):
        return result
    return JSONResponse(result)
