//! `/openapi.json` and `/docs`: the document validates as OpenAPI 3 and lists
//! every built-in route with its parameters and error bodies; a route that
//! needs an API key says so; the page, in a real headless Chromium driven
//! over the DevTools protocol, lists the routes and "Try it" on `/health`
//! shows the answer.

mod common;

use std::process::Command;

use common::browser::Browser;
use common::{HostBuilder, Manifest, Wasmhouse, get};
use serde_json::{Value, json};

/// The built-in routes, as the seed service has them.
const BUILTIN_PATHS: [&str; 6] = [
    "/health",
    "/clickhouse-status",
    "/concurrent/simple-query",
    "/concurrent/heavy-query",
    "/concurrent/test-isolation",
    "/stream/numbers",
];

/// The built-in routes at `/`, and the hostile test guest (which describes
/// nothing) at `/private`, behind an API key.
fn host() -> (Wasmhouse, Manifest) {
    let manifest = Manifest::with_hostile_guest(
        r#"
[[route]]
name = "default"
prefix = "/"
component = "builtin"

[[route]]
name = "private"
prefix = "/private"
component = "{guest}"
api_key = true
"#,
    );
    let host = HostBuilder::without_clickhouse()
        .env("WASMHOUSE_MANIFEST", manifest.path())
        .env("WASMHOUSE_API_KEYS", "docs=docs-test-key")
        .start_in_process();
    (host, manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_validates_and_lists_every_builtin_route() {
    let (host, _manifest) = host();
    let reply = get(&host.url("/openapi.json")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.headers.contains_key("x-request-id"));
    let doc = reply.json;

    // Validated by the reference validator (installed by scripts/test).
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), doc.to_string()).expect("write");
    let validated = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("running python3");
    assert!(
        validated.status.success(),
        "not valid OpenAPI 3 (pip install openapi-spec-validator if it is missing):\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    let paths = doc["paths"].as_object().expect("paths");
    for path in BUILTIN_PATHS {
        let operation = &paths[path]["get"];
        // Declared in the route's `docs`, not the router's `GET /path` stand-in.
        assert!(
            operation["summary"]
                .as_str()
                .is_some_and(|summary| !summary.starts_with("GET ")),
            "{path}: {operation}"
        );
        assert!(operation["responses"]["200"].is_object(), "{path}");
        assert!(operation.get("security").is_none(), "{path} needs no key");
    }
    let parameter = |path: &str| paths[path]["get"]["parameters"][0]["name"].clone();
    assert_eq!(parameter("/concurrent/test-isolation"), "delay");
    assert_eq!(parameter("/stream/numbers"), "n");
    for path in ["/concurrent/test-isolation", "/stream/numbers"] {
        assert_eq!(
            paths[path]["get"]["responses"]["422"]["$ref"],
            "#/components/responses/InvalidParameter"
        );
    }
    assert!(doc["components"]["responses"]["InvalidParameter"]["description"].is_string());
    assert!(doc["components"]["schemas"]["Error"]["properties"]["kind"].is_object());
    // The schemas the guest keeps as text (`Router::schemas_json`) are there.
    let health = &paths["/health"]["get"]["responses"]["200"]["content"]["application/json"];
    let reference = health["schema"]["$ref"].as_str().expect("a $ref");
    let name = reference
        .strip_prefix("#/components/schemas/")
        .expect("a schema reference");
    assert!(
        doc["components"]["schemas"][name]["properties"]["status"].is_object(),
        "{name} is missing"
    );
    assert_eq!(health["example"]["status"], "healthy");

    // The guest that does not describe itself is still listed, with the
    // host's 401/403 since its route needs a key.
    let private = &paths["/private"]["get"];
    assert_eq!(private["tags"], json!(["private"]));
    assert_eq!(
        private["responses"]["401"]["$ref"],
        "#/components/responses/WasmhouseUnauthorized"
    );
    assert!(private["security"].is_array());
    let mut routes: Vec<&str> = doc["x-wasmhouse-routes"]
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|route| route["name"].as_str())
        .collect();
    routes.sort_unstable();
    assert_eq!(routes, ["default", "private"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_lists_the_routes_and_tries_health_in_a_browser() {
    let Some(executable) = Browser::executable() else {
        // scripts/test installs Debian's chromium; elsewhere this is optional.
        eprintln!("skipped: no chromium on the PATH (apt-get install chromium)");
        return;
    };
    let (host, _manifest) = host();
    let url = host.url("/docs");
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-page.png");
    let shot = screenshot.clone();
    tokio::task::spawn_blocking(move || {
        let mut browser = Browser::launch(&executable);
        browser.call("Page.navigate", json!({ "url": url }));
        let ready = browser.wait_for(
            "document.getElementById('status') && document.getElementById('status').dataset.ready || ''",
            |value| value != "",
        );
        assert_eq!(ready, "true", "the page did not load the API description");

        let listed = browser.evaluate(
            "Array.from(document.querySelectorAll('section.operation')).map(s => s.dataset.path)",
        );
        let listed: Vec<&str> = listed
            .as_array()
            .expect("paths")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for path in BUILTIN_PATHS.iter().chain(&["/private"]) {
            assert!(listed.contains(path), "{path} is not on the page: {listed:?}");
        }
        let routes = browser.evaluate("document.querySelectorAll('#routes tbody tr').length");
        assert_eq!(routes, json!(2));

        // A key typed into the page is sent with "Try it" and kept in the
        // page's memory only: no web storage or cookie of this origin (which
        // route components serve pages from too) holds it.
        browser.evaluate(
            "(() => { const input = document.getElementById('api-key'); \
             input.value = 'docs-test-key'; \
             input.dispatchEvent(new Event('input')); \
             input.dispatchEvent(new Event('change')); })()",
        );
        let health = "section.operation[data-path='/health']";
        browser.evaluate(&format!("document.querySelector(\"{health} button.try\").click()"));
        let status = browser.wait_for(
            &format!("(document.querySelector(\"{health} .answer .status\") || {{}}).dataset?.status || ''"),
            |value| value != "",
        );
        assert_eq!(status, "200");
        let body = browser.evaluate(&format!(
            "document.querySelector(\"{health} .answer pre\").textContent"
        ));
        let body: Value = serde_json::from_str(body.as_str().expect("text")).expect("JSON answer");
        assert_eq!(body, json!({ "status": "healthy" }));
        let stored = browser.evaluate(
            "JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage), document.cookie])",
        );
        assert_eq!(stored, json!("[[],[],\"\"]"), "the page stored something");
        let kept = browser.evaluate("document.getElementById('api-key').value");
        assert_eq!(kept, json!("docs-test-key"));

        // A picture of the page, for people.
        let picture = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(picture["data"].as_str().expect("data"))
            .expect("base64");
        std::fs::write(&shot, png).expect("write screenshot");
    })
    .await
    .expect("browser session");
    eprintln!("screenshot of /docs: {}", screenshot.display());
    assert!(std::fs::metadata(&screenshot).expect("screenshot").len() > 10_000);
}

/// `/docs` and its assets come with a policy that lets the page run only its
/// own script, talk only to this origin and be framed by nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_is_served_with_a_restrictive_content_security_policy() {
    let (host, _manifest) = host();
    for path in ["/docs", "/docs/docs.js", "/docs/docs.css"] {
        let reply = get(&host.url(path)).await;
        assert_eq!(reply.status, 200, "{path}");
        let policy = reply
            .headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"))
            .to_str()
            .expect("ASCII policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe-inline"), "{path}: {policy}");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
}
