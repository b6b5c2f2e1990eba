"""{{name}}: HTTP routes over ClickHouse. wasmhouse gives every request a
fresh, sandboxed instance of this component.

Each route declares its method and path with a decorator and its parameters
in its signature: the type hint says how the text is parsed, the default (or
Query(...)/Path(...)) what it may be. The router answers 404, 405 and 422 for
them and describes them at /docs (from /.well-known/openapi.json, generated
from the same signatures)."""

from wasmhouse import App, Path, Query, query, serve

app = App(title="{{name}}", version="0.1.0", description="Routes over ClickHouse, served by wasmhouse.")


@app.get("/hello/{name}")
def hello(name: str = Path(max_length=100, description="Who to greet")):
    """A greeting, written by ClickHouse

    The name arrives percent-decoded and goes to ClickHouse as data
    ({name:String}), never as SQL."""
    rows = query("SELECT concat('Hello, ', {name:String}, '!') AS greeting", {"name": name}).rows()
    return rows[0] if rows else None


@app.get("/numbers")
def numbers(
    limit: int = Query(10, ge=1, le=1000, description="How many rows, 1 to 1000"),
    offset: int = Query(0, ge=0, le=1_000_000, description="Rows to skip first"),
):
    """Numbers and their squares, a page at a time"""
    # A table of your own reads the same way:
    # SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC LIMIT {limit:UInt32}
    return query(
        "SELECT number, number * number AS square FROM system.numbers LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        {"limit": limit, "offset": offset},
    ).rows()


# The component's wasi:http entry point.
IncomingHandler = serve(app)
