//! The built-in routes' queries under the host's strict default, on current
//! ClickHouse. The other tests run Debian's 18.16 server; this one runs
//! ClickHouse 26.9 in-process through `chdb-core` (PyPI), which
//! `./scripts/test` installs, with exactly the settings the host sends.

mod common;

use std::path::Path;
use std::time::Duration;

use wasmhouse_clickhouse::QueryPolicy;
use wasmhouse_clickhouse::params::BindMode;

/// The queries of the built-in routes (`guest/src/lib.rs`).
/// The built-in guest's queries as it sends them, with the parameters it
/// binds (`guest/src/lib.rs`; the test below guards against drift).
const BUILTIN_QUERIES: &[(&str, &[(&str, &str)])] = &[
    ("SELECT 1 AS value", &[]),
    ("SELECT version() AS version", &[]),
    (
        "SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)",
        &[],
    ),
    (
        "SELECT sleep({delay:Float64}) AS slept",
        &[("delay", "0.1")],
    ),
    (
        "SELECT number FROM system.numbers LIMIT {n:UInt64}",
        &[("n", "1000")],
    ),
];

/// Run each query through chdb with `settings`; one line per query:
/// `OK <first row of the result>` or `ERR <first line of the error>`.
fn run_on_chdb(queries: &[String], settings: &str) -> Vec<String> {
    let queries: Vec<String> = queries
        .iter()
        .map(|query| match settings {
            "" => query.clone(),
            settings => format!("{query} SETTINGS {settings}"),
        })
        .collect();
    common::oracle::answers("chdb", &queries)
        .iter()
        .map(common::oracle::summary)
        .collect()
}

/// The settings the host sends with a guest query of a default route, as a
/// `SETTINGS` clause.
fn host_settings() -> String {
    QueryPolicy::default()
        .settings(Some(Duration::from_secs(30)))
        .into_iter()
        .map(|(name, value)| {
            if value.bytes().all(|b| b.is_ascii_digit()) {
                format!("{name} = {value}")
            } else {
                format!("{name} = '{value}'")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn builtin_queries_pass_the_strict_default_on_current_clickhouse() {
    let guest = include_str!("../guest/src/lib.rs");
    let policy = QueryPolicy::default();
    let mut queries = Vec::new();
    for (sql, params) in BUILTIN_QUERIES {
        // Guard against drift: the list above is the guest's.
        assert!(
            guest.contains(sql),
            "guest/src/lib.rs no longer has {sql:?}"
        );
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        // What the host sends for it: bound (as for a server that takes no
        // parameters beside the SQL) and checked again.
        let (_, prepared) = policy
            .check(sql, &params, &[], BindMode::Inline)
            .unwrap_or_else(|err| panic!("the host refuses {sql:?}: {err}"));
        queries.push(prepared.sql);
    }
    let settings = host_settings();
    assert!(settings.contains("readonly = 1"), "{settings}");
    let results = run_on_chdb(&queries, &settings);
    assert_eq!(results.len(), queries.len(), "{results:?}");
    for (query, result) in queries.iter().zip(&results) {
        assert!(
            result.starts_with("OK"),
            "{query:?} on current ClickHouse: {result}"
        );
    }
    assert_eq!(results[2], "OK 10000000\t49999995000000");
}

#[test]
fn what_current_clickhouse_allows_at_readonly_1_the_host_still_refuses() {
    // Current servers run these at readonly = 1; the host must stop them.
    let queries = vec![
        "SELECT file('/etc/hostname')".to_owned(),
        "KILL QUERY WHERE query_id = 'someone-else' ASYNC".to_owned(),
        "SELECT query_id FROM system.processes".to_owned(),
    ];
    let results = run_on_chdb(&queries, "readonly = 1");
    // `file()` is a scalar function there and reads the server's files
    // (here: fails to find one, or reads it); KILL and system.processes run.
    assert!(
        !results[0].contains("readonly mode"),
        "current ClickHouse now refuses file() itself: {}",
        results[0]
    );
    assert!(results[1].starts_with("OK"), "{}", results[1]);
    assert!(results[2].starts_with("OK"), "{}", results[2]);
    let policy = QueryPolicy::default();
    for query in &queries {
        assert!(
            policy.admit(query, &[], &[]).is_err(),
            "the host lets {query:?} through"
        );
    }
}

/// The red team's second round, on current ClickHouse: each query runs there
/// (so only the host stands in its way), and the host refuses it.
#[test]
fn what_current_clickhouse_runs_the_host_refuses() {
    use wasmhouse_clickhouse::ReadOnly;
    // At readonly = 1 (a strict route), ClickHouse still runs these: they
    // name a function without calling it, as a higher-order function's or
    // a column transformer's argument.
    let strict = vec![
        "SELECT arrayMap(file, ['/etc/hostname']) AS leaked".to_owned(),
        "SELECT * APPLY(file) FROM (SELECT '/etc/hostname' AS p)".to_owned(),
    ];
    let results = run_on_chdb(&strict, "readonly = 1");
    for (query, result) in strict.iter().zip(&results) {
        assert!(
            result.starts_with("OK"),
            "current ClickHouse refuses {query:?} itself now: {result}"
        );
    }
    // On a relaxed route (readonly = 2): a setting named like a keyword
    // opened the clause, and a hex string hid the next setting.
    let relaxed = vec![
        "SELECT getSetting('max_threads') SETTINGS readonly = 2, limit = 0, max_threads = 64"
            .to_owned(),
        "SELECT getSetting('max_threads') SETTINGS readonly = 2, output_format_json_quote_denormals = X'31', max_threads = 65"
            .to_owned(),
    ];
    let results = run_on_chdb(&relaxed, "");
    assert_eq!(results[0], "OK 64", "{results:?}");
    assert_eq!(results[1], "OK 65", "{results:?}");
    for (queries, policy) in [
        (&strict, QueryPolicy::default()),
        (
            &relaxed,
            QueryPolicy {
                readonly: ReadOnly::Relaxed,
                ..QueryPolicy::default()
            },
        ),
    ] {
        for query in queries {
            assert!(
                policy.admit(query, &[], &[]).is_err(),
                "the host lets {query:?} through"
            );
        }
    }
}

/// The example SQL routes (`examples/sql-routes/queries`) as the host sends
/// them, each parameter at its sample value (its default, or a value of its
/// type): both the query and the `DESCRIBE (…)` the host checks a saved file
/// with run on current ClickHouse at the strict default.
#[test]
fn the_example_sql_routes_run_on_current_clickhouse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sql-routes/queries");
    let policy = QueryPolicy::default();
    let mut queries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/sql-routes/queries")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for file in &files {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file name");
        let text = std::fs::read_to_string(file).expect("read the .sql file");
        let route = wasmhouse_sql_route::SqlRoute::parse(name, &text)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let (describe, samples) = route.describe_query();
        for sql in [route.sql.as_str(), describe.as_str()] {
            let (_, prepared) = policy
                .check(sql, &samples, &[], BindMode::Inline)
                .unwrap_or_else(|err| panic!("the host refuses {name}.sql: {err}"));
            queries.push((name.to_owned(), prepared.sql));
        }
    }
    let sql: Vec<String> = queries.iter().map(|(_, sql)| sql.clone()).collect();
    let results = run_on_chdb(&sql, &host_settings());
    assert_eq!(results.len(), queries.len(), "{results:?}");
    for ((name, query), result) in queries.iter().zip(&results) {
        assert!(
            result.starts_with("OK"),
            "{name}.sql on current ClickHouse: {query:?}: {result}"
        );
    }
}
