//! Property tests for everything in this crate that parses guest- or
//! server-controlled text: parameter binding, ClickHouse's exception texts,
//! the statement allow-list and `CLICKHOUSE_URL`. Whatever the input, they
//! must answer (an error is an answer) and never panic, overflow the stack
//! or echo unbounded or secret text back.

use proptest::prelude::*;
use proptest::test_runner::Config;
use wasmhouse_clickhouse::Endpoint;
use wasmhouse_clickhouse::lexer;
use wasmhouse_clickhouse::params::{BindMode, bind};
use wasmhouse_clickhouse::response::{MAX_MESSAGE_BYTES, ServerException, find_trailing_exception};
use wasmhouse_clickhouse::statement::{self, StatementRules};

/// Longest error message binding may produce: a few quoted pieces of guest
/// text of about a hundred bytes each, escaped, and fixed wording.
const MAX_BIND_ERROR_BYTES: usize = 4096;

/// Enough cases to find edge cases, few enough for a few seconds unoptimised.
/// Failures are not persisted: no regression files appear in the source tree.
fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Pieces SQL is made of that matter to the placeholder scanner and lexers:
/// quotes, escapes, comment markers, braces, placeholders, multi-byte text.
fn sql_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<char>().prop_map(String::from),
        "[ -~]{1,8}",
        prop::sample::select(vec![
            "{",
            "}",
            "'",
            "\"",
            "`",
            "\\",
            "--",
            "/*",
            "*/",
            "\n",
            "\r",
            "\t",
            ":",
            "$",
            "$$",
            "#",
            "# ",
            "//",
            "(",
            ")",
            "[",
            "]",
            ",",
            "é",
            "✓",
            "𐍈",
            "\u{a0}",
            "\0",
            "SELECT ",
            "{a:String}",
            "{b:UInt8}",
            "{ a : Nullable(String) }",
            "{a:",
            "{a}",
            "{'a':1}",
            "{1:String}",
            "{b:Identifier}",
            "{a:Array(String)}",
            "{b:Array(Array(UInt8))}",
        ])
        .prop_map(str::to_owned),
    ]
}

fn sql_text() -> impl Strategy<Value = String> {
    prop::collection::vec(sql_piece(), 0..40).prop_map(|pieces| pieces.concat())
}

/// Values: arbitrary text, and text built from the pieces arrays, numbers,
/// dates and NULLs are made of.
fn value_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        "[0-9]{1,25}",
        prop::sample::select(vec![
            "[",
            "]",
            ",",
            " ",
            "'",
            "\"",
            "\\",
            "\\N",
            "NULL",
            "null",
            "-",
            "+",
            ".",
            "e",
            ":",
            "T",
            "2024-02-29",
            "23:59:58",
            "é",
            "✓",
            "𐍈",
            "\n",
            "inf",
            "nan",
            "true",
        ])
        .prop_map(str::to_owned),
    ];
    prop_oneof![
        any::<String>(),
        prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat()),
    ]
}

/// Text weighted towards the characters escaping is about: quotes,
/// backslashes, line breaks, NUL and multi-byte characters.
fn tricky_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        any::<char>(),
        prop::sample::select(vec![
            '\'', '\\', '\n', '\r', '\0', '\t', '"', '`', 'é', '𐍈', '[', ']', ','
        ])
    ];
    prop::collection::vec(c, 0..30).prop_map(String::from_iter)
}

/// A number as a type argument: small, at the edges, or absurdly large.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<u128>().prop_map(|n| n.to_string()),
        "[0-9]{20,80}",
        "-[0-9]{1,5}",
        prop::sample::select(vec![
            "", " ", "255", "256", "300", "1048576", "1048577", "x"
        ])
        .prop_map(str::to_owned),
    ]
}

/// Type texts: the supported types with arbitrary arguments, wrapped up to
/// thousands of levels deep, with balanced or unbalanced parentheses.
fn type_text() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        prop::sample::select(vec![
            "String",
            "UInt8",
            "Int8",
            "UInt64",
            "Int64",
            "Int128",
            "UInt256",
            "Float32",
            "Float64",
            "Bool",
            "Date",
            "Date32",
            "DateTime",
            "UUID",
            "Identifier",
            "Map(String, String)",
            "Tuple(String)",
            "",
            "(",
            ")",
        ])
        .prop_map(str::to_owned),
        (
            prop::sample::select(vec![
                "FixedString",
                "Decimal32",
                "Decimal64",
                "Decimal128",
                "Decimal256",
                "DateTime64",
            ]),
            number_text()
        )
            .prop_map(|(head, n)| format!("{head}({n})")),
        (number_text(), number_text()).prop_map(|(p, s)| format!("Decimal({p}, {s})")),
        (number_text(), "[ -~]{0,12}").prop_map(|(p, tz)| format!("DateTime64({p}, '{tz}')")),
        "[ -~]{0,12}".prop_map(|tz| format!("DateTime('{tz}')")),
        any::<String>(),
    ];
    let wrapper = prop::sample::select(vec!["Array(", "Nullable(", "LowCardinality(", "Array( "]);
    (
        prop::collection::vec(wrapper, 1..4),
        prop_oneof![0usize..20, 0usize..3000],
        base,
        -2isize..=2,
    )
        .prop_map(|(wrappers, depth, base, imbalance)| {
            let mut text = String::new();
            for level in 0..depth {
                text.push_str(wrappers[level % wrappers.len()]);
            }
            text.push_str(&base);
            let closing = depth.saturating_add_signed(imbalance);
            text.push_str(&")".repeat(closing));
            text
        })
}

/// The escaped text ClickHouse reads a quoted SQL string from, written
/// independently of the code under test.
fn sql_string_literal(value: &str) -> String {
    let mut out = String::from("'");
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\'' => out.push_str(r"\'"),
            '\0' => out.push_str(r"\0"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// ClickHouse's escaped text format for a top-level `param_` string.
fn param_text(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '\t' => out.push_str(r"\t"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\0' => out.push_str(r"\0"),
            c => out.push(c),
        }
    }
    out
}

/// Where a single-quoted literal starting at `start` ends, read the way
/// ClickHouse's lexer does (backslash escapes, doubled quotes).
fn literal_end(sql: &str, start: usize) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn one(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_owned(), value.to_owned())]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bind_never_panics_on_any_sql(
        sql in sql_text(),
        a in value_text(),
        b in value_text(),
        inline in any::<bool>(),
    ) {
        let mode = if inline { BindMode::Inline } else { BindMode::Server };
        for params in [vec![], one("a", &a), vec![("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())]] {
            match bind(&sql, &params, mode) {
                Ok(bound) if mode == BindMode::Server && !sql.contains("Identifier") => {
                    prop_assert_eq!(bound.sql, sql.clone());
                }
                Ok(_) => {}
                Err(err) => prop_assert!(err.to_string().len() <= MAX_BIND_ERROR_BYTES),
            }
        }
    }

    #[test]
    fn bind_never_panics_on_any_type(ty in type_text(), value in value_text(), inline in any::<bool>()) {
        let mode = if inline { BindMode::Inline } else { BindMode::Server };
        let sql = format!("SELECT {{p:{ty}}}");
        if let Err(err) = bind(&sql, &one("p", &value), mode) {
            prop_assert!(err.to_string().len() <= MAX_BIND_ERROR_BYTES, "{}", err);
        }
        let _ = wasmhouse_clickhouse::params::ParamType::parse(&ty);
    }

    #[test]
    fn string_values_round_trip_escaped(value in prop_oneof![tricky_text(), any::<String>()]) {
        let bound = bind("SELECT {s:String}", &one("s", &value), BindMode::Inline)
            .expect("any text is a String");
        let literal = sql_string_literal(&value);
        prop_assert_eq!(&bound.sql, &format!("SELECT CAST({literal} AS String)"));
        // Read back as ClickHouse would, the literal ends exactly where it should.
        let start = "SELECT CAST(".len();
        prop_assert_eq!(literal_end(&bound.sql, start), Some(start + literal.len()));
        prop_assert!(!bound.sql.contains('\n'));

        let bound = bind("SELECT {s:String}", &one("s", &value), BindMode::Server)
            .expect("any text is a String");
        prop_assert_eq!(bound.sql, "SELECT {s:String}");
        prop_assert_eq!(bound.url_params, vec![("param_s".to_owned(), param_text(&value))]);
    }

    #[test]
    fn string_values_land_where_their_placeholder_was(
        before in "[a-zA-Z0-9 ,()=+*<>.\n]{0,30}",
        after in "[a-zA-Z0-9 ,()=+*<>.\n]{0,30}",
        value in tricky_text(),
    ) {
        let sql = format!("{before}{{s:String}}{after}");
        if lexer::tokenize(&sql).is_err() {
            // Text ClickHouse versions read apart (`1a`): nothing is bound.
            prop_assert!(bind(&sql, &one("s", &value), BindMode::Inline).is_err());
            return Ok(());
        }
        let bound = bind(&sql, &one("s", &value), BindMode::Inline).expect("binds");
        let literal = sql_string_literal(&value);
        // A space where the literal would touch other text.
        let pad = |neighbour: Option<char>| match neighbour {
            Some(c) if !c.is_ascii_whitespace() && !"(),[]".contains(c) => " ",
            _ => "",
        };
        let (left, right) = (pad(before.chars().last()), pad(after.chars().next()));
        prop_assert_eq!(
            bound.sql,
            format!("{before}{left}CAST({literal} AS String){right}{after}")
        );
    }

    #[test]
    fn string_arrays_round_trip(items in prop::collection::vec(tricky_text(), 0..8)) {
        let value = format!(
            "[{}]",
            items
                .iter()
                .map(|item| format!("'{}'", item.replace('\\', r"\\").replace('\'', r"\'")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let bound = bind("SELECT {a:Array(String)}", &one("a", &value), BindMode::Inline)
            .expect("quoted strings make an array");
        let literals: Vec<String> = items.iter().map(|item| sql_string_literal(item)).collect();
        prop_assert_eq!(
            bound.sql,
            format!("SELECT CAST([{}] AS Array(String))", literals.join(", "))
        );
    }

    #[test]
    fn integers_are_checked_against_their_width(n in any::<i128>()) {
        let text = n.to_string();
        let bound = bind("SELECT {n:Int64}", &one("n", &text), BindMode::Inline);
        if i64::try_from(n).is_ok() {
            prop_assert_eq!(bound.expect("fits").sql, format!("SELECT CAST({n} AS Int64)"));
        } else {
            prop_assert!(bound.is_err());
        }
        let bound = bind("SELECT {n:UInt8}", &one("n", &text), BindMode::Server);
        if u8::try_from(n).is_ok() {
            prop_assert_eq!(bound.expect("fits").url_params, vec![("param_n".to_owned(), text)]);
        } else {
            prop_assert!(bound.is_err());
        }
    }

    #[test]
    fn floats_round_trip(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
        for text in [format!("{x:?}"), format!("{x}"), format!("{x:e}")] {
            let bound = bind("SELECT {f:Float64}", &one("f", &text), BindMode::Inline)
                .expect("a finite number");
            prop_assert_eq!(bound.sql, format!("SELECT CAST({x:?} AS Float64)"));
        }
    }

    #[test]
    fn dates_with_a_stray_character_never_panic(
        at in 0usize..30,
        stray in prop_oneof![
            any::<char>(),
            prop::sample::select(vec!['é', '✓', '𐍈', ' ', 'T', '.', ':', '-', '0']),
        ],
        replace in any::<bool>(),
        ty in prop::sample::select(vec!["DateTime", "DateTime64(6)", "DateTime64(9, 'UTC')", "Date", "Date32", "UUID"]),
    ) {
        let mut value = if ty == "UUID" {
            "61f0c404-5cb3-11e7-907b-a6006ad3dba0".to_owned()
        } else {
            "2024-02-29 23:59:58.123456".to_owned()
        };
        let at = (0..=at.min(value.len())).rev().find(|&i| value.is_char_boundary(i)).unwrap_or(0);
        if replace && at < value.len() {
            value.remove(at);
        }
        value.insert(at, stray);
        let sql = format!("SELECT {{t:{ty}}}");
        for mode in [BindMode::Inline, BindMode::Server] {
            if let Ok(bound) = bind(&sql, &one("t", &value), mode) {
                // Whatever is accepted is re-rendered from ASCII digits.
                let text = if mode == BindMode::Inline { bound.sql } else { bound.url_params[0].1.clone() };
                prop_assert!(text.is_ascii(), "{:?} became {:?}", value, text);
            }
        }
    }

    #[test]
    fn server_exceptions_parse_without_panicking(
        text in any::<String>(),
        code in "[0-9]{0,30}",
        separator in prop::sample::select(vec!["", ", ", ". ", ",.", "\n"]),
        long in 0usize..8000,
    ) {
        let padded = format!("{text}{}", "é".repeat(long / 2));
        for candidate in [
            text.clone(),
            format!("Code: {code}{separator}{text}"),
            format!("Code: {code}, e.displayText() = DB::Exception: {padded}, e.what() = DB::Exception"),
            format!(" Code: {code}. DB::Exception: {padded} (version {text}"),
        ] {
            if let Some(exception) = ServerException::parse(&candidate) {
                prop_assert!(exception.message.len() <= MAX_MESSAGE_BYTES);
                prop_assert!(exception.to_string().len() <= MAX_MESSAGE_BYTES + 20);
            }
        }
    }

    #[test]
    fn trailing_exceptions_are_found_without_panicking(
        rows in prop::collection::vec(any::<u8>(), 0..200),
        text in any::<String>(),
        code in "[0-9]{0,12}",
        lines in 0usize..20,
        long in 0usize..8000,
    ) {
        let mut tail = rows.clone();
        for _ in 0..lines {
            tail.extend_from_slice(format!("\nCode: {code} {text}").as_bytes());
        }
        tail.extend_from_slice(
            format!("\nCode: {code}. DB::Exception: {text}{}", "✓".repeat(long / 3)).as_bytes(),
        );
        tail.extend_from_slice(&rows);
        for bytes in [&rows[..], &tail[..]] {
            if let Some((at, exception)) = find_trailing_exception(bytes) {
                prop_assert!(bytes[at..].starts_with(b"Code: "));
                prop_assert!(exception.message.len() <= MAX_MESSAGE_BYTES);
            }
        }
    }

    #[test]
    fn canonical_text_reads_back_as_the_same_tokens(sql in sql_text()) {
        // The cache keys on the canonical text: two queries may share it
        // only if they are the same tokens.
        if let Ok(tokens) = lexer::tokenize(&sql) {
            let text = lexer::canonical(&tokens);
            let again = lexer::tokenize(&text).expect("canonical text lexes");
            let kinds = |tokens: &[lexer::Token<'_>]| {
                tokens.iter().map(|t| (t.kind, t.raw.to_owned())).collect::<Vec<_>>()
            };
            prop_assert_eq!(kinds(&tokens), kinds(&again), "{:?}", sql);
        }
    }

    #[test]
    fn statement_check_never_panics(sql in sql_text(), other in any::<String>()) {
        let rules = strict_rules();
        let _ = statement::check(&sql, &rules);
        let _ = statement::check(&other, &rules);
    }

    #[test]
    fn kill_query_is_refused_behind_any_prefix(
        prefix in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec![" ", "\t", "\n", "\r", "\u{a0}", "\u{3000}", "("])
                    .prop_map(str::to_owned),
                "[^\n]{0,12}".prop_map(|text| format!("--{text}\n")),
                any::<String>()
                    .prop_filter("no */ inside", |text| !text.contains("*/"))
                    .prop_map(|text| format!("/*{text}*/")),
            ],
            0..8,
        ),
        kill in prop::sample::select(vec!["KILL QUERY WHERE 1", "kill query where 1", "KiLl\tQUERY WHERE 1"]),
    ) {
        let sql = format!("{}{kill}", prefix.concat());
        prop_assert!(statement::check(&sql, &strict_rules()).is_err(), "{:?} was allowed", sql);
    }

    #[test]
    fn select_of_any_string_literal_is_allowed(text in "[^'\\\\]*") {
        let sql = format!("SELECT '{text}' AS x");
        prop_assert_eq!(
            statement::check(&sql, &strict_rules()),
            Ok(statement::StatementKind::Read),
            "{:?}", sql
        );
    }

    #[test]
    fn clickhouse_urls_never_panic(text in any::<String>(), ascii in "[ -~]{0,40}") {
        for candidate in [&text, &ascii] {
            let mut endpoint = Endpoint::default();
            let _ = endpoint.apply_url(candidate);
        }
    }

    #[test]
    fn url_errors_never_repeat_the_password(
        scheme in prop_oneof![
            prop::sample::select(vec!["http", "https", "HTTP", "ftp", "", "h ttp", "http:"])
                .prop_map(str::to_owned),
            "[a-z][a-z0-9+.-]{0,6}",
        ],
        user in prop::sample::select(vec!["u", "", "%FF", "a%40b", "ü"]),
        password in "[a-zA-Z0-9+%!~]{0,12}".prop_map(|tail| format!("SECRET{tail}")),
        host in prop_oneof![
            prop::sample::select(vec!["h", "", "[::1]", "[::1", "h:0", "h:99999", "h:port", "%", "é"])
                .prop_map(str::to_owned),
            "[a-z0-9.:%\\[\\]-]{0,12}",
        ],
        rest in prop_oneof![
            prop::sample::select(vec!["", "/", "/db", "/?readonly=0", "#frag", "/a%FF", "/a/b", " "])
                .prop_map(str::to_owned),
            "[ -~]{0,12}".prop_filter("no secret", |rest| !rest.contains("SECRET")),
        ],
    ) {
        let url = format!("{scheme}://{user}:{password}@{host}{rest}");
        let mut endpoint = Endpoint::default();
        match endpoint.apply_url(&url) {
            Err(err) => prop_assert!(!err.to_string().contains("SECRET"), "{:?}: {}", url, err),
            Ok(()) => {
                let shown = format!("{endpoint:?}");
                prop_assert!(!shown.contains("SECRET"), "{}", shown);
            }
        }
    }
}

fn strict_rules() -> StatementRules<'static> {
    StatementRules {
        writes: false,
        settings_clauses: false,
        allowed_settings: &[],
        allowed_functions: &[],
    }
}

/// Run `test` on a thread with a small stack: nesting must be refused long
/// before recursion could exhaust even that.
fn on_small_stack(test: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(test)
        .expect("spawns a thread")
        .join()
        .expect("finishes without panicking");
}

#[test]
fn hundred_thousand_nested_arrays_are_an_error_not_a_stack_overflow() {
    on_small_stack(|| {
        const DEPTH: usize = 100_000;
        for wrapper in ["Array(", "Nullable(", "LowCardinality("] {
            let ty = format!("{}String{}", wrapper.repeat(DEPTH), ")".repeat(DEPTH));
            assert!(wasmhouse_clickhouse::params::ParamType::parse(&ty).is_err());
            let sql = format!("SELECT {{a:{ty}}}");
            for mode in [BindMode::Inline, BindMode::Server] {
                let err = bind(&sql, &one("a", "[]"), mode).expect_err("too deep");
                assert!(err.to_string().len() <= MAX_BIND_ERROR_BYTES);
            }
        }
        let deep_value = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
        for ty in ["Array(String)", "Array(Array(Array(UInt8)))", "String"] {
            let sql = format!("SELECT {{a:{ty}}}");
            let result = bind(&sql, &one("a", &deep_value), BindMode::Inline);
            assert_eq!(result.is_ok(), ty == "String", "{ty}");
        }
    });
}
