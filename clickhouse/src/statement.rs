//! The statement allow-list: which SQL a route component may send at all,
//! decided on the text before anything reaches ClickHouse.
//!
//! ClickHouse's own `readonly` levels are the first wall; this is the second,
//! and it covers what they do not: `KILL QUERY` runs at every read-only
//! level, `readonly = 2` allows table functions such as `url()` (a request
//! from the ClickHouse server to any address) and `SETTINGS` clauses that
//! lift the host's limits, and newer servers have scalar functions that read
//! files.
//!
//! The SQL is split into tokens the way ClickHouse's lexer does (comments,
//! whitespace, quoted strings and identifiers with backslash escapes), so no
//! comment, quote or parenthesis hides a word from the checks. Whatever the
//! lexer cannot be sure of, such as an unterminated string or a nested
//! comment, is refused rather than guessed at.

use crate::settings;

/// What a statement does, as far as the guard-rails care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// Reads data only: safe to retry.
    Read,
    /// Writes data or changes tables.
    Write,
}

/// What a route lets its statements do.
#[derive(Debug, Clone, Copy)]
pub struct StatementRules<'a> {
    /// Whether `INSERT`, `CREATE TABLE`, `ALTER TABLE`, … are allowed.
    pub writes: bool,
    /// Whether `SETTINGS` clauses may appear in the SQL (each setting still
    /// has to pass `allowed_settings`).
    pub settings_clauses: bool,
    /// Settings a `SETTINGS` clause may name (patterns, `*` suffix).
    pub allowed_settings: &'a [String],
    /// Table functions and engines that reach outside ClickHouse (`url`,
    /// `remote`, `file`, …) the route may use anyway, lower case.
    pub external_functions: &'a [String],
}

/// Statements that read.
const READ_STATEMENTS: &[&str] = &[
    "select", "with", "show", "describe", "desc", "exists", "explain",
];

/// Statements that write, allowed only on routes that allow writes.
const WRITE_STATEMENTS: &[&str] = &[
    "insert", "create", "alter", "drop", "truncate", "rename", "optimize", "delete", "update",
    "exchange",
];

/// What `SHOW` may show: data, not other sessions, users or grants.
const SHOWABLE: &[&str] = &["tables", "databases", "dictionaries", "columns", "create"];

/// Objects write statements may create, change or drop: data, not users,
/// roles, quotas, functions or dictionaries (whose sources reach out).
const WRITABLE_OBJECTS: &[&str] = &["table", "view", "materialized", "database", "temporary"];

/// Table functions, table engines and scalar functions that make the
/// ClickHouse server reach another machine, another server or its own files.
/// Matched case-insensitively wherever a name is followed by `(`.
pub const EXTERNAL_FUNCTIONS: &[&str] = &[
    "url",
    "urlcluster",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "file",
    "filecluster",
    "filelog",
    "input",
    "mysql",
    "postgresql",
    "odbc",
    "jdbc",
    "hdfs",
    "hdfscluster",
    "hive",
    "s3",
    "s3cluster",
    "s3queue",
    "gcs",
    "cosn",
    "oss",
    "azureblobstorage",
    "azureblobstoragecluster",
    "azurequeue",
    "executable",
    "executablepool",
    "mongodb",
    "redis",
    "sqlite",
    "deltalake",
    "deltalakecluster",
    "hudi",
    "hudicluster",
    "iceberg",
    "icebergs3",
    "icebergazure",
    "iceberghdfs",
    "iceberglocal",
    "icebergcluster",
    "kafka",
    "rabbitmq",
    "nats",
    "meilisearch",
    "arrowflight",
    "ytsaurus",
    "paimon",
    "merge",
    "loop",
    "dictionary",
    "embeddedrocksdb",
    "distributed",
];

/// System tables that show other requests' queries (and their ids, so they
/// could be targeted), users, grants or server internals.
pub const PRIVATE_SYSTEM_TABLES: &[&str] = &[
    "processes",
    "query_log",
    "query_thread_log",
    "query_views_log",
    "processors_profile_log",
    "query_metric_log",
    "text_log",
    "trace_log",
    "crash_log",
    "session_log",
    "part_log",
    "opentelemetry_span_log",
    "asynchronous_insert_log",
    "backup_log",
    "blob_storage_log",
    "filesystem_cache_log",
    "s3queue_log",
    "zookeeper",
    "zookeeper_log",
    "users",
    "roles",
    "grants",
    "role_grants",
    "quotas",
    "quota_usage",
    "quotas_usage",
    "quota_limits",
    "settings_profiles",
    "settings_profile_elements",
    "row_policies",
    "user_directories",
    "named_collections",
    "macros",
    "clusters",
    "server_settings",
];

/// Why a statement is refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(String);

impl Refusal {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Check `sql` against `rules`; what kind of statement it is when allowed.
pub fn check(sql: &str, rules: &StatementRules<'_>) -> Result<StatementKind, Refusal> {
    let tokens = tokenize(sql)?;
    let kind = check_statement(&tokens, rules)?;
    check_body(&tokens, rules)?;
    Ok(kind)
}

/// One lexical token; comments and whitespace are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    /// A bare word: keyword or identifier.
    Word(&'a str),
    /// A `` `quoted` `` or `"quoted"` identifier, escapes resolved.
    Quoted(String),
    /// A string literal (its content does not matter here).
    Text,
    /// A number literal.
    Number,
    /// Any other single character.
    Punct(char),
}

impl Token<'_> {
    /// The identifier this token names, if it names one.
    fn name(&self) -> Option<&str> {
        match self {
            Token::Word(word) => Some(word),
            Token::Quoted(name) => Some(name),
            _ => None,
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }

    fn is_punct(&self, c: char) -> bool {
        *self == Token::Punct(c)
    }
}

// Words are ASCII only: any other character is a token of its own, so no
// Unicode space or symbol can glue itself to a name and hide it.
fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Split `sql` into tokens as ClickHouse's lexer would.
fn tokenize(sql: &str) -> Result<Vec<Token<'_>>, Refusal> {
    let mut tokens = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '-' if chars.peek().is_some_and(|&(_, next)| next == '-') => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            // Newer servers read `//` and `#` as comments and `$…$` as a
            // string; older ones do not. Where the two disagree a quote could
            // hide code from one of them, so neither reading is guessed at.
            '/' if chars.peek().is_some_and(|&(_, next)| next == '/') => {
                return Err(Refusal::new("`//` is not accepted; use -- for comments"));
            }
            '#' => return Err(Refusal::new("`#` is not accepted; use -- for comments")),
            '$' => {
                return Err(Refusal::new(
                    "`$` is not accepted outside strings (no $heredoc$ strings)",
                ));
            }
            '/' if chars.peek().is_some_and(|&(_, next)| next == '*') => {
                chars.next();
                let mut previous = ' ';
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if previous == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    if previous == '/' && c == '*' {
                        // Servers disagree on whether comments nest.
                        return Err(Refusal::new("nested /* comments */ are not accepted"));
                    }
                    previous = c;
                }
                if !closed {
                    return Err(Refusal::new("a /* comment is not closed"));
                }
            }
            '\'' | '"' | '`' => {
                let mut text = String::new();
                let mut closed = false;
                while let Some((_, inner)) = chars.next() {
                    match inner {
                        '\\' => match chars.next() {
                            Some((_, escaped)) => text.push(escaped),
                            None => break,
                        },
                        inner if inner == c => {
                            closed = true;
                            break;
                        }
                        inner => text.push(inner),
                    }
                }
                if !closed {
                    return Err(Refusal::new(format!(
                        "a {c}quoted{c} string or name is not closed"
                    )));
                }
                tokens.push(if c == '\'' {
                    Token::Text
                } else {
                    Token::Quoted(text)
                });
            }
            c if c.is_ascii_digit()
                || (c == '.' && chars.peek().is_some_and(|&(_, next)| next.is_ascii_digit())) =>
            {
                let mut previous = c;
                while let Some(&(_, next)) = chars.peek() {
                    let exponent_sign =
                        matches!(next, '+' | '-') && matches!(previous, 'e' | 'E' | 'p' | 'P');
                    if next.is_ascii_alphanumeric() || next == '.' || next == '_' || exponent_sign {
                        previous = next;
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Number);
            }
            c if is_word_start(c) => {
                let mut end = start + c.len_utf8();
                while let Some(&(at, next)) = chars.peek() {
                    if !is_word_char(next) {
                        break;
                    }
                    end = at + next.len_utf8();
                    chars.next();
                }
                tokens.push(Token::Word(&sql[start..end]));
            }
            c => tokens.push(Token::Punct(c)),
        }
    }
    Ok(tokens)
}

/// The statement type: its first word, after any opening parentheses.
fn check_statement(
    tokens: &[Token<'_>],
    rules: &StatementRules<'_>,
) -> Result<StatementKind, Refusal> {
    if let Some(at) = tokens.iter().position(|t| t.is_punct(';'))
        && at + 1 < tokens.len()
    {
        return Err(Refusal::new(
            "send one statement per query (nothing may follow a ';')",
        ));
    }
    let mut words = tokens.iter().skip_while(|t| t.is_punct('('));
    let Some(first) = words.next() else {
        return Err(Refusal::new("the query is empty"));
    };
    let Token::Word(first) = first else {
        return Err(Refusal::new(
            "a query must start with a statement such as SELECT",
        ));
    };
    let keyword = first.to_ascii_lowercase();
    let next_word = |words: &mut dyn Iterator<Item = &Token<'_>>| {
        words
            .next()
            .and_then(Token::name)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    if READ_STATEMENTS.contains(&keyword.as_str()) {
        if keyword == "show" {
            let what = next_word(&mut words);
            if !SHOWABLE.contains(&what.as_str()) {
                return Err(Refusal::new(format!(
                    "SHOW {} is not allowed: route components may show tables, databases, dictionaries, columns and CREATE statements",
                    what.to_ascii_uppercase()
                )));
            }
        }
        return Ok(StatementKind::Read);
    }
    if WRITE_STATEMENTS.contains(&keyword.as_str()) {
        if !rules.writes {
            return Err(Refusal::new(format!(
                "{} writes, and this route is read-only; configure it with readonly = false to write",
                keyword.to_ascii_uppercase()
            )));
        }
        if matches!(keyword.as_str(), "create" | "alter" | "drop") {
            let mut object = next_word(&mut words);
            if object == "or" {
                // CREATE OR REPLACE …
                next_word(&mut words);
                object = next_word(&mut words);
            }
            if !WRITABLE_OBJECTS.contains(&object.as_str()) {
                return Err(Refusal::new(format!(
                    "{} {} is not allowed: route components may create, alter and drop tables, views and databases only",
                    keyword.to_ascii_uppercase(),
                    object.to_ascii_uppercase()
                )));
            }
        }
        return Ok(StatementKind::Write);
    }
    Err(Refusal::new(format!(
        "{} statements are not allowed for route components",
        keyword.to_ascii_uppercase()
    )))
}

/// Checks on the whole statement: what reaches outside ClickHouse, what
/// reads other requests' queries, what changes the host's settings.
fn check_body(tokens: &[Token<'_>], rules: &StatementRules<'_>) -> Result<(), Refusal> {
    for (at, token) in tokens.iter().enumerate() {
        let next = tokens.get(at + 1);
        if token.is_word("into") && next.is_some_and(|t| t.is_word("outfile")) {
            return Err(Refusal::new("INTO OUTFILE is not allowed"));
        }
        let Some(name) = token.name() else { continue };
        if next.is_some_and(|t| t.is_punct('(')) {
            let lower = name.to_ascii_lowercase();
            if EXTERNAL_FUNCTIONS.contains(&lower.as_str())
                && !rules
                    .external_functions
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&lower))
            {
                return Err(Refusal::new(format!(
                    "{name}() reaches outside ClickHouse and is not allowed on this route (manifest: allowed_functions)"
                )));
            }
        }
        if name.eq_ignore_ascii_case("system")
            && next.is_some_and(|t| t.is_punct('.'))
            && let Some(table) = tokens.get(at + 2).and_then(Token::name)
            && PRIVATE_SYSTEM_TABLES
                .iter()
                .any(|t| t.eq_ignore_ascii_case(table))
        {
            return Err(Refusal::new(format!(
                "system.{table} shows other requests' queries or the server's users and is not readable by route components"
            )));
        }
        if token.is_word("settings") {
            check_settings_clause(&tokens[at + 1..], rules)?;
        }
    }
    Ok(())
}

/// A `SETTINGS name = value, …` clause: refused on strict routes; elsewhere
/// every name must be one the route lets guests set. Every `name =` up to the
/// end of the enclosing parentheses counts, whatever the values look like
/// (arrays, maps), so no value can hide the next setting.
fn check_settings_clause(rest: &[Token<'_>], rules: &StatementRules<'_>) -> Result<(), Refusal> {
    let is_clause = rest.first().and_then(Token::name).is_some()
        && rest.get(1).is_some_and(|t| t.is_punct('='));
    if !is_clause {
        // `settings` used as a name (a column, say), not a clause.
        return Ok(());
    }
    if !rules.settings_clauses {
        return Err(Refusal::new(
            "SETTINGS clauses are not allowed in this route's SQL; pass allowed settings with the query's settings option",
        ));
    }
    let mut depth = 0usize;
    for (at, token) in rest.iter().enumerate() {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => match depth.checked_sub(1) {
                Some(inner) => depth = inner,
                None => return Ok(()),
            },
            Token::Punct(';') if depth == 0 => return Ok(()),
            token if depth == 0 && token.is_word("format") => return Ok(()),
            token if depth == 0 => {
                if let Some(name) = token.name()
                    && rest.get(at + 1).is_some_and(|t| t.is_punct('='))
                {
                    settings::check_name(name, rules.allowed_settings).map_err(Refusal::new)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules<'a>(
        writes: bool,
        settings_clauses: bool,
        allowed: &'a [String],
    ) -> StatementRules<'a> {
        StatementRules {
            writes,
            settings_clauses,
            allowed_settings: allowed,
            external_functions: &[],
        }
    }

    fn strict(sql: &str) -> Result<StatementKind, Refusal> {
        check(sql, &rules(false, false, &[]))
    }

    fn relaxed(sql: &str) -> Result<StatementKind, Refusal> {
        let allowed = vec!["output_format_*".to_owned()];
        check(sql, &rules(false, true, &allowed))
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "  select 1 AS value",
            "((SELECT 1))",
            "WITH 1 AS x SELECT x",
            "-- a comment\nSELECT 1",
            "/* why */ SELECT 1;",
            "SHOW TABLES",
            "DESCRIBE TABLE system.numbers",
            "EXISTS TABLE t",
            "SELECT count() FROM system.numbers LIMIT 10",
            "SELECT 'url(', 'KILL QUERY', \"settings\" FROM t",
            "SELECT settings FROM t",
            "SELECT sleep(1) AS slept",
        ] {
            assert_eq!(strict(sql), Ok(StatementKind::Read), "{sql}");
        }
    }

    #[test]
    fn dangerous_statements_are_refused_however_written() {
        for sql in [
            "KILL QUERY WHERE query_id = 'x'",
            "kill query where 1",
            "/* hi */ KiLl QUERY WHERE 1",
            "(KILL QUERY WHERE 1)",
            "SYSTEM SHUTDOWN",
            "SET max_threads = 1",
            "USE system",
            "GRANT ALL ON *.* TO x",
            "REVOKE ALL ON *.* FROM x",
            "ATTACH TABLE t",
            "DETACH TABLE t",
            "SELECT 1; KILL QUERY WHERE 1",
            "SELECT 1;;",
            "",
            "   -- only a comment",
            "#!/bin/sh",
            "SHOW PROCESSLIST",
            "SHOW GRANTS",
            "SHOW USERS",
        ] {
            assert!(strict(sql).is_err(), "{sql:?} was allowed");
        }
    }

    #[test]
    fn writes_need_the_route_to_allow_them() {
        let insert = "INSERT INTO t VALUES (1)";
        assert!(
            strict(insert)
                .unwrap_err()
                .to_string()
                .contains("read-only")
        );
        let writer = rules(true, false, &[]);
        assert_eq!(check(insert, &writer), Ok(StatementKind::Write));
        assert_eq!(
            check("CREATE TABLE t (x UInt8) ENGINE = Memory", &writer),
            Ok(StatementKind::Write)
        );
        assert_eq!(
            check("CREATE OR REPLACE VIEW v AS SELECT 1", &writer),
            Ok(StatementKind::Write)
        );
        for sql in [
            "CREATE USER evil",
            "CREATE FUNCTION f AS x -> x",
            "CREATE DICTIONARY d (x UInt8) PRIMARY KEY x SOURCE(HTTP(url 'http://x' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
            "ALTER USER default IDENTIFIED BY 'x'",
            "DROP USER default",
            "CREATE TABLE t (x String) ENGINE = URL('http://127.0.0.1:1/', CSV)",
            "CREATE TABLE t (x String) ENGINE = File(TabSeparated)",
            "INSERT INTO FUNCTION remote('h', db.t) VALUES (1)",
        ] {
            assert!(check(sql, &writer).is_err(), "{sql:?} was allowed");
        }
    }

    #[test]
    fn external_functions_are_refused_wherever_they_hide() {
        for sql in [
            "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
            "SELECT * FROM URL('http://x', CSV, 'a String')",
            "SELECT * FROM `url`('http://x', CSV, 'a String')",
            "SELECT * FROM \"url\" ('http://x', CSV, 'a String')",
            "SELECT * FROM (SELECT * FROM remote('127.0.0.1:9000', system.one))",
            "SELECT * FROM url/* */('http://x', CSV, 'a String')",
            "SELECT * FROM url\n('http://x', CSV, 'a String')",
            "SELECT file('passwd')",
            "SELECT * FROM file('passwd', TSV, 'l String')",
            "SELECT * FROM merge('system', '^proc')",
            "SELECT * FROM s3('https://x', 'CSV')",
        ] {
            let err = strict(sql).expect_err(sql);
            assert!(
                err.to_string().contains("outside ClickHouse"),
                "{sql}: {err}"
            );
        }
        let allowed = vec!["url".to_owned()];
        let opted_in = StatementRules {
            external_functions: &allowed,
            ..rules(false, true, &[])
        };
        assert!(check("SELECT * FROM url('http://x', CSV, 'a String')", &opted_in).is_ok());
    }

    #[test]
    fn other_requests_queries_are_not_readable() {
        for sql in [
            "SELECT query_id FROM system.processes",
            "SELECT * FROM `system`.`processes`",
            "SELECT * FROM system . query_log",
            "SELECT * FROM \"system\".\"users\"",
            "SELECT * FROM SYSTEM.PROCESSES",
        ] {
            assert!(strict(sql).is_err(), "{sql:?} was allowed");
        }
        assert!(strict("SELECT * FROM system.numbers LIMIT 1").is_ok());
        assert!(strict("SELECT * FROM system.tables").is_ok());
    }

    #[test]
    fn settings_clauses_are_refused_or_allow_listed() {
        let lift = "SELECT sleep(3) SETTINGS max_execution_time = 0";
        assert!(strict(lift).is_err());
        assert!(relaxed(lift).is_err(), "host settings stay the host's");
        assert!(relaxed("SELECT 1 SETTINGS timeout_overflow_mode = 'break'").is_err());
        assert!(relaxed("SELECT 1 settings `max_threads` = 64").is_err());
        assert!(relaxed("SELECT 1 SETTINGS output_format_json_quote_denormals = 1").is_ok());
        assert!(
            relaxed(
                "SELECT 1 SETTINGS output_format_json_quote_denormals = 1, max_memory_usage = 0"
            )
            .is_err()
        );
        assert!(relaxed("SELECT (SELECT 1 SETTINGS max_threads = -1)").is_err());
        assert!(
            relaxed("SELECT 1 SETTINGS output_format_x = [1, 2], max_execution_time = 0").is_err()
        );
        assert!(relaxed("SELECT 1 SETTINGS output_format_x = 1 FORMAT JSON").is_ok());
    }

    #[test]
    fn what_the_lexer_cannot_be_sure_of_is_refused() {
        for sql in [
            "SELECT 'unterminated",
            "SELECT `x",
            "SELECT 1 /* open",
            "SELECT 1 /* /* nested */ KILL */",
            "SELECT 'a\\",
        ] {
            assert!(strict(sql).is_err(), "{sql:?} was allowed");
        }
        // Servers disagree on these; a quote after them could hide code.
        for sql in [
            "SELECT 1 // '\n FROM url('http://x/', CSV, 'a String') -- '",
            "SELECT 1 # '\n FROM url('http://x/', CSV, 'a String') -- '",
            "SELECT $$ ' $$, url('http://x/', CSV, 'a String') -- '",
        ] {
            assert!(strict(sql).is_err(), "{sql:?} was allowed");
        }
        assert!(strict("SELECT 4 / 2, '//#$' AS odd").is_ok());
        // A quote escaped with a backslash does not end the string.
        assert!(strict("SELECT 'it\\'s'; KILL QUERY WHERE 1").is_err());
        assert!(strict("SELECT 'a\\'; KILL QUERY WHERE 1 --'").is_ok());
    }

    #[test]
    fn non_ascii_text_is_handled() {
        assert!(strict("SELECT 'ünïcödé ✓' AS ✓").is_ok());
        assert!(strict("SELECT ✓url('x')").is_err());
        assert!(strict("SELECT * FROM url\u{a0}('http://x', CSV, 'a String')").is_err());
        assert!(strict("ŠELECT 1").is_err());
    }
}
