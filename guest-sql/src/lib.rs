//! The SQL route component: serves one `.sql` file as an endpoint.
//!
//! It reads what to serve from its configuration (`wasi:config/store`):
//!
//! | key | value |
//! |---|---|
//! | `sql` | the file's text: header and query ([`wasmhouse_sql_route`]) |
//! | `name` | the file's name without `.sql` (the default path) |
//! | `path` | the path pattern below the route's prefix, when the runtime mounts the route deeper than the file says (wasmhouse does for a directory of files) |
//!
//! wasmhouse fills them from the manifest (`sql = "…"`); composed with the
//! adapter (`wasmhouse compose --sql`), they come from the environment
//! (`WASMHOUSE_CONFIG_SQL`, …). Each request, in its fresh instance:
//!
//! - `GET` takes the parameters from the query string, `POST` from a JSON
//!   object body; each is checked against its placeholder's type and the
//!   header's rules, and one the file does not declare is a 422 too;
//! - the answer is a JSON array of rows by default, streamed; `?format=`
//!   (or `Accept`) `ndjson` (one JSON object per line), `csv` (with a
//!   header line) or `meta` (ClickHouse's JSON document: column names and
//!   types, rows, row count, elapsed time and rows read);
//! - a `from_key` parameter's value comes from the caller's API key (the
//!   host's `wasmhouse-key-params` header, which only the host sets), never
//!   from the request: a request that names it is a 403, and so is a key
//!   that does not fix it;
//! - `GET /.well-known/openapi.json` describes the route from the same
//!   declarations (`from_key` parameters are not the client's, so not
//!   there), and its rows from the server's own `DESCRIBE (…)` of the
//!   query: each column's name and JSON type (generic rows when the server
//!   cannot say);
//! - `GET /.well-known/wasmhouse/sql-check` ([`CHECK_PATH`]) is the host's
//!   check before a changed file goes live: the columns as JSON, or the
//!   error a request would meet (the server's, or the guard-rails').

use std::sync::OnceLock;

use serde_json::{Value, json};
use wasmhouse_clickhouse::params::ParamType;
use wasmhouse_sdk::bindings::wasi::io::streams::OutputStream;
use wasmhouse_sdk::clickhouse::{Error, Query, Rows};
use wasmhouse_sdk::http::write_all;
use wasmhouse_sdk::router::{Call, OPENAPI_PATH, Param, Route, Router};
use wasmhouse_sdk::{Handler, Request, Response};
use wasmhouse_sql_route::{CHECK_PATH, ParamSpec, SqlRoute};

mod config {
    wit_bindgen::generate!({
        path: "../wit",
        world: "wasmhouse:clickhouse/configured",
        generate_all,
    });
}

/// An answer's format: `?format=` name, ClickHouse format, content type.
type Format = (&'static str, &'static str, &'static str);

/// The answer's formats.
const FORMATS: &[Format] = &[
    ("json", "JSONEachRow", "application/json"),
    ("ndjson", "JSONEachRow", "application/x-ndjson"),
    ("csv", "CSVWithNames", "text/csv; charset=utf-8"),
    ("meta", "JSON", "application/json"),
];

/// The file this instance serves, read from the configuration once.
static ROUTE: OnceLock<Result<SqlRoute, String>> = OnceLock::new();

fn route() -> &'static Result<SqlRoute, String> {
    ROUTE.get_or_init(|| {
        let get = |key: &str| {
            config::wasi::config::store::get(key)
                .map_err(|err| format!("reading configuration key {key}: {err:?}"))
        };
        let sql = get("sql")?
            .ok_or("no `sql` in the component's configuration: this component serves the .sql file named there")?;
        let name = get("name")?.unwrap_or_else(|| "query".to_owned());
        let mut route = SqlRoute::parse(&name, &sql).map_err(|err| format!("{name}.sql: {err}"))?;
        if let Some(path) = get("path")? {
            route.path = path;
        }
        Ok(route)
    })
}

/// The router for `route`: one pattern, GET and POST.
fn router(route: &SqlRoute) -> Router {
    let title = route.summary.clone().unwrap_or_else(|| route.path.clone());
    let declare = |mut declared: Route| {
        declared = declared.reject_unknown().queries_clickhouse();
        if let Some(summary) = &route.summary {
            declared = declared.summary(summary);
        }
        if let Some(description) = &route.description {
            declared = declared.description(description);
        }
        for spec in route.params.iter().filter(|p| !p.from_key) {
            let param = router_param(spec);
            declared = if spec.in_path {
                declared.path(param)
            } else {
                declared.query(param)
            };
        }
        let names: Vec<&str> = offered_formats(route).map(|f| f.0).collect();
        let described = if route.needs_key() {
            "The answer's format: a JSON array of rows (json, the default), one JSON object per line (ndjson), or CSV with a header line (csv). `Accept: application/x-ndjson` or `text/csv` choose too."
        } else {
            "The answer's format: a JSON array of rows (json, the default), one JSON object per line (ndjson), CSV with a header line (csv), or ClickHouse's JSON document with column types, row count and statistics (meta). `Accept: application/x-ndjson` or `text/csv` choose too."
        };
        declared
            .query(
                Param::one_of("format", &names)
                    .optional()
                    .describe(described),
            )
            .json_response(
                200,
                "The rows",
                json!({ "type": "array", "items": { "type": "object" } }),
                json!([]),
            )
    };
    Router::new(&title, "1.0.0")
        .route(declare(Route::get(&route.path, answer)))
        .route(declare(
            Route::post(&route.path, answer).params_in_json_body(),
        ))
}

/// The router's declaration of one parameter: its type's range, then the
/// header's rules.
fn router_param(spec: &ParamSpec) -> Param {
    let name = spec.name.as_str();
    let ty = spec.value_type();
    let mut param = if !spec.values.is_empty() {
        let values: Vec<&str> = spec.values.iter().map(String::as_str).collect();
        Param::one_of(name, &values)
    } else {
        match ty {
            ParamType::Int(bits) if *bits <= 32 => {
                let half = 2f64.powi(i32::from(*bits) - 1);
                Param::int(name).range(-half, half - 1.0)
            }
            ParamType::Int(64) => Param::int(name),
            ParamType::UInt(bits) if *bits <= 32 => {
                Param::uint(name).max(2f64.powi(i32::from(*bits)) - 1.0)
            }
            ParamType::UInt(64) => Param::uint(name),
            ParamType::Float(_) => Param::float(name),
            ParamType::Bool => Param::bool(name),
            ParamType::Date(_) => Param::date(name),
            ParamType::DateTime(_) | ParamType::DateTime64(..) => Param::datetime(name),
            ParamType::FixedString(n) => Param::string(name).max_length(*n),
            // Wider integers, decimals, UUIDs and arrays: text the host
            // checks against the type when it binds it (422 if it is not).
            _ => Param::string(name),
        }
    };
    if let Some(min) = spec.min {
        param = param.min(min);
    }
    if let Some(max) = spec.max {
        param = param.max(max);
    }
    if let Some(n) = spec.max_length {
        param = param.max_length(n);
    }
    if let Some(default) = &spec.default {
        let value = match ty {
            ParamType::Int(_) | ParamType::UInt(_) | ParamType::Float(_) => {
                serde_json::from_str::<Value>(default)
                    .ok()
                    .filter(Value::is_number)
                    .unwrap_or_else(|| json!(default))
            }
            ParamType::Bool => json!(matches!(default.as_str(), "true" | "1")),
            _ => json!(default),
        };
        param = param.default(value);
    }
    if spec.nullable() {
        param = param.optional();
    }
    let mut description = spec.description.clone().unwrap_or_default();
    if !description.is_empty() {
        description.push(' ');
    }
    description.push_str(&format!("(ClickHouse {})", spec.type_text));
    param.describe(&description)
}

/// Run the query with the checked values and answer in the format asked for.
fn answer(call: Call) -> Response {
    let Ok(route) = route() else {
        return Response::error(500, "misconfigured", "the SQL route has no query");
    };
    let format = chosen_format(&call);
    // The router checked `format` against the offered ones; said again
    // where it matters.
    if !offered_formats(route).any(|offered| offered.0 == format.0) {
        return Response::error(
            422,
            "invalid_parameter",
            &format!("format {} is not offered on this route", format.0),
        );
    }
    let (_, clickhouse_format, content_type) = *format;
    let mut query = Query::new(route.sql.as_str()).format(clickhouse_format);
    let fixed = key_params(call.request());
    for spec in &route.params {
        if spec.from_key {
            let Some((_, value)) = fixed.iter().find(|(name, _)| *name == spec.name) else {
                return Response::error(
                    403,
                    "forbidden",
                    &format!(
                        "{} comes from the API key, and this request's key does not fix it",
                        spec.name
                    ),
                );
            };
            query = query.param(&spec.name, value);
            continue;
        }
        let text = match call.value(&spec.name) {
            Some(Value::String(text)) => text.clone(),
            Some(value) => value.to_string(),
            // Only a Nullable parameter may be absent without a default.
            None => "\\N".to_owned(),
        };
        query = query.param(&spec.name, text);
    }
    let rows = match query.run() {
        Ok(rows) => rows,
        Err(err) => return Response::from_query_error(&err),
    };
    if format.0 == "json" {
        Response::streamed(200, content_type, move |out| json_array(rows, out))
    } else {
        Response::rows(200, content_type, rows)
    }
}

/// What the caller's API key fixes (`wasmhouse-key-params`, set only by
/// the host).
fn key_params(request: &Request) -> Vec<(String, String)> {
    request
        .header("wasmhouse-key-params")
        .map(|header| {
            form_urlencoded::parse(header.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// A 403 when the request names a parameter only the API key may give.
fn sets_a_key_parameter(route: &SqlRoute, request: &Request) -> Option<Response> {
    let named = form_urlencoded::parse(request.query_string().as_bytes())
        .map(|(name, _)| name.into_owned())
        .find(|name| route.params.iter().any(|p| p.from_key && p.name == *name))?;
    Some(Response::error(
        403,
        "forbidden",
        &format!("{named} comes from the API key; a request cannot set it"),
    ))
}

/// The formats `route` answers in. A route whose parameters come from the
/// API key answers for one tenant, and ClickHouse's statistics (`meta`:
/// rows and bytes read) count every row its query scanned, other tenants'
/// too: it offers no `meta`.
fn offered_formats(route: &SqlRoute) -> impl Iterator<Item = &'static Format> {
    let per_key = route.needs_key();
    FORMATS
        .iter()
        .filter(move |format| !(per_key && format.0 == "meta"))
}

/// The format `?format=` names, or the first `Accept` names; JSON otherwise.
fn chosen_format(call: &Call) -> &'static Format {
    if let Some(name) = call.value("format").and_then(Value::as_str)
        && let Some(format) = FORMATS.iter().find(|f| f.0 == name)
    {
        return format;
    }
    let accept = call.request().header("accept").unwrap_or_default();
    for wanted in accept.split(',') {
        let wanted = wanted.split(';').next().unwrap_or_default().trim();
        if let Some(format) = FORMATS
            .iter()
            .find(|f| f.0 != "meta" && f.2.split(';').next() == Some(wanted))
        {
            return format;
        }
    }
    &FORMATS[0]
}

/// Write `JSONEachRow` rows as one JSON array, chunk by chunk: a newline
/// ends every row, and no JSON text holds a raw newline, so each one but
/// the last becomes a comma.
fn json_array(rows: Rows, out: &OutputStream) -> Result<(), ()> {
    write_all(out, b"[").map_err(|_| ())?;
    let mut row_ended = false;
    let mut any = false;
    loop {
        let chunk = match rows.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => return Err(()),
        };
        let mut piece = Vec::with_capacity(chunk.len() + 1);
        for byte in chunk {
            if byte == b'\n' {
                row_ended = true;
                continue;
            }
            if row_ended && any {
                piece.push(b',');
            }
            row_ended = false;
            any = true;
            piece.push(byte);
        }
        write_all(out, &piece).map_err(|_| ())?;
    }
    write_all(out, b"]").map_err(|_| ())
}

/// The answer's columns as the server types them (`DESCRIBE (…)` with
/// sample values): name and ClickHouse type, or why the server (or the
/// route's guard-rails) would not type them.
fn columns(route: &SqlRoute) -> Result<Vec<(String, String)>, Error> {
    let (sql, samples) = route.describe_query();
    let mut query = Query::new(sql);
    for (name, value) in samples {
        query = query.param(name, value);
    }
    let rows = query.json_rows()?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some((
                row["name"].as_str()?.to_owned(),
                row["type"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// The answer to the host's check ([`CHECK_PATH`]): the columns, or the
/// error a request would meet.
fn check(route: &SqlRoute) -> Response {
    match columns(route) {
        Ok(columns) => {
            let columns: Vec<Value> = columns
                .iter()
                .map(|(name, ty)| json!({ "name": name, "type": ty }))
                .collect();
            Response::json(200, &json!({ "columns": columns }))
        }
        Err(err) => Response::from_query_error(&err),
    }
}

/// Put the rows' schema under every operation's 200 answer in `doc`.
fn describe_rows(doc: &mut Value, path: &str, columns: &[(String, String)]) {
    let properties: serde_json::Map<String, Value> = columns
        .iter()
        .map(|(name, ty)| (name.clone(), column_schema(ty)))
        .collect();
    let names: Vec<&String> = columns.iter().map(|(name, _)| name).collect();
    let row = json!({ "type": "object", "required": names, "properties": properties });
    if let Some(Value::Object(operations)) = doc.pointer_mut(&format!(
        "/paths/{}",
        path.replace('~', "~0").replace('/', "~1")
    )) {
        for operation in operations.values_mut() {
            if let Some(schema) =
                operation.pointer_mut("/responses/200/content/application~1json/schema")
            {
                *schema = json!({ "type": "array", "items": row });
            }
        }
    }
}

/// The JSON schema of a column of ClickHouse type `ty`, as the host's
/// JSON answers write it (64-bit integers as numbers).
fn column_schema(ty: &str) -> Value {
    let ty = ty.trim();
    let inner = |prefix: &str| {
        ty.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::trim)
    };
    let described = |mut schema: Value| {
        schema["description"] = json!(format!("ClickHouse {ty}"));
        schema
    };
    if let Some(t) = inner("Nullable(") {
        let mut schema = column_schema(t);
        schema["nullable"] = json!(true);
        schema["description"] = json!(format!("ClickHouse {ty}"));
        return schema;
    }
    if let Some(t) = inner("LowCardinality(") {
        return described(column_schema(t));
    }
    if let Some(t) = inner("Array(") {
        return described(json!({ "type": "array", "items": column_schema(t) }));
    }
    let head = ty.split('(').next().unwrap_or(ty);
    let schema = match head {
        "UInt8" | "UInt16" | "UInt32" | "UInt64" | "Int8" | "Int16" | "Int32" | "Int64" => {
            json!({ "type": "integer" })
        }
        "Float32" | "Float64" => json!({ "type": "number" }),
        "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" => json!({ "type": "number" }),
        "Bool" => json!({ "type": "boolean" }),
        "Date" | "Date32" => json!({ "type": "string", "format": "date" }),
        "String" | "FixedString" | "UUID" | "Enum8" | "Enum16" | "IPv4" | "IPv6" | "DateTime"
        | "DateTime64" | "Int128" | "Int256" | "UInt128" | "UInt256" => json!({ "type": "string" }),
        _ => json!({}),
    };
    described(schema)
}

/// The component's handler: the route its configuration names, or a 500
/// saying what is wrong with that configuration.
struct SqlRouteComponent;

impl Handler for SqlRouteComponent {
    fn handle(request: Request) -> Response {
        match route() {
            Ok(route) => match sets_a_key_parameter(route, &request) {
                Some(refused) => refused,
                None if request.path_info() == CHECK_PATH && request.method() == "GET" => {
                    check(route)
                }
                None if request.path_info() == OPENAPI_PATH
                    && matches!(request.method(), "GET" | "HEAD") =>
                {
                    let mut doc = router(route).openapi();
                    if let Ok(columns) = columns(route) {
                        describe_rows(&mut doc, &route.path, &columns);
                    }
                    Response::json(200, &doc)
                }
                None => router(route).handle(request),
            },
            Err(why) => Response::error(500, "misconfigured", why),
        }
    }
}

wasmhouse_sdk::serve!(SqlRouteComponent);

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> SqlRoute {
        SqlRoute::parse("r", text).expect("parses")
    }

    #[test]
    fn parameters_take_their_types_range_and_the_headers_rules() {
        let route = route(
            "-- @param n min=2 max=9 default=3\n-- @param k values=a,b\n\
             SELECT {n:UInt8}, {small:Int8}, {k:String}, {d:Date}, {f:Nullable(Float64)}, {u:UUID}",
        );
        let router = router(&route);
        let ok = router
            .check("GET", "/r?small=-128&k=a&d=2024-01-02&u=x")
            .expect("valid");
        assert_eq!(ok.value("n"), Some(&json!(3)), "the default, as a number");
        assert_eq!(ok.value("f"), None, "Nullable: absent is NULL");
        for (query, parameter, rule) in [
            (
                "n=10&small=0&k=a&d=2024-01-02&u=x",
                "n",
                "must be at most 9",
            ),
            (
                "small=128&k=a&d=2024-01-02&u=x",
                "small",
                "must be at most 127",
            ),
            ("small=0&k=c&d=2024-01-02&u=x", "k", "must be one of a, b"),
            ("small=0&k=a&d=2024-13-02&u=x", "d", ""),
            ("small=0&k=a&d=2024-01-02", "u", "is required"),
            (
                "small=0&k=a&d=2024-01-02&u=x&nn=1",
                "nn",
                "is not a parameter of this route",
            ),
            (
                "small=0&k=a&d=2024-01-02&u=x&format=xml",
                "format",
                "must be one of json, ndjson, csv, meta",
            ),
        ] {
            let refused = router
                .check("GET", &format!("/r?{query}"))
                .expect_err(query);
            assert_eq!(refused.status(), 422, "{query}");
            let body = refused.json_body().expect("JSON");
            assert_eq!(body["parameter"], parameter, "{query}");
            assert!(
                body["rule"].as_str().unwrap_or_default().starts_with(rule),
                "{query}: {body}"
            );
        }
        let posted = router
            .check_with_body(
                "POST",
                "/r",
                br#"{"small": 5, "k": "b", "d": "2024-01-02", "u": "x", "n": 9}"#,
            )
            .expect("a JSON body");
        assert_eq!(posted.value("n"), Some(&json!(9)));
    }

    #[test]
    fn columns_become_the_rows_schema() {
        assert_eq!(column_schema("UInt64")["type"], "integer");
        assert_eq!(column_schema("Nullable(Float64)")["nullable"], true);
        assert_eq!(column_schema("Nullable(Float64)")["type"], "number");
        assert_eq!(
            column_schema("Array(LowCardinality(String))")["items"]["type"],
            "string"
        );
        assert_eq!(column_schema("Date")["format"], "date");
        assert_eq!(column_schema("DateTime('UTC')")["type"], "string");
        assert_eq!(
            column_schema("Map(String, UInt8)")["description"],
            "ClickHouse Map(String, UInt8)"
        );
        let route = route("-- @path /top/{kind}\nSELECT {kind:String}");
        let mut doc = router(&route).openapi();
        describe_rows(&mut doc, &route.path, &[("n".into(), "UInt32".into())]);
        let rows = &doc["paths"]["/top/{kind}"]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert_eq!(rows["items"]["properties"]["n"]["type"], "integer", "{doc}");
        assert_eq!(rows["items"]["required"], json!(["n"]));
    }

    #[test]
    fn the_description_comes_from_the_file() {
        let route = route(
            "-- Top users.\n-- By events.\n-- @path /top/{kind}\n-- @param limit default=5 description=\"How many\"\n\
             SELECT {kind:String}, {limit:UInt32}",
        );
        let doc = router(&route).openapi();
        let get = &doc["paths"]["/top/{kind}"]["get"];
        assert_eq!(get["summary"], "Top users.");
        assert_eq!(get["description"], "By events.");
        let limit = get["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .expect("limit");
        assert_eq!(limit["schema"]["default"], 5);
        assert_eq!(limit["schema"]["maximum"], 4294967295u64);
        assert_eq!(limit["description"], "How many (ClickHouse UInt32)");
        let post = &doc["paths"]["/top/{kind}"]["post"];
        assert!(
            post["requestBody"]["content"]["application/json"]["schema"]["properties"]["limit"]
                .is_object()
        );
    }
}
