"""wasmhouse route components in Python, FastAPI-style.

    from wasmhouse import App, Query, query, serve

    app = App(title="events", version="1.0.0")

    @app.get("/top-users")
    def top_users(limit: int = Query(10, ge=1, le=1000)):
        \"\"\"The most active users.\"\"\"
        return query(
            "SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC LIMIT {limit:UInt32}",
            {"limit": limit},
        ).rows()

    IncomingHandler = serve(app)

Build it with ``wasmhouse build`` (componentize-py); every request runs in a
fresh instance of the component, pre-initialised with the module imported.
"""

from .clickhouse import QueryError, Result, query, replicas, server, sql_value, stream
from .http import serve
from .router import (
    OPENAPI_PATH,
    App,
    Body,
    HTTPException,
    JSONResponse,
    Path,
    Query,
    Request,
    Response,
    error_response,
)

__all__ = [
    "OPENAPI_PATH",
    "App",
    "Body",
    "HTTPException",
    "JSONResponse",
    "Path",
    "Query",
    "QueryError",
    "Request",
    "Response",
    "Result",
    "error_response",
    "query",
    "replicas",
    "serve",
    "server",
    "sql_value",
    "stream",
]
