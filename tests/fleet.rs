//! Fleet-wide deployments through a shared directory: a component deployed
//! or rolled back on one host reaches the others under load without a failed
//! request, a host that starts later serves the fleet's version at once, and
//! a corrupted or bogus publication changes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::deploys::{ADMIN_TOKEN as TOKEN, VersionLoad, admin, wait_for_version};
use common::{ClickHouse, HostBuilder, Wasmhouse, get, guests};
use sha2::{Digest as _, Sha256};

/// Wait until a line of the host's log `matches`.
async fn wait_for_log(host: &Wasmhouse, what: &str, matches: impl Fn(&str) -> bool) {
    host.wait_for_log_line(what, Duration::from_secs(15), matches)
        .await;
}

/// Roll route `app` back through `host`'s admin API, and check that the
/// rollback was published to the fleet.
async fn roll_back_and_publish(host: &Wasmhouse) {
    let rolled_back = common::send(admin(
        host,
        reqwest::Method::POST,
        "/admin/components/app/rollback",
    ))
    .await;
    assert_eq!(rolled_back.status, 200, "{}", rolled_back.text);
    assert_eq!(
        rolled_back.json["shared"]["published"], true,
        "{}",
        rolled_back.text
    );
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replace `target` atomically (write beside it, then rename over it), as
/// a publishing host would.
fn replace_file(target: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(target.parent().expect("a parent")).expect("create directory");
    let temporary = target.with_extension("test.tmp");
    std::fs::write(&temporary, bytes).expect("write temporary file");
    std::fs::rename(&temporary, target).expect("rename into place");
}

/// A manifest serving the test guest's v1 on route `app`, and an empty
/// temporary directory to share deployments through.
struct Fleet {
    _dir: tempfile::TempDir,
    manifest: PathBuf,
    shared: PathBuf,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

impl Fleet {
    fn new() -> Self {
        let v1 = std::fs::read(guests::hostile(1)).expect("v1");
        let v2 = std::fs::read(guests::hostile(2)).expect("v2");
        assert_ne!(v1, v2, "the two test guest builds are identical");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("app.wasm"), &v1).expect("write component");
        let manifest = dir.path().join("wasmhouse.toml");
        std::fs::write(
            &manifest,
            "[[route]]\nname = \"app\"\nprefix = \"/\"\ncomponent = \"app.wasm\"\n",
        )
        .expect("write manifest");
        // Not there yet: the host creates it.
        let shared = dir.path().join("fleet/deployments");
        Self {
            _dir: dir,
            manifest,
            shared,
            v1,
            v2,
        }
    }

    /// A host of the fleet: the manifest, the shared directory, a 200 ms poll.
    fn host(&self, clickhouse: &ClickHouse) -> Wasmhouse {
        HostBuilder::new(clickhouse)
            .args(&["--manifest", self.manifest.to_str().expect("UTF-8")])
            .env("WASMHOUSE_ADMIN_TOKEN", TOKEN)
            .env("WASMHOUSE_SHARED_DEPLOYMENTS", &self.shared)
            .env("WASMHOUSE_SHARED_POLL", "200ms")
            .start()
    }

    fn route(&self) -> PathBuf {
        self.shared.join("app")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_and_a_rollback_reach_the_other_host_under_load() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let fleet = Fleet::new();
    let a = fleet.host(&clickhouse);
    let b = fleet.host(&clickhouse);
    assert_eq!(get(&a.url("/version")).await.json["version"], 1);
    assert_eq!(get(&b.url("/version")).await.json["version"], 1);
    let (load_a, load_b) = (VersionLoad::start(&a, 3), VersionLoad::start(&b, 3));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Upload v2 to host A: B follows.
    let called = Instant::now();
    let deployed = common::send(
        admin(&a, reqwest::Method::PUT, "/admin/components/app").body(fleet.v2.clone()),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    assert_eq!(
        deployed.json["shared"]["published"], true,
        "{}",
        deployed.text
    );
    assert_eq!(get(&a.url("/version")).await.json["version"], 2);
    let v2 = sha256(&fleet.v2);
    assert_eq!(
        std::fs::read_to_string(fleet.route().join("current"))
            .expect("the pointer")
            .trim(),
        v2
    );
    assert_eq!(
        std::fs::read(fleet.route().join(format!("{v2}.wasm"))).expect("the bytes"),
        fleet.v2
    );
    let deploy_reached_b = wait_for_version(&b, 2, called).await;

    // Roll back on host B: A follows.
    let called = Instant::now();
    roll_back_and_publish(&b).await;
    assert_eq!(get(&b.url("/version")).await.json["version"], 1);
    let rollback_reached_a = wait_for_version(&a, 1, called).await;

    // Nobody bounces back: both stay on v1.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(get(&a.url("/version")).await.json["version"], 1);
    assert_eq!(get(&b.url("/version")).await.json["version"], 1);
    let seen_a = load_a.finish("host A").await;
    let seen_b = load_b.finish("host B").await;
    assert!(
        seen_b.iter().any(|(_, _, version)| *version == 2),
        "B never served v2"
    );
    assert!(
        seen_a.iter().any(|(_, _, version)| *version == 2),
        "A never served v2"
    );
    eprintln!("upload on A reached B after {deploy_reached_b:?}");
    eprintln!("rollback on B reached A after {rollback_reached_a:?}");

    // A's live deployment came from the shared directory, and is counted so.
    let listed = common::send(admin(&a, reqwest::Method::GET, "/admin/components/app")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["origin"], "shared", "{}", listed.text);
    let metrics = get(&a.url("/metrics")).await.text;
    assert!(
        metrics
            .lines()
            .any(|line| line.contains("origin=\"shared\"") && line.contains("route=\"app\"")),
        "no deployment counted with origin shared:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_started_later_serves_the_current_version_at_once() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let fleet = Fleet::new();
    let a = fleet.host(&clickhouse);
    assert!(
        fleet.shared.is_dir(),
        "the shared directory was not created"
    );
    // The manifest's component is stored as the host starts, so a rollback
    // to it can reach the fleet.
    let v1 = fleet.route().join(format!("{}.wasm", sha256(&fleet.v1)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&v1).ok().as_ref() != Some(&fleet.v1) {
        assert!(
            Instant::now() < deadline,
            "{} was never stored",
            v1.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deployed = common::send(
        admin(&a, reqwest::Method::PUT, "/admin/components/app").body(fleet.v2.clone()),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);

    // Its manifest names v1; the fleet's version is v2, from the first request.
    let later = fleet.host(&clickhouse);
    let first = get(&later.url("/version")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["version"], 2, "{}", first.text);
    let listed = common::send(admin(&later, reqwest::Method::GET, "/admin/components/app")).await;
    assert_eq!(listed.json["origin"], "shared", "{}", listed.text);
    assert_eq!(listed.json["sha256"], sha256(&fleet.v2), "{}", listed.text);

    // Rolling back there goes back to its manifest's v1, fleet-wide: the
    // bytes were stored when it started.
    roll_back_and_publish(&later).await;
    wait_for_version(&a, 1, Instant::now()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_or_bogus_publications_are_refused_and_the_old_version_serves() {
    let _cpu = common::cpu_heavy().await;
    let clickhouse = ClickHouse::start();
    let fleet = Fleet::new();
    let host = fleet.host(&clickhouse);
    let load = VersionLoad::start(&host, 3);
    let route = fleet.route();
    let v2 = sha256(&fleet.v2);
    let refused = |sha: &str| {
        let sha = sha.to_owned();
        move |line: &str| line.contains("refused the shared deployment") && line.contains(&sha)
    };

    // Bytes that do not hash to their name.
    replace_file(
        &route.join(format!("{v2}.wasm")),
        b"not the component named",
    );
    replace_file(&route.join("current"), v2.as_bytes());
    wait_for_log(&host, "the corrupt component refused", refused(&v2)).await;
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // A pointer at garbage.
    replace_file(&route.join("current"), b"../../etc/passwd");
    wait_for_log(&host, "the bogus pointer refused", |line| {
        line.contains("refused the shared deployment") && line.contains("names no component")
    })
    .await;
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // Bytes that match their name but are no component.
    let not_wasm = b"hello, I am not wasm".to_vec();
    let not_wasm_sha = sha256(&not_wasm);
    replace_file(&route.join(format!("{not_wasm_sha}.wasm")), &not_wasm);
    replace_file(&route.join("current"), not_wasm_sha.as_bytes());
    wait_for_log(
        &host,
        "the invalid component refused",
        refused(&not_wasm_sha),
    )
    .await;
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // Each refusal is logged once, not at every poll (200 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = host.log();
    for (what, sha) in [("corrupt", &v2), ("invalid", &not_wasm_sha)] {
        let count = log.lines().filter(|line| refused(sha)(line)).count();
        assert_eq!(count, 1, "the {what} component was refused {count} times");
    }

    // The real v2 published after all that is followed.
    replace_file(&route.join(format!("{v2}.wasm")), &fleet.v2);
    replace_file(&route.join("current"), format!("{v2}\n").as_bytes());
    wait_for_version(&host, 2, Instant::now()).await;
    let seen = load.finish("the refusing host").await;
    assert!(seen.iter().any(|(_, _, version)| *version == 1));

    // A directory that cannot take the pointer: the upload still succeeds
    // here, and the answer says it did not reach the fleet.
    std::fs::remove_file(route.join("current")).expect("remove the pointer");
    std::fs::create_dir_all(route.join("current/blocked")).expect("block the pointer");
    let deployed = common::send(
        admin(&host, reqwest::Method::PUT, "/admin/components/app").body(fleet.v1.clone()),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    assert_eq!(
        deployed.json["shared"]["published"], false,
        "{}",
        deployed.text
    );
    assert!(
        deployed.json["shared"]["error"]
            .as_str()
            .is_some_and(|error| error.contains("current")),
        "{}",
        deployed.text
    );
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
}
