//! The same route component elsewhere: composed with the adapter, the seed
//! guest runs on `jco serve` (Node.js) and answers like it does on the host;
//! and the same routes written in JavaScript pass the same tests on the host.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ClickHouse, Wasmhouse, get, guests};

/// `jco serve` from the npm packages `scripts/test` installs.
fn jco() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let jco = root.join("tests/portability/node_modules/.bin/jco");
    assert!(
        jco.exists(),
        "{} is missing: run `npm ci --prefix tests/portability` (./scripts/test does)",
        jco.display()
    );
    jco
}

/// The major version of the `node` on PATH.
fn node_major_version() -> u32 {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .expect("node on PATH");
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("node --version printed {version:?}"))
}

/// A `jco serve` process serving `component`, killed when dropped.
struct JcoServe {
    child: Child,
    port: u16,
}

impl JcoServe {
    fn start(component: &Path, environment: &[(&str, String)]) -> Self {
        let port = common::clickhouse::free_port();
        let mut command = Command::new(jco());
        command
            .arg("serve")
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg(component)
            // jco hands its whole environment to the guest: keep it to what
            // the test means to pass.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // jco runs the server in a child `node` process that outlives it:
        // give them a process group of their own and stop the whole group.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        // Python components use extended constant expressions, which V8
        // enables by default from Node.js 22; before, jco's server process
        // needs the flag (JCO_RUN_ARGS are its node arguments).
        if node_major_version() < 22 {
            command.env("JCO_RUN_ARGS", "--experimental-wasm-extended-const");
        }
        for (key, value) in environment {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawning jco serve");
        let server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(180);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "jco serve did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for JcoServe {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wasmhouse compose` of the built-in seed routes.
fn composed_seed(dir: &Path) -> PathBuf {
    composed(dir, None)
}

/// `wasmhouse compose [GUEST]`: `guest` (the built-in routes when none)
/// with the adapter plugged in.
fn composed(dir: &Path, guest: Option<&Path>) -> PathBuf {
    let output = dir.join("seed.wasm");
    let status = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .arg("compose")
        .args(guest)
        .arg("-o")
        .arg(&output)
        .status()
        .expect("running wasmhouse compose");
    assert!(status.success(), "wasmhouse compose failed");
    output
}

#[test]
fn composed_component_imports_only_standard_wasi() {
    let dir = tempfile::tempdir().expect("temp dir");
    let composed = std::fs::read(composed_seed(dir.path())).expect("composed component");
    let imports = wasmhouse::compose::imports(&composed).expect("parse imports");
    assert!(!imports.is_empty());
    for import in &imports {
        assert!(import.starts_with("wasi:"), "non-WASI import {import}");
    }
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@"))
    );
    assert!(!imports.iter().any(|i| i.starts_with("wasmhouse:")));
}

#[test]
fn compose_explains_a_component_without_the_query_import() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .arg("compose")
        .arg(guests::empty())
        .args(["-o", "/dev/null"])
        .output()
        .expect("running wasmhouse compose");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not import wasmhouse:clickhouse/query"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_routes_pass_on_jco_serve() {
    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let component = composed_seed(dir.path());
    let jco = JcoServe::start(&component, &[("CLICKHOUSE_URL", clickhouse.url())]);
    let base = jco.url("");
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;

    // The same answers as the host gives, timings aside.
    let host = Wasmhouse::start(&clickhouse);
    for path in [
        "/health",
        "/clickhouse-status",
        "/concurrent/heavy-query",
        "/stream/numbers?n=500",
        "/nope",
    ] {
        let (on_jco, on_host) = (get(&jco.url(path)).await, get(&host.url(path)).await);
        assert_eq!(on_jco.status, on_host.status, "{path}");
        let strip = |mut json: serde_json::Value| {
            if let Some(object) = json.as_object_mut() {
                object.remove("elapsed_ms");
            }
            json
        };
        if on_host.json.is_null() {
            assert_eq!(on_jco.text, on_host.text, "{path}");
        } else {
            assert_eq!(strip(on_jco.json), strip(on_host.json), "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jco_serve_with_clickhouse_down_or_unconfigured_answers_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let component = composed_seed(dir.path());
    let dead = format!("http://127.0.0.1:{}", common::clickhouse::free_port());
    let down = JcoServe::start(&component, &[("CLICKHOUSE_URL", dead)]);
    common::seed::assert_clickhouse_down(&down.url("")).await;

    let unconfigured = JcoServe::start(&component, &[]);
    let status = get(&unconfigured.url("/clickhouse-status")).await;
    assert_eq!(status.status, 503, "{}", status.text);
    assert!(
        status.json["error"]
            .as_str()
            .is_some_and(|e| e.contains("CLICKHOUSE_URL")),
        "{}",
        status.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn javascript_seed_guest_passes_the_route_tests_on_the_host() {
    let mut clickhouse = ClickHouse::start();
    let guest = guests::javascript_seed();
    let host = common::HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .start();
    let base = host.url("");
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;
    common::seed::assert_router(&base).await;
    let isolation = get(&host.url("/concurrent/test-isolation?delay=0")).await;
    assert_eq!(isolation.json["instance_requests"], 1, "{}", isolation.text);
    clickhouse.stop();
    common::seed::assert_clickhouse_down(&base).await;
}

/// The seed routes in Python, composed with the adapter, on `jco serve`:
/// the same route tests, and the same answers as on the host.
#[tokio::test(flavor = "multi_thread")]
async fn python_seed_routes_pass_on_jco_serve() {
    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let component = composed(dir.path(), Some(&guests::python_seed()));
    let jco = JcoServe::start(&component, &[("CLICKHOUSE_URL", clickhouse.url())]);
    let base = jco.url("");
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;
}

/// `wasmtime serve` 48: Wasmtime's own command line, its `serve` command
/// linked into this test (the `wasmtime-cli` crate) rather than installed.
#[tokio::test(flavor = "multi_thread")]
async fn seed_routes_pass_on_wasmtime_serve() {
    for guest in [None, Some(guests::python_seed())] {
        seed_routes_on_wasmtime_serve(guest.as_deref()).await;
    }
}

/// The route tests against `wasmtime serve` of `guest` (the built-in routes
/// when none) composed with the adapter.
async fn seed_routes_on_wasmtime_serve(guest: Option<&Path>) {
    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let component = composed(dir.path(), guest);
    let mut serve = WasmtimeServe::start(&component, &[("CLICKHOUSE_URL", clickhouse.url())]);
    // It compiles the component first: the Python one (18 MB) takes
    // tens of seconds on a busy machine.
    let deadline = Instant::now() + Duration::from_secs(240);
    while std::net::TcpStream::connect(("127.0.0.1", serve.port)).is_err() {
        serve.assert_running();
        assert!(Instant::now() < deadline, "wasmtime serve did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = format!("http://127.0.0.1:{}", serve.port);
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;
}

/// `wasmtime serve -S cli` of a component on a thread of its own, with the
/// command line's own argument parsing; shut down (its `--shutdown-addr`)
/// and joined when dropped.
struct WasmtimeServe {
    port: u16,
    shutdown_port: u16,
    thread: Option<std::thread::JoinHandle<wasmtime::Result<()>>>,
}

impl WasmtimeServe {
    fn start(component: &Path, env: &[(&str, String)]) -> Self {
        use clap::Parser as _;
        let port = common::clickhouse::free_port();
        let shutdown_port = common::clickhouse::free_port();
        let mut args = vec![
            "serve".to_owned(),
            "-S".to_owned(),
            "cli".to_owned(),
            "--addr".to_owned(),
            format!("127.0.0.1:{port}"),
            "--shutdown-addr".to_owned(),
            format!("127.0.0.1:{shutdown_port}"),
        ];
        // wasmtime gives the guest only the variables named with --env.
        for (name, value) in env {
            args.extend(["--env".to_owned(), format!("{name}={value}")]);
        }
        args.push(component.display().to_string());
        let command = wasmtime_cli::commands::ServeCommand::try_parse_from(&args)
            .unwrap_or_else(|err| panic!("wasmtime serve {args:?}: {err}"));
        let thread = std::thread::spawn(move || command.execute());
        Self {
            port,
            shutdown_port,
            thread: Some(thread),
        }
    }
}

impl WasmtimeServe {
    /// Panic with its error if the command has stopped.
    fn assert_running(&mut self) {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            let thread = self.thread.take().expect("the serve thread");
            match thread.join() {
                Ok(Ok(())) => panic!("wasmtime serve stopped before it listened"),
                Ok(Err(err)) => panic!("wasmtime serve failed: {err:?}"),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

impl Drop for WasmtimeServe {
    fn drop(&mut self) {
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.shutdown_port));
        if let Some(thread) = self.thread.take()
            && !std::thread::panicking()
        {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => panic!("wasmtime serve failed: {err:?}"),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }
}

/// A SQL route on the host (manifest `sql = …`) and the same file served by
/// the built-in SQL component composed for `jco serve`, which reads it from
/// `WASMHOUSE_CONFIG_SQL` through the adapter's `wasi:config/store`.
#[tokio::test(flavor = "multi_thread")]
async fn a_sql_route_answers_alike_on_the_host_and_on_jco_serve() {
    const NUMBERS: &str = "\
-- Numbers from `from`.
-- @param n max=1000
-- @param from description=\"The first number\"
SELECT number, toString(number) AS text FROM system.numbers
WHERE number >= {from:UInt64}
LIMIT {n:UInt32}
";
    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("numbers.sql"), NUMBERS).expect("numbers.sql");
    let manifest = dir.path().join("wasmhouse.toml");
    std::fs::write(
        &manifest,
        "[[route]]\nname = \"numbers\"\nprefix = \"/\"\nsql = \"numbers.sql\"\n",
    )
    .expect("manifest");
    let host = common::HostBuilder::new(&clickhouse)
        .args(&["--manifest", manifest.to_str().expect("UTF-8 path")])
        .start();

    let component = dir.path().join("sql.wasm");
    let status = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args(["compose", "--sql", "-o"])
        .arg(&component)
        .status()
        .expect("running wasmhouse compose --sql");
    assert!(status.success(), "wasmhouse compose --sql failed");
    let jco = JcoServe::start(
        &component,
        &[
            ("CLICKHOUSE_URL", clickhouse.url()),
            ("WASMHOUSE_CONFIG_SQL", NUMBERS.to_owned()),
            ("WASMHOUSE_CONFIG_NAME", "numbers".to_owned()),
        ],
    );

    let first = get(&host.url("/numbers?n=3&from=5")).await;
    assert_eq!(
        first.json,
        serde_json::json!([
            { "number": 5, "text": "5" },
            { "number": 6, "text": "6" },
            { "number": 7, "text": "7" }
        ]),
        "{}",
        first.text
    );
    for path in [
        "/numbers?n=3&from=5",
        "/numbers?n=2&from=1&format=ndjson",
        "/numbers?n=2&from=1&format=csv",
        "/numbers?n=1001&from=1",
        "/numbers?n=2",
        "/numbers?n=2&from=1&form=3",
    ] {
        let (on_jco, on_host) = (get(&jco.url(path)).await, get(&host.url(path)).await);
        assert_eq!(on_jco.status, on_host.status, "{path}: {}", on_jco.text);
        assert_eq!(on_jco.text, on_host.text, "{path}");
    }
    // The same description: the component's own on jco, merged into the
    // host's /openapi.json.
    let (on_jco, on_host) = (
        get(&jco.url("/.well-known/openapi.json")).await,
        get(&host.url("/openapi.json")).await,
    );
    assert_eq!(on_jco.status, 200, "{}", on_jco.text);
    let (jco_get, host_get) = (
        &on_jco.json["paths"]["/numbers"]["get"],
        &on_host.json["paths"]["/numbers"]["get"],
    );
    assert_eq!(
        jco_get["parameters"], host_get["parameters"],
        "{}",
        on_host.text
    );
    let rows = "/responses/200/content/application~1json/schema/items/properties";
    assert_eq!(jco_get.pointer(rows), host_get.pointer(rows));
    assert_eq!(
        jco_get.pointer(&format!("{rows}/number/type")),
        Some(&serde_json::json!("integer"))
    );
}
