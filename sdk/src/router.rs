//! Routes declared once: matched, validated, and described as OpenAPI from
//! the same declarations.
//!
//! ```no_run
//! use wasmhouse_sdk::clickhouse::Query;
//! use wasmhouse_sdk::router::{Call, Param, Route, Router};
//! use wasmhouse_sdk::Response;
//!
//! fn routes() -> Router {
//!     Router::new("events", "1.0.0")
//!         .route(
//!             Route::get("/top-users", top_users)
//!                 .summary("The most active users")
//!                 .query(Param::uint("limit").range(1, 1000).default(10))
//!                 .queries_clickhouse(),
//!         )
//!         .route(Route::get("/events/{user}", events).queries_clickhouse())
//! }
//!
//! fn top_users(call: Call) -> Response {
//!     let query = Query::new("SELECT user, count() AS n FROM events GROUP BY user ORDER BY n DESC LIMIT {limit:UInt32}")
//!         .param("limit", call.uint("limit"));
//!     match query.json_array() {
//!         Ok(rows) => Response::json_raw(200, rows),
//!         Err(err) => Response::from_query_error(&err),
//!     }
//! }
//!
//! fn events(call: Call) -> Response {
//!     let query = Query::new("SELECT * FROM events WHERE user = {user:String} LIMIT 100")
//!         .param("user", call.str("user"));
//!     match query.json_array() {
//!         Ok(rows) => Response::json_raw(200, rows),
//!         Err(err) => Response::from_query_error(&err),
//!     }
//! }
//!
//! wasmhouse_sdk::serve_router!(routes);
//! ```
//!
//! - Paths are matched below the route's prefix (`spin-path-info`), so the
//!   component works mounted at `/` or under any prefix, on every runtime.
//! - `{name}` in a pattern is a path parameter (a string unless declared with
//!   [`Route::path`]), percent-decoded.
//! - A path no route has is 404, a method it does not take 405 with
//!   `Allow`, a parameter missing or out of its rule 422 with a JSON body
//!   naming the parameter and the rule; the handler runs only with valid
//!   values, read with [`Call`]'s typed getters.
//! - `GET /.well-known/openapi.json` answers the routes as OpenAPI 3.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::http::{Request, Response};

/// Where a component describes its routes (the host gathers these into its
/// `/openapi.json` and `/docs`).
pub const OPENAPI_PATH: &str = "/.well-known/openapi.json";

/// A parameter's type.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Int,
    UInt,
    Float,
    String,
    Bool,
    Date,
    DateTime,
    OneOf(Vec<String>),
}

/// A declared parameter: its type and rule, for validation and OpenAPI.
#[derive(Debug, Clone)]
pub struct Param {
    name: String,
    kind: Kind,
    required: bool,
    default: Option<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    max_length: Option<usize>,
    description: Option<String>,
}

impl Param {
    fn new(name: &str, kind: Kind) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            required: true,
            default: None,
            minimum: None,
            maximum: None,
            max_length: None,
            description: None,
        }
    }

    /// A signed integer (`-3`, `42`).
    pub fn int(name: &str) -> Self {
        Self::new(name, Kind::Int)
    }

    /// A non-negative integer.
    pub fn uint(name: &str) -> Self {
        Self::new(name, Kind::UInt).min(0)
    }

    /// A number (`1.5`, `2`).
    pub fn float(name: &str) -> Self {
        Self::new(name, Kind::Float)
    }

    /// Text.
    pub fn string(name: &str) -> Self {
        Self::new(name, Kind::String)
    }

    /// `true` or `false` (also `1`, `0`).
    pub fn bool(name: &str) -> Self {
        Self::new(name, Kind::Bool)
    }

    /// A date, `YYYY-MM-DD`.
    pub fn date(name: &str) -> Self {
        Self::new(name, Kind::Date)
    }

    /// A date and time, `YYYY-MM-DD hh:mm:ss` (or with a `T`).
    pub fn datetime(name: &str) -> Self {
        Self::new(name, Kind::DateTime)
    }

    /// One of `values`.
    pub fn one_of(name: &str, values: &[&str]) -> Self {
        Self::new(
            name,
            Kind::OneOf(values.iter().map(|v| (*v).to_owned()).collect()),
        )
    }

    /// May be left out (the getters' `opt_` forms read it).
    pub fn optional(mut self) -> Self {
        self.required = false;
        self
    }

    /// Used when left out (makes it optional).
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self.required = false;
        self
    }

    /// At least `min` (numbers).
    pub fn min(mut self, min: impl Into<f64>) -> Self {
        self.minimum = Some(min.into());
        self
    }

    /// At most `max` (numbers).
    pub fn max(mut self, max: impl Into<f64>) -> Self {
        self.maximum = Some(max.into());
        self
    }

    /// From `min` to `max`, both included (numbers).
    pub fn range(self, min: impl Into<f64>, max: impl Into<f64>) -> Self {
        self.min(min).max(max)
    }

    /// At most `n` characters (text).
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// What it means, for the OpenAPI document and `/docs`.
    pub fn describe(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// Check `raw` (absent: `None`) against the declaration: the value, or
    /// the rule it breaks.
    fn check(&self, raw: Option<&str>) -> Result<Option<Value>, String> {
        let Some(raw) = raw else {
            if let Some(default) = &self.default {
                return Ok(Some(default.clone()));
            }
            return if self.required {
                Err("is required".into())
            } else {
                Ok(None)
            };
        };
        let number = |value: f64| -> Result<(), String> {
            if let Some(min) = self.minimum
                && value < min
            {
                return Err(format!("must be at least {}", show(min)));
            }
            if let Some(max) = self.maximum
                && value > max
            {
                return Err(format!("must be at most {}", show(max)));
            }
            Ok(())
        };
        let text = raw.trim();
        let value = match &self.kind {
            Kind::Int => {
                let n: i64 = text.parse().map_err(|_| "must be an integer".to_owned())?;
                number(n as f64)?;
                json!(n)
            }
            Kind::UInt => {
                let n: u64 = text
                    .parse()
                    .map_err(|_| "must be a non-negative integer".to_owned())?;
                number(n as f64)?;
                json!(n)
            }
            Kind::Float => {
                let n: f64 = text
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| "must be a number".to_owned())?;
                number(n)?;
                json!(n)
            }
            Kind::String => {
                if let Some(max) = self.max_length
                    && raw.chars().count() > max
                {
                    return Err(format!("must be at most {max} characters"));
                }
                json!(raw)
            }
            Kind::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" => json!(true),
                "false" | "0" => json!(false),
                _ => return Err("must be true or false".into()),
            },
            Kind::Date => {
                check_date(text)?;
                json!(text)
            }
            Kind::DateTime => {
                let (date, time) = text
                    .split_once([' ', 'T'])
                    .ok_or_else(|| "must be a date and time, YYYY-MM-DD hh:mm:ss".to_owned())?;
                check_date(date)?;
                check_time(time)?;
                json!(format!("{date} {time}"))
            }
            Kind::OneOf(values) => {
                if !values.iter().any(|v| v == raw) {
                    return Err(format!("must be one of {}", values.join(", ")));
                }
                json!(raw)
            }
        };
        Ok(Some(value))
    }

    /// The OpenAPI parameter object, `in` `query` or `path`.
    fn openapi(&self, location: &str) -> Value {
        let mut schema = Map::new();
        let (kind, format) = match &self.kind {
            Kind::Int | Kind::UInt => ("integer", Some("int64")),
            Kind::Float => ("number", None),
            Kind::String | Kind::OneOf(_) => ("string", None),
            Kind::Bool => ("boolean", None),
            Kind::Date => ("string", Some("date")),
            Kind::DateTime => ("string", Some("date-time")),
        };
        schema.insert("type".into(), json!(kind));
        if let Some(format) = format {
            schema.insert("format".into(), json!(format));
        }
        if let Kind::OneOf(values) = &self.kind {
            schema.insert("enum".into(), json!(values));
        }
        if let Some(min) = self.minimum {
            schema.insert("minimum".into(), number_value(min));
        }
        if let Some(max) = self.maximum {
            schema.insert("maximum".into(), number_value(max));
        }
        if let Some(max) = self.max_length {
            schema.insert("maxLength".into(), json!(max));
        }
        if let Some(default) = &self.default {
            schema.insert("default".into(), default.clone());
        }
        let mut param = Map::new();
        param.insert("name".into(), json!(self.name));
        param.insert("in".into(), json!(location));
        param.insert(
            "required".into(),
            json!(location == "path" || self.required),
        );
        if let Some(description) = &self.description {
            param.insert("description".into(), json!(description));
        }
        param.insert("schema".into(), Value::Object(schema));
        Value::Object(param)
    }
}

/// `1` for 1.0, `1.5` for 1.5: how a bound reads in a message.
fn show(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn check_date(text: &str) -> Result<(), String> {
    let bad = || "must be a date, YYYY-MM-DD".to_owned();
    let parts: Vec<&str> = text.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return Err(bad());
    };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return Err(bad());
    }
    let (Ok(year), Ok(month), Ok(day)) = (
        year.parse::<u32>(),
        month.parse::<u32>(),
        day.parse::<u32>(),
    ) else {
        return Err(bad());
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("month {month} does not exist")),
    };
    if day == 0 || day > days {
        return Err(format!("day {day} does not exist in {year}-{month:02}"));
    }
    Ok(())
}

fn check_time(text: &str) -> Result<(), String> {
    let bad = || "must be a time, hh:mm:ss".to_owned();
    let parts: Vec<u32> = text
        .split(':')
        .map(|part| {
            if part.len() == 2 {
                part.parse().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    match parts.as_slice() {
        [h, m, s] if *h < 24 && *m < 60 && *s < 60 => Ok(()),
        _ => Err(bad()),
    }
}

/// A request with its parameters checked: what a route's handler gets.
pub struct Call {
    request: Request,
    values: BTreeMap<String, Value>,
}

impl Call {
    /// The request itself: headers, the body, the raw query string.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The request, for its body ([`Request::body`]).
    pub fn into_request(self) -> Request {
        self.request
    }

    /// The body, parsed as JSON into `T`; a 422 naming the problem when it
    /// is not.
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, Response> {
        let body = self.request.body().map_err(|why| invalid("body", &why))?;
        serde_json::from_slice(&body)
            .map_err(|err| invalid("body", &format!("is not the JSON expected: {err}")))
    }

    /// A checked value, as JSON (`None` when an optional one is absent).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    fn declared(&self, name: &str) -> &Value {
        self.values.get(name).unwrap_or_else(|| {
            panic!("parameter {name:?} is not declared (or optional: use opt_…)")
        })
    }

    /// A declared integer.
    pub fn int(&self, name: &str) -> i64 {
        self.declared(name).as_i64().unwrap_or_default()
    }

    /// A declared non-negative integer.
    pub fn uint(&self, name: &str) -> u64 {
        self.declared(name).as_u64().unwrap_or_default()
    }

    /// A declared number.
    pub fn float(&self, name: &str) -> f64 {
        self.declared(name).as_f64().unwrap_or_default()
    }

    /// A declared text, date, date and time or choice.
    pub fn str(&self, name: &str) -> &str {
        self.declared(name).as_str().unwrap_or_default()
    }

    /// A declared boolean.
    pub fn bool(&self, name: &str) -> bool {
        self.declared(name).as_bool().unwrap_or_default()
    }

    /// An optional integer.
    pub fn opt_int(&self, name: &str) -> Option<i64> {
        self.values.get(name).and_then(Value::as_i64)
    }

    /// An optional non-negative integer.
    pub fn opt_uint(&self, name: &str) -> Option<u64> {
        self.values.get(name).and_then(Value::as_u64)
    }

    /// An optional number.
    pub fn opt_float(&self, name: &str) -> Option<f64> {
        self.values.get(name).and_then(Value::as_f64)
    }

    /// An optional text, date or choice.
    pub fn opt_str(&self, name: &str) -> Option<&str> {
        self.values.get(name).and_then(Value::as_str)
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.values.get(name).and_then(Value::as_bool)
    }
}

/// The 422 for a parameter that breaks its rule.
fn invalid(name: &str, rule: &str) -> Response {
    let body = json!({
        "error": format!("{name} {rule}"),
        "kind": "invalid_parameter",
        "parameter": name,
        "rule": rule,
    });
    Response::json(422, &body)
}

/// A route's handler.
pub type Handle = fn(Call) -> Response;

/// One piece of a path pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A response a route declares, as declared: every request builds the
/// router, and only a request for the document needs the OpenAPI object.
enum Documented {
    /// An OpenAPI response object ([`Route::response`]).
    Object(Value),
    /// A JSON response's parts ([`Route::json_response`]).
    Json {
        description: String,
        schema: Value,
        example: Value,
    },
}

impl Documented {
    /// The OpenAPI response object.
    fn openapi(&self) -> Value {
        match self {
            Self::Object(response) => response.clone(),
            Self::Json {
                description,
                schema,
                example,
            } => json!({
                "description": description,
                "content": { "application/json": { "schema": schema, "example": example } }
            }),
        }
    }
}

/// One method on one path pattern, with its parameters and description.
pub struct Route {
    method: &'static str,
    pattern: String,
    segments: Vec<Segment>,
    path_params: Vec<Param>,
    query_params: Vec<Param>,
    handler: Handle,
    summary: Option<String>,
    description: Option<String>,
    tags: Vec<String>,
    operation_id: Option<String>,
    responses: BTreeMap<u16, Documented>,
    body: Option<Value>,
    describe: Option<fn(Route) -> Route>,
    queries: bool,
    strict: bool,
    params_in_body: bool,
}

impl Route {
    fn new(method: &'static str, pattern: &str, handler: Handle) -> Self {
        let segments: Vec<Segment> = pattern
            .split('/')
            .filter(|s| !s.is_empty())
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Segment::Param(name.to_owned()),
                    None => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        let path_params = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(Param::string(name)),
                Segment::Literal(_) => None,
            })
            .collect();
        Self {
            method,
            pattern: pattern.to_owned(),
            segments,
            path_params,
            query_params: Vec::new(),
            handler,
            summary: None,
            description: None,
            tags: Vec::new(),
            operation_id: None,
            responses: BTreeMap::new(),
            body: None,
            describe: None,
            queries: false,
            strict: false,
            params_in_body: false,
        }
    }

    /// `GET pattern` (HEAD too).
    pub fn get(pattern: &str, handler: Handle) -> Self {
        Self::new("GET", pattern, handler)
    }

    /// `POST pattern`.
    pub fn post(pattern: &str, handler: Handle) -> Self {
        Self::new("POST", pattern, handler)
    }

    /// `PUT pattern`.
    pub fn put(pattern: &str, handler: Handle) -> Self {
        Self::new("PUT", pattern, handler)
    }

    /// `DELETE pattern`.
    pub fn delete(pattern: &str, handler: Handle) -> Self {
        Self::new("DELETE", pattern, handler)
    }

    /// `PATCH pattern`.
    pub fn patch(pattern: &str, handler: Handle) -> Self {
        Self::new("PATCH", pattern, handler)
    }

    /// Declare a query-string parameter.
    pub fn query(mut self, param: Param) -> Self {
        self.query_params.push(param);
        self
    }

    /// Declare the type and rule of path parameter `{name}` (strings by
    /// default).
    pub fn path(mut self, param: Param) -> Self {
        let param = Param {
            required: true,
            ..param
        };
        match self.path_params.iter_mut().find(|p| p.name == param.name) {
            Some(slot) => *slot = param,
            None => panic!("{} has no path parameter {{{}}}", self.pattern, param.name),
        }
        self
    }

    /// A one-line summary.
    pub fn summary(mut self, text: &str) -> Self {
        self.summary = Some(text.to_owned());
        self
    }

    /// A longer description (Markdown).
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// Group it under `tag` in the docs.
    pub fn tag(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }

    /// Its OpenAPI `operationId`.
    pub fn operation_id(mut self, id: &str) -> Self {
        self.operation_id = Some(id.to_owned());
        self
    }

    /// Describe answer `status` (an OpenAPI response object: `description`,
    /// `content` with a schema and an example…).
    pub fn response(mut self, status: u16, response: Value) -> Self {
        self.responses.insert(status, Documented::Object(response));
        self
    }

    /// Describe answer `status` as JSON of `schema` (an OpenAPI schema or a
    /// `$ref`), with an example.
    pub fn json_response(
        mut self,
        status: u16,
        description: &str,
        schema: Value,
        example: Value,
    ) -> Self {
        // Kept in parts: the OpenAPI object is built only for the document.
        self.responses.insert(
            status,
            Documented::Json {
                description: description.to_owned(),
                schema,
                example,
            },
        );
        self
    }

    /// Its documentation, declared by `describe` and made only when the
    /// OpenAPI document is: `describe` gets a bare route of the same method
    /// and pattern and adds what [`Route::summary`], [`Route::description`],
    /// [`Route::tag`], [`Route::operation_id`], [`Route::response`],
    /// [`Route::json_response`] and [`Route::json_body`] declare (anything
    /// else it sets is ignored). Every request builds the router, so a route
    /// whose documentation is large (schemas, examples) keeps it out of the
    /// requests that do not ask for it. What is declared both here and
    /// directly, `describe` wins (tags add up).
    pub fn docs(mut self, describe: fn(Route) -> Route) -> Self {
        self.describe = Some(describe);
        self
    }

    /// It takes a JSON body of `schema` ([`Call::json`] reads it).
    pub fn json_body(mut self, schema: Value) -> Self {
        self.body = Some(schema);
        self
    }

    /// It queries ClickHouse: its description lists the answers a failed
    /// query gets (502, 503, 504).
    pub fn queries_clickhouse(mut self) -> Self {
        self.queries = true;
        self
    }

    /// A parameter it does not declare is a 422 naming it, rather than
    /// ignored (a misspelt optional parameter would otherwise go unseen).
    pub fn reject_unknown(mut self) -> Self {
        self.strict = true;
        self
    }

    /// Its [`Route::query`] parameters come as the fields of a JSON object
    /// in the body instead of the query string (a POST of the same
    /// parameters): numbers, booleans and strings, checked by the same
    /// rules; `null` is absent. Described as the request body.
    pub fn params_in_json_body(mut self) -> Self {
        self.params_in_body = true;
        self
    }

    /// The path parameters of `path`'s segments, percent-decoded, if the
    /// pattern matches.
    fn matches(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (pattern, segment) in self.segments.iter().zip(segments) {
            match pattern {
                Segment::Literal(literal) => {
                    if literal != segment {
                        return None;
                    }
                }
                Segment::Param(name) => params.push((name.clone(), percent_decode(segment)?)),
            }
        }
        Some(params)
    }

    fn serves(&self, method: &str) -> bool {
        self.method == method || (self.method == "GET" && method == "HEAD")
    }

    /// The parameters checked against their rules: from the path's
    /// segments (already decoded) and the query string, or the JSON body's
    /// fields ([`Route::params_in_json_body`]; `body` reads it).
    fn validate(
        &self,
        path: &[(String, String)],
        query_string: &str,
        body: impl FnOnce() -> Result<Vec<u8>, String>,
    ) -> Result<BTreeMap<String, Value>, Response> {
        let mut values = BTreeMap::new();
        let query: Vec<(String, String)> = if self.params_in_body {
            let bytes = body().map_err(|why| invalid("body", &why))?;
            body_fields(&bytes)?
        } else {
            form_urlencoded::parse(query_string.as_bytes())
                .into_owned()
                .collect()
        };
        if self.strict
            && let Some((unknown, _)) = query
                .iter()
                .find(|(name, _)| !self.query_params.iter().any(|p| p.name == *name))
        {
            let known: Vec<&str> = self.query_params.iter().map(|p| p.name.as_str()).collect();
            let rule = if known.is_empty() {
                "is not a parameter of this route (it takes none)".to_owned()
            } else {
                format!(
                    "is not a parameter of this route (it takes {})",
                    known.join(", ")
                )
            };
            return Err(invalid(unknown, &rule));
        }
        let sources = [(&self.path_params, path), (&self.query_params, &query[..])];
        for (params, given) in sources {
            for param in params {
                let raw = given
                    .iter()
                    .find(|(name, _)| *name == param.name)
                    .map(|(_, v)| v.as_str());
                match param.check(raw) {
                    Ok(Some(value)) => {
                        values.insert(param.name.clone(), value);
                    }
                    Ok(None) => {}
                    Err(rule) => return Err(invalid(&param.name, &rule)),
                }
            }
        }
        Ok(values)
    }

    fn openapi(&self) -> Value {
        // What `docs` declares, made now.
        let described = self
            .describe
            .map(|describe| describe(Route::new(self.method, &self.pattern, self.handler)));
        let described = described.as_ref();
        let tags: Vec<&String> = self
            .tags
            .iter()
            .chain(described.map_or(&[][..], |d| &d.tags))
            .collect();
        let pick = |field: fn(&Route) -> Option<&String>| described.and_then(field).or(field(self));
        let operation_id = pick(|route| route.operation_id.as_ref());
        let summary = pick(|route| route.summary.as_ref());
        let description = pick(|route| route.description.as_ref());
        let body = described
            .and_then(|d| d.body.as_ref())
            .or(self.body.as_ref());
        let mut declared: BTreeMap<u16, &Documented> =
            self.responses.iter().map(|(s, r)| (*s, r)).collect();
        if let Some(described) = described {
            declared.extend(described.responses.iter().map(|(s, r)| (*s, r)));
        }

        let mut operation = Map::new();
        if !tags.is_empty() {
            operation.insert("tags".into(), json!(tags));
        }
        if let Some(id) = operation_id {
            operation.insert("operationId".into(), json!(id));
        }
        operation.insert(
            "summary".into(),
            json!(
                summary
                    .cloned()
                    .unwrap_or_else(|| format!("{} {}", self.method, self.pattern))
            ),
        );
        if let Some(description) = description {
            operation.insert("description".into(), json!(description));
        }
        let in_query: &[Param] = if self.params_in_body {
            &[]
        } else {
            &self.query_params
        };
        let parameters: Vec<Value> = self
            .path_params
            .iter()
            .map(|p| p.openapi("path"))
            .chain(in_query.iter().map(|p| p.openapi("query")))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), json!(parameters));
        }
        if self.params_in_body {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for param in &self.query_params {
                let mut schema = param.openapi("query")["schema"].clone();
                if let (Some(description), Value::Object(fields)) =
                    (&param.description, &mut schema)
                {
                    fields.insert("description".into(), json!(description));
                }
                properties.insert(param.name.clone(), schema);
                if param.required && param.default.is_none() {
                    required.push(param.name.clone());
                }
            }
            let mut schema = json!({ "type": "object", "properties": properties });
            if !required.is_empty() {
                schema["required"] = json!(required);
            }
            if self.strict {
                schema["additionalProperties"] = json!(false);
            }
            operation.insert(
                "requestBody".into(),
                json!({ "required": !required.is_empty(), "content": { "application/json": { "schema": schema } } }),
            );
        } else if let Some(schema) = body {
            operation.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": { "schema": schema } } }),
            );
        }
        let mut responses = Map::new();
        for (status, response) in &declared {
            responses.insert(status.to_string(), response.openapi());
        }
        let standard = |name: &str| json!({ "$ref": format!("#/components/responses/{name}") });
        if !declared.contains_key(&200) {
            responses.insert("200".into(), json!({ "description": "Answered" }));
        }
        responses.insert("405".into(), standard("MethodNotAllowed"));
        if !parameters.is_empty() || body.is_some() || self.params_in_body {
            responses.insert("422".into(), standard("InvalidParameter"));
        }
        if self.queries {
            for (status, name) in [
                ("502", "ClickHouseError"),
                ("503", "ClickHouseUnavailable"),
                ("504", "Timeout"),
            ] {
                responses.entry(status).or_insert_with(|| standard(name));
            }
        }
        operation.insert("responses".into(), Value::Object(responses));
        Value::Object(operation)
    }
}

/// A JSON object body's fields as parameter text: strings as they are,
/// numbers and booleans written out, `null` absent; anything else a 422.
fn body_fields(bytes: &[u8]) -> Result<Vec<(String, String)>, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let object: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|err| invalid("body", &format!("must be a JSON object: {err}")))?;
    let mut fields = Vec::with_capacity(object.len());
    for (name, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(invalid(&name, "must be a string, a number or a boolean"));
            }
        };
        fields.push((name, text));
    }
    Ok(fields)
}

/// `%XX` decoded; `None` when the result is not UTF-8 or an escape is broken.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A path's parameters by name, percent-decoded, before their rules.
type PathValues = Vec<(String, String)>;

/// What [`Router::check`] found for a request.
#[derive(Debug)]
pub struct Checked<'r> {
    pattern: &'r str,
    values: BTreeMap<String, Value>,
}

impl Checked<'_> {
    /// The pattern of the route the request reaches (`/events/{user}`).
    pub fn pattern(&self) -> &str {
        self.pattern
    }

    /// A parameter's checked value (with its default applied), as the
    /// handler would get it.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }
}

/// A component's routes: matching, validation and its OpenAPI document.
pub struct Router {
    title: String,
    version: String,
    description: Option<String>,
    tags: Vec<(String, String)>,
    schemas: Map<String, Value>,
    schema_texts: Vec<&'static str>,
    routes: Vec<Route>,
}

impl Router {
    /// No routes yet; `title` and `version` head the OpenAPI document.
    pub fn new(title: &str, version: &str) -> Self {
        Self {
            title: title.to_owned(),
            version: version.to_owned(),
            description: None,
            tags: Vec::new(),
            schemas: Map::new(),
            schema_texts: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// What the component serves, for the document.
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// A tag routes may be grouped under, with its description.
    pub fn tag(mut self, name: &str, description: &str) -> Self {
        self.tags.push((name.to_owned(), description.to_owned()));
        self
    }

    /// A schema routes may `$ref` as `#/components/schemas/{name}`.
    pub fn schema(mut self, name: &str, schema: Value) -> Self {
        self.schemas.insert(name.to_owned(), schema);
        self
    }

    /// Schemas routes may `$ref`, as the text of a JSON object from name to
    /// schema (say `include_str!("schemas.json")`). The text is parsed only
    /// when the OpenAPI document is asked for, not on every request, which
    /// builds the router; a schema given to [`Router::schema`] wins over one
    /// of the same name here. Text that is not a JSON object adds nothing
    /// (test the document: `router.handle` of `/.well-known/openapi.json`).
    pub fn schemas_json(mut self, text: &'static str) -> Self {
        self.schema_texts.push(text);
        self
    }

    /// Add a route.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// Answer `request`: the route its path and method match, with its
    /// parameters checked; 404, 405 or 422 otherwise.
    pub fn handle(&self, request: Request) -> Response {
        let path = request.path_info();
        if path == OPENAPI_PATH && matches!(request.method(), "GET" | "HEAD") {
            return Response::json(200, &self.openapi());
        }
        let checked = self
            .find(request.method(), &path)
            .and_then(|(route, params)| {
                let values =
                    route.validate(&params, request.query_string(), || request.read_body())?;
                Ok((route, values))
            });
        match checked {
            Ok((route, values)) => (route.handler)(Call { request, values }),
            Err(response) => response,
        }
    }

    /// What a request for `target` (a path below the component's prefix,
    /// with its query string) with `method` would reach, without running
    /// the handler: the route's pattern and its parameters checked, or the
    /// 404, 405 or 422 it would get. For a route project's own tests, which
    /// run natively (`cargo test`), where no request object exists.
    pub fn check(&self, method: &str, target: &str) -> Result<Checked<'_>, Response> {
        self.check_with_body(method, target, b"")
    }

    /// [`Router::check`] for a request with `body` (the parameters of a
    /// [`Route::params_in_json_body`] route).
    pub fn check_with_body(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> Result<Checked<'_>, Response> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (route, params) = self.find(method, path)?;
        Ok(Checked {
            pattern: &route.pattern,
            values: route.validate(&params, query, || Ok(body.to_vec()))?,
        })
    }

    /// The route serving `method` on `path`, with the path's parameters.
    fn find(&self, method: &str, path: &str) -> Result<(&Route, PathValues), Response> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut allowed: Vec<&str> = Vec::new();
        for route in &self.routes {
            let Some(params) = route.matches(&segments) else {
                continue;
            };
            if route.serves(method) {
                return Ok((route, params));
            }
            allowed.push(route.method);
            if route.method == "GET" {
                allowed.push("HEAD");
            }
        }
        if allowed.is_empty() {
            return Err(Response::error(
                404,
                "not_found",
                &format!("no route for {path}"),
            ));
        }
        let allow = allowed.join(", ");
        Err(Response::error(
            405,
            "method_not_allowed",
            &format!("{path} takes {allow}, not {method}"),
        )
        .with_header("allow", &allow))
    }

    /// The routes as an OpenAPI 3 document, paths below the component's
    /// prefix (the host puts them under the route's).
    pub fn openapi(&self) -> Value {
        let mut paths = Map::new();
        for route in &self.routes {
            let entry = paths
                .entry(route.pattern.clone())
                .or_insert_with(|| json!({}));
            if let Value::Object(methods) = entry {
                methods.insert(route.method.to_ascii_lowercase(), route.openapi());
            }
        }
        let error = |description: &str| {
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
            })
        };
        let mut schemas = Map::new();
        for text in &self.schema_texts {
            if let Ok(Value::Object(parsed)) = serde_json::from_str(text) {
                schemas.extend(parsed);
            }
        }
        schemas.extend(self.schemas.clone());
        schemas.entry("Error").or_insert_with(|| {
            json!({
                "type": "object",
                "required": ["error", "kind"],
                "properties": {
                    "error": { "type": "string", "description": "What went wrong, in words" },
                    "kind": { "type": "string", "description": "What went wrong, for programs: not_found, method_not_allowed, invalid_parameter, clickhouse_error, clickhouse_unavailable, timeout, refused" },
                    "parameter": { "type": "string", "description": "The parameter at fault (invalid_parameter)" },
                    "rule": { "type": "string", "description": "The rule it breaks (invalid_parameter)" }
                }
            })
        });
        let mut info = Map::new();
        info.insert("title".into(), json!(self.title));
        info.insert("version".into(), json!(self.version));
        if let Some(description) = &self.description {
            info.insert("description".into(), json!(description));
        }
        let mut doc = Map::new();
        doc.insert("openapi".into(), json!("3.0.3"));
        doc.insert("info".into(), Value::Object(info));
        if !self.tags.is_empty() {
            let tags: Vec<Value> = self
                .tags
                .iter()
                .map(|(name, description)| json!({ "name": name, "description": description }))
                .collect();
            doc.insert("tags".into(), json!(tags));
        }
        doc.insert("paths".into(), Value::Object(paths));
        doc.insert(
            "components".into(),
            json!({
                "schemas": schemas,
                "responses": {
                    "InvalidParameter": error("A parameter is missing or breaks its rule (kind `invalid_parameter`, with `parameter` and `rule`)"),
                    "MethodNotAllowed": error("The path takes other methods, listed in `Allow` (kind `method_not_allowed`)"),
                    "ClickHouseError": error("ClickHouse refused the query (kind `clickhouse_error`)"),
                    "ClickHouseUnavailable": error("ClickHouse cannot be reached (kind `clickhouse_unavailable`)"),
                    "Timeout": error("The query ran past the route's time limit (kind `timeout`)"),
                }
            }),
        );
        Value::Object(doc)
    }
}

/// Serve the [`Router`] `$routes()` returns as the component's
/// `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! serve_router {
    ($routes:path) => {
        #[doc(hidden)]
        pub struct WasmhouseRouter;

        impl $crate::Handler for WasmhouseRouter {
            fn handle(request: $crate::Request) -> $crate::Response {
                let router = $routes();
                let response = router.handle(request);
                // The instance serves this one request and its memory is
                // reset wholesale afterwards: freeing the router piece by
                // piece would be wasted work (5% of a small route's CPU).
                ::std::mem::forget(router);
                response
            }
        }

        $crate::serve!(WasmhouseRouter);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documentation_declared_with_docs_is_made_only_for_the_document() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DESCRIBED: AtomicUsize = AtomicUsize::new(0);
        fn describe(route: Route) -> Route {
            DESCRIBED.fetch_add(1, Ordering::SeqCst);
            route.summary("Declared lazily").tag("lazy").json_response(
                200,
                "Fine",
                json!({ "type": "object" }),
                json!({}),
            )
        }
        let router = || {
            Router::new("lazy docs", "1.0.0").route(
                Route::get("/a", |_| Response::error(200, "ok", ""))
                    .query(Param::uint("n").optional())
                    .tag("direct")
                    .summary("Overridden")
                    .docs(describe),
            )
        };
        assert!(router().check("GET", "/a?n=1").is_ok());
        assert_eq!(
            DESCRIBED.load(Ordering::SeqCst),
            0,
            "a request built the docs"
        );
        let doc = router().openapi();
        assert_eq!(DESCRIBED.load(Ordering::SeqCst), 1);
        let get = &doc["paths"]["/a"]["get"];
        assert_eq!(get["summary"], "Declared lazily");
        assert_eq!(get["tags"], json!(["direct", "lazy"]));
        assert_eq!(get["responses"]["200"]["description"], "Fine");
        assert_eq!(get["parameters"][0]["name"], "n");
    }

    #[test]
    fn parameters_are_checked_against_their_rules() {
        let limit = Param::uint("limit").range(1, 1000).default(10);
        assert_eq!(limit.check(None), Ok(Some(json!(10))));
        assert_eq!(limit.check(Some("5")), Ok(Some(json!(5))));
        assert_eq!(limit.check(Some("0")), Err("must be at least 1".into()));
        assert_eq!(
            limit.check(Some("1001")),
            Err("must be at most 1000".into())
        );
        assert_eq!(
            limit.check(Some("-1")),
            Err("must be a non-negative integer".into())
        );
        assert_eq!(
            limit.check(Some("ten")),
            Err("must be a non-negative integer".into())
        );
        let delay = Param::float("delay").range(0, 3);
        assert_eq!(delay.check(None), Err("is required".into()));
        assert_eq!(delay.check(Some("1.5")), Ok(Some(json!(1.5))));
        assert!(delay.check(Some("NaN")).is_err());
        assert!(delay.check(Some("inf")).is_err());
        assert_eq!(
            Param::date("day").check(Some("2024-02-29")),
            Ok(Some(json!("2024-02-29")))
        );
        assert!(Param::date("day").check(Some("2023-02-29")).is_err());
        assert!(Param::date("day").check(Some("2023-2-1")).is_err());
        assert_eq!(
            Param::datetime("at").check(Some("2024-01-02T03:04:05")),
            Ok(Some(json!("2024-01-02 03:04:05")))
        );
        assert!(
            Param::datetime("at")
                .check(Some("2024-01-02 24:00:00"))
                .is_err()
        );
        assert_eq!(Param::bool("x").check(Some("TRUE")), Ok(Some(json!(true))));
        assert!(Param::bool("x").check(Some("yes")).is_err());
        let kind = Param::one_of("kind", &["click", "view"]);
        assert!(kind.check(Some("view")).is_ok());
        assert_eq!(
            kind.check(Some("buy")),
            Err("must be one of click, view".into())
        );
        assert!(
            Param::string("s")
                .max_length(3)
                .check(Some("abcd"))
                .is_err()
        );
        assert_eq!(Param::string("s").optional().check(None), Ok(None));
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        let route = Route::get("/events/{user}", |_| Response::error(200, "ok", ""));
        assert_eq!(
            route.matches(&["events", "user%203"]),
            Some(vec![("user".into(), "user 3".into())])
        );
        assert_eq!(route.matches(&["events"]), None);
        assert_eq!(route.matches(&["events", "%ff"]), None, "not UTF-8");
        assert_eq!(route.matches(&["events", "%2"]), None, "a broken escape");
    }

    #[test]
    fn the_document_describes_parameters_and_errors() {
        let router = Router::new("t", "1")
            .route(
                Route::get("/top", |_| Response::error(200, "ok", ""))
                    .query(
                        Param::uint("limit")
                            .range(1, 10)
                            .default(5)
                            .describe("how many"),
                    )
                    .queries_clickhouse(),
            )
            .route(Route::get("/events/{user}", |_| {
                Response::error(200, "ok", "")
            }));
        let doc = router.openapi();
        let top = &doc["paths"]["/top"]["get"];
        assert_eq!(top["parameters"][0]["schema"]["maximum"], 10);
        assert_eq!(top["parameters"][0]["schema"]["default"], 5);
        assert_eq!(top["parameters"][0]["description"], "how many");
        assert_eq!(
            top["responses"]["422"]["$ref"],
            "#/components/responses/InvalidParameter"
        );
        assert_eq!(
            top["responses"]["503"]["$ref"],
            "#/components/responses/ClickHouseUnavailable"
        );
        let events = &doc["paths"]["/events/{user}"]["get"];
        assert_eq!(events["parameters"][0]["in"], "path");
        assert_eq!(events["parameters"][0]["required"], true);
        assert!(doc["components"]["schemas"]["Error"]["properties"]["parameter"].is_object());
    }

    #[test]
    fn check_answers_what_a_request_would_reach() {
        let ok = |_: Call| Response::error(200, "ok", "");
        let router = Router::new("t", "1")
            .route(Route::get("/top", ok).query(Param::uint("limit").range(1, 10).default(5)))
            .route(Route::get("/events/{user}", ok))
            .route(Route::post("/events/{user}", ok));
        let top = router.check("GET", "/top?limit=7").expect("reaches /top");
        assert_eq!(top.pattern(), "/top");
        assert_eq!(top.value("limit"), Some(&json!(7)));
        let default = router.check("HEAD", "/top").expect("HEAD serves GET");
        assert_eq!(default.value("limit"), Some(&json!(5)));

        let too_many = router
            .check("GET", "/top?limit=11")
            .expect_err("limit > 10");
        assert_eq!(too_many.status(), 422);
        let body = too_many.json_body().expect("JSON");
        assert_eq!(body["parameter"], "limit");
        assert_eq!(body["rule"], "must be at most 10");

        let user = router
            .check("GET", "/events/J%C3%BCrgen%20K")
            .expect("decoded");
        assert_eq!(user.value("user"), Some(&json!("Jürgen K")));
        assert_eq!(
            router.check("GET", "/nowhere").expect_err("404").status(),
            404
        );
        let wrong = router.check("DELETE", "/events/x").expect_err("405");
        assert_eq!(wrong.status(), 405);
        assert_eq!(wrong.header("Allow"), Some("GET, HEAD, POST"));
    }

    #[test]
    fn unknown_parameters_are_refused_where_asked() {
        let ok = |_: Call| Response::error(200, "ok", "");
        let limit = || Param::uint("limit").default(5);
        let router = Router::new("t", "1")
            .route(Route::get("/strict", ok).query(limit()).reject_unknown())
            .route(Route::get("/lax", ok).query(limit()));
        assert!(router.check("GET", "/lax?limt=3").is_ok());
        let typo = router.check("GET", "/strict?limt=3").expect_err("typo");
        assert_eq!(typo.status(), 422);
        let body = typo.json_body().expect("JSON");
        assert_eq!(body["parameter"], "limt");
        assert_eq!(
            body["rule"],
            "is not a parameter of this route (it takes limit)"
        );
        assert!(router.check("GET", "/strict?limit=3").is_ok());
    }

    #[test]
    fn parameters_can_come_from_a_json_body() {
        let ok = |_: Call| Response::error(200, "ok", "");
        let router = Router::new("t", "1").route(
            Route::post("/top/{kind}", ok)
                .query(Param::uint("limit").range(1, 10).default(5))
                .query(Param::string("user").optional().describe("who"))
                .reject_unknown()
                .params_in_json_body(),
        );
        let call = router
            .check_with_body("POST", "/top/a", br#"{"limit": 7, "user": null}"#)
            .expect("fields");
        assert_eq!(call.value("limit"), Some(&json!(7)));
        assert_eq!(call.value("user"), None, "null is absent");
        assert_eq!(call.value("kind"), Some(&json!("a")));
        let empty = router
            .check_with_body("POST", "/top/a", b"")
            .expect("defaults");
        assert_eq!(empty.value("limit"), Some(&json!(5)));
        // The query string is not read for such a route.
        let ignored = router
            .check_with_body("POST", "/top/a?limit=99", b"{}")
            .expect("query ignored");
        assert_eq!(ignored.value("limit"), Some(&json!(5)));
        for (body, parameter) in [
            (&br#"{"limit": 11}"#[..], "limit"),
            (br#"{"limit": [1]}"#, "limit"),
            (br#"{"limt": 1}"#, "limt"),
            (b"[1, 2]", "body"),
            (b"{", "body"),
        ] {
            let refused = router
                .check_with_body("POST", "/top/a", body)
                .expect_err("refused");
            assert_eq!(refused.status(), 422);
            assert_eq!(
                refused.json_body().expect("JSON")["parameter"],
                parameter,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let doc = router.openapi();
        let post = &doc["paths"]["/top/{kind}"]["post"];
        assert_eq!(
            post["parameters"].as_array().map(Vec::len),
            Some(1),
            "the path's only"
        );
        let schema = &post["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["properties"]["limit"]["maximum"], 10);
        assert_eq!(schema["properties"]["user"]["description"], "who");
        assert_eq!(schema["additionalProperties"], false);
        assert!(schema.get("required").is_none(), "nothing required");
        assert_eq!(
            post["responses"]["422"]["$ref"],
            "#/components/responses/InvalidParameter"
        );
    }
}
