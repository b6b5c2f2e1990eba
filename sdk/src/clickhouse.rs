//! ClickHouse queries through the `wasmhouse:clickhouse/query` import.
//!
//! Placeholders use ClickHouse's own syntax, `{name:Type}`, and values are
//! passed as text; the runtime checks each value against its type and binds
//! it as data:
//!
//! ```no_run
//! # use wasmhouse_sdk::clickhouse::{Error, Query};
//! # fn names(user_id: u64) -> Result<String, Error> {
//! let rows = Query::new("SELECT name FROM users WHERE id = {id:UInt64}")
//!     .param("id", user_id)
//!     .json_array()?;
//! # Ok(rows)
//! # }
//! ```

use crate::bindings::wasi::io::streams::OutputStream;
use crate::bindings::wasmhouse::clickhouse::query;

pub use query::{Endpoint, Error, Replica, ServerError};

/// A query to run, with its parameters, settings and output format.
#[derive(Debug, Clone)]
pub struct Query {
    sql: String,
    options: query::Options,
    /// Seconds the result may be served from the runtime's cache.
    cache: Option<u32>,
}

impl Query {
    /// A query with no parameters, in the default `JSONEachRow` format.
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            options: query::Options {
                params: Vec::new(),
                settings: Vec::new(),
                format: None,
            },
            cache: None,
        }
    }

    /// Bind `value` to the placeholder `{name:Type}`.
    pub fn param(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.options.params.push((name.into(), value.to_string()));
        self
    }

    /// Set a ClickHouse setting for this query (if the route allows it).
    pub fn setting(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.options.settings.push((name.into(), value.to_string()));
        self
    }

    /// Ask for the result in `format` (`TabSeparated`, `CSV`, `JSON`, ...).
    pub fn format(mut self, format: impl Into<String>) -> Self {
        self.options.format = Some(format.into());
        self
    }

    /// Let the runtime serve this read from its result cache, where it
    /// was answered less than `ttl` ago (whole seconds; under one second
    /// caches nothing). Identical reads running at once share one query.
    pub fn cached(mut self, ttl: std::time::Duration) -> Self {
        self.cache = Some(u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX));
        self
    }

    /// The SQL text, placeholders unexpanded.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Start the query.
    pub fn run(&self) -> Result<Rows, Error> {
        let inner = match self.cache {
            Some(ttl_seconds) => query::execute_cached(
                &self.sql,
                &self.options,
                query::CacheOptions { ttl_seconds },
            ),
            None => query::execute(&self.sql, &self.options),
        };
        inner.map(|inner| Rows { inner })
    }

    /// Run the query and return its whole result.
    pub fn bytes(&self) -> Result<Vec<u8>, Error> {
        self.run()?.collect()
    }

    /// Run a `JSONEachRow` query and return its rows as one JSON array, text
    /// spliced together without parsing a single row.
    pub fn json_array(&self) -> Result<String, Error> {
        let bytes = self.bytes()?;
        Ok(json_lines_to_array(&bytes))
    }

    /// Run a `JSONEachRow` query and parse every row.
    pub fn json_rows(&self) -> Result<Vec<serde_json::Value>, Error> {
        let bytes = self.bytes()?;
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line).map_err(|err| {
                    Error::Server(ServerError {
                        code: 0,
                        message: format!("result row is not JSON: {err}"),
                    })
                })
            })
            .collect()
    }
}

/// The server queries go to (for display; never credentials).
pub fn endpoint() -> Endpoint {
    query::server()
}

/// Every server queries may go to, and whether it is in service.
pub fn replicas() -> Vec<Replica> {
    query::replicas()
}

/// A running query's result.
pub struct Rows {
    inner: query::Rows,
}

impl Rows {
    /// The next chunk of the result, `None` once complete.
    pub fn next_chunk(&self) -> Result<Option<Vec<u8>>, Error> {
        self.inner.next()
    }

    /// Read the rest of the result into memory.
    pub fn collect(self) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        while let Some(chunk) = self.inner.next()? {
            if all.is_empty() {
                all = chunk;
            } else {
                all.extend_from_slice(&chunk);
            }
        }
        Ok(all)
    }

    /// Write the rest of the result to `out` without copying it through
    /// guest memory; returns the number of bytes written.
    pub fn forward(self, out: &OutputStream) -> Result<u64, Error> {
        self.inner.forward(out)
    }

    /// The id ClickHouse knows this query by.
    pub fn query_id(&self) -> String {
        self.inner.query_id()
    }
}

/// The HTTP status that fits a failed query: 502 when ClickHouse refused it
/// (or the route's SQL and parameters do not match), 503 when it is
/// unreachable, 504 on timeout, 403 for a policy refusal, and 422 for a
/// value that is not of its placeholder's type (the client's input).
pub fn status_for(err: &Error) -> u16 {
    match err {
        Error::Server(_) => 502,
        Error::Unavailable(_) => 503,
        Error::Timeout => 504,
        Error::Refused(_) => 403,
        Error::InvalidParameter(_) => 422,
    }
}

/// A short machine-readable name for the kind of failure, used as the
/// `kind` of JSON error bodies.
pub fn kind_for(err: &Error) -> &'static str {
    match err {
        Error::Server(_) => "clickhouse_error",
        Error::Unavailable(_) => "clickhouse_unavailable",
        Error::Timeout => "timeout",
        Error::Refused(_) => "refused",
        Error::InvalidParameter(_) => "invalid_parameter",
    }
}

/// A one-line description of a failed query, for logs and error bodies.
pub fn describe(err: &Error) -> String {
    match err {
        Error::Server(server) => format!("ClickHouse error {}: {}", server.code, server.message),
        Error::Unavailable(why) => format!("ClickHouse unavailable: {why}"),
        Error::Refused(why) => format!("query refused: {why}"),
        Error::InvalidParameter(why) => format!("invalid query parameter: {why}"),
        Error::Timeout => "query timed out".to_owned(),
    }
}

/// Turn `JSONEachRow` output (one object per line) into a JSON array.
pub fn json_lines_to_array(lines: &[u8]) -> String {
    let text = String::from_utf8_lossy(lines);
    let mut array = String::with_capacity(text.len() + 2);
    array.push('[');
    for (i, row) in text.lines().filter(|row| !row.is_empty()).enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(row);
    }
    array.push(']');
    array
}
