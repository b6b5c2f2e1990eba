//! A route's guard-rails: what its queries may do, the server-side caps the
//! host sets on every one of them, and how ClickHouse's complaints about
//! those caps reach the guest.

use std::time::Duration;

use crate::error::QueryError;
use crate::lexer::{self, Token, TokenKind};
use crate::params::{self, BindFault, BindMode};
use crate::response::ServerException;
use crate::settings;
use crate::statement::{self, StatementKind, StatementRules};

/// Default cap on one query's memory on the server.
pub const DEFAULT_MAX_MEMORY_USAGE: u64 = 1 << 30;
/// The least memory a query is started with: below it the request's open
/// results hold its whole budget, and the query is refused (ClickHouse
/// needs a few MiB for even `SELECT 1`; 2 MiB is too little on 18.16).
pub const MIN_QUERY_MEMORY: u64 = 8 << 20;
/// Default cap on the threads one query may use on the server.
pub const DEFAULT_MAX_THREADS: u64 = 4;
/// Default cap on the rows one query may read.
pub const DEFAULT_MAX_ROWS_TO_READ: u64 = 1_000_000_000;
/// Default cap on the bytes one query may read.
pub const DEFAULT_MAX_BYTES_TO_READ: u64 = 100 << 30;
/// Largest SQL text a guest may send.
pub const DEFAULT_MAX_SQL_BYTES: usize = 256 << 10;
/// Largest total size of one query's parameter names and values.
pub const DEFAULT_MAX_PARAMS_BYTES: usize = 1 << 20;
/// Most parameters or settings one query may carry.
pub const MAX_PARAMS: usize = 1024;

/// How far ClickHouse's read-only mode goes for a route's queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnly {
    /// `readonly = 1`: reads only; ClickHouse refuses table functions and
    /// `SETTINGS` clauses. The default.
    #[default]
    Strict,
    /// `readonly = 2`: reads only, but table functions and `SETTINGS` clauses
    /// are allowed (settings still pass the allow-list, and functions that
    /// reach outside ClickHouse still need `allowed_functions`).
    Relaxed,
    /// No read-only mode: the route may write and change tables.
    Off,
}

impl ReadOnly {
    /// The value of ClickHouse's `readonly` setting, if one is sent.
    pub fn setting(self) -> Option<&'static str> {
        match self {
            Self::Strict => Some("1"),
            Self::Relaxed => Some("2"),
            Self::Off => None,
        }
    }
}

/// What one route's queries may do.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPolicy {
    /// ClickHouse read-only level.
    pub readonly: ReadOnly,
    /// Upper bound on one query's run time; the request's remaining budget
    /// lowers it further.
    pub max_execution_time: Option<Duration>,
    /// Most rows a result may have (`max_result_rows`, overflow throws).
    pub max_result_rows: Option<u64>,
    /// Most bytes a result may have (`max_result_bytes`, overflow throws).
    pub max_result_bytes: Option<u64>,
    /// Most memory one query may use on the server, in bytes.
    pub max_memory_usage: u64,
    /// Most memory the queries of one request may hold on the server at
    /// once, in bytes: each new query may use at most half of what the
    /// request's open results leave (and at most `max_memory_usage`).
    /// `None`: twice `max_memory_usage`, so a request's first query gets
    /// the whole per-query cap.
    pub max_request_memory_usage: Option<u64>,
    /// Most threads one query may use on the server.
    pub max_threads: u64,
    /// Most rows one query may read (0: no cap).
    pub max_rows_to_read: u64,
    /// Most bytes one query may read (0: no cap).
    pub max_bytes_to_read: u64,
    /// Largest SQL text, in bytes.
    pub max_sql_bytes: usize,
    /// Largest total size of parameter names and values, in bytes.
    pub max_params_bytes: usize,
    /// Settings beyond the `guest` class the route lets guests pass (route
    /// class only); `*` at the end matches any suffix. Empty by default.
    pub allowed_settings: Vec<String>,
    /// Functions, table functions and engines the host's catalogue denies
    /// or does not know (`url`, a user-defined function) the route may use
    /// anyway. Empty by default.
    pub allowed_functions: Vec<String>,
    /// How long every read of the route may be served from the host's
    /// result cache; `None`: only reads that ask (`execute-cached`).
    pub cache_ttl: Option<Duration>,
    /// How long past its time a cached result may still be served while
    /// one refresh runs.
    pub cache_stale: Duration,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        Self {
            readonly: ReadOnly::Strict,
            max_execution_time: None,
            max_result_rows: None,
            max_result_bytes: None,
            max_memory_usage: DEFAULT_MAX_MEMORY_USAGE,
            max_request_memory_usage: None,
            max_threads: DEFAULT_MAX_THREADS,
            max_rows_to_read: DEFAULT_MAX_ROWS_TO_READ,
            max_bytes_to_read: DEFAULT_MAX_BYTES_TO_READ,
            max_sql_bytes: DEFAULT_MAX_SQL_BYTES,
            max_params_bytes: DEFAULT_MAX_PARAMS_BYTES,
            allowed_settings: Vec::new(),
            allowed_functions: Vec::new(),
            cache_ttl: None,
            cache_stale: Duration::ZERO,
        }
    }
}

/// ClickHouse error codes the host's own caps produce, and what they mean.
mod codes {
    pub const TOO_MANY_ROWS: u32 = 158;
    pub const READONLY: u32 = 164;
    pub const DATABASE_ACCESS_DENIED: u32 = 291;
    pub const TOO_MANY_BYTES: u32 = 307;
    pub const TOO_MANY_ROWS_OR_BYTES: u32 = 396;
    pub const MEMORY_LIMIT_EXCEEDED: u32 = 241;
    pub const ACCESS_DENIED: u32 = 497;
    pub const UNKNOWN_USER: u32 = 192;
    pub const WRONG_PASSWORD: u32 = 193;
    pub const REQUIRED_PASSWORD: u32 = 194;
    pub const AUTHENTICATION_FAILED: u32 = 516;
}

/// A guest's query that passed the checks that do not depend on the server:
/// sizes, settings, and the statement check on its SQL as written.
#[derive(Debug)]
pub struct Admitted<'q> {
    sql: &'q str,
    tokens: Vec<Token<'q>>,
    params: &'q [(String, String)],
    kind: StatementKind,
}

/// A guest's query bound for one server, checked again as bound: exactly
/// what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The SQL to send.
    pub sql: String,
    /// `param_<name>` values to send beside it.
    pub url_params: Vec<(String, String)>,
}

impl Admitted<'_> {
    /// What the statement does.
    pub fn kind(&self) -> StatementKind {
        self.kind
    }

    /// The query as ClickHouse reads it, without comments or layout: the
    /// text a result cache keys on (the parameters are keyed separately).
    pub fn canonical_sql(&self) -> String {
        lexer::canonical(&self.tokens)
    }

    /// Bind the parameters for a server that takes them as `mode`, then run
    /// the statement check again on the bound text: a value substituted
    /// into the SQL (an `Identifier`, a `LIMIT`) is checked as the name or
    /// number it became.
    pub fn prepare(&self, policy: &QueryPolicy, mode: BindMode) -> Result<Prepared, QueryError> {
        let has_placeholders = self.tokens.iter().any(|t| t.kind == TokenKind::Placeholder);
        if !has_placeholders && self.params.is_empty() {
            return Ok(Prepared {
                sql: self.sql.to_owned(),
                url_params: Vec::new(),
            });
        }
        let bound = params::bind_tokens(self.sql, &self.tokens, self.params, mode).map_err(
            |err| match err.fault {
                BindFault::Value => QueryError::InvalidParameter(err.to_string()),
                // The route's own SQL is wrong, as a server with native
                // parameters would say (UNKNOWN_QUERY_PARAMETER).
                BindFault::Query => QueryError::Server {
                    code: 456,
                    message: err.to_string(),
                },
            },
        )?;
        // Binding may have grown the SQL (typed literals): bound it again.
        if bound.sql.len() > policy.max_sql_bytes.saturating_mul(4) {
            return Err(QueryError::Refused(
                "the query with its parameters bound is too large".into(),
            ));
        }
        if bound.sql != self.sql {
            let tokens = lexer::tokenize(&bound.sql)
                .map_err(|err| QueryError::Refused(format!("the bound query: {err}")))?;
            let kind = statement::check_tokens(&tokens, &policy.statement_rules())
                .map_err(|refusal| QueryError::Refused(refusal.to_string()))?;
            if kind != self.kind {
                return Err(QueryError::Refused(
                    "a parameter changed what kind of statement the query is".into(),
                ));
            }
        }
        Ok(Prepared {
            sql: bound.sql,
            url_params: bound.url_params,
        })
    }
}

impl QueryPolicy {
    /// Everything checked before a query leaves the host that does not
    /// depend on the server it goes to: sizes, settings, and the statement
    /// check on the SQL as written. Binding, and the check of the bound
    /// text, follow in [`Admitted::prepare`].
    pub fn admit<'q>(
        &self,
        sql: &'q str,
        params: &'q [(String, String)],
        settings: &[(String, String)],
    ) -> Result<Admitted<'q>, QueryError> {
        if sql.len() > self.max_sql_bytes {
            return Err(QueryError::Refused(format!(
                "the SQL is {} bytes; this route's limit is {}",
                sql.len(),
                self.max_sql_bytes
            )));
        }
        if params.len() > MAX_PARAMS || settings.len() > MAX_PARAMS {
            return Err(QueryError::Refused(format!(
                "a query may carry at most {MAX_PARAMS} parameters and {MAX_PARAMS} settings"
            )));
        }
        let params_bytes: usize = params
            .iter()
            .chain(settings)
            .map(|(name, value)| name.len() + value.len())
            .sum();
        if params_bytes > self.max_params_bytes {
            return Err(QueryError::Refused(format!(
                "the parameters and settings are {params_bytes} bytes; this route's limit is {}",
                self.max_params_bytes
            )));
        }
        for (name, _) in settings {
            settings::check_name(name, &self.allowed_settings).map_err(QueryError::Refused)?;
        }
        let tokens = lexer::tokenize(sql).map_err(|err| QueryError::Refused(err.to_string()))?;
        let kind = statement::check_tokens(&tokens, &self.statement_rules())
            .map_err(|refusal| QueryError::Refused(refusal.to_string()))?;
        Ok(Admitted {
            sql,
            tokens,
            params,
            kind,
        })
    }

    /// [`QueryPolicy::admit`] and [`Admitted::prepare`] at once, for a server
    /// that takes parameters as `mode`.
    pub fn check(
        &self,
        sql: &str,
        params: &[(String, String)],
        settings: &[(String, String)],
        mode: BindMode,
    ) -> Result<(StatementKind, Prepared), QueryError> {
        let admitted = self.admit(sql, params, settings)?;
        let prepared = admitted.prepare(self, mode)?;
        Ok((admitted.kind(), prepared))
    }

    /// The statement rules of this route's read-only level.
    fn statement_rules(&self) -> StatementRules<'_> {
        StatementRules {
            writes: self.readonly == ReadOnly::Off,
            settings_clauses: self.readonly != ReadOnly::Strict,
            allowed_settings: &self.allowed_settings,
            allowed_functions: &self.allowed_functions,
        }
    }

    /// The server memory a request's next query may use when its open
    /// results hold `held` bytes: half of what is left of the request's
    /// budget, at most `max_memory_usage`. However many results a request
    /// opens, together they stay within `max_request_memory_usage`.
    pub fn query_memory(&self, held: u64) -> Result<u64, QueryError> {
        let budget = self
            .max_request_memory_usage
            .unwrap_or(self.max_memory_usage.saturating_mul(2));
        let left = budget.saturating_sub(held);
        let grant = (left / 2).min(self.max_memory_usage);
        if grant < MIN_QUERY_MEMORY {
            return Err(QueryError::Refused(format!(
                "this request's open results hold its server memory budget ({budget} bytes, max_request_memory_usage); drop finished ones"
            )));
        }
        Ok(grant)
    }

    /// The settings that enforce this policy, sent with every guest query.
    /// `remaining` is what is left of the request's budget, if it has one.
    pub fn settings(&self, remaining: Option<Duration>) -> Vec<(&'static str, String)> {
        self.settings_within(remaining, self.max_memory_usage)
    }

    /// [`QueryPolicy::settings`] for a query that may use at most
    /// `max_memory` bytes on the server (less than the route's cap when its
    /// request holds other results open).
    pub fn settings_within(
        &self,
        remaining: Option<Duration>,
        max_memory: u64,
    ) -> Vec<(&'static str, String)> {
        let mut settings = Vec::with_capacity(12);
        if let Some(level) = self.readonly.setting() {
            settings.push(("readonly", level.to_owned()));
        }
        let limit = match (self.max_execution_time, remaining) {
            (Some(max), Some(remaining)) => Some(max.min(remaining)),
            (one, other) => one.or(other),
        };
        if let Some(limit) = limit {
            settings.push(("max_execution_time", limit_seconds(limit).to_string()));
        }
        settings.push(("timeout_overflow_mode", "throw".to_owned()));
        settings.push((
            "max_memory_usage",
            max_memory.min(self.max_memory_usage).to_string(),
        ));
        settings.push(("max_threads", self.max_threads.to_string()));
        settings.push(("max_rows_to_read", self.max_rows_to_read.to_string()));
        settings.push(("max_bytes_to_read", self.max_bytes_to_read.to_string()));
        settings.push(("read_overflow_mode", "throw".to_owned()));
        if let Some(rows) = self.max_result_rows {
            settings.push(("max_result_rows", rows.to_string()));
        }
        if let Some(bytes) = self.max_result_bytes {
            settings.push(("max_result_bytes", bytes.to_string()));
        }
        settings.push(("result_overflow_mode", "throw".to_owned()));
        settings
    }

    /// Turn an exception ClickHouse reported into the error the guest sees:
    /// the host's own caps show up as refusals, running out of time as a
    /// timeout, the rest as server errors.
    pub fn classify(&self, exception: ServerException) -> QueryError {
        let because = |what: &str| QueryError::Refused(format!("{what} ({})", exception.message));
        match exception.code {
            _ if exception.is_timeout() => QueryError::Timeout,
            codes::READONLY if self.readonly != ReadOnly::Off => {
                because("this route is read-only; configure it with readonly = false to write")
            }
            codes::TOO_MANY_ROWS_OR_BYTES => because("the result is over this route's limit"),
            codes::TOO_MANY_ROWS | codes::TOO_MANY_BYTES => {
                because("the query reads more than this route's max_rows_to_read/max_bytes_to_read")
            }
            codes::MEMORY_LIMIT_EXCEEDED => {
                because("the query needs more memory than this route's max_memory_usage")
            }
            codes::DATABASE_ACCESS_DENIED | codes::ACCESS_DENIED => {
                because("ClickHouse denies wasmhouse's user access")
            }
            // The host's account, not the guest's query: no server to use
            // (and no account name in the message).
            codes::UNKNOWN_USER
            | codes::WRONG_PASSWORD
            | codes::REQUIRED_PASSWORD
            | codes::AUTHENTICATION_FAILED => {
                QueryError::Unavailable("ClickHouse refuses wasmhouse's account".into())
            }
            _ => exception.into(),
        }
    }
}

/// The error a non-2xx answer from ClickHouse means under `policy`: its
/// exception, classified; or, for a body that is no exception (a proxy's
/// error page, say), "unavailable" for a 5xx and a server error otherwise.
pub fn classify_error_body(policy: &QueryPolicy, status: u16, body: &str) -> QueryError {
    if let Some(exception) = ServerException::parse(body) {
        return policy.classify(exception);
    }
    let text = crate::response::truncate(body.trim(), 512);
    if status >= 500 {
        QueryError::Unavailable(format!("ClickHouse answered {status}: {text}"))
    } else {
        QueryError::Server {
            code: 0,
            message: format!("ClickHouse answered {status}: {text}"),
        }
    }
}

/// `duration` in whole seconds, rounded up and at least 1: ClickHouse 18.16
/// reads `max_execution_time` as an integer, so `0.5` would become 0, which
/// means no limit at all.
pub fn limit_seconds(duration: Duration) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting<'a>(settings: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        settings
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn time_limits_round_up_to_whole_seconds() {
        assert_eq!(limit_seconds(Duration::from_millis(1)), 1);
        assert_eq!(limit_seconds(Duration::from_millis(500)), 1);
        assert_eq!(limit_seconds(Duration::from_millis(1900)), 2);
        assert_eq!(limit_seconds(Duration::from_secs(2)), 2);
        assert_eq!(limit_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn every_query_carries_the_caps() {
        let policy = QueryPolicy {
            max_execution_time: Some(Duration::from_secs(5)),
            max_result_rows: Some(10),
            ..QueryPolicy::default()
        };
        let settings = policy.settings(Some(Duration::from_millis(1500)));
        assert_eq!(setting(&settings, "readonly"), Some("1"));
        assert_eq!(setting(&settings, "max_execution_time"), Some("2"));
        assert_eq!(setting(&settings, "timeout_overflow_mode"), Some("throw"));
        assert_eq!(setting(&settings, "max_memory_usage"), Some("1073741824"));
        assert_eq!(setting(&settings, "max_threads"), Some("4"));
        assert_eq!(setting(&settings, "max_result_rows"), Some("10"));
        assert_eq!(setting(&settings, "read_overflow_mode"), Some("throw"));
        assert_eq!(setting(&settings, "result_overflow_mode"), Some("throw"));
        let relaxed = QueryPolicy {
            readonly: ReadOnly::Relaxed,
            ..QueryPolicy::default()
        };
        assert_eq!(setting(&relaxed.settings(None), "readonly"), Some("2"));
        assert_eq!(setting(&relaxed.settings(None), "max_execution_time"), None);
        let writer = QueryPolicy {
            readonly: ReadOnly::Off,
            ..QueryPolicy::default()
        };
        assert_eq!(setting(&writer.settings(None), "readonly"), None);
    }

    #[test]
    fn admission_checks_sizes_settings_and_statements() {
        let policy = QueryPolicy::default();
        assert_eq!(
            policy.admit("SELECT 1", &[], &[]).map(|a| a.kind()),
            Ok(StatementKind::Read)
        );
        let huge = format!("SELECT '{}'", "x".repeat(DEFAULT_MAX_SQL_BYTES));
        assert!(matches!(
            policy.admit(&huge, &[], &[]),
            Err(QueryError::Refused(_))
        ));
        let setting = |name: &str| vec![(name.to_owned(), "1".to_owned())];
        assert!(
            policy
                .admit(
                    "SELECT 1",
                    &[],
                    &setting("output_format_json_quote_denormals")
                )
                .is_ok()
        );
        assert!(
            policy
                .admit("SELECT 1", &[], &setting("max_threads"))
                .is_err()
        );
        assert!(
            policy
                .admit("SELECT 1", &[], &setting("max_block_size"))
                .is_err()
        );
        assert!(policy.admit("KILL QUERY WHERE 1", &[], &[]).is_err());
        let many: Vec<_> = (0..=MAX_PARAMS)
            .map(|i| (format!("p{i}"), String::new()))
            .collect();
        assert!(policy.admit("SELECT 1", &many, &[]).is_err());
    }

    #[test]
    fn the_check_reads_what_a_parameter_becomes() {
        let relaxed = QueryPolicy {
            readonly: ReadOnly::Relaxed,
            ..QueryPolicy::default()
        };
        let param = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
        for (sql, name, value) in [
            ("SELECT * FROM {t:Identifier}", "t", "system.processes"),
            (
                "SELECT 1 SETTINGS {b:Identifier} = 0",
                "b",
                "max_execution_time",
            ),
            (
                "SELECT * FROM {f:Identifier}('http://x/', CSV, 'a String')",
                "f",
                "url",
            ),
            (
                "SELECT {f:Identifier}('127.0.0.1', 9000, 'd', 't', 'c')",
                "f",
                "hasColumnInTable",
            ),
        ] {
            for mode in [BindMode::Inline, BindMode::Server] {
                for policy in [&QueryPolicy::default(), &relaxed] {
                    let checked = policy.check(sql, &param(name, value), &[], mode);
                    assert!(
                        matches!(checked, Err(QueryError::Refused(_))),
                        "{sql} with {value} ({mode:?}): {checked:?}"
                    );
                }
            }
        }
        let (_, prepared) = QueryPolicy::default()
            .check(
                "SELECT * FROM {t:Identifier} LIMIT {n:UInt32}",
                &[("t".into(), "db.events".into()), ("n".into(), "3".into())],
                &[],
                BindMode::Server,
            )
            .expect("a plain table and a count");
        assert_eq!(prepared.sql, "SELECT * FROM `db`.`events` LIMIT 3");
        // A bad value is the client's; a missing one the route's.
        let bad = QueryPolicy::default().check(
            "SELECT {n:UInt8}",
            &param("n", "x"),
            &[],
            BindMode::Inline,
        );
        assert!(
            matches!(bad, Err(QueryError::InvalidParameter(_))),
            "{bad:?}"
        );
        let missing = QueryPolicy::default().check("SELECT {n:UInt8}", &[], &[], BindMode::Inline);
        assert!(
            matches!(missing, Err(QueryError::Server { code: 456, .. })),
            "{missing:?}"
        );
    }

    #[test]
    fn a_requests_open_results_share_one_memory_budget() {
        let policy = QueryPolicy::default();
        let mut held = 0;
        let mut grants = Vec::new();
        while let Ok(grant) = policy.query_memory(held) {
            grants.push(grant);
            held += grant;
        }
        assert_eq!(
            grants[0], policy.max_memory_usage,
            "the first query gets the whole cap"
        );
        assert!(grants.len() >= 8, "{grants:?}");
        assert!(held <= 2 * policy.max_memory_usage, "{held}");
        let tight = QueryPolicy {
            max_request_memory_usage: Some(24 << 20),
            ..QueryPolicy::default()
        };
        assert_eq!(tight.query_memory(0), Ok(12 << 20));
        assert!(tight.query_memory(12 << 20).is_err());
    }

    #[test]
    fn error_bodies_are_classified() {
        let policy = QueryPolicy::default();
        let body = "Code: 164, e.displayText() = DB::Exception: Cannot execute query in readonly mode, e.what() = DB::Exception";
        assert!(matches!(
            classify_error_body(&policy, 500, body),
            QueryError::Refused(_)
        ));
        assert!(matches!(
            classify_error_body(&policy, 502, "<html>bad gateway</html>"),
            QueryError::Unavailable(_)
        ));
        assert!(matches!(
            classify_error_body(&policy, 404, "not here"),
            QueryError::Server { code: 0, .. }
        ));
    }

    #[test]
    fn the_hosts_caps_come_back_as_refusals() {
        let policy = QueryPolicy::default();
        let exception = |code| ServerException {
            code,
            message: "m".into(),
        };
        assert_eq!(policy.classify(exception(159)), QueryError::Timeout);
        for code in [158, 164, 241, 307, 396, 291] {
            assert!(
                matches!(policy.classify(exception(code)), QueryError::Refused(_)),
                "{code}"
            );
        }
        assert!(matches!(
            policy.classify(exception(62)),
            QueryError::Server { code: 62, .. }
        ));
    }
}
