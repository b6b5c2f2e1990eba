//! A `.sql` file as an endpoint: what its header declares and what its
//! query's placeholders need, read by one parser for the host (which checks
//! a file before it serves it) and for the SQL route component (which
//! serves it).
//!
//! ```sql
//! -- The most active users since a day.
//! -- Counts events per user; ties are broken by name.
//! -- @path /top-users
//! -- @param since default=2024-01-01 description="First day counted"
//! -- @param limit default=10 min=1 max=1000
//! -- @param kind values=click,view
//! SELECT user, count() AS events
//! FROM events
//! WHERE ts >= {since:Date} AND kind = {kind:String}
//! GROUP BY user ORDER BY events DESC, user
//! LIMIT {limit:UInt32}
//! ```
//!
//! - The header is the comment lines (`--`) before the query. Its first
//!   line of text is the route's summary, the others its description;
//!   lines starting with `@` are directives.
//! - `@path PATTERN`: the path below the route's prefix (`/` + the file's
//!   name when absent); `{name}` segments are path parameters, and each
//!   must be a placeholder of the query.
//! - Every `{name:Type}` placeholder is a parameter of that ClickHouse
//!   type, required unless it has a `default` or its type is `Nullable(…)`
//!   (absent: `NULL`). `@param NAME` adds to it: `default=`, `min=`, `max=`,
//!   `max_length=`, `values=a,b,c` (the only values allowed), and
//!   `description="…"`, and `from_key`: the value comes from the caller's
//!   API key (its `params` in the keys file), never from the request: a
//!   tenant's rows for that tenant's key only. A `@param` for a name the
//!   query does not use is an error, as is a name used with two types.
//! - An `Identifier` parameter (a table or column name: structure, not
//!   data) must list its `values`.
//! - `@paging max=N` (and `default=M`, N by default) pages the answer: the
//!   route takes `limit` (1 to N rows) and `offset` (rows to skip, 0 by
//!   default), and the query runs as `SELECT * FROM (…) LIMIT … OFFSET …`;
//!   give it an `ORDER BY`, so pages do not overlap. The query then must
//!   not use `limit` or `offset` itself.
//! - `format` is not a parameter name: it chooses the answer's format.
//!
//! The header is a comment, so the file's whole text is the query
//! ClickHouse runs.

use wasmhouse_clickhouse::lexer::tokenize;
use wasmhouse_clickhouse::params::ParamType;

/// Parameter names the route itself answers to.
pub const RESERVED: &[&str] = &["format"];

/// Largest `.sql` file a route may be, in bytes.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// Where the SQL route component answers the host's check before a changed
/// file goes live: `200` with `{"columns": [{"name", "type"}]}` when the
/// server types the query's columns, else the error a request would meet.
pub const CHECK_PATH: &str = "/.well-known/wasmhouse/sql-check";

/// A `.sql` file that cannot be served as it is: what is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|n| format!("line {n}: ")).unwrap_or_default())]
pub struct SqlRouteError {
    /// The file's line (from 1) at fault, when one is.
    pub line: Option<usize>,
    /// What is wrong and what to write instead.
    pub message: String,
}

fn error<T>(line: Option<usize>, message: impl Into<String>) -> Result<T, SqlRouteError> {
    Err(SqlRouteError {
        line,
        message: message.into(),
    })
}

/// One parameter: the placeholder's type and the header's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Its name.
    pub name: String,
    /// Its type as the placeholder writes it.
    pub type_text: String,
    /// Its type.
    pub ty: ParamType,
    /// Whether it is a segment of the path (otherwise a query-string or
    /// JSON-body field).
    pub in_path: bool,
    /// Its value when the request has none.
    pub default: Option<String>,
    /// The smallest number allowed.
    pub min: Option<f64>,
    /// The largest number allowed.
    pub max: Option<f64>,
    /// The most characters a text may have.
    pub max_length: Option<usize>,
    /// The only values allowed (empty: any of the type).
    pub values: Vec<String>,
    /// What it means, for the route's description.
    pub description: Option<String>,
    /// Whether its value comes from the caller's API key, never the request.
    pub from_key: bool,
}

impl ParamSpec {
    /// The parameter a `{name:type_text}` placeholder declares, before
    /// any header rule.
    fn placeholder(name: &str, type_text: &str, ty: ParamType) -> Self {
        Self {
            name: name.to_owned(),
            type_text: type_text.to_owned(),
            ty,
            in_path: false,
            default: None,
            min: None,
            max: None,
            max_length: None,
            values: Vec::new(),
            description: None,
            from_key: false,
        }
    }

    /// Whether a request may leave it out.
    pub fn optional(&self) -> bool {
        self.default.is_some() || self.nullable()
    }

    /// Whether it is `Nullable(…)`: left out, it is `NULL`.
    pub fn nullable(&self) -> bool {
        matches!(self.ty, ParamType::Nullable(_))
    }

    /// Its type without `Nullable` and `LowCardinality`: what a value must be.
    pub fn value_type(&self) -> &ParamType {
        let mut ty = &self.ty;
        while let ParamType::Nullable(inner) | ParamType::LowCardinality(inner) = ty {
            ty = inner;
        }
        ty
    }
}

/// A `.sql` file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlRoute {
    /// The route's path pattern below its prefix: `/top-users`,
    /// `/events/{user}`.
    pub path: String,
    /// The header's first line of text.
    pub summary: Option<String>,
    /// The header's other lines of text.
    pub description: Option<String>,
    /// Every parameter, in the order the query first uses them.
    pub params: Vec<ParamSpec>,
    /// The query ClickHouse runs: the file's whole text, inside the paging
    /// wrapper with `@paging`.
    pub sql: String,
}

impl SqlRoute {
    /// Whether a parameter comes from the caller's API key (the route
    /// needs `api_key = true`).
    pub fn needs_key(&self) -> bool {
        self.params.iter().any(|p| p.from_key)
    }

    /// The query that asks the server for the answer's columns without
    /// running it (`DESCRIBE (…)`), with a sample value for every parameter
    /// (its default, or a value of its type).
    pub fn describe_query(&self) -> (String, Vec<(String, String)>) {
        let sql = format!("DESCRIBE (\n{}\n)", one_statement(&self.sql));
        let samples = self
            .params
            .iter()
            .map(|p| (p.name.clone(), sample_value(p)))
            .collect();
        (sql, samples)
    }

    /// Read `text`, the file named `name` (without `.sql`: the default
    /// path).
    pub fn parse(name: &str, text: &str) -> Result<Self, SqlRouteError> {
        if text.len() > MAX_FILE_BYTES {
            return error(None, format!("the file is over {MAX_FILE_BYTES} bytes"));
        }
        let header = Header::read(text)?;
        let tokens = tokenize(text).map_err(|err| SqlRouteError {
            line: Some(line_of(text, err.at)),
            message: format!("the query: {}", err.message),
        })?;
        if tokens.is_empty() {
            return error(None, "there is no query after the header");
        }

        let mut params: Vec<ParamSpec> = Vec::new();
        for token in &tokens {
            let Some((pname, type_text)) = token.placeholder() else {
                continue;
            };
            let line = Some(line_of(text, token.start));
            if let Some(seen) = params.iter().find(|p| p.name == pname) {
                if seen.type_text != type_text {
                    return error(
                        line,
                        format!(
                            "{{{pname}:{type_text}}}: {pname} is {} elsewhere in the query; use one type",
                            seen.type_text
                        ),
                    );
                }
                continue;
            }
            if RESERVED.contains(&pname) {
                return error(
                    line,
                    format!(
                        "{{{pname}:…}}: `{pname}` chooses the answer's format; name the parameter otherwise"
                    ),
                );
            }
            let ty = ParamType::parse(type_text).map_err(|why| SqlRouteError {
                line,
                message: format!("{{{pname}:{type_text}}}: {why}"),
            })?;
            params.push(ParamSpec::placeholder(pname, type_text, ty));
        }

        let path = match header.path {
            Some((line, path)) => {
                check_path(line, &path)?;
                path
            }
            None => format!("/{name}"),
        };
        for segment in path.split('/') {
            if let Some(pname) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let Some(param) = params.iter_mut().find(|p| p.name == pname) else {
                    return error(
                        header.path_line,
                        format!(
                            "@path: the query has no {{{pname}:Type}} placeholder for {{{pname}}}"
                        ),
                    );
                };
                param.in_path = true;
            }
        }

        for (line, declared) in header.params {
            let Some(param) = params.iter_mut().find(|p| p.name == declared.name) else {
                return error(
                    Some(line),
                    format!(
                        "@param {}: the query has no {{{}:Type}} placeholder",
                        declared.name, declared.name
                    ),
                );
            };
            declared.apply(line, param)?;
        }
        for param in &params {
            if matches!(param.value_type(), ParamType::Identifier) && param.values.is_empty() {
                return error(
                    None,
                    format!(
                        "{{{}:Identifier}} names a table or column: list the names allowed with @param {} values=…",
                        param.name, param.name
                    ),
                );
            }
            if param.from_key && (param.in_path || param.optional()) {
                return error(
                    None,
                    format!(
                        "{}: a from_key parameter comes from the API key alone: no default, not Nullable, not in the path",
                        param.name
                    ),
                );
            }
            if param.in_path && param.optional() {
                return error(
                    header.path_line,
                    format!(
                        "{}: a path parameter is always given; it cannot have a default or be Nullable",
                        param.name
                    ),
                );
            }
        }

        let sql = match header.paging {
            None => text.to_owned(),
            Some((line, attributes)) => {
                page(line, attributes, &mut params)?;
                format!(
                    "SELECT * FROM (\n{}\n) LIMIT {{limit:UInt64}} OFFSET {{offset:UInt64}}",
                    one_statement(text)
                )
            }
        };
        Ok(Self {
            path,
            summary: header.summary,
            description: header.description,
            params,
            sql,
        })
    }
}

/// The header's lines, read.
#[derive(Default)]
struct Header {
    summary: Option<String>,
    description: Option<String>,
    path: Option<(usize, String)>,
    path_line: Option<usize>,
    params: Vec<(usize, Declared)>,
    paging: Option<(usize, Attributes)>,
}

impl Header {
    fn read(text: &str) -> Result<Self, SqlRouteError> {
        let mut header = Self::default();
        let mut prose: Vec<&str> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let Some(comment) = trimmed.strip_prefix("--") else {
                break;
            };
            let comment = comment.trim();
            let Some(directive) = comment.strip_prefix('@') else {
                prose.push(comment);
                continue;
            };
            let (word, rest) = directive
                .split_once(char::is_whitespace)
                .map_or((directive, ""), |(w, r)| (w, r.trim()));
            match word {
                "path" => {
                    if header.path.is_some() {
                        return error(Some(number), "@path is given twice");
                    }
                    header.path = Some((number, rest.to_owned()));
                    header.path_line = Some(number);
                }
                "paging" => {
                    if header.paging.is_some() {
                        return error(Some(number), "@paging is given twice");
                    }
                    header.paging = Some((number, attributes(number, rest)?));
                }
                "param" => {
                    let declared = Declared::parse(number, rest)?;
                    if header.params.iter().any(|(_, d)| d.name == declared.name) {
                        return error(
                            Some(number),
                            format!("@param {} is declared twice", declared.name),
                        );
                    }
                    header.params.push((number, declared));
                }
                other => {
                    return error(
                        Some(number),
                        format!(
                            "unknown directive @{other} (the directives are @path, @param and @paging)"
                        ),
                    );
                }
            }
        }
        let mut lines = prose.into_iter().skip_while(|l| l.is_empty());
        header.summary = lines.next().map(str::to_owned);
        let rest: Vec<&str> = lines.collect();
        let rest = rest.join("\n");
        let rest = rest.trim();
        header.description = (!rest.is_empty()).then(|| rest.to_owned());
        Ok(header)
    }
}

/// A `@param` line's rules, before they meet the placeholder.
struct Declared {
    name: String,
    attributes: Attributes,
}

impl Declared {
    fn parse(line: usize, text: &str) -> Result<Self, SqlRouteError> {
        let (name, rest) = text
            .split_once(char::is_whitespace)
            .map_or((text, ""), |(n, r)| (n, r));
        if name.is_empty() {
            return error(Some(line), "@param needs a name: @param NAME key=value …");
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return error(Some(line), format!("@param {name}: not a parameter name"));
        }
        Ok(Self {
            name: name.to_owned(),
            attributes: attributes(line, rest)?,
        })
    }

    /// Check the rules against the parameter's type and set them on it.
    fn apply(self, line: usize, param: &mut ParamSpec) -> Result<(), SqlRouteError> {
        let at = Some(line);
        let name = &param.name;
        let number_type = matches!(
            param.value_type(),
            ParamType::Int(_) | ParamType::UInt(_) | ParamType::Float(_) | ParamType::Decimal(..)
        );
        let text_type = matches!(
            param.value_type(),
            ParamType::String | ParamType::FixedString(_)
        );
        for (key, value) in self.attributes {
            let need = |value: Option<String>| {
                value.ok_or_else(|| SqlRouteError {
                    line: at,
                    message: format!("@param {name}: {key} needs a value ({key}=…)"),
                })
            };
            let number = |value: String| -> Result<f64, SqlRouteError> {
                if !number_type {
                    return error(
                        at,
                        format!(
                            "@param {name}: {key} is for numbers, and {name} is {}",
                            param.type_text
                        ),
                    );
                }
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| SqlRouteError {
                        line: at,
                        message: format!("@param {name}: {key}={value} is not a number"),
                    })
            };
            match key.as_str() {
                "default" => param.default = Some(need(value)?),
                "min" => param.min = Some(number(need(value)?)?),
                "max" => param.max = Some(number(need(value)?)?),
                "max_length" => {
                    if !text_type {
                        return error(
                            at,
                            format!(
                                "@param {name}: max_length is for text, and {name} is {}",
                                param.type_text
                            ),
                        );
                    }
                    let value = need(value)?;
                    param.max_length = Some(value.parse().map_err(|_| SqlRouteError {
                        line: at,
                        message: format!("@param {name}: max_length={value} is not a count"),
                    })?);
                }
                "values" => {
                    let values: Vec<String> = need(value)?
                        .split(',')
                        .map(|v| v.trim().to_owned())
                        .filter(|v| !v.is_empty())
                        .collect();
                    if values.is_empty() {
                        return error(at, format!("@param {name}: values= lists no value"));
                    }
                    param.values = values;
                }
                "description" => param.description = Some(need(value)?),
                "from_key" => {
                    if value.is_some() {
                        return error(
                            at,
                            format!("@param {name}: from_key takes no value (the key gives it)"),
                        );
                    }
                    param.from_key = true;
                }
                other => {
                    return error(
                        at,
                        format!(
                            "@param {name}: unknown rule {other} (the rules are default, min, max, max_length, values, description, from_key)"
                        ),
                    );
                }
            }
        }
        if let (Some(min), Some(max)) = (param.min, param.max)
            && min > max
        {
            return error(at, format!("@param {name}: min is above max"));
        }
        if let Some(default) = &param.default
            && !param.values.is_empty()
            && !param.values.contains(default)
        {
            return error(
                at,
                format!("@param {name}: the default {default} is not one of its values"),
            );
        }
        Ok(())
    }
}

/// `text` without a final `;` (a token, so not one inside a string or a
/// comment), to be put inside another statement.
fn one_statement(text: &str) -> &str {
    let end = tokenize(text)
        .ok()
        .and_then(|tokens| tokens.last().filter(|t| t.is_punct(";")).map(|t| t.start))
        .unwrap_or(text.len());
    &text[..end]
}

/// Add `@paging`'s `limit` and `offset` to `params`.
fn page(
    line: usize,
    attributes: Attributes,
    params: &mut Vec<ParamSpec>,
) -> Result<(), SqlRouteError> {
    let at = Some(line);
    let (mut max, mut default) = (None, None);
    for (key, value) in attributes {
        let count = |value: Option<String>| -> Result<u64, SqlRouteError> {
            value
                .as_deref()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| SqlRouteError {
                    line: at,
                    message: format!("@paging: {key} must be a count of rows above 0"),
                })
        };
        match key.as_str() {
            "max" => max = Some(count(value)?),
            "default" => default = Some(count(value)?),
            other => {
                return error(
                    at,
                    format!("@paging: unknown rule {other} (the rules are max and default)"),
                );
            }
        }
    }
    let Some(max) = max else {
        return error(at, "@paging needs max=N, the most rows a page may have");
    };
    let default = default.unwrap_or(max);
    if default > max {
        return error(at, "@paging: default is above max");
    }
    if let Some(used) = params
        .iter()
        .find(|p| p.name == "limit" || p.name == "offset")
    {
        return error(
            at,
            format!(
                "@paging adds the parameters limit and offset, and the query uses {{{}:…}} itself",
                used.name
            ),
        );
    }
    let count =
        |name: &str, default: u64, min: f64, max: Option<f64>, description: &str| ParamSpec {
            default: Some(default.to_string()),
            min: Some(min),
            max,
            description: Some(description.to_owned()),
            ..ParamSpec::placeholder(name, "UInt64", ParamType::UInt(64))
        };
    params.push(count(
        "limit",
        default,
        1.0,
        Some(max as f64),
        "Rows in the page",
    ));
    params.push(count(
        "offset",
        0,
        0.0,
        None,
        "Rows skipped before the page",
    ));
    Ok(())
}

/// A value `param` takes: its default, its first allowed value, or one of
/// its type.
fn sample_value(param: &ParamSpec) -> String {
    if let Some(default) = &param.default {
        return default.clone();
    }
    if let Some(first) = param.values.first() {
        return first.clone();
    }
    if param.nullable() {
        return "\\N".to_owned();
    }
    match param.value_type() {
        ParamType::Int(_) | ParamType::UInt(_) | ParamType::Float(_) | ParamType::Decimal(..) => {
            "0".to_owned()
        }
        ParamType::Bool => "false".to_owned(),
        ParamType::Date(_) => "1970-01-02".to_owned(),
        ParamType::DateTime(_) | ParamType::DateTime64(..) => "1970-01-02 00:00:00".to_owned(),
        ParamType::Uuid => "00000000-0000-0000-0000-000000000000".to_owned(),
        ParamType::Array(_) => "[]".to_owned(),
        _ => String::new(),
    }
}

/// A line's `key=value` pairs and bare `flag`s, in order.
type Attributes = Vec<(String, Option<String>)>;

/// `key=value key="a value" flag` …
fn attributes(line: usize, text: &str) -> Result<Attributes, SqlRouteError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            out.push((key, None));
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => {
                            return error(
                                Some(line),
                                format!("{key}=\"…: the quote is not closed"),
                            );
                        }
                    },
                    Some(c) => value.push(c),
                    None => {
                        return error(Some(line), format!("{key}=\"…: the quote is not closed"));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key, Some(value)));
    }
}

fn check_path(line: usize, path: &str) -> Result<(), SqlRouteError> {
    if !path.starts_with('/') {
        return error(Some(line), format!("@path {path}: a path starts with /"));
    }
    for segment in path.split('/').skip(1) {
        let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        };
        let fine = match param {
            Some(name) => plain(name),
            None => plain(segment) || (segment.is_empty() && path == "/"),
        };
        if !fine {
            return error(
                Some(line),
                format!(
                    "@path {path}: segment {segment:?} is neither a plain name nor {{parameter}}"
                ),
            );
        }
    }
    Ok(())
}

/// The line (from 1) of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: &str = "\
-- The most active users since a day.
-- Counts events per user;
-- ties are broken by name.
-- @path /top-users
-- @param since default=2024-01-01 description=\"First day counted\"
-- @param limit default=10 min=1 max=1000
-- @param kind values=click,view
SELECT user, count() AS events
FROM events
WHERE ts >= {since:Date} AND kind = {kind:String} -- {not:Placeholder}
  AND (isNull({team:Nullable(String)}) OR team = {team:Nullable(String)})
GROUP BY user ORDER BY events DESC, user
LIMIT {limit:UInt32}
";

    fn param<'r>(route: &'r SqlRoute, name: &str) -> &'r ParamSpec {
        route
            .params
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn a_file_is_read_into_a_route() {
        let route = SqlRoute::parse("top_users", TOP).expect("parses");
        assert_eq!(route.path, "/top-users");
        assert_eq!(
            route.summary.as_deref(),
            Some("The most active users since a day.")
        );
        assert_eq!(
            route.description.as_deref(),
            Some("Counts events per user;\nties are broken by name.")
        );
        let names: Vec<&str> = route.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["since", "kind", "team", "limit"],
            "placeholders in comments are none"
        );
        let since = param(&route, "since");
        assert_eq!(since.ty, ParamType::Date("Date"));
        assert_eq!(since.default.as_deref(), Some("2024-01-01"));
        assert_eq!(since.description.as_deref(), Some("First day counted"));
        assert!(since.optional());
        let limit = param(&route, "limit");
        assert_eq!((limit.min, limit.max), (Some(1.0), Some(1000.0)));
        let kind = param(&route, "kind");
        assert_eq!(kind.values, ["click", "view"]);
        assert!(!kind.optional(), "no default: required");
        let team = param(&route, "team");
        assert!(team.nullable() && team.optional());
        assert_eq!(team.value_type(), &ParamType::String);
        assert_eq!(
            route.sql, TOP,
            "the header is a comment: the text is the query"
        );
    }

    #[test]
    fn the_default_path_is_the_files_name_and_path_parameters_are_placeholders() {
        let route = SqlRoute::parse("numbers", "SELECT 1").expect("parses");
        assert_eq!(route.path, "/numbers");
        assert!(route.params.is_empty());
        let route = SqlRoute::parse(
            "user_events",
            "-- @path /events/{user}\nSELECT * FROM events WHERE user = {user:String}",
        )
        .expect("parses");
        assert_eq!(route.path, "/events/{user}");
        assert!(param(&route, "user").in_path);
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let cases = [
            (
                "-- @param limit min=1\nSELECT 1",
                "line 1: @param limit: the query has no {limit:Type} placeholder",
            ),
            (
                "SELECT {a:UInt8}, {a:String}",
                "line 1: {a:String}: a is UInt8 elsewhere in the query; use one type",
            ),
            (
                "-- @path /e/{user}\nSELECT 1",
                "line 1: @path: the query has no {user:Type} placeholder for {user}",
            ),
            (
                "-- @paht /x\nSELECT 1",
                "line 1: unknown directive @paht (the directives are @path, @param and @paging)",
            ),
            (
                "-- @path x\nSELECT 1",
                "line 1: @path x: a path starts with /",
            ),
            (
                "-- @path /a b\nSELECT 1",
                "line 1: @path /a b: segment \"a b\" is neither a plain name nor {parameter}",
            ),
            (
                "\n-- @param n min=5 max=1\nSELECT {n:UInt8}",
                "line 2: @param n: min is above max",
            ),
            (
                "-- @param n min=x\nSELECT {n:UInt8}",
                "line 1: @param n: min=x is not a number",
            ),
            (
                "-- @param s min=1\nSELECT {s:String}",
                "line 1: @param s: min is for numbers, and s is String",
            ),
            (
                "-- @param n max_length=3\nSELECT {n:UInt8}",
                "line 1: @param n: max_length is for text, and n is UInt8",
            ),
            (
                "-- @param n defualt=3\nSELECT {n:UInt8}",
                "line 1: @param n: unknown rule defualt (the rules are default, min, max, max_length, values, description, from_key)",
            ),
            (
                "-- @param t from_key=x\nSELECT {t:String}",
                "line 1: @param t: from_key takes no value (the key gives it)",
            ),
            (
                "-- @param t from_key default=a\nSELECT {t:String}",
                "t: a from_key parameter comes from the API key alone",
            ),
            (
                "-- @param n default\nSELECT {n:UInt8}",
                "line 1: @param n: default needs a value (default=…)",
            ),
            (
                "-- @param k values=a,b default=c\nSELECT {k:String}",
                "line 1: @param k: the default c is not one of its values",
            ),
            (
                "-- @param n description=\"open\nSELECT {n:UInt8}",
                "line 1: description=\"…: the quote is not closed",
            ),
            (
                "-- @param n\n-- @param n\nSELECT {n:UInt8}",
                "line 2: @param n is declared twice",
            ),
            (
                "SELECT {t:Identifier}",
                "{t:Identifier} names a table or column: list the names allowed with @param t values=…",
            ),
            (
                "SELECT {format:String}",
                "line 1: {format:…}: `format` chooses the answer's format; name the parameter otherwise",
            ),
            (
                "SELECT {n:Strin}",
                "line 1: {n:Strin}: type \"Strin\" is not supported for parameters",
            ),
            ("-- just a comment\n", "there is no query after the header"),
            (
                "-- @path /u/{id}\n-- @param id default=1\nSELECT {id:UInt8}",
                "line 1: id: a path parameter is always given; it cannot have a default or be Nullable",
            ),
        ];
        for (text, message) in cases {
            let err = SqlRoute::parse("r", text).expect_err(text);
            let shown = err.to_string();
            assert!(
                shown.starts_with(message),
                "{text:?}\n  got  {shown}\n  want {message}"
            );
        }
    }

    #[test]
    fn the_columns_are_asked_for_with_sample_values() {
        let route = SqlRoute::parse("top_users", TOP).expect("parses");
        let (sql, samples) = route.describe_query();
        assert!(sql.starts_with("DESCRIBE (\n-- The most active"), "{sql}");
        assert!(sql.ends_with("LIMIT {limit:UInt32}\n\n)"), "{sql}");
        assert_eq!(
            samples,
            [
                ("since".to_owned(), "2024-01-01".to_owned()),
                ("kind".to_owned(), "click".to_owned()),
                ("team".to_owned(), "\\N".to_owned()),
                ("limit".to_owned(), "10".to_owned()),
            ]
        );
        let semicolon = SqlRoute::parse("n", "SELECT ';' AS s; -- done\n").expect("parses");
        assert_eq!(
            semicolon.describe_query().0,
            "DESCRIBE (\nSELECT ';' AS s\n)"
        );
    }

    #[test]
    fn paging_adds_limit_and_offset_around_the_query() {
        let route = SqlRoute::parse(
            "n",
            "-- @paging max=100 default=20\nSELECT number FROM system.numbers ORDER BY number LIMIT 1000;\n",
        )
        .expect("parses");
        assert_eq!(
            route.sql,
            "SELECT * FROM (\n-- @paging max=100 default=20\nSELECT number FROM system.numbers ORDER BY number LIMIT 1000\n) LIMIT {limit:UInt64} OFFSET {offset:UInt64}"
        );
        let limit = param(&route, "limit");
        assert_eq!(
            (limit.min, limit.max, limit.default.as_deref()),
            (Some(1.0), Some(100.0), Some("20"))
        );
        let offset = param(&route, "offset");
        assert_eq!(
            (offset.min, offset.max, offset.default.as_deref()),
            (Some(0.0), None, Some("0"))
        );
        for (text, message) in [
            ("-- @paging\nSELECT 1", "line 1: @paging needs max=N"),
            (
                "-- @paging max=0\nSELECT 1",
                "line 1: @paging: max must be a count of rows above 0",
            ),
            (
                "-- @paging max=5 default=6\nSELECT 1",
                "line 1: @paging: default is above max",
            ),
            (
                "-- @paging max=5 size=2\nSELECT 1",
                "line 1: @paging: unknown rule size",
            ),
            (
                "-- @paging max=5\nSELECT 1 LIMIT {limit:UInt8}",
                "line 1: @paging adds the parameters limit and offset, and the query uses {limit:…} itself",
            ),
        ] {
            let shown = SqlRoute::parse("r", text).expect_err(text).to_string();
            assert!(shown.starts_with(message), "{text:?}: {shown}");
        }
    }

    #[test]
    fn an_identifier_with_its_names_listed_is_fine() {
        let route = SqlRoute::parse(
            "by",
            "-- @param col values=user,kind\nSELECT {col:Identifier}, count() FROM events GROUP BY 1",
        )
        .expect("parses");
        assert_eq!(param(&route, "col").values, ["user", "kind"]);
    }
}
