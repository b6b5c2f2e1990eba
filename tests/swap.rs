//! Hot swap under load: admin API, file changes and SIGHUP, with zero failed
//! requests, and broken components that change nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::deploys::{ADMIN_TOKEN as TOKEN, VersionLoad, admin, wait_for_version};
use common::{ClickHouse, HostBuilder, get, guests};

/// Replace `target` atomically (write beside it, then rename over it).
fn replace_file(target: &Path, bytes: &[u8]) {
    let temporary = target.with_extension("wasm.tmp");
    std::fs::write(&temporary, bytes).expect("write temporary component");
    std::fs::rename(&temporary, target).expect("rename over the component");
}

struct Setup {
    _dir: tempfile::TempDir,
    manifest: PathBuf,
    component: PathBuf,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

fn setup() -> Setup {
    let v1 = std::fs::read(guests::hostile(1)).expect("v1");
    let v2 = std::fs::read(guests::hostile(2)).expect("v2");
    assert_ne!(v1, v2, "the two test guest builds are identical");
    let dir = tempfile::tempdir().expect("temp dir");
    let component = dir.path().join("app.wasm");
    std::fs::write(&component, &v1).expect("write component");
    std::fs::write(dir.path().join("v2.wasm"), &v2).expect("write v2");
    let manifest = dir.path().join("wasmhouse.toml");
    std::fs::write(
        &manifest,
        "[[route]]\nname = \"app\"\nprefix = \"/\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("write manifest");
    Setup {
        _dir: dir,
        manifest,
        component,
        v1,
        v2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn swaps_three_ways_under_load_without_a_failed_request() {
    let clickhouse = ClickHouse::start();
    let setup = setup();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
        .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
        .start();
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
    let load = VersionLoad::start(&host, 6);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::new();

    // 1. The admin API: upload v2, then roll back to v1.
    let called = Instant::now();
    let deployed = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/app").body(setup.v2.clone()),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    assert_eq!(deployed.json["version"], 2);
    let returned = Instant::now();
    // The very next request is served by the new version.
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    latencies.push((
        "admin PUT",
        wait_for_version(&host, 2, called).await,
        returned - called,
    ));
    let rolled_back = common::send(admin(
        &host,
        reqwest::Method::POST,
        "/admin/components/app/rollback",
    ))
    .await;
    assert_eq!(rolled_back.status, 200, "{}", rolled_back.text);
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // 2. The file on disk changes (atomic rename), and changes back.
    let called = Instant::now();
    replace_file(&setup.component, &setup.v2);
    latencies.push((
        "file change",
        wait_for_version(&host, 2, called).await,
        Duration::ZERO,
    ));
    replace_file(&setup.component, &setup.v1);
    wait_for_version(&host, 1, Instant::now()).await;

    // 3. SIGHUP after the manifest now names another file, then back.
    std::fs::write(
        &setup.manifest,
        "[[route]]\nname = \"app\"\nprefix = \"/\"\ncomponent = \"v2.wasm\"\n",
    )
    .expect("rewrite manifest");
    let called = Instant::now();
    host.signal("HUP");
    latencies.push((
        "SIGHUP",
        wait_for_version(&host, 2, called).await,
        Duration::ZERO,
    ));
    std::fs::write(
        &setup.manifest,
        "[[route]]\nname = \"app\"\nprefix = \"/\"\ncomponent = \"app.wasm\"\n",
    )
    .expect("rewrite manifest");
    host.signal("HUP");
    wait_for_version(&host, 1, Instant::now()).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = load.finish("the swapping host").await;
    assert!(
        seen.iter().any(|(_, _, version)| *version == 2),
        "the load never saw v2"
    );
    for (way, latency, call) in &latencies {
        eprintln!(
            "swap via {way}: first v2 answer {latency:?} after the call (call took {call:?})"
        );
        assert!(*latency < Duration::from_secs(5), "{way} took {latency:?}");
    }

    let listed = common::send(admin(&host, reqwest::Method::GET, "/admin/components")).await;
    assert_eq!(listed.status, 200);
    let app = &listed.json["components"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["route"], "/");
    assert_eq!(app["sha256"].as_str().map(str::len), Some(64));
    assert!(app["loaded_at"].is_string() && app["version"].as_u64() > Some(2));
    assert!(app["previous"].as_array().is_some_and(|p| !p.is_empty()));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_components_are_rejected_and_the_old_one_keeps_serving() {
    let clickhouse = ClickHouse::start();
    let setup = setup();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
        .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
        .env("WASMHOUSE_ADMIN_MAX_UPLOAD", "8MiB")
        // The first deploy of v2 below must compile: with the user's compile
        // cache it is mapped from a file earlier tests wrote, as fast as the
        // in-memory reuse the test compares it with.
        .env("WASMHOUSE_COMPILE_CACHE", "off")
        .start();
    let load = VersionLoad::start(&host, 6);

    let truncated = setup.v2[..setup.v2.len() / 2].to_vec();
    // A component that exports nothing, and one that imports what no host has.
    let empty_component = wat::parse_str("(component)").expect("WAT");
    let foreign_import = wat::parse_str(
        r#"(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))"#,
    )
    .expect("WAT");
    let core_module = wat::parse_str("(module)").expect("WAT");
    for (what, bytes, expected) in [
        (
            "not wasm",
            b"hello, I am not wasm".to_vec(),
            "not a WebAssembly component",
        ),
        ("a core module", core_module, "core module"),
        ("truncated", truncated.clone(), "does not compile"),
        (
            "no incoming-handler export",
            empty_component,
            "incoming-handler",
        ),
        ("an unknown import", foreign_import, "acme:db/query"),
    ] {
        let reply =
            common::send(admin(&host, reqwest::Method::PUT, "/admin/components/app").body(bytes))
                .await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
        assert_eq!(reply.json["kind"], "invalid_component", "{what}");
        assert!(
            reply.json["error"]
                .as_str()
                .is_some_and(|e| e.contains(expected)),
            "{what}: {}",
            reply.text
        );
        assert_eq!(
            get(&host.url("/version")).await.json["version"],
            1,
            "after {what}"
        );
    }

    let too_big = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/app").body(vec![0u8; 9 << 20]),
    )
    .await;
    assert_eq!(too_big.status, 413, "{}", too_big.text);
    let unknown = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/nope").body(setup.v2.clone()),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let no_history = common::send(admin(
        &host,
        reqwest::Method::POST,
        "/admin/components/app/rollback",
    ))
    .await;
    assert_eq!(no_history.status, 409, "{}", no_history.text);

    // A broken file on disk is logged and ignored.
    replace_file(&setup.component, &truncated);
    host.wait_for_log(
        "rejected the changed component file",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // Re-deploying bytes seen before skips compilation.
    let first = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/app").body(setup.v2.clone()),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    common::send(admin(
        &host,
        reqwest::Method::POST,
        "/admin/components/app/rollback",
    ))
    .await;
    let again = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/app").body(setup.v2.clone()),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    let (first_ms, again_ms) = (
        first.json["deploy_ms"].as_f64().unwrap_or(0.0),
        again.json["deploy_ms"].as_f64().unwrap_or(f64::MAX),
    );
    assert!(
        again_ms < first_ms,
        "cached deploy took {again_ms} ms, first {first_ms} ms"
    );

    load.finish("the host refusing bad deploys").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_needs_its_token() {
    let clickhouse = ClickHouse::start();
    let setup = setup();

    // Off without a token: /admin is an ordinary path for the guest.
    let open = HostBuilder::new(&clickhouse)
        .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
        .start();
    let reply = get(&open.url("/admin/components")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json["kind"], "not_found",
        "the guest should have answered: {}",
        reply.text
    );

    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
        .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
        .start();
    let missing = get(&host.url("/admin/components")).await;
    assert_eq!(missing.status, 401);
    assert!(missing.headers.contains_key("www-authenticate"));
    let wrong = common::send(
        common::client()
            .get(host.url("/admin/components"))
            .bearer_auth("not-the-token-at-all"),
    )
    .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.json["kind"], "forbidden");
    let deploy_without = common::send(
        common::client()
            .put(host.url("/admin/components/app"))
            .body(setup.v2.clone()),
    )
    .await;
    assert_eq!(deploy_without.status, 401);
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // On a listener of its own, /admin on the main port is the guest's again.
    let separate = HostBuilder::new(&clickhouse)
        .args(&[
            "--manifest",
            setup.manifest.to_str().expect("UTF-8"),
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
        .start();
    let admin_url = separate
        .admin_url("/admin/components")
        .expect("admin address printed");
    let listed = common::send(common::client().get(&admin_url).bearer_auth(TOKEN)).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        get(&separate.url("/admin/components")).await.json["kind"],
        "not_found"
    );

    let short = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WASMHOUSE_ADMIN_TOKEN", "short")
        .output()
        .expect("run wasmhouse");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("WASMHOUSE_ADMIN_TOKEN"));
}

/// The watcher deploys a file once per change: opening it (its own reads
/// among them) is no change, and a route a reload moved to another file is
/// not put back on the old one.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_file_is_deployed_once_and_never_over_a_reload() {
    let clickhouse = ClickHouse::start();
    let setup = setup();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
        .start();
    // The watcher starts just after the host announces itself.
    host.wait_for_log("watching component files", Duration::from_secs(10))
        .await;
    replace_file(&setup.component, &setup.v2);
    wait_for_version(&host, 2, Instant::now()).await;
    // Several debounce periods: each read of the file would be an event.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let changes = host.log().matches("component file changed").count();
    assert_eq!(changes, 1, "the file was deployed {changes} times");

    // The route now serves v2.wasm; app.wasm changing again must not win
    // over the reload.
    std::fs::write(
        &setup.manifest,
        "[[route]]\nname = \"app\"\nprefix = \"/\"\ncomponent = \"v2.wasm\"\n",
    )
    .expect("rewrite manifest");
    replace_file(&setup.component, &setup.v1);
    host.signal("HUP");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    }
}

/// Poll the admin API until `host`'s only route serves `code` ("baseline"
/// or "optimized"); how long that took.
async fn wait_for_code(host: &common::Wasmhouse, code: &str) -> Duration {
    let started = Instant::now();
    loop {
        let listed = common::send(admin(host, reqwest::Method::GET, "/admin/components")).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        if listed.json["components"][0]["code"] == code {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "still not {code} code after 180 s: {}",
            listed.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tiered compilation: a component never compiled before serves baseline
/// code from its deploy on, and optimised code once the background compile
/// is done, with no failed request between. The compile cache then holds
/// the optimised code, so a restart serves it at once; with `--compilation
/// optimized` there is no baseline code at all.
#[tokio::test(flavor = "multi_thread")]
async fn new_components_serve_baseline_code_until_optimised_code_is_ready() {
    let setup = setup();
    let cache = tempfile::tempdir().expect("cache dir");
    let start = |compilation: &str, cache: &Path| {
        HostBuilder::without_clickhouse()
            .args(&["--manifest", setup.manifest.to_str().expect("UTF-8")])
            .args(&["--compilation", compilation])
            .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
            .env("WASMHOUSE_COMPILE_CACHE", cache)
            .start()
    };
    let upload = |host: &common::Wasmhouse, bytes: &[u8]| {
        common::send(
            admin(host, reqwest::Method::PUT, "/admin/components/app").body(bytes.to_vec()),
        )
    };

    // v1 at start-up, with an empty compile cache: baseline code first.
    let host = start("tiered", cache.path());
    wait_for_code(&host, "optimized").await;
    let load = VersionLoad::start(&host, 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deployed = upload(&host, &setup.v2).await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    // Cranelift takes far longer than the answer: the deploy went live with
    // baseline code.
    assert_eq!(deployed.json["code"], "baseline", "{}", deployed.text);
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    let optimising = wait_for_code(&host, "optimized").await;
    eprintln!("v2's optimised code served {optimising:?} after its baseline code");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = load.finish("the tiering host").await;
    assert!(seen.iter().any(|(_, _, version)| *version == 2));
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    let log = host.log();
    assert_eq!(
        log.matches("optimised code compiled").count(),
        2,
        "v1 and v2 were each optimised once:\n{log}"
    );
    drop(host);

    // Restarted on the same cache: optimised code at once, for both.
    let host = start("tiered", cache.path());
    let listed = common::send(admin(&host, reqwest::Method::GET, "/admin/components")).await;
    assert_eq!(
        listed.json["components"][0]["code"], "optimized",
        "{}",
        listed.text
    );
    let deployed = upload(&host, &setup.v2).await;
    assert_eq!(deployed.json["code"], "optimized", "{}", deployed.text);
    assert!(
        !host.log().contains("baseline code compiled"),
        "{}",
        host.log()
    );
    drop(host);

    // Optimised code only, on an empty cache.
    let empty = tempfile::tempdir().expect("cache dir");
    let host = start("optimized", empty.path());
    let deployed = upload(&host, &setup.v2).await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    assert_eq!(deployed.json["code"], "optimized", "{}", deployed.text);
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    assert!(
        !host.log().contains("baseline code compiled"),
        "{}",
        host.log()
    );
}
