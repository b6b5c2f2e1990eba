//! The built-in routes' queries under the host's strict default, on current
//! ClickHouse. The other tests run Debian's 18.16 server; this one runs
//! ClickHouse 26.9 in-process through `chdb-core` (PyPI), which
//! `./scripts/test` installs, with exactly the settings the host sends.

mod common;

use std::time::Duration;

use wasmhouse_clickhouse::QueryPolicy;

/// The queries of the built-in routes (`guest/src/lib.rs`).
const BUILTIN_QUERIES: &[&str] = &[
    "SELECT 1 AS value",
    "SELECT version() AS version",
    "SELECT count() AS c, sum(number) AS s FROM (SELECT number FROM system.numbers LIMIT 10000000)",
    "SELECT sleep(0.1) AS slept",
    "SELECT number FROM system.numbers LIMIT 1000",
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
    // Guard against drift: the list above is the guest's.
    for query in [
        "SELECT 1 AS value",
        "FROM system.numbers LIMIT 10000000",
        "FROM system.numbers LIMIT {n}",
    ] {
        assert!(
            guest.contains(query),
            "guest/src/lib.rs no longer has {query:?}"
        );
    }
    let policy = QueryPolicy::default();
    let queries: Vec<String> = BUILTIN_QUERIES.iter().map(|q| (*q).to_owned()).collect();
    for query in &queries {
        policy
            .admit(query, &[], &[])
            .unwrap_or_else(|err| panic!("the host refuses {query:?}: {err}"));
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
