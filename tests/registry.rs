//! Components from a real OCI registry (distribution's `docker-registry` on
//! loopback): `wasmhouse push`, serving a tag or a digest, hosts following a
//! tag under load (a move, a rollback by moving it back), what a follower
//! refuses (not a component, a corrupted blob), a registry that goes away,
//! credentials, a restart with the registry down, and a manifest shaped as
//! Spin pushes it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::deploys::{ADMIN_TOKEN, VersionLoad, admin, wait_for_version};
use common::registry::Registry;
use common::{HostBuilder, Wasmhouse, client, get, guests, send};
use sha2::{Digest as _, Sha256};

/// How often the following hosts look at the tag.
const FOLLOW: &str = "1s";

/// `wasmhouse push <args>`: its exit status, stdout and stderr.
fn push(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
    command.arg("push").args(args);
    command
        .env_remove("WASMHOUSE_REGISTRY_USERNAME")
        .env_remove("WASMHOUSE_REGISTRY_PASSWORD")
        .env_remove("WASMHOUSE_REGISTRY_HOST")
        .env("DOCKER_CONFIG", "/nonexistent-docker-config");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("running wasmhouse push");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Push `file` to `target` on `registry` (no credentials); the pinned
/// reference it printed last.
fn push_file(registry: &Registry, file: &Path, target: &str) -> String {
    let insecure = registry.host();
    let (ok, stdout, stderr) = push(
        &[
            file.to_str().expect("utf-8 path"),
            target,
            "--insecure-registry",
            &insecure,
        ],
        &[],
    );
    assert!(ok, "push failed:\n{stdout}\n{stderr}");
    let pinned = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned();
    assert!(
        pinned.starts_with(target) && pinned.contains("@sha256:"),
        "{pinned}"
    );
    pinned
}

/// The digest of a pinned reference.
fn digest_of(pinned: &str) -> &str {
    pinned.rsplit_once('@').expect("a pinned reference").1
}

fn sha256_digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A host serving `component` (a reference) on every path, from the
/// registry at `insecure` (`HOST:PORT`, plain HTTP), following it when
/// `follow`, with its own compile cache (and so its own store of pulled
/// components) in `cache`; no credentials.
fn host(insecure: &str, component: &str, follow: bool, cache: &Path) -> HostBuilder {
    let mut builder = HostBuilder::without_clickhouse()
        .env("WASMHOUSE_COMPONENT", component)
        .env("WASMHOUSE_INSECURE_REGISTRIES", insecure)
        .env("WASMHOUSE_COMPILE_CACHE", cache)
        .env("WASMHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .env_remove("WASMHOUSE_REGISTRY_USERNAME")
        .env_remove("WASMHOUSE_REGISTRY_PASSWORD");
    if follow {
        builder = builder.env("WASMHOUSE_FOLLOW", FOLLOW);
    }
    builder
}

/// What the admin API says of the host's one route (named after the
/// reference's repository).
async fn live(host: &Wasmhouse) -> serde_json::Value {
    let reply = send(admin(host, reqwest::Method::GET, "/admin/components")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["components"][0].clone()
}

/// The `wasmhouse_rejected_uploads_total` count of route `app`.
async fn rejected(host: &Wasmhouse) -> u64 {
    let metrics = get(&host.url("/metrics")).await.text;
    metrics
        .lines()
        .find(|line| line.starts_with("wasmhouse_rejected_uploads_total{route=\"app\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn count_lines(host: &Wasmhouse, fragment: &str) -> usize {
    host.log()
        .lines()
        .filter(|line| line.contains(fragment))
        .count()
}

struct Guests {
    v1: PathBuf,
    v2: PathBuf,
}

fn guests() -> Guests {
    Guests {
        v1: guests::hostile(1),
        v2: guests::hostile(2),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_component_is_served_by_tag_and_by_digest() {
    let registry = Registry::start();
    let guests = guests();
    let tag = registry.reference("team/app:live");
    let pinned = push_file(&registry, &guests.v1, &tag);
    let cache = tempfile::tempdir().expect("temp dir");

    // By tag: the admin API and the metrics name the digest it resolved to.
    let by_tag = host(&registry.host(), &tag, false, cache.path()).start();
    assert_eq!(get(&by_tag.url("/version")).await.json["version"], 1);
    let described = live(&by_tag).await;
    assert_eq!(described["origin"], "registry", "{described}");
    assert_eq!(described["digest"], digest_of(&pinned), "{described}");
    assert_eq!(described["reference"], pinned, "{described}");
    let metrics = get(&by_tag.url("/metrics")).await.text;
    assert!(
        metrics.contains(&format!("digest=\"{}\"", digest_of(&pinned))),
        "{metrics}"
    );

    // Deployed through the admin API by reference, as JSON.
    let v2 = push_file(&registry, &guests.v2, &registry.reference("team/app:v2"));
    let deployed = send(
        admin(&by_tag, reqwest::Method::PUT, "/admin/components/app")
            .header("content-type", "application/json")
            .body(serde_json::json!({ "component": v2 }).to_string()),
    )
    .await;
    assert_eq!(deployed.status, 200, "{}", deployed.text);
    assert_eq!(deployed.json["digest"], digest_of(&v2));
    assert_eq!(get(&by_tag.url("/version")).await.json["version"], 2);
    for (body, status, kind) in [
        (
            "{\"component\": \"ghcr.io/no-scheme:1\"}",
            400,
            "bad_reference",
        ),
        ("{\"wrong\": 1}", 400, "bad_reference"),
        (
            &format!(
                "{{\"component\": \"{}\"}}",
                registry.reference("team/app:missing")
            ),
            400,
            "registry_refused",
        ),
        (
            "{\"component\": \"oci://127.0.0.1:9/team/app:live\"}",
            502,
            "registry_unreachable",
        ),
    ] {
        let reply = send(
            admin(&by_tag, reqwest::Method::PUT, "/admin/components/app")
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert_eq!(reply.json["kind"], kind, "{body}: {}", reply.text);
        assert!(reply.json["error"].is_string(), "{}", reply.text);
    }
    assert_eq!(get(&by_tag.url("/version")).await.json["version"], 2);
    drop(by_tag);

    // By digest: the registry need not keep the tag.
    let other = tempfile::tempdir().expect("temp dir");
    let by_digest = host(&registry.host(), &pinned, false, other.path()).start();
    assert_eq!(get(&by_digest.url("/version")).await.json["version"], 1);
    assert_eq!(live(&by_digest).await["digest"], digest_of(&pinned));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_registry_must_be_listed_as_insecure() {
    let registry = Registry::start();
    let guests = guests();
    let target = registry.reference("app:live");
    let (ok, _, stderr) = push(&[guests.v1.to_str().unwrap(), &target], &[]);
    assert!(!ok, "pushed over plain HTTP without --insecure-registry");
    assert!(stderr.contains("--insecure-registry"), "{stderr}");

    push_file(&registry, &guests.v1, &target);
    let cache = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--component", &target])
        .env("WASMHOUSE_COMPILE_CACHE", cache.path())
        .env_remove("WASMHOUSE_INSECURE_REGISTRIES")
        .output()
        .expect("running wasmhouse serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--insecure-registry"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn following_hosts_take_a_moved_tag_under_load_and_roll_back() {
    let registry = Registry::start();
    let guests = guests();
    let tag = registry.reference("app:live");
    let v1 = push_file(&registry, &guests.v1, &tag);
    let caches = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let hosts: Vec<Wasmhouse> = caches
        .iter()
        .map(|cache| host(&registry.host(), &tag, true, cache.path()).start())
        .collect();
    for host in &hosts {
        assert_eq!(get(&host.url("/version")).await.json["version"], 1);
    }
    let loads: Vec<VersionLoad> = hosts
        .iter()
        .map(|host| VersionLoad::start(host, 3))
        .collect();

    let pushed = Instant::now();
    let v2 = push_file(&registry, &guests.v2, &tag);
    for (index, host) in hosts.iter().enumerate() {
        let took = wait_for_version(host, 2, pushed).await;
        eprintln!("host {index} serves the pushed digest {took:?} after the push began");
        assert_eq!(live(host).await["digest"], digest_of(&v2));
    }

    // Roll back: point the tag at v1's digest again.
    let moved = Instant::now();
    let (ok, stdout, stderr) = push(&[&v1, &tag, "--insecure-registry", &registry.host()], &[]);
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().last().map(str::trim), Some(v1.as_str()));
    for host in &hosts {
        wait_for_version(host, 1, moved).await;
        assert_eq!(live(host).await["digest"], digest_of(&v1));
    }
    for (index, load) in loads.into_iter().enumerate() {
        load.finish(&format!("host {index}")).await;
    }
}

/// Push `blobs` and a manifest naming them to `repository:tag`, as any
/// registry client would (not through wasmhouse).
async fn push_raw(
    registry: &Registry,
    repository: &str,
    tag: &str,
    blobs: &[&[u8]],
    manifest: &serde_json::Value,
    media_type: &str,
) {
    let client = client();
    let base = format!("http://{}", registry.host());
    for blob in blobs {
        let started = client
            .post(format!("{base}/v2/{repository}/blobs/uploads/"))
            .send()
            .await
            .expect("start upload");
        assert_eq!(started.status(), 202);
        let location = started.headers()["location"]
            .to_str()
            .expect("a Location header")
            .to_owned();
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = client
            .put(format!(
                "{location}{separator}digest={}",
                sha256_digest(blob)
            ))
            .header("content-type", "application/octet-stream")
            .body(blob.to_vec())
            .send()
            .await
            .expect("finish upload");
        assert_eq!(
            put.status(),
            201,
            "{}",
            put.text().await.unwrap_or_default()
        );
    }
    let put = client
        .put(format!("{base}/v2/{repository}/manifests/{tag}"))
        .header("content-type", media_type)
        .body(manifest.to_string())
        .send()
        .await
        .expect("push manifest");
    assert_eq!(
        put.status(),
        201,
        "{}",
        put.text().await.unwrap_or_default()
    );
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_type,
        "digest": sha256_digest(bytes),
        "size": bytes.len(),
    })
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_refuses_what_is_not_a_good_component_once_and_keeps_serving() {
    let registry = Registry::start();
    let guests = guests();
    let tag = registry.reference("app:live");
    push_file(&registry, &guests.v1, &tag);
    let cache = tempfile::tempdir().unwrap();
    let host = host(&registry.host(), &tag, true, cache.path()).start();
    let load = VersionLoad::start(&host, 2);

    // The tag moves to a "component" that is not WebAssembly.
    let config = b"{}".to_vec();
    let text = b"not a component at all".to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.wasm.config.v0+json", &config),
        "layers": [descriptor("application/wasm", &text)],
    });
    push_raw(
        &registry,
        "app",
        "live",
        &[&config, &text],
        &manifest,
        OCI_MANIFEST,
    )
    .await;
    host.wait_for_log("will not serve", Duration::from_secs(15))
        .await;
    // Several more looks at the same tag: nothing more is logged or counted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_lines(&host, "will not serve"), 1, "{}", host.log());
    assert_eq!(rejected(&host).await, 1);
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);

    // The tag moves to v2 whose blob was corrupted in the registry's storage
    // (same length, other bytes): the host's own digest check refuses it.
    let v2 = push_file(&registry, &guests.v2, &registry.reference("app:v2"));
    let component = std::fs::read(&guests.v2).unwrap();
    let blob = registry.blob_file(&sha256_digest(&component));
    let mut corrupted = std::fs::read(&blob).expect("the blob in storage");
    assert_eq!(corrupted, component);
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0xff;
    std::fs::write(&blob, &corrupted).unwrap();
    let (ok, stdout, stderr) = push(&[&v2, &tag, "--insecure-registry", &registry.host()], &[]);
    assert!(ok, "{stdout}\n{stderr}");
    host.wait_for_log_line(
        "the corrupted blob refused",
        Duration::from_secs(15),
        |line| {
            line.contains("will not serve")
                && line.contains("digest")
                && line.contains(digest_of(&v2))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count_lines(&host, "will not serve"), 2, "{}", host.log());
    assert_eq!(rejected(&host).await, 2);
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
    load.finish("the refusing host").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_keep_serving_while_the_registry_is_down_and_restart_from_disk() {
    let mut registry = Registry::start();
    let guests = guests();
    let tag = registry.reference("app:live");
    let v1 = push_file(&registry, &guests.v1, &tag);
    let cache = tempfile::tempdir().unwrap();
    let insecure = registry.host();
    let host_builder = || host(&insecure, &tag, true, cache.path());
    let first = host_builder().start();
    let load = VersionLoad::start(&first, 2);

    registry.stop();
    first
        .wait_for_log("the registry does not answer", Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count_lines(&first, "the registry does not answer"),
        1,
        "{}",
        first.log()
    );
    load.finish("the host with its registry down").await;

    // A restart while the registry is down serves the digest it last pulled.
    drop(first);
    let second = host_builder().start();
    assert_eq!(get(&second.url("/version")).await.json["version"], 1);
    assert_eq!(live(&second).await["digest"], digest_of(&v1));
    assert!(
        second
            .log()
            .contains("serving the digest the tag had at the last pull"),
        "{}",
        second.log()
    );

    second
        .wait_for_log("the registry does not answer", Duration::from_secs(15))
        .await;
    // A pinned digest pulled before starts without the network at all.
    let pinned = host(&insecure, &v1, false, cache.path()).start();
    assert_eq!(get(&pinned.url("/version")).await.json["version"], 1);
    assert!(pinned.log().contains("from_disk=true"), "{}", pinned.log());
    drop(pinned);

    // The registry comes back; a push reaches the host that kept following.
    registry.restart();
    let pushed = Instant::now();
    push_file(&registry, &guests.v2, &tag);
    wait_for_version(&second, 2, pushed).await;
    second
        .wait_for_log("the followed tag resolves again", Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_behind_a_login_needs_credentials() {
    let registry = Registry::start_with_login("deployer", "s3cret-pass");
    let guests = guests();
    let target = registry.reference("private/app:live");
    let file = guests.v1.to_str().unwrap();
    let insecure = registry.host();

    let (ok, _, stderr) = push(&[file, &target, "--insecure-registry", &insecure], &[]);
    assert!(!ok, "pushed without credentials");
    assert!(stderr.contains("docker login"), "{stderr}");
    let (ok, _, stderr) = push(
        &[file, &target, "--insecure-registry", &insecure],
        &[
            ("WASMHOUSE_REGISTRY_USERNAME", "deployer"),
            ("WASMHOUSE_REGISTRY_PASSWORD", "wrong"),
            ("WASMHOUSE_REGISTRY_HOST", &insecure),
        ],
    );
    assert!(!ok, "pushed with a wrong password");
    assert!(stderr.contains("refused access"), "{stderr}");
    // Credentials from the environment name the registry they are for.
    let (ok, _, stderr) = push(
        &[file, &target, "--insecure-registry", &insecure],
        &[
            ("WASMHOUSE_REGISTRY_USERNAME", "deployer"),
            ("WASMHOUSE_REGISTRY_PASSWORD", "s3cret-pass"),
        ],
    );
    assert!(!ok, "pushed with credentials bound to no registry");
    assert!(stderr.contains("WASMHOUSE_REGISTRY_HOST"), "{stderr}");
    // Bound to another registry, they are not sent to this one.
    let (ok, _, stderr) = push(
        &[file, &target, "--insecure-registry", &insecure],
        &[
            ("WASMHOUSE_REGISTRY_USERNAME", "deployer"),
            ("WASMHOUSE_REGISTRY_PASSWORD", "s3cret-pass"),
            ("WASMHOUSE_REGISTRY_HOST", "registry.example:5000"),
        ],
    );
    assert!(!ok, "pushed with another registry's credentials");
    assert!(stderr.contains("docker login"), "{stderr}");
    let (ok, stdout, stderr) = push(
        &[file, &target, "--insecure-registry", &insecure],
        &[
            ("WASMHOUSE_REGISTRY_USERNAME", "deployer"),
            ("WASMHOUSE_REGISTRY_PASSWORD", "s3cret-pass"),
            ("WASMHOUSE_REGISTRY_HOST", &insecure.to_uppercase()),
        ],
    );
    assert!(ok, "{stdout}\n{stderr}");

    // Without credentials the host does not start, and says why.
    let cache = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--component", &target])
        .env("WASMHOUSE_INSECURE_REGISTRIES", &insecure)
        .env("WASMHOUSE_COMPILE_CACHE", cache.path())
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .env_remove("WASMHOUSE_REGISTRY_USERNAME")
        .output()
        .expect("running wasmhouse serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("docker login"), "{stderr}");

    // With a Docker config file (what `docker login` writes, or a
    // Kubernetes dockerconfigjson secret mounted as DOCKER_CONFIG).
    let docker = tempfile::tempdir().unwrap();
    let auth = base64_encode(b"deployer:s3cret-pass");
    std::fs::write(
        docker.path().join("config.json"),
        serde_json::json!({ "auths": { insecure.clone(): { "auth": auth } } }).to_string(),
    )
    .unwrap();
    let host = host(&insecure, &target, false, cache.path())
        .env("DOCKER_CONFIG", docker.path())
        .start();
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
}

/// A loopback HTTP server of the test's own: on each connection it reads
/// one request, keeps its lines (the request line, then each header line),
/// writes what `answer` makes of them and closes the connection.
struct Loopback {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

impl Loopback {
    fn start(answer: impl Fn(&[String]) -> Vec<u8> + Send + 'static) -> Self {
        use std::io::Write as _;
        Self::start_writing(move |lines, stream| {
            let _ = stream.write_all(&answer(lines));
        })
    }

    /// Like [`Loopback::start`], with `answer` writing to the connection
    /// itself (as much as it likes, for as long as the other side reads).
    fn start_writing(
        answer: impl Fn(&[String], &mut std::net::TcpStream) + Send + 'static,
    ) -> Self {
        use std::io::BufRead as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = std::io::BufReader::new(stream);
                let mut lines = Vec::new();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    lines.push(line.trim().to_owned());
                    line.clear();
                }
                kept.lock().expect("lock").push(lines.clone());
                answer(&lines, reader.get_mut());
            }
        });
        Self { addr, requests }
    }

    /// Every line of every request it was sent.
    fn lines(&self) -> Vec<String> {
        self.requests.lock().expect("lock").concat()
    }

    /// The `Authorization` headers it was sent.
    fn authorizations(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|line| line.to_ascii_lowercase().starts_with("authorization:"))
            .collect()
    }
}

/// Whether a request's lines carry an `Authorization` header.
fn authorized(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|line| line.to_ascii_lowercase().starts_with("authorization:"))
}

/// The answer that asks for Basic credentials.
const BASIC_CHALLENGE: &[u8] =
    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\n\
      Content-Length: 0\r\nConnection: close\r\n\r\n";

/// Credentials from the environment go to the registry they name and to no
/// other, even one that asks for them: a registry that asks every caller
/// for Basic credentials stands for one they are not for.
#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_go_only_to_their_own_registry() {
    let registry = Registry::start_with_login("deployer", "s3cret-pass");
    let trap = Loopback::start(|_| BASIC_CHALLENGE.to_vec());
    let guests = guests();
    let file = guests.v1.to_str().expect("UTF-8 path");
    let trap_host = trap.addr.to_string();
    let target = format!("oci://{trap_host}/app:live");
    let (ok, _, stderr) = push(
        &[file, &target, "--insecure-registry", &trap_host],
        &[
            ("WASMHOUSE_REGISTRY_USERNAME", "deployer"),
            ("WASMHOUSE_REGISTRY_PASSWORD", "s3cret-pass"),
            ("WASMHOUSE_REGISTRY_HOST", &registry.host()),
        ],
    );
    assert!(!ok, "the trap accepted a push: {stderr}");
    assert!(
        !trap.requests.lock().expect("lock").is_empty(),
        "the push never reached the other registry: {stderr}"
    );
    let seen = trap.authorizations();
    assert!(seen.is_empty(), "the other registry was sent {seen:?}");
}

/// A registry of the test's own that serves one component, asks for Basic
/// credentials, and answers the component's blob with a redirect to
/// `blob_url`, as registries that keep blobs elsewhere do. Returns it and
/// the manifest's digest.
fn redirecting_registry(component: &[u8], blob_url: String) -> (Loopback, String) {
    let hex = |bytes: &[u8]| format!("{:x}", Sha256::digest(bytes));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.wasm.config.v0+json",
            "digest": format!("sha256:{}", hex(b"{}")),
            "size": 2
        },
        "layers": [{
            "mediaType": "application/wasm",
            "digest": format!("sha256:{}", hex(component)),
            "size": component.len()
        }]
    })
    .to_string();
    let digest = format!("sha256:{}", hex(manifest.as_bytes()));
    let manifest_digest = digest.clone();
    let registry = Loopback::start(move |lines| {
        if !authorized(lines) {
            return BASIC_CHALLENGE.to_vec();
        }
        let request = lines.first().map(String::as_str).unwrap_or_default();
        let path = request.split_whitespace().nth(1).unwrap_or_default();
        let head = request.starts_with("HEAD");
        // (status, headers, body, Content-Length: a HEAD says the size of
        // the body it leaves out)
        let (status, headers, body, length) = if path == "/v2/" {
            ("200 OK", String::new(), "", 0)
        } else if path.contains("/manifests/") {
            (
                "200 OK",
                format!(
                    "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                     Docker-Content-Digest: {manifest_digest}\r\n"
                ),
                if head { "" } else { manifest.as_str() },
                manifest.len(),
            )
        } else if path.contains("/blobs/") {
            (
                "307 Temporary Redirect",
                format!("Location: {blob_url}\r\n"),
                "",
                0,
            )
        } else {
            ("404 Not Found", String::new(), "", 0)
        };
        format!(
            "HTTP/1.1 {status}\r\n{headers}Content-Length: {length}\r\nConnection: close\r\n\r\n{body}"
        )
        .into_bytes()
    });
    (registry, digest)
}

/// A registry's redirect for a blob is followed without the registry's
/// credentials: the other host serves the blob, and never sees them.
#[tokio::test(flavor = "multi_thread")]
async fn a_blob_redirect_to_another_host_carries_no_credentials() {
    let component = std::fs::read(guests().v1).expect("the test guest");
    // Where the blob really is: it serves the component and keeps every
    // line of what it was asked.
    let body = component.clone();
    let storage = Loopback::start(move |_| {
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(&body);
        reply
    });
    let (registry, digest) =
        redirecting_registry(&component, format!("http://{}/storage/blob", storage.addr));
    let registry_host = registry.addr.to_string();
    let cache = tempfile::tempdir().expect("temp dir");
    let host = host(
        &registry_host,
        &format!("oci://{registry_host}/app@{digest}"),
        false,
        cache.path(),
    )
    .env("WASMHOUSE_REGISTRY_USERNAME", "deployer")
    .env("WASMHOUSE_REGISTRY_PASSWORD", "s3cret-pass")
    .env("WASMHOUSE_REGISTRY_HOST", &registry_host)
    .start();
    assert_eq!(get(&host.url("/version")).await.json["version"], 1);
    assert!(
        !registry.authorizations().is_empty(),
        "the registry was never sent its credentials"
    );
    let asked = storage.lines();
    assert!(
        asked
            .iter()
            .any(|line| line.starts_with("GET /storage/blob")),
        "the redirect was not followed: {asked:?}"
    );
    assert!(
        storage.authorizations().is_empty(),
        "the other host was sent credentials: {asked:?}"
    );
}

/// Bytes sent without end: a body of `{` for as long as the other side
/// reads, after `head` (a status line and headers, no length). The bytes
/// it got out, added to `sent`.
fn endless(stream: &mut std::net::TcpStream, head: &str, sent: &std::sync::atomic::AtomicU64) {
    use std::io::Write as _;
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'{'; 64 << 10];
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && stream.write_all(&chunk).is_ok() {
        sent.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The host's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(host: &Wasmhouse) -> u64 {
    common::status_bytes(host.pid(), "VmHWM").unwrap_or(0)
}

/// Every answer a registry gives is read through a bound before it is
/// kept: a registry (or its token service) that sends a manifest, a
/// digest-less tag's manifest, an error or a token without end is cut off
/// after its bound, the deploy is refused with a message naming what was
/// too big, and the host's peak memory stays where it was. A token service
/// over plain HTTP on another host is not asked at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_answers_without_end_is_cut_off() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let registry = Loopback::start_writing(move |lines, stream| {
        use std::io::Write as _;
        let request = lines.first().map(String::as_str).unwrap_or_default();
        let path = request.split_whitespace().nth(1).unwrap_or_default();
        let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n";
        if path.starts_with("/auth/token") {
            endless(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                &counter,
            );
        } else if path.starts_with("/v2/tokened/") && !authorized(lines) {
            let port = stream.local_addr().map(|a| a.port()).unwrap_or_default();
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/auth/token\",service=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        } else if path.starts_with("/v2/elsewhere/") {
            // A token service over plain HTTP on another host: no
            // credentials go there (the test's origin is 127.0.0.1).
            let port = stream.local_addr().map(|a| a.port()).unwrap_or_default();
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://localhost:{port}/auth/token\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        } else if path.starts_with("/v2/failing/") {
            endless(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                &counter,
            );
        } else if request.starts_with("HEAD") {
            // No Docker-Content-Digest: the manifest must be read to know it.
            let _ = stream.write_all(ok.as_bytes());
        } else {
            endless(stream, ok, &counter);
        }
    });
    let registry_host = registry.addr.to_string();
    let cache = tempfile::tempdir().expect("temp dir");
    let host = HostBuilder::without_clickhouse()
        .env("WASMHOUSE_INSECURE_REGISTRIES", &registry_host)
        .env("WASMHOUSE_COMPILE_CACHE", cache.path())
        .env("WASMHOUSE_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("DOCKER_CONFIG", "/nonexistent-docker-config")
        .env_remove("WASMHOUSE_REGISTRY_USERNAME")
        .env_remove("WASMHOUSE_REGISTRY_PASSWORD")
        .start();
    let listed = send(admin(&host, reqwest::Method::GET, "/admin/components")).await;
    let route = listed.json["components"][0]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no route listed: {}", listed.text))
        .to_owned();
    let before = peak_rss(&host);
    for (reference, says) in [
        (
            format!("oci://{registry_host}/app@{DIGEST}"),
            "more than 4194304 bytes",
        ),
        (
            format!("oci://{registry_host}/app:latest"),
            "more than 4194304 bytes",
        ),
        (
            format!("oci://{registry_host}/failing/app:latest"),
            "HTTP 500",
        ),
        (
            format!("oci://{registry_host}/tokened/app:latest"),
            "more than 65536 bytes",
        ),
        (
            format!("oci://{registry_host}/elsewhere/app:latest"),
            "credentials go over HTTPS only",
        ),
    ] {
        sent.store(0, Ordering::Relaxed);
        let reply = send(
            admin(
                &host,
                reqwest::Method::PUT,
                &format!("/admin/components/{route}"),
            )
            .json(&serde_json::json!({ "component": reference })),
        )
        .await;
        assert!(
            (400..600).contains(&reply.status) && reply.text.contains(says),
            "{reference}: {} {}",
            reply.status,
            reply.text
        );
        // Shown cut: never the whole of what the registry sent.
        assert!(
            reply.text.len() < 4096,
            "{reference}: a {}-byte answer",
            reply.text.len()
        );
        // What the registry got out before the host stopped reading: the
        // bound, and what the sockets' buffers hold.
        let out = sent.load(Ordering::Relaxed);
        assert!(
            out < 24 << 20,
            "{reference}: the registry sent {out} bytes before it was cut off"
        );
    }
    let grown = peak_rss(&host).saturating_sub(before);
    assert!(
        grown < 48 << 20,
        "the host's peak memory grew {grown} bytes"
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_pushed_as_spin_pushes_is_served() {
    let registry = Registry::start();
    let component = std::fs::read(guests::hostile(2)).unwrap();
    // Spin's layout: its locked application as the config, each component
    // a `vnd.wasm.content.layer` layer, static files as data layers.
    let config = br#"{"spin_lock_version":1,"components":[{"id":"app"}]}"#.to_vec();
    let asset = b"<h1>static</h1>".to_vec();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.fermyon.spin.application.v1+config", &config),
        "layers": [
            descriptor("application/vnd.wasm.content.layer.v1+wasm", &component),
            descriptor("application/vnd.wasm.content.layer.v1+data", &asset),
        ],
    });
    push_raw(
        &registry,
        "spin/app",
        "1.0",
        &[&config, &component, &asset],
        &manifest,
        OCI_MANIFEST,
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let host = host(
        &registry.host(),
        &registry.reference("spin/app:1.0"),
        false,
        cache.path(),
    )
    .start();
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    assert_eq!(
        live(&host).await["digest"],
        sha256_digest(manifest.to_string().as_bytes())
    );
}

/// A client of `wkg`'s own stack (oci-wasm on its oci-client), over plain
/// HTTP to the loopback registry.
fn wkg_client() -> oci_wasm::WasmClient {
    use oci_client_wkg::client::{ClientConfig, ClientProtocol};
    oci_wasm::WasmClient::new(oci_client_wkg::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    }))
}

fn wkg_reference(registry: &Registry, path: &str) -> oci_client_wkg::Reference {
    format!("{}/{path}", registry.host())
        .parse()
        .expect("a reference")
}

#[tokio::test(flavor = "multi_thread")]
async fn what_wkg_pushes_is_served_and_what_wasmhouse_pushes_wkg_reads() {
    let registry = Registry::start();
    let anonymous = oci_client_wkg::secrets::RegistryAuth::Anonymous;
    let client = wkg_client();

    // `wkg oci push`'s writer: served as it is.
    let v2 = std::fs::read(guests::hostile(2)).unwrap();
    let (config, layer) =
        oci_wasm::WasmConfig::from_raw_component(v2.clone(), None).expect("a component");
    client
        .push(
            &wkg_reference(&registry, "wkg/app:1"),
            &anonymous,
            layer,
            config,
            None,
        )
        .await
        .expect("pushed as wkg pushes");
    let cache = tempfile::tempdir().unwrap();
    let host = host(
        &registry.host(),
        &registry.reference("wkg/app:1"),
        false,
        cache.path(),
    )
    .start();
    assert_eq!(get(&host.url("/version")).await.json["version"], 2);
    assert_eq!(live(&host).await["origin"], "registry");

    // `wasmhouse push`'s output through wkg's reader: its config is a
    // component's, its one layer the component's bytes.
    let v1 = std::fs::read(guests::hostile(1)).unwrap();
    push_file(
        &registry,
        &guests::hostile(1),
        &registry.reference("ours/app:1"),
    );
    let reference = wkg_reference(&registry, "ours/app:1");
    let (manifest, config, _digest) = client
        .pull_manifest_and_config(&reference, &anonymous)
        .await
        .expect("wkg reads the manifest and config");
    assert_eq!(config.architecture, "wasm");
    assert_eq!(config.os, "wasip2");
    assert_eq!(config.layer_digests, vec![sha256_digest(&v1)]);
    let component = config.component.expect("the component's world");
    assert!(
        component
            .exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler")),
        "{:?}",
        component.exports
    );
    assert_eq!(manifest.layers.len(), 1);
    let image = client
        .pull(&reference, &anonymous)
        .await
        .expect("wkg pulls it");
    assert_eq!(image.layers.len(), 1);
    assert_eq!(image.layers[0].data.as_ref(), v1.as_slice());
}
