//! How a real ClickHouse reads queries (`tests/sql_oracle.py`): ClickHouse
//! 26.9 in-process (chdb) or a server's HTTP interface.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// Run the repository's Python `script` with `arg`, feeding it `input`; its
/// stdout lines.
pub fn python(script: &str, arg: &str, input: String) -> Vec<String> {
    let mut child = Command::new("python3")
        .arg(repo_file(script))
        .arg(arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (./scripts/test installs chdb-core for it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("python output");
    writer.join().expect("writer").expect("writing to python");
    assert!(
        output.status.success(),
        "{script} {arg} failed; is chdb-core installed (pip install chdb-core)?"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How `target` (`chdb` or a server's URL) answers each query:
/// `{"names": [...], "data": [[...]]}` or `{"error": "…"}`.
pub fn answers(target: &str, queries: &[String]) -> Vec<Value> {
    let input: String = queries
        .iter()
        .map(|q| format!("{}\n", Value::String(q.clone())))
        .collect();
    let lines = python("tests/sql_oracle.py", target, input);
    assert_eq!(lines.len(), queries.len(), "{target} answered every query");
    lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("oracle JSON"))
        .collect()
}

/// An answer in one line: `OK <the first row, tab-separated>` or
/// `ERR <the error's first line>`.
pub fn summary(answer: &Value) -> String {
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        return format!("ERR {error}");
    }
    let row = answer["data"]
        .get(0)
        .and_then(Value::as_array)
        .map(|row| {
            row.iter()
                .map(|value| match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .unwrap_or_default();
    format!("OK {row}")
}
