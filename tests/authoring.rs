//! Writing routes as a new user does: `wasmhouse new` into a directory
//! outside this repository, the project's own tests, `wasmhouse build`, the
//! component served at `/` and under a prefix against a real ClickHouse
//! (200, 404, 405, 422, percent-decoded path parameters, the generated
//! OpenAPI), "Try it" with a path parameter in a real Chromium, and
//! `wasmhouse dev` (its own local ClickHouse, an edit swapped in, a broken
//! edit survived).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{ClickHouse, HostBuilder, Wasmhouse, get};
use serde_json::{Value, json};

/// `wasmhouse ARGS` in `dir`, to completion.
fn wasmhouse(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running wasmhouse");
    assert!(
        output.status.success(),
        "wasmhouse {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `wasmhouse new NAME --lang LANG` in a fresh temporary directory (under
/// the system's, outside the repository); the project's directory.
fn new_project(lang: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::Builder::new()
        .prefix("wasmhouse-new-")
        .tempdir()
        .expect("temporary directory");
    assert!(
        !parent
            .path()
            .starts_with(env!("CARGO_MANIFEST_DIR").trim_end_matches("/host")),
        "the project must be outside the repository"
    );
    let said = wasmhouse(parent.path(), &["new", name, "--lang", lang]);
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    assert!(said.contains("wasmhouse dev"), "what to do next: {said}");
    let dir = parent.path().join(name);
    assert!(dir.join("wasmhouse.toml").is_file());
    (parent, dir)
}

/// `wasmhouse build` in `dir`: the component, from the last line it printed.
fn build(dir: &Path) -> PathBuf {
    let output = wasmhouse(dir, &["build"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("a line of output");
    let component = PathBuf::from(last.trim());
    assert!(
        component.is_file(),
        "{} is not the component",
        component.display()
    );
    assert_eq!(component.extension().and_then(|e| e.to_str()), Some("wasm"));
    component
}

/// A command run in `dir` that must succeed: the project's own tests.
fn run(dir: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap_or_else(|err| panic!("running {program}: {err}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Serve `component` at `/` and at `/api` against `clickhouse`.
fn serve_twice(clickhouse: &ClickHouse, component: &Path, dir: &Path) -> Wasmhouse {
    let manifest = dir.join("mounted.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[route]]\nname = \"api\"\nprefix = \"/api\"\ncomponent = \"{0}\"\n\n\
             [[route]]\nname = \"root\"\nprefix = \"/\"\ncomponent = \"{0}\"\n",
            component.display()
        ),
    )
    .expect("writing the manifest");
    HostBuilder::new(clickhouse)
        .args(&[
            "--manifest",
            manifest.to_str().expect("UTF-8"),
            "--access-log",
        ])
        .start()
}

/// What both templates answer, at `/` and under `/api`.
async fn assert_template_routes(host: &Wasmhouse) {
    for prefix in ["", "/api"] {
        let page = get(&host.url(&format!("{prefix}/numbers?limit=3&offset=4"))).await;
        assert_eq!(page.status, 200, "{prefix}: {}", page.text);
        assert_eq!(
            page.json,
            json!([
                { "number": 4, "square": 16 },
                { "number": 5, "square": 25 },
                { "number": 6, "square": 36 }
            ]),
            "{prefix}"
        );
        let default = get(&host.url(&format!("{prefix}/numbers"))).await;
        assert_eq!(
            default.json.as_array().map(Vec::len),
            Some(10),
            "{}",
            default.text
        );

        let hello = get(&host.url(&format!("{prefix}/hello/J%C3%BCrgen%20K"))).await;
        assert_eq!(hello.status, 200, "{}", hello.text);
        assert_eq!(
            hello.json["greeting"], "Hello, Jürgen K!",
            "percent-decoded"
        );
        // A value that would be SQL if it were not data.
        let quote = get(&host.url(&format!("{prefix}/hello/O'Brien%27%29%3B--"))).await;
        assert_eq!(
            quote.json["greeting"], "Hello, O'Brien');--!",
            "{}",
            quote.text
        );

        let bad = get(&host.url(&format!("{prefix}/numbers?limit=0"))).await;
        assert_eq!(bad.status, 422, "{}", bad.text);
        assert_eq!(bad.json["kind"], "invalid_parameter");
        assert_eq!(bad.json["parameter"], "limit");
        assert_eq!(bad.json["rule"], "must be at least 1");
        let not_a_number = get(&host.url(&format!("{prefix}/numbers?offset=many"))).await;
        assert_eq!(not_a_number.status, 422, "{}", not_a_number.text);
        assert_eq!(not_a_number.json["parameter"], "offset");

        let missing = get(&host.url(&format!("{prefix}/no/such/route"))).await;
        assert_eq!(missing.status, 404, "{}", missing.text);
        assert_eq!(missing.json["kind"], "not_found");
        let post =
            common::send(common::client().post(host.url(&format!("{prefix}/numbers")))).await;
        assert_eq!(post.status, 405, "{}", post.text);
        assert_eq!(
            post.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("GET, HEAD")
        );
    }

    let doc = get(&host.url("/openapi.json")).await.json;
    for prefix in ["", "/api"] {
        let numbers = &doc["paths"][format!("{prefix}/numbers")]["get"];
        let limit = &numbers["parameters"][0];
        assert_eq!(limit["name"], "limit", "{doc}");
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["schema"]["type"], "integer");
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], 1000);
        assert_eq!(limit["schema"]["default"], 10);
        assert_eq!(
            numbers["responses"]["422"]["$ref"],
            "#/components/responses/InvalidParameter"
        );
        let name = &doc["paths"][format!("{prefix}/hello/{{name}}")]["get"]["parameters"][0];
        assert_eq!(name["in"], "path", "{doc}");
        assert_eq!(name["required"], true);
    }
    // Every request left one access-log line with its request id.
    host.wait_for_log("wasmhouse::access", Duration::from_secs(5))
        .await;
    assert!(
        host.log()
            .contains("path=/api/hello/J%C3%BCrgen%20K status=200"),
        "{}",
        host.log()
    );
}

/// "Try it" on `/api/hello/{name}` in Chromium: the path parameter is
/// filled in and the answer shown.
fn try_path_parameter_in_a_browser(docs: String) {
    let Some(executable) = Browser::executable() else {
        // scripts/test installs Debian's chromium; elsewhere this is optional.
        eprintln!("skipped: no chromium on the PATH (apt-get install chromium)");
        return;
    };
    let mut browser = Browser::launch(&executable);
    browser.call("Page.navigate", json!({ "url": docs }));
    let ready = browser.wait_for(
        "document.getElementById('status') && document.getElementById('status').dataset.ready || ''",
        |value| value != "",
    );
    assert_eq!(ready, "true", "the page did not load the API description");
    let section = "section.operation[data-path='/api/hello/{name}']";
    // Without the parameter, the page says what is missing and calls nothing.
    browser.evaluate(&format!(
        "document.querySelector(\"{section} button.try\").click()"
    ));
    let refused = browser.wait_for(
        &format!("(document.querySelector(\"{section} .answer\") || {{}}).textContent || ''"),
        |value| value.as_str().is_some_and(|t| t.contains("Fill in")),
    );
    assert!(
        refused.as_str().is_some_and(|t| t.contains("name")),
        "{refused}"
    );
    browser.evaluate(&format!(
        "document.querySelector(\"{section} input[name='name']\").value = 'Jürgen K/1'"
    ));
    browser.evaluate(&format!(
        "document.querySelector(\"{section} button.try\").click()"
    ));
    let status = browser.wait_for(
        &format!(
            "(document.querySelector(\"{section} .answer .status\") || {{}}).dataset?.status || ''"
        ),
        |value| value != "",
    );
    assert_eq!(status, "200");
    let body = browser.evaluate(&format!(
        "document.querySelector(\"{section} .answer pre\").textContent"
    ));
    let body: Value = serde_json::from_str(body.as_str().expect("text")).expect("JSON answer");
    assert_eq!(body, json!({ "greeting": "Hello, Jürgen K/1!" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_rust_project_builds_outside_the_repository_and_serves_typed_routes() {
    let (_parent, dir) = new_project("rust", "events-api");
    // The project's own tests, natively.
    run(&dir, "cargo", &["test", "--quiet"]);
    let component = build(&dir);
    assert!(component.ends_with("target/wasm32-wasip2/release/events_api.wasm"));

    let clickhouse = ClickHouse::start();
    let host = serve_twice(&clickhouse, &component, &dir);
    assert_template_routes(&host).await;
    let docs = host.url("/docs");
    tokio::task::spawn_blocking(move || try_path_parameter_in_a_browser(docs))
        .await
        .expect("browser session");
    drop(host);

    // `wasmhouse dev`: no ClickHouse configured, so it starts its own.
    let clickhouse_port = common::clickhouse::free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
    command
        .current_dir(&dir)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("WASMHOUSE_DEV_CLICKHOUSE_PORT", clickhouse_port.to_string())
        .env_remove("CARGO_TARGET_DIR");
    for name in [
        "CLICKHOUSE_URL",
        "CLICKHOUSE_HOST",
        "CLICKHOUSE_PORT",
        "WASMHOUSE_MANIFEST",
        "WASMHOUSE_COMPONENT",
    ] {
        command.env_remove(name);
    }
    let mut dev = HostBuilder::from_command(command).start();
    let hello = get(&dev.url("/hello/dev")).await;
    assert_eq!(hello.json["greeting"], "Hello, dev!", "{}", hello.text);
    assert!(
        dev.log().contains("starting a local ClickHouse"),
        "{}",
        dev.log()
    );

    edit_then_break(&mut dev, &dir.join("src/lib.rs"), "\nfn broken( {\n").await;
    // Its ClickHouse went with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", clickhouse_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the local ClickHouse outlived wasmhouse dev"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Under `wasmhouse dev`: an edit of the greeting in `source` is built and
/// swapped in while the old version serves; then `broken` appended fails
/// the build and the last good version keeps serving; then dev stops
/// cleanly on SIGTERM.
async fn edit_then_break(dev: &mut Wasmhouse, source: &Path, broken: &str) {
    let original = std::fs::read_to_string(source).expect("the template's routes");
    assert!(original.contains("concat('Hello, '"));
    std::fs::write(
        source,
        original.replace("concat('Hello, '", "concat('Hi, '"),
    )
    .expect("edit");
    let swapped = wait_for_greeting(dev, "Hi, dev!").await;
    eprintln!(
        "an edit of {} was live {swapped:?} after the save",
        source.display()
    );

    std::fs::write(source, format!("{original}{broken}")).expect("break");
    dev.wait_for_log(
        "the last version that built keeps serving",
        Duration::from_secs(300),
    )
    .await;
    let still = get(&dev.url("/hello/dev")).await;
    assert_eq!(still.json["greeting"], "Hi, dev!", "{}", still.text);

    dev.signal("TERM");
    assert_eq!(
        dev.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        dev.log()
    );
}

/// Poll `/hello/dev` until it greets with `greeting`; how long that took.
async fn wait_for_greeting(dev: &Wasmhouse, greeting: &str) -> Duration {
    let started = Instant::now();
    loop {
        let reply = get(&dev.url("/hello/dev")).await;
        if reply.json["greeting"] == greeting {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the edit was never served; last answer {}; log:\n{}",
            reply.text,
            dev.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_javascript_project_builds_and_serves_typed_routes() {
    let (_parent, dir) = new_project("js", "events-js");
    let component = build(&dir);
    assert!(component.ends_with("dist/events-js.wasm"));
    // The project's own tests, in Node (npm install ran in the build).
    run(&dir, "npm", &["test", "--silent"]);

    let clickhouse = ClickHouse::start();
    let host = serve_twice(&clickhouse, &component, &dir);
    assert_template_routes(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_python_project_builds_serves_typed_routes_and_reloads_in_dev() {
    let (_parent, dir) = new_project("python", "events-py");
    // The project's own tests, under the machine's Python: discovered from
    // the project's directory, as its README says to run them.
    let tested = Command::new("python3")
        .current_dir(&dir)
        .args(["-m", "unittest"])
        .output()
        .expect("running python3");
    let said = String::from_utf8_lossy(&tested.stderr);
    assert!(tested.status.success(), "{said}");
    assert!(said.contains("Ran 3 tests"), "{said}");
    let component = build(&dir);
    assert!(component.ends_with("dist/events-py.wasm"));

    let clickhouse = ClickHouse::start();
    let host = serve_twice(&clickhouse, &component, &dir);
    assert_template_routes(&host).await;
    drop(host);

    // `wasmhouse dev` against that ClickHouse: an edit is rebuilt and
    // swapped in, a broken one leaves the last good version serving.
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
    command
        .current_dir(&dir)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("CLICKHOUSE_URL", clickhouse.url())
        .env_remove("CARGO_TARGET_DIR");
    let mut dev = HostBuilder::from_command(command).start();
    let hello = get(&dev.url("/hello/dev")).await;
    assert_eq!(hello.json["greeting"], "Hello, dev!", "{}", hello.text);
    // A module that raises while it is imported (at build time) fails the
    // build with Python's own traceback.
    edit_then_break(
        &mut dev,
        &dir.join("src/app.py"),
        "\nraise RuntimeError('no')\n",
    )
    .await;
    assert!(dev.log().contains("RuntimeError"), "{}", dev.log());
}
