//! The statement check: which SQL a route component may send at all, decided
//! on the tokens ClickHouse will read (after parameters are bound) before
//! anything reaches the server.
//!
//! ClickHouse's own `readonly` levels are the other wall; this one covers
//! what they do not: `KILL QUERY` runs at every read-only level,
//! `readonly = 2` allows table functions and `SETTINGS` clauses, and some
//! scalar functions reach other servers on every level.
//!
//! Everything is allowed by name, never denied by name: a function, table
//! function, engine or system table must be one [`crate::catalog`] knows and
//! classifies as safe. Names are read from [`crate::lexer`]'s tokens, so no
//! comment, quote, escape or layout changes what the check sees.

use std::borrow::Cow;

use crate::catalog::{self, Verdict};
use crate::lexer::{Token, TokenKind, tokenize};
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
    /// has to be one the route lets guests set).
    pub settings_clauses: bool,
    /// Settings of the `route` class the route lets guests set (patterns,
    /// `*` suffix); `guest` settings are always allowed.
    pub allowed_settings: &'a [String],
    /// Functions, table functions and engines the catalogue denies or does
    /// not know that the route uses anyway (its operator's choice: a
    /// user-defined function, `url` on a route that needs it).
    pub allowed_functions: &'a [String],
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

/// Users, roles and the like: `SHOW CREATE` shows none of them.
const ACCESS_ENTITIES: &[&str] = &[
    "user", "users", "role", "roles", "quota", "quotas", "row", "policy", "policies", "profile",
    "profiles", "settings", "masking", "function", "named", "current",
];

/// What `SHOW CREATE` may show.
const SHOW_CREATE_OBJECTS: &[&str] = &["table", "view", "database", "dictionary", "temporary"];

/// Words no write statement may use, and why: each reaches outside the
/// databases the route writes, or past the limits of the query itself.
const OUTSIDE_WRITES: &[(&str, &str)] = &[
    // `ALTER … FETCH` copies a partition from another replica through
    // ZooKeeper; `FREEZE` writes backups into the server's shadow directory.
    ("fetch", "copies partitions from other replicas"),
    ("freeze", "writes backups into the server's directories"),
    ("unfreeze", "removes backups from the server's directories"),
    // A refreshable materialized view runs its query in the background,
    // forever, under none of the route's limits.
    (
        "refresh",
        "runs queries in the background without the route's limits",
    ),
    // Views that run as another user.
    ("definer", "runs queries as another user"),
    ("security", "runs queries as another user"),
    // Copies another table, engine (and its connections) included.
    ("clone", "copies another table's engine and data"),
    // Tables' own settings: disks, storage policies.
    ("modify setting", "changes a table's storage settings"),
    ("reset setting", "changes a table's storage settings"),
    ("to disk", "moves data to other disks"),
    ("to volume", "moves data to other volumes"),
];

/// Databases no write may touch.
const SERVER_DATABASES: &[&str] = &["system", "information_schema"];

/// Checks of a write statement (its first word `keyword`) beyond its kind.
fn check_write(tokens: &[Token<'_>], keyword: &str) -> Result<(), Refusal> {
    for (at, token) in tokens.iter().enumerate() {
        for (words, why) in OUTSIDE_WRITES {
            let mut parts = words.split(' ');
            let first = parts.next().unwrap_or_default();
            let matches = token.is_word(first)
                && parts
                    .enumerate()
                    .all(|(i, word)| tokens.get(at + 1 + i).is_some_and(|t| t.is_word(word)));
            if matches {
                return Err(Refusal::new(format!(
                    "{} is not allowed in route components' writes: it {why}",
                    words.to_ascii_uppercase()
                )));
            }
        }
        if token.name().is_some_and(|name| {
            SERVER_DATABASES
                .iter()
                .any(|db| name.eq_ignore_ascii_case(db))
        }) {
            return Err(Refusal::new(
                "writes may not name the server's own databases (system, information_schema)",
            ));
        }
    }
    // `CREATE TABLE t AS other` copies other's engine, whatever it reaches;
    // with an ENGINE of its own only the columns are copied.
    if keyword == "create"
        && let Some(at) = top_level(tokens).position(|t| t.is_word("as"))
    {
        let after = top_level(tokens).nth(at + 1);
        let copies_a_table = after.is_some_and(|t| {
            is_name(t)
                && !t.is_word("select")
                && !t.is_word("with")
                && !tokens.iter().any(|t| t.is_word("engine"))
        });
        let is_table = tokens.iter().take(4).any(|t| t.is_word("table"));
        if is_table && copies_a_table {
            return Err(Refusal::new(
                "CREATE TABLE … AS another table needs an ENGINE of its own (it would copy the other table's engine)",
            ));
        }
    }
    Ok(())
}

/// The tokens outside any parentheses.
fn top_level<'t, 'a>(tokens: &'t [Token<'a>]) -> impl Iterator<Item = &'t Token<'a>> {
    let mut depth = 0usize;
    tokens.iter().filter(move |t| {
        if t.is_punct("(") {
            depth += 1;
            false
        } else if t.is_punct(")") {
            depth = depth.saturating_sub(1);
            false
        } else {
            depth == 0
        }
    })
}

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
    let tokens = tokenize(sql).map_err(|err| Refusal::new(err.to_string()))?;
    check_tokens(&tokens, rules)
}

/// [`check`] on a query already split into tokens.
pub fn check_tokens(
    tokens: &[Token<'_>],
    rules: &StatementRules<'_>,
) -> Result<StatementKind, Refusal> {
    let kind = check_statement(tokens, rules)?;
    check_body(tokens, rules)?;
    Ok(kind)
}

/// The first word of the statement, after any opening parentheses.
fn statement_word<'t>(tokens: &'t [Token<'_>]) -> Option<&'t Token<'t>> {
    tokens.iter().find(|t| !t.is_punct("("))
}

/// The statement type: its first word, after any opening parentheses.
fn check_statement(
    tokens: &[Token<'_>],
    rules: &StatementRules<'_>,
) -> Result<StatementKind, Refusal> {
    if let Some(at) = tokens.iter().position(|t| t.is_punct(";"))
        && at + 1 < tokens.len()
    {
        return Err(Refusal::new(
            "send one statement per query (nothing may follow a ';')",
        ));
    }
    let Some(first) = statement_word(tokens) else {
        return Err(Refusal::new("the query is empty"));
    };
    if first.kind != TokenKind::Word {
        return Err(Refusal::new(
            "a query must start with a statement such as SELECT",
        ));
    }
    let keyword = first.raw.to_ascii_lowercase();
    let mut words = tokens.iter().skip_while(|t| t.is_punct("(")).skip(1);
    fn lower_name(token: Option<&Token<'_>>) -> String {
        token
            .and_then(Token::name)
            .map(|name| name.to_ascii_lowercase())
            .unwrap_or_default()
    }
    let mut next_word = || lower_name(words.next());
    if READ_STATEMENTS.contains(&keyword.as_str()) {
        if keyword == "show" {
            let mut what = next_word();
            if what == "full" || what == "temporary" {
                what = next_word();
            }
            if !SHOWABLE.contains(&what.as_str()) {
                return Err(Refusal::new(format!(
                    "SHOW {} is not allowed: route components may show tables, databases, dictionaries, columns and CREATE statements",
                    what.to_ascii_uppercase()
                )));
            }
            if what == "create" {
                // Of data objects only, not users, roles, quotas, policies…:
                // `SHOW CREATE [TABLE|VIEW|…] name`.
                let object = next_word();
                let after = tokens
                    .iter()
                    .position(|t| t.is_word("create"))
                    .and_then(|at| tokens.get(at + 2));
                let ends = after.is_none_or(|t| {
                    t.is_punct(".") || t.is_punct(";") || t.is_word("format") || t.is_word("into")
                });
                let data = SHOW_CREATE_OBJECTS.contains(&object.as_str())
                    || (ends && !ACCESS_ENTITIES.contains(&object.as_str()));
                if !data {
                    return Err(Refusal::new(format!(
                        "SHOW CREATE {} is not allowed: route components may show how tables, views, databases and dictionaries are made",
                        object.to_ascii_uppercase()
                    )));
                }
            }
        }
        // `WITH … INSERT` is a write however it starts.
        if keyword == "with"
            && let Some(write) =
                top_level(tokens).find(|t| WRITE_STATEMENTS.iter().any(|w| t.is_word(w)))
        {
            return Err(Refusal::new(format!(
                "WITH before {} is not accepted; put the WITH inside the statement's SELECT",
                write.raw.to_ascii_uppercase()
            )));
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
            let mut object = next_word();
            if object == "or" {
                // CREATE OR REPLACE …
                next_word();
                object = next_word();
            }
            if !WRITABLE_OBJECTS.contains(&object.as_str()) {
                return Err(Refusal::new(format!(
                    "{} {} is not allowed: route components may create, alter and drop tables, views and databases only",
                    keyword.to_ascii_uppercase(),
                    object.to_ascii_uppercase()
                )));
            }
        }
        check_write(tokens, &keyword)?;
        return Ok(StatementKind::Write);
    }
    Err(Refusal::new(format!(
        "{} statements are not allowed for route components",
        keyword.to_ascii_uppercase()
    )))
}

/// `=` or `==`: ClickHouse reads both as the same token.
fn is_equals(token: &Token<'_>) -> bool {
    token.is_punct("=") || token.is_punct("==")
}

fn is_name(token: &Token<'_>) -> bool {
    matches!(token.kind, TokenKind::Word | TokenKind::QuotedName)
}

/// Checks on the whole statement: every name written before `(` or passed
/// where a function is expected, every engine, every system table, every
/// `SETTINGS` clause, and the places no query may reach.
fn check_body(tokens: &[Token<'_>], rules: &StatementRules<'_>) -> Result<(), Refusal> {
    let objects = object_names(tokens);
    let creates = statement_word(tokens).is_some_and(|t| t.is_word("create"));
    let mut depth = 0usize;
    // The calls whose argument lists the tokens are in, innermost last.
    let mut calls: Vec<Option<String>> = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        let next = tokens.get(at + 1);
        let previous = at.checked_sub(1).and_then(|p| tokens.get(p));
        if token.is_punct("(") {
            depth += 1;
            let callee = previous
                .filter(|p| is_name(p) && !objects.contains(&(at - 1)))
                .and_then(Token::name)
                .map(|name| name.into_owned());
            calls.push(callee);
        } else if token.is_punct(")") {
            depth = depth.saturating_sub(1);
            calls.pop();
        }
        if token.is_word("into") && next.is_some_and(|t| t.is_word("outfile")) {
            return Err(Refusal::new("INTO OUTFILE is not allowed"));
        }
        if token.is_word("on") && next.is_some_and(|t| t.is_word("cluster")) {
            return Err(Refusal::new(
                "ON CLUSTER is not allowed: distributed DDL reaches other servers",
            ));
        }
        // `ENGINE [=] Name` of a CREATE statement (outside its column list,
        // where `engine` may be a column's name).
        if creates && depth == 0 && token.is_word("engine") {
            let name = match next {
                Some(eq) if is_equals(eq) => tokens.get(at + 2),
                other => other,
            };
            if let Some(name) = name.and_then(Token::name) {
                check_engine(&name, rules)?;
            }
        }
        // A table read from a path (chdb's and clickhouse-local's
        // databases read files by name).
        if (token.is_word("from") || token.is_word("join"))
            && let Some(table) = next
        {
            let path = table.kind == TokenKind::String
                || (table.kind == TokenKind::QuotedName && table.raw.contains('/'));
            if path {
                return Err(Refusal::new(format!(
                    "{} is not a table name route components may read",
                    crate::response::truncate(table.raw, 64)
                )));
            }
        }
        // Functions named by their name alone, without `(`: a column
        // transformer's `APPLY(f)`, and the function a higher-order function
        // applies (`arrayMap(f, …)`).
        let takes_functions = calls
            .last()
            .and_then(Option::as_deref)
            .is_some_and(takes_function_names)
            || previous.is_some_and(|p| p.is_word("apply"));
        if takes_functions
            && is_name(token)
            && !next.is_some_and(|t| t.is_punct("(") || t.is_punct("."))
            && let Some(name) = token.name()
            && let Some(why) = catalog::denied_function(&name)
            && !opted_in(&name, rules)
        {
            return Err(Refusal::new(format!(
                "{name} is not allowed for route components: it {why} (manifest: allowed_functions)"
            )));
        }
        // Aggregate functions named in strings: `arrayReduce('sum', …)`.
        if token.kind == TokenKind::String
            && previous.is_some_and(|p| p.is_punct("("))
            && calls
                .last()
                .and_then(Option::as_deref)
                .is_some_and(takes_aggregate_names)
            && let Some(value) = token.string_value()
        {
            check_call(&String::from_utf8_lossy(&value), rules)?;
        }
        let Some(name) = token.name() else { continue };
        if next.is_some_and(|t| t.is_punct("(")) && !objects.contains(&at) {
            check_call(&name, rules)?;
        }
        if name.eq_ignore_ascii_case("system")
            && next.is_some_and(|t| t.is_punct("."))
            && let Some(table) = tokens.get(at + 2).and_then(Token::name)
        {
            check_system_table(&table)?;
        }
        if token.is_word("settings") && !previous.is_some_and(|p| p.is_punct(".")) {
            check_settings_clause(&tokens[at + 1..], rules)?;
        }
    }
    Ok(())
}

/// What takes another function by its name as an argument: a column
/// transformer's `APPLY(f)`, and higher-order functions (`arrayMap(f, arr)`,
/// `mapApply(f, m)`: every higher-order function of current servers is an
/// `array…` or `map…` function).
fn takes_function_names(callee: &str) -> bool {
    let lower = callee.to_ascii_lowercase();
    lower == "apply" || lower.starts_with("array") || lower.starts_with("map")
}

/// Functions that take an aggregate function's name as a string.
fn takes_aggregate_names(callee: &str) -> bool {
    [
        "arrayReduce",
        "arrayReduceInRanges",
        "initializeAggregation",
    ]
    .iter()
    .any(|f| callee.eq_ignore_ascii_case(f))
}

/// Whether the route's `allowed_functions` names `name`.
fn opted_in(name: &str, rules: &StatementRules<'_>) -> bool {
    rules
        .allowed_functions
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(name))
}

fn check_call(name: &str, rules: &StatementRules<'_>) -> Result<(), Refusal> {
    if opted_in(name, rules) {
        return Ok(());
    }
    match catalog::call(name) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(why) => Err(Refusal::new(format!(
            "{name}() is not allowed for route components: it {why} (manifest: allowed_functions)"
        ))),
        Verdict::Unknown => Err(Refusal::new(format!(
            "{name}() is not a function wasmhouse knows; only functions it has classified as safe may be called (manifest: allowed_functions)"
        ))),
    }
}

fn check_engine(name: &str, rules: &StatementRules<'_>) -> Result<(), Refusal> {
    if opted_in(name, rules) {
        return Ok(());
    }
    match catalog::engine(name) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(why) => Err(Refusal::new(format!(
            "ENGINE = {name} is not allowed for route components: it {why}"
        ))),
        Verdict::Unknown => Err(Refusal::new(format!(
            "ENGINE = {name} is not an engine wasmhouse knows; route components may use the MergeTree family, Memory, Log and the like"
        ))),
    }
}

fn check_system_table(table: &str) -> Result<(), Refusal> {
    match catalog::system_table(table) {
        Verdict::Allow => Ok(()),
        Verdict::Deny(why) => Err(Refusal::new(format!(
            "system.{table} is not readable by route components: it {why}"
        ))),
        Verdict::Unknown => Err(Refusal::new(format!(
            "system.{table} is not a system table wasmhouse knows, so it is not readable by route components"
        ))),
    }
}

/// Tokens that name an object being written to or created, whose `(` opens
/// a column list rather than a call: the table of `INSERT INTO t (…)`, the
/// table or view of `CREATE TABLE t (…)`, `CREATE MATERIALIZED VIEW v TO t
/// (…)`, and the index, projection or constraint of a table definition.
/// Anywhere else a name before `(` is a call.
fn object_names(tokens: &[Token<'_>]) -> Vec<usize> {
    let statement = statement_word(tokens).map(|t| t.raw.to_ascii_lowercase());
    let mut objects = Vec::new();
    // `db.t`: the last part is the one before `(`.
    let qualified = |mut at: usize| {
        while tokens.get(at + 1).is_some_and(|t| t.is_punct("."))
            && tokens.get(at + 2).is_some_and(is_name)
        {
            at += 2;
        }
        tokens.get(at).is_some_and(is_name).then_some(at)
    };
    match statement.as_deref() {
        Some("insert") => {
            if let Some(into) = tokens.iter().position(|t| t.is_word("into")) {
                let mut at = into + 1;
                if tokens.get(at).is_some_and(|t| t.is_word("table")) {
                    at += 1;
                }
                if !tokens.get(at).is_some_and(|t| t.is_word("function")) {
                    objects.extend(qualified(at));
                }
            }
        }
        Some("create" | "alter") => {
            // The statement's own object: `CREATE [OR REPLACE] [TEMPORARY]
            // TABLE|VIEW|MATERIALIZED VIEW|DATABASE [IF NOT EXISTS] name`,
            // `ALTER TABLE [IF EXISTS] name`; a materialized view's `TO name`
            // right after its own.
            if let Some(kind) = tokens
                .iter()
                .take(6)
                .position(|t| ["table", "view", "database"].iter().any(|w| t.is_word(w)))
            {
                let mut next = kind + 1;
                if tokens.get(next).is_some_and(|t| t.is_word("if")) {
                    next += 1;
                    if tokens.get(next).is_some_and(|t| t.is_word("not")) {
                        next += 1;
                    }
                    next += 1;
                }
                if let Some(name) = qualified(next) {
                    objects.push(name);
                    if tokens.get(name + 1).is_some_and(|t| t.is_word("to")) {
                        objects.extend(qualified(name + 2));
                    }
                }
            }
            // The name of an index, projection or constraint: in a table's
            // column list, or after ALTER … ADD.
            for (at, token) in tokens.iter().enumerate() {
                let names_part = ["index", "projection", "constraint"]
                    .iter()
                    .any(|w| token.is_word(w));
                let declared = at
                    .checked_sub(1)
                    .and_then(|p| tokens.get(p))
                    .is_some_and(|p| p.is_punct("(") || p.is_punct(",") || p.is_word("add"));
                if names_part && declared {
                    let mut next = at + 1;
                    if tokens.get(next).is_some_and(|t| t.is_word("if")) {
                        next += 3;
                    }
                    if tokens.get(next).is_some_and(is_name) {
                        objects.push(next);
                    }
                }
            }
        }
        _ => {}
    }
    objects
}

/// A `SETTINGS name = value, …` clause: refused on strict routes; elsewhere
/// every name must be one the route lets guests set. Items are read as
/// ClickHouse reads them (a name, `=`, one value: a literal, or a bracketed
/// array or tuple, whatever is inside), and a name without a value counts
/// too, so no value can hide the next setting.
fn check_settings_clause(rest: &[Token<'_>], rules: &StatementRules<'_>) -> Result<(), Refusal> {
    // `SETTINGS name =` (or a name alone, then `,` or the end) is a clause,
    // whatever the name, even a keyword (current servers have settings
    // called `limit`, `select`, `final`). Otherwise `settings` is a name of
    // its own: a column (`SELECT settings FROM t`) or a table.
    let ends_item = |t: Option<&Token<'_>>| {
        t.is_none_or(|t| {
            is_equals(t)
                || t.is_punct(",")
                || t.is_punct(")")
                || t.is_punct(";")
                || t.is_word("format")
        })
    };
    let is_clause = rest.first().is_some_and(is_name) && ends_item(rest.get(1));
    if !is_clause {
        return Ok(());
    }
    if !rules.settings_clauses {
        return Err(Refusal::new(
            "SETTINGS clauses are not allowed in this route's SQL; pass allowed settings with the query's settings option",
        ));
    }
    let mut at = 0;
    while let Some(item) = rest.get(at) {
        let Some(name) = item.name() else { break };
        settings::check_name(&name, rules.allowed_settings).map_err(Refusal::new)?;
        at += 1;
        if rest.get(at).is_some_and(is_equals) {
            at = skip_value(rest, at + 1);
        }
        if !rest.get(at).is_some_and(|t| t.is_punct(",")) {
            break;
        }
        at += 1;
    }
    Ok(())
}

/// Past one setting value starting at `at`: a sign and a token, or a
/// bracketed group.
fn skip_value(tokens: &[Token<'_>], mut at: usize) -> usize {
    if tokens
        .get(at)
        .is_some_and(|t| t.is_punct("-") || t.is_punct("+"))
    {
        at += 1;
    }
    let opens = |t: &Token<'_>| t.is_punct("(") || t.is_punct("[");
    let closes = |t: &Token<'_>| t.is_punct(")") || t.is_punct("]");
    if !tokens.get(at).is_some_and(opens) {
        return at + 1;
    }
    let mut depth = 0usize;
    while let Some(token) = tokens.get(at) {
        if opens(token) {
            depth += 1;
        } else if closes(token) {
            depth -= 1;
            if depth == 0 {
                return at + 1;
            }
        }
        at += 1;
    }
    at
}

/// The names a query calls, for messages and tests: every name written
/// before `(` that is not an object name.
pub fn calls<'t>(tokens: &'t [Token<'t>]) -> Vec<Cow<'t, str>> {
    let objects = object_names(tokens);
    tokens
        .windows(2)
        .enumerate()
        .filter(|(at, pair)| pair[1].is_punct("(") && !objects.contains(at))
        .filter_map(|(_, pair)| pair[0].name())
        .collect()
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
            allowed_functions: &[],
        }
    }

    fn strict(sql: &str) -> Result<StatementKind, Refusal> {
        check(sql, &rules(false, false, &[]))
    }

    fn relaxed(sql: &str) -> Result<StatementKind, Refusal> {
        check(sql, &rules(false, true, &[]))
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
            "SELECT sumIf(x, x > 1), uniqExact(y), quantile(0.5)(z) FROM t",
            "SELECT CAST(x AS Nullable(String)), toDecimal64(1, 2) FROM t",
            "SELECT x FROM t WHERE x IN (1, 2) AND NOT (x = 3)",
            "SELECT count() FROM t WHERE EXISTS (SELECT 1)",
            "SELECT arrayMap(x -> x * 2, [1, 2]) AS a",
            "SELECT * FROM numbers(10)",
            "SELECT `abs`(-1)",
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
        for sql in [
            insert,
            "INSERT INTO db.events (ts, user) VALUES (now(), 'a')",
            "INSERT INTO TABLE events (ts) SELECT now()",
            "CREATE TABLE t (x UInt8) ENGINE = Memory",
            "CREATE TABLE IF NOT EXISTS db.t (d Date, x Nullable(String), INDEX i (x) TYPE set(100) GRANULARITY 1) ENGINE = MergeTree() ORDER BY (d)",
            "CREATE OR REPLACE VIEW v AS SELECT 1",
            "CREATE MATERIALIZED VIEW mv TO dest (x UInt8) AS SELECT 1 AS x",
            "ALTER TABLE t ADD COLUMN c LowCardinality(String)",
        ] {
            assert_eq!(check(sql, &writer), Ok(StatementKind::Write), "{sql}");
        }
        for sql in [
            "CREATE USER evil",
            "CREATE FUNCTION f AS x -> x",
            "CREATE DICTIONARY d (x UInt8) PRIMARY KEY x SOURCE(HTTP(url 'http://x' format 'CSV')) LAYOUT(FLAT()) LIFETIME(0)",
            "ALTER USER default IDENTIFIED BY 'x'",
            "DROP USER default",
            "CREATE TABLE t (x String) ENGINE = URL('http://127.0.0.1:1/', CSV)",
            "CREATE TABLE t (x String) ENGINE = File(TabSeparated)",
            "CREATE TABLE t (x String) ENGINE Distributed(c, db, t)",
            "CREATE TABLE t (x String) ENGINE = Merge(system, '^proc')",
            "CREATE TABLE t (x String) ENGINE = ReplicatedMergeTree('/zk/x', 'r') ORDER BY x",
            "CREATE DATABASE d ENGINE = MySQL('h:3306', 'db', 'u', 'p')",
            "CREATE TABLE t AS remote('h', db.t)",
            "INSERT INTO FUNCTION remote('h', db.t) VALUES (1)",
            "INSERT INTO t SELECT * FROM url('http://x', CSV, 'a String')",
            "ALTER TABLE t FETCH PARTITION 1 FROM '/zk/t'",
            "ALTER TABLE t FREEZE",
            "CREATE TABLE t (x UInt8) ENGINE = NoSuchEngine",
        ] {
            assert!(check(sql, &writer).is_err(), "{sql:?} was allowed");
        }
    }

    #[test]
    fn only_known_safe_functions_may_be_called_wherever_they_hide() {
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
            "SELECT hasColumnInTable('127.0.0.1', 9000, 'default', 'default', 't', 'x')",
            "SELECT dictGet('d', 'x', 1)",
            "SELECT * FROM cluster('test_shard_localhost', system.one)",
            "DESCRIBE TABLE url('http://x', CSV)",
            "SELECT noSuchFunctionAtAll(1)",
            "SELECT * FROM view(SELECT * FROM url('http://x', CSV, 'a String'))",
        ] {
            assert!(strict(sql).is_err(), "{sql} was allowed");
        }
        let allowed = vec!["url".to_owned()];
        let opted_in = StatementRules {
            allowed_functions: &allowed,
            ..rules(false, true, &[])
        };
        assert!(check("SELECT * FROM url('http://x', CSV, 'a String')", &opted_in).is_ok());
    }

    #[test]
    fn only_known_public_system_tables_are_readable() {
        for sql in [
            "SELECT query_id FROM system.processes",
            "SELECT * FROM `system`.`processes`",
            "SELECT * FROM system . query_log",
            "SELECT * FROM \"system\".\"users\"",
            "SELECT * FROM SYSTEM.PROCESSES",
            "SELECT * FROM system.no_such_table",
            "SELECT * FROM view(SELECT * FROM system.processes)",
        ] {
            assert!(strict(sql).is_err(), "{sql:?} was allowed");
        }
        assert!(strict("SELECT * FROM system.numbers LIMIT 1").is_ok());
        assert!(strict("SELECT * FROM system.tables").is_ok());
        assert!(strict("SELECT value FROM system.settings WHERE name = 'max_threads'").is_ok());
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
            relaxed("SELECT 1 SETTINGS output_format_json_quote_denormals = [1, 2], max_execution_time = 0")
                .is_err()
        );
        assert!(
            relaxed("SELECT 1 SETTINGS output_format_json_quote_denormals = 1 FORMAT JSON").is_ok()
        );
        assert!(relaxed("SELECT 1 SETTINGS format_schema = 'x'").is_err());
        assert!(relaxed("SELECT 1 SETTINGS no_such_setting_anywhere = 1").is_err());
    }

    #[test]
    fn what_the_lexer_cannot_be_sure_of_is_refused() {
        for sql in [
            "SELECT 'unterminated",
            "SELECT `x",
            "SELECT 1 /* open",
            "SELECT 1 /* /* nested */ KILL */",
            "SELECT 'a\\",
            "SELECT 1 // '\n FROM url('http://x/', CSV, 'a String') -- '",
            "SELECT 1 # '\n FROM url('http://x/', CSV, 'a String') -- '",
            "SELECT $$ ' $$, url('http://x/', CSV, 'a String') -- '",
            "SELECT query FROM system.`pro\\x63esses`",
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
        assert!(strict("SELECT 'ünïcödé ✓' AS `✓`").is_ok());
        assert!(strict("SELECT ✓url('x')").is_err());
        assert!(strict("SELECT * FROM url\u{a0}('http://x', CSV, 'a String')").is_err());
        assert!(strict("ŠELECT 1").is_err());
    }

    /// The red team's second round, one case per class (tests/security.rs
    /// and tests/current_clickhouse.rs run them against real servers).
    #[test]
    fn round_two_red_team_breaks_are_refused() {
        let writer = rules(true, true, &[]);
        let relaxed_rules = rules(false, true, &[]);
        for (sql, on) in [
            // B1: a setting named like a keyword opened the clause.
            (
                "SELECT 1 SETTINGS limit = 0, max_execution_time = 0",
                &relaxed_rules,
            ),
            ("SELECT 1 SETTINGS select = 'file(1)'", &relaxed_rules),
            (
                "SELECT 1 SETTINGS final = 1, max_threads = 64",
                &relaxed_rules,
            ),
            // B2: hex and binary strings.
            (
                "SELECT 1 SETTINGS output_format_json_quote_denormals = X'31', max_execution_time = 0",
                &relaxed_rules,
            ),
            // B3: APPLY names a function without `(`.
            (
                "SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)",
                &relaxed_rules,
            ),
            (
                "SELECT * APPLY file FROM (SELECT '/etc/passwd' AS p)",
                &relaxed_rules,
            ),
            ("SELECT COLUMNS('p') APPLY(logTrace) FROM t", &relaxed_rules),
            // B4: higher-order functions take a function by name.
            ("SELECT arrayMap(file, ['/etc/passwd'])", &relaxed_rules),
            ("SELECT arraySort(FILE, ['/etc/passwd'])", &relaxed_rules),
            (
                "SELECT mapApply(getServerSetting, m) FROM t",
                &relaxed_rules,
            ),
            ("SELECT arrayReduce('flameGraph', [1])", &relaxed_rules),
            // B5: `TO` of WITH FILL is no object name.
            (
                "CREATE TABLE f ENGINE = Memory AS SELECT number FROM numbers(2) ORDER BY number WITH FILL TO file('/etc/passwd')",
                &writer,
            ),
            // B6: tables read from paths.
            ("SELECT * FROM '/etc/passwd'", &relaxed_rules),
            ("SELECT * FROM `/etc/passwd`", &relaxed_rules),
            // B7: refreshable materialized views.
            (
                "CREATE MATERIALIZED VIEW v REFRESH EVERY 1 SECOND ENGINE = Memory AS SELECT 1",
                &writer,
            ),
            // B8: a copy of another table's engine.
            ("CREATE TABLE mine AS ops", &writer),
            ("CREATE TABLE mine CLONE AS ops", &writer),
            // B9: distributed DDL.
            ("DROP TABLE t ON CLUSTER test_shard_localhost", &writer),
            ("CREATE DATABASE d ON CLUSTER c", &writer),
            // B10: the server's own databases, tables' storage settings.
            ("DROP DATABASE system", &writer),
            ("TRUNCATE ALL TABLES FROM system", &writer),
            (
                "ALTER TABLE t MODIFY SETTING storage_policy = 's3'",
                &writer,
            ),
            ("ALTER TABLE t MOVE PARTITION 1 TO DISK 's3'", &writer),
            // B11: a write behind WITH.
            ("WITH 1 AS y INSERT INTO w SELECT y", &writer),
            // Grants and users through SHOW CREATE; views run as others.
            ("SHOW CREATE USER default", &relaxed_rules),
            ("SHOW CREATE QUOTA default", &relaxed_rules),
            (
                "CREATE VIEW v DEFINER = default SQL SECURITY DEFINER AS SELECT 1",
                &writer,
            ),
        ] {
            assert!(check(sql, on).is_err(), "{sql:?} was allowed");
        }
        // What stays allowed.
        for (sql, on) in [
            ("SELECT settings FROM t", &relaxed_rules),
            (
                "SELECT name FROM system.settings WHERE name = 'max_threads'",
                &relaxed_rules,
            ),
            ("SELECT arrayMap(x -> x + 1, [1, 2])", &relaxed_rules),
            ("SELECT arrayMap(url_column, arr) FROM t", &relaxed_rules),
            ("SELECT domain(url) FROM hits", &relaxed_rules),
            ("SELECT arrayReduce('sumIf', [1], [1])", &relaxed_rules),
            ("SHOW CREATE TABLE events", &relaxed_rules),
            ("SHOW FULL TABLES", &relaxed_rules),
            ("CREATE TABLE copy AS events ENGINE = Memory", &writer),
            (
                "CREATE MATERIALIZED VIEW mv TO dest (x UInt8) AS SELECT 1 AS x",
                &writer,
            ),
        ] {
            assert!(check(sql, on).is_ok(), "{sql:?}: {:?}", check(sql, on));
        }
    }
}
