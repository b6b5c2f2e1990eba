//! The host reads guest SQL as ClickHouse does, proven against ClickHouse:
//! Debian's 18.16 server and 26.9 (chdb, in-process).
//!
//! - Generated queries (quoted names and strings with every escape, comments
//!   and whitespace of every class, numbers next to names) are read by the
//!   host's lexer and by both servers. Where the lexer accepts a query, both
//!   servers must read it exactly as the lexer does: the same columns, named
//!   the same, with the same values; where its reading is not a query at
//!   all, both must refuse it. Where the servers disagree, the lexer must
//!   have refused. A fixed corpus, then a bounded property test.
//! - Every name the servers list in their catalogues (functions, table
//!   functions, engines, system tables, settings, …) is classified in
//!   `clickhouse/catalog/`: a new server version fails this test until its
//!   new names are read and classified.

mod common;

use std::collections::{BTreeSet, HashSet};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;
use wasmhouse_clickhouse::lexer::{Token, TokenKind, tokenize};

use common::ClickHouse;

/// How `target` (`chdb` or a server's URL) reads each query.
fn server_readings(target: &str, queries: &[String]) -> Vec<Value> {
    common::oracle::answers(target, queries)
}

/// A column the lexer predicts: its name and value.
#[derive(Debug, Clone, PartialEq)]
enum Predicted {
    /// `hex('…')`: the hex of the string's decoded bytes.
    Hex(String),
    /// A number literal's value.
    Number(f64),
}

/// The lexer's reading of a generated query.
#[derive(Debug)]
enum Reading {
    /// The lexer refuses it: the servers may read it as they like.
    Refused,
    /// `SELECT item, …`: the columns, in order, with their names (`None`
    /// for an item without an alias, whose name is ClickHouse's rendering
    /// of the expression).
    Columns(Vec<(Option<String>, Predicted)>),
    /// Tokens, but not a query of the generated shape: the servers must
    /// refuse it too.
    NotAQuery,
}

fn read_with_lexer(sql: &str) -> Reading {
    let Ok(tokens) = tokenize(sql) else {
        return Reading::Refused;
    };
    parse_items(&tokens).map_or(Reading::NotAQuery, Reading::Columns)
}

/// `SELECT item, item…` where an item is `hex(<string>) AS name` or
/// `<number> AS name`.
fn parse_items(tokens: &[Token<'_>]) -> Option<Vec<(Option<String>, Predicted)>> {
    let (first, mut rest) = tokens.split_first()?;
    if !first.is_word("select") {
        return None;
    }
    let mut columns = Vec::new();
    loop {
        let value = match rest {
            [hex, open, text, close, tail @ ..]
                if hex.is_word("hex") && open.is_punct("(") && close.is_punct(")") =>
            {
                rest = tail;
                let bytes = text.string_value()?;
                Predicted::Hex(bytes.iter().map(|b| format!("{b:02X}")).collect())
            }
            [number, tail @ ..] if number.kind == TokenKind::Number => {
                rest = tail;
                Predicted::Number(number_value(number.raw)?)
            }
            _ => return None,
        };
        match rest {
            [as_word, name, tail @ ..] if as_word.is_word("as") => {
                if !matches!(name.kind, TokenKind::Word | TokenKind::QuotedName) {
                    return None;
                }
                columns.push((Some(name.name()?.into_owned()), value));
                rest = tail;
            }
            _ => columns.push((None, value)),
        }
        match rest {
            [] => return Some(columns),
            [comma, tail @ ..] if comma.is_punct(",") => rest = tail,
            _ => return None,
        }
    }
}

/// The value of a number literal as ClickHouse computes it: decimal and
/// floating point, or hex with an optional fraction and binary exponent.
fn number_value(text: &str) -> Option<f64> {
    let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) else {
        return text.parse().ok();
    };
    let (mantissa, exponent) = match hex.split_once(['p', 'P']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (hex, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value = 0f64;
    for digit in whole.chars() {
        value = value * 16.0 + f64::from(digit.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for digit in fraction.chars() {
        value += f64::from(digit.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exponent))
}

/// Whether a server's answer matches the lexer's columns.
fn agrees(answer: &Value, columns: &[(Option<String>, Predicted)]) -> bool {
    let (Some(names), Some(row)) = (
        answer["names"].as_array(),
        answer["data"].get(0).and_then(Value::as_array),
    ) else {
        return false;
    };
    names.len() == columns.len()
        && row.len() == columns.len()
        && columns
            .iter()
            .zip(names)
            .zip(row)
            .all(|(((name, predicted), got_name), got)| {
                name.as_deref()
                    .is_none_or(|name| got_name.as_str() == Some(name))
                    && match predicted {
                        Predicted::Hex(hex) => got.as_str() == Some(hex.as_str()),
                        Predicted::Number(expected) => {
                            let value = got
                                .as_f64()
                                .or_else(|| got.as_str().and_then(|s| s.parse().ok()));
                            value.is_some_and(|v| {
                                (v - expected).abs() <= 1e-9 * expected.abs().max(1.0)
                            })
                        }
                    }
            })
}

/// Every query is read by the lexer and both servers; the disagreements.
fn disagreements(clickhouse: &ClickHouse, queries: &[String]) -> (usize, Vec<String>) {
    let old = server_readings(&format!("{}/", clickhouse.url()), queries);
    let current = server_readings("chdb", queries);
    let mut accepted = 0;
    let mut failures = Vec::new();
    for ((sql, old), current) in queries.iter().zip(&old).zip(&current) {
        match read_with_lexer(sql) {
            Reading::Refused => {}
            Reading::Columns(columns) => {
                accepted += 1;
                for (server, answer) in [("18.16", old), ("26.9", current)] {
                    if !agrees(answer, &columns) {
                        failures.push(format!(
                            "{sql:?}: the lexer reads {columns:?}, ClickHouse {server} {answer}"
                        ));
                    }
                }
            }
            Reading::NotAQuery => {
                accepted += 1;
                for (server, answer) in [("18.16", old), ("26.9", current)] {
                    if answer.get("error").is_none() {
                        failures.push(format!(
                            "{sql:?}: the lexer reads no query, ClickHouse {server} {answer}"
                        ));
                    }
                }
            }
        }
    }
    (accepted, failures)
}

/// Separators between tokens: each whitespace class, comments of every
/// kind, and what some servers read as comments or spaces and others not.
const SEPARATORS: &[&str] = &[
    " ",
    "\t",
    "\n",
    "\r",
    "\u{b}",
    "\u{c}",
    "  \n\t",
    "--c\n",
    "--c\r\n",
    "--\n",
    "-- a, 2 AS z\n",
    "/* c */",
    "/**/",
    "/*/ */",
    "/* -- */",
    "/* \n */",
    "/* ' */",
    "",
    "\u{a0}",
    "\u{2003}",
    "\u{3000}",
    "\u{feff}",
    "\u{2028}",
    "//c\n",
    "#c\n",
    "# c\n",
    "#!c\n",
    "/* /* */ */",
    "/* /* */",
    "--c\r",
    "\\",
    "$$",
];

/// Characters put inside quoted names and strings.
const INNER: &[&str] = &[
    "a",
    "Z",
    " ",
    "é",
    "✓",
    "''",
    "``",
    "\"\"",
    "'",
    "`",
    "\"",
    "\\x41",
    "\\x4g",
    "\\xZZ",
    "\\x4",
    "\\N",
    "\\n",
    "\\t",
    "\\\\",
    "\\'",
    "\\\"",
    "\\`",
    "\\/",
    "\\=",
    "\\0",
    "\\a",
    "\\b",
    "\\e",
    "\\f",
    "\\r",
    "\\v",
    "\\%",
    "\\_",
    "\\u0041",
    "\\é",
    "\\\t",
    "\\\n",
    "\\\u{1}",
    "\\\u{7f}",
    "\u{1}",
    "\t",
    "\n",
    "$",
    "{x:UInt8}",
    "--",
    "/*",
    "*/",
    "#",
    ";",
    ",",
];

/// Number literals, ClickHouse's kinds and the ones servers read apart.
const NUMBERS: &[&str] = &[
    "1", "0", "08", "1.5", "1.", "1e3", "1E-3", "1e+3", "1.e3", "1.5e3", "0x1F", "0X1f", "0x1p4",
    "0x1.8p1", "0b101", "1_000", "123abc", "1e", "0xg", "0x", ".5", "1.2.3", "1e3e",
];

/// The quoted forms of a name with `inner` inside; `n<i>` keeps every
/// name of a query distinct.
fn names(i: usize, inner: &str) -> Vec<String> {
    vec![
        format!("n{i}"),
        format!("`n{i}{inner}`"),
        format!("\"n{i}{inner}\""),
    ]
}

fn fixed_corpus() -> Vec<String> {
    let mut queries = Vec::new();
    for inner in INNER {
        for name in names(0, inner) {
            queries.push(format!("SELECT 1 AS {name}"));
        }
        queries.push(format!("SELECT hex('{inner}') AS h"));
        queries.push(format!("SELECT hex('x{inner}y') AS h, 2 AS n1"));
    }
    // A backslash before every byte, in a string and in a name.
    for byte in 1u8..0x80 {
        let c = char::from(byte);
        queries.push(format!("SELECT hex('a\\{c}b') AS h"));
        queries.push(format!("SELECT 1 AS `n\\{c}`"));
    }
    // Hex and binary strings: one token to current servers.
    for literal in ["X'41'", "x'4142'", "B'01000001'", "X'41''''", "X '41'"] {
        queries.push(format!("SELECT hex({literal}) AS h"));
    }
    for number in NUMBERS {
        queries.push(format!("SELECT {number} AS n"));
        queries.push(format!("SELECT {number}AS n"));
        queries.push(format!("SELECT 1 AS a, {number} AS n"));
    }
    for sep in SEPARATORS {
        queries.push(format!("SELECT 1 AS a{sep}, 2 AS b"));
        queries.push(format!("SELECT 1 AS a,{sep}2 AS b"));
        queries.push(format!("SELECT 1{sep}AS a"));
        queries.push(format!("SELECT{sep}1 AS a"));
        queries.push(format!("SELECT hex('x'){sep}AS h, 0x1F{sep}AS n"));
    }
    queries
}

/// A random query of the generated shape: one to four items, each a
/// string or number with a name, any separator between any two tokens.
fn random_query() -> impl Strategy<Value = String> {
    let sep = proptest::prop_oneof![
        3 => proptest::sample::select(vec![" ", "\n", "\t", " -- c\n", "/* c */"]),
        1 => proptest::sample::select(SEPARATORS.to_vec()),
    ];
    let inner = proptest::collection::vec(proptest::sample::select(INNER.to_vec()), 0..4);
    let value = proptest::prop_oneof![
        inner
            .clone()
            .prop_map(|parts| format!("hex('{}')", parts.concat())),
        proptest::sample::select(NUMBERS.to_vec()).prop_map(str::to_owned),
    ];
    let item = (value, sep.clone(), sep.clone(), 0usize..3, inner);
    (sep, proptest::collection::vec(item, 1..5)).prop_map(|(first, items)| {
        let mut sql = format!("SELECT{first}");
        for (i, (value, before, after, form, inner)) in items.into_iter().enumerate() {
            if i > 0 {
                sql.push_str(&format!("{before},{after}"));
            }
            let name = names(i, &inner.concat()).swap_remove(form);
            sql.push_str(&format!("{value}{before}AS{after}{name}"));
        }
        sql
    })
}

#[test]
fn the_lexer_reads_generated_sql_as_both_servers_do() {
    let clickhouse = ClickHouse::start();
    let mut queries = fixed_corpus();
    let fixed = queries.len();
    // Deterministic: the same cases every run, so a failure reproduces.
    let mut runner = TestRunner::deterministic();
    let strategy = random_query();
    for _ in 0..600 {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        queries.push(case);
    }
    let (accepted, failures) = disagreements(&clickhouse, &queries);
    assert!(
        failures.is_empty(),
        "{} disagreements among {} queries, e.g.:\n{}",
        failures.len(),
        queries.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The lexer must not pass by refusing everything.
    assert!(
        accepted * 4 >= queries.len(),
        "the lexer accepted only {accepted} of {} queries ({fixed} fixed)",
        queries.len()
    );
}

/// `(catalog, name)` for every name `target` lists.
fn catalogued(target: &str) -> Vec<(String, String)> {
    common::oracle::python("clickhouse/catalog/dump.py", target, String::new())
        .into_iter()
        .filter_map(|line| {
            let (catalog, name) = line.split_once('\t')?;
            Some((catalog.to_owned(), name.to_owned()))
        })
        .collect()
}

#[test]
fn every_name_the_servers_list_is_classified() {
    let clickhouse = ClickHouse::start();
    let known: HashSet<(&str, &str)> = wasmhouse_clickhouse::catalog::FILES
        .iter()
        .flat_map(|(catalog, text)| {
            text.lines()
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .filter_map(move |line| line.split('\t').next().map(|name| (*catalog, name)))
        })
        .collect();
    let mut missing = BTreeSet::new();
    for target in [format!("{}/", clickhouse.url()), "chdb".to_owned()] {
        let listed = catalogued(&target);
        assert!(
            listed.len() > 500,
            "{target} listed only {} names",
            listed.len()
        );
        for (catalog, name) in listed {
            if !known.contains(&(catalog.as_str(), name.as_str())) {
                missing.insert(format!("{catalog}\t{name} ({target})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "names the servers list that clickhouse/catalog/ does not classify:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_settings_the_host_sends_are_never_a_guests() {
    use wasmhouse_clickhouse::settings::is_host_setting;
    let policy = wasmhouse_clickhouse::QueryPolicy {
        max_result_rows: Some(1),
        max_result_bytes: Some(1),
        ..Default::default()
    };
    for (name, _) in policy.settings(Some(std::time::Duration::from_secs(1))) {
        assert!(is_host_setting(name), "{name} is not classified host");
    }
}
