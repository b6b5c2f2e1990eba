//! Routes written in Python (`sdk-python/`, built with componentize-py): the
//! seed routes pass the same route tests as the Rust guest on the host, at
//! `/` and under a prefix; a Python route that loops, traps, exhausts its
//! memory or raises is contained like a Rust one; and the SDK's own unit
//! tests pass under CPython.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ClickHouse, HostBuilder, get, guests};

#[tokio::test(flavor = "multi_thread")]
async fn python_seed_guest_passes_the_route_tests_on_the_host() {
    let mut clickhouse = ClickHouse::start();
    let guest = guests::python_seed();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .start();
    let base = host.url("");
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;
    common::seed::assert_router(&base).await;
    // A fresh instance per request: the module's counter starts at zero
    // every time, and no two requests share an instance id.
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let isolation = get(&host.url("/concurrent/test-isolation?delay=0")).await;
        assert_eq!(isolation.json["instance_requests"], 1, "{}", isolation.text);
        let id = isolation.json["instance_id"].as_str().expect("instance id");
        assert!(ids.insert(id.to_owned()), "instance {id} served twice");
    }
    // The description the host serves is the one the signatures make.
    let doc = get(&host.url("/openapi.json")).await;
    let health = &doc.json["paths"]["/health"]["get"];
    assert_eq!(
        health["summary"], "Liveness: answers without touching ClickHouse",
        "{}",
        doc.text
    );
    // queries=False: no ClickHouse answers listed (the host adds its own 503).
    assert!(health["responses"].get("502").is_none(), "{health}");
    assert!(health["responses"].get("504").is_none(), "{health}");
    clickhouse.stop();
    common::seed::assert_clickhouse_down(&base).await;
}

/// An interpreter's start waits for one of the cores (a turn each), but
/// its waits for ClickHouse overlap as any request's: more requests than
/// cores, each sleeping in ClickHouse, are all in the server at once, and
/// each is its own instance.
#[tokio::test(flavor = "multi_thread")]
async fn python_requests_wait_for_clickhouse_side_by_side() {
    let clickhouse = ClickHouse::start();
    let guest = guests::python_seed();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .start();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let requests = cores * 3;
    let url = host.url("/concurrent/test-isolation?delay=3");
    let replies: Vec<_> = (0..requests)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    tokio::task::block_in_place(|| clickhouse.wait_for_queries("sleep(", requests));
    let mut ids = std::collections::HashSet::new();
    for reply in replies {
        let reply = reply.await.expect("request");
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json["instance_requests"], 1, "{}", reply.text);
        ids.insert(
            reply.json["instance_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), requests);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_routes_move_with_their_prefix() {
    let clickhouse = ClickHouse::start();
    let guest = guests::python_seed();
    let dir = tempfile::tempdir().expect("temp dir");
    let manifest = dir.path().join("wasmhouse.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[route]]\nname = \"py\"\nprefix = \"/py\"\ncomponent = \"{}\"\n",
            guest.display()
        ),
    )
    .expect("manifest");
    let host = HostBuilder::new(&clickhouse)
        .args(&["--manifest", manifest.to_str().expect("UTF-8 path")])
        .start();
    let base = host.url("/py");
    common::seed::assert_routes(&base, &clickhouse).await;
    common::seed::assert_client_errors(&base).await;
    let doc = get(&host.url("/openapi.json")).await;
    let delay = &doc.json["paths"]["/py/concurrent/test-isolation"]["get"]["parameters"][0];
    assert_eq!(delay["name"], "delay", "{}", doc.text);
    assert_eq!(get(&host.url("/health")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn misbehaving_python_routes_are_contained() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let guest = guests::python_hostile();
    let host = HostBuilder::new(&clickhouse)
        .args(&["--component", guest.to_str().expect("UTF-8 path")])
        .args(&["--request-timeout", "3s", "--memory-limit", "48MiB"])
        .start();
    // Others keep answering while the loops run.
    common::spinning_guests_time_out_while_others_answer(&host, "/spin", 3, &["/health"], 5).await;

    // An exception no handler may catch (SystemExit) traps the instance.
    let crash = get(&host.url("/exit")).await;
    assert_eq!(crash.status, 500, "{}", crash.text);
    assert_eq!(crash.json["kind"], "trap", "{}", crash.text);
    // Python keeps its frames in linear memory: unbounded recursion meets
    // the memory limit.
    let recursion = get(&host.url("/recurse")).await;
    assert_eq!(recursion.status, 500, "{}", recursion.text);
    assert_eq!(recursion.json["kind"], "memory_limit", "{}", recursion.text);

    let hog = get(&host.url("/hog")).await;
    assert_eq!(hog.status, 500, "{}", hog.text);
    assert_eq!(hog.json["kind"], "memory_limit", "{}", hog.text);

    // A Python exception is the SDK's 500, naming it; the traceback is in
    // the host's log.
    let raised = get(&host.url("/raise")).await;
    assert_eq!(raised.status, 500, "{}", raised.text);
    assert_eq!(raised.json["kind"], "internal");
    assert_eq!(raised.json["error"], "ValueError: a bug in the route");
    host.wait_for_log("a bug in the route", Duration::from_secs(5))
        .await;
    assert!(host.log().contains("Traceback"), "{}", host.log());

    assert_eq!(get(&host.url("/health")).await.status, 200);
}

/// `sdk-python/tests` under the machine's CPython: the router, parameters,
/// errors and OpenAPI generation without a component.
#[test]
fn the_python_sdk_unit_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let output = Command::new("python3")
        .current_dir(root)
        .args(["-m", "unittest", "discover", "-s", "sdk-python/tests"])
        // No __pycache__ written into the SDK the binary embeds.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("OK"), "{said}");
}
