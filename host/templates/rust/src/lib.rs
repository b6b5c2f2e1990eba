//! {{name}}: HTTP routes over ClickHouse. wasmhouse gives every request a
//! fresh, sandboxed instance of this component.
//!
//! Each route declares its method, its path pattern and its parameters with
//! their rules; the router answers 404, 405 and 422 for them and describes
//! them at `/docs` (from `/.well-known/openapi.json`, generated from the same
//! declarations).

use wasmhouse_sdk::Response;
use wasmhouse_sdk::clickhouse::Query;
use wasmhouse_sdk::router::{Call, Param, Route, Router};

fn routes() -> Router {
    Router::new("{{name}}", "0.1.0")
        .description("Routes over ClickHouse, served by wasmhouse.")
        .route(
            Route::get("/hello/{name}", hello)
                .path(Param::string("name").max_length(100).describe("Who to greet"))
                .summary("A greeting, written by ClickHouse")
                .queries_clickhouse(),
        )
        .route(
            Route::get("/numbers", numbers)
                .query(
                    Param::uint("limit")
                        .range(1, 1000)
                        .default(10)
                        .describe("How many rows, 1 to 1000"),
                )
                .query(
                    Param::uint("offset")
                        .max(1_000_000)
                        .default(0)
                        .describe("Rows to skip first"),
                )
                .summary("Numbers and their squares, a page at a time")
                .queries_clickhouse(),
        )
}

/// `GET /hello/{name}`: the name arrives percent-decoded and goes to
/// ClickHouse as data (`{name:String}`), never as SQL.
fn hello(call: Call) -> Response {
    let query = Query::new("SELECT concat('Hello, ', {name:String}, '!') AS greeting")
        .param("name", call.str("name"));
    match query.json_rows() {
        Ok(rows) => Response::json(200, &rows.first()),
        Err(err) => Response::from_query_error(&err),
    }
}

/// `GET /numbers?limit=N&offset=M`. A table of your own reads the same way:
/// `SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC
/// LIMIT {limit:UInt32}`.
fn numbers(call: Call) -> Response {
    let query = Query::new(
        "SELECT number, number * number AS square FROM system.numbers \
         LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
    )
    .param("limit", call.uint("limit"))
    .param("offset", call.uint("offset"));
    match query.json_array() {
        // The rows as one JSON array, exactly as ClickHouse wrote them.
        Ok(rows) => Response::json_raw(200, rows),
        Err(err) => Response::from_query_error(&err),
    }
}

wasmhouse_sdk::serve_router!(routes);

/// The routes' declarations, checked natively (`cargo test`): what each
/// request would reach and the 404, 405 and 422 the router answers. The
/// queries themselves run under `wasmhouse dev`.
#[cfg(test)]
mod tests {
    use super::routes;
    use serde_json::json;

    #[test]
    fn parameters_are_checked_and_decoded() {
        let app = routes();
        let page = app.check("GET", "/numbers?limit=5").expect("a valid page");
        assert_eq!(page.value("limit"), Some(&json!(5)));
        assert_eq!(page.value("offset"), Some(&json!(0)), "the default");

        let too_many = app.check("GET", "/numbers?limit=5000").expect_err("over 1000");
        assert_eq!(too_many.status(), 422);
        assert_eq!(too_many.json_body().expect("JSON")["parameter"], "limit");

        let name = app.check("GET", "/hello/J%C3%BCrgen").expect("a name");
        assert_eq!(name.value("name"), Some(&json!("Jürgen")));
    }

    #[test]
    fn unknown_paths_and_methods_are_refused() {
        let app = routes();
        assert_eq!(app.check("GET", "/nope").expect_err("no route").status(), 404);
        let post = app.check("POST", "/numbers").expect_err("GET only");
        assert_eq!(post.status(), 405);
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
    }

    #[test]
    fn the_openapi_document_lists_the_routes() {
        let doc = routes().openapi();
        let limit = &doc["paths"]["/numbers"]["get"]["parameters"][0];
        assert_eq!(limit["name"], "limit");
        assert_eq!(limit["schema"]["maximum"], 1000);
        assert!(doc["paths"]["/hello/{name}"]["get"].is_object());
    }
}
