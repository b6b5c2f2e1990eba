//! What ships besides the binary: the container image, the systemd unit, the
//! nginx configuration and the example keys file, each checked with the tool
//! that will run it (docker, systemd-analyze, nginx) when it is installed.
//!
//! The container test needs an image: `scripts/docker-image` builds one and
//! `scripts/test` sets `WASMHOUSE_IMAGE` to it. Without it (or without
//! systemd-analyze / nginx) those tests say they were skipped and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::clickhouse::free_port;
use common::{ClickHouse, HostBuilder, Wasmhouse, get};

/// The host's whole-request budget, which stop timeouts and proxy timeouts
/// must stay above.
const REQUEST_BUDGET: Duration = wasmhouse::DEFAULT_REQUEST_TIMEOUT;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read_repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|err| panic!("reading {path}: {err}"))
}

/// Whether `program` can be run (found on PATH).
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|err| panic!("running {command:?}: {err}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------
// wasmhouse healthcheck

fn healthcheck(args: &[&str], listen: Option<&str>) -> (bool, String) {
    healthcheck_with(args, listen, &[])
}

fn healthcheck_with(args: &[&str], listen: Option<&str>, env: &[(&str, &Path)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
    command.arg("healthcheck").args(args);
    command.envs(env.iter().copied());
    match listen {
        Some(listen) => command.env("WASMHOUSE_LISTEN", listen),
        None => command.env_remove("WASMHOUSE_LISTEN"),
    };
    let output = run(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "one line expected: {}",
        text(&output)
    );
    (output.status.success(), stdout)
}

#[test]
fn healthcheck_exits_zero_only_for_a_healthy_server() {
    let host: Wasmhouse = HostBuilder::without_clickhouse().start();
    let addr = host.addr().to_string();

    // The URL made from WASMHOUSE_LISTEN, as in the container.
    let (healthy, line) = healthcheck(&[], Some(&addr));
    assert!(healthy, "{line}");
    assert!(
        line.starts_with(&format!("healthy: http://{addr}/health: status 200")),
        "{line}"
    );
    // An unspecified listen address is reached through loopback.
    let any = format!("0.0.0.0:{}", host.addr().port());
    assert!(healthcheck(&[], Some(&any)).0);

    let (healthy, line) = healthcheck(&["--url", &host.url("/no/such/route")], None);
    assert!(!healthy, "a 404 is not healthy: {line}");
    assert!(
        line.starts_with("unhealthy: ") && line.contains("status 404"),
        "{line}"
    );

    let closed = format!("127.0.0.1:{}", free_port());
    let (healthy, line) = healthcheck(&["--timeout", "1s"], Some(&closed));
    assert!(!healthy, "{line}");
    assert!(line.contains("no answer"), "{line}");
}

/// A scratch image has no CA store: the health check (plain HTTP to the
/// server itself) must not need one.
#[test]
fn healthcheck_needs_no_system_ca_store() {
    let host: Wasmhouse = HostBuilder::without_clickhouse().start();
    let addr = host.addr().to_string();
    let empty = tempfile::tempdir().expect("temporary directory");
    let no_certs = empty.path().join("none.pem");
    std::fs::write(&no_certs, "").expect("empty CA file");
    // What rustls-native-certs reads instead of /etc/ssl when set.
    let env = [
        ("SSL_CERT_FILE", no_certs.as_path()),
        ("SSL_CERT_DIR", empty.path()),
    ];
    let (healthy, line) = healthcheck_with(&[], Some(&addr), &env);
    assert!(healthy, "{line}");
}

// ---------------------------------------------------------------------------
// The container image

/// A container removed when dropped, whatever the test did.
struct Container {
    id: String,
}

impl Container {
    fn inspect(&self, format: &str) -> String {
        let output = run(Command::new("docker").args(["inspect", "--format", format, &self.id]));
        assert!(output.status.success(), "docker inspect: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn logs(&self) -> String {
        text(&run(Command::new("docker").args(["logs", &self.id])))
    }

    fn running(&self) -> bool {
        Command::new("docker")
            .args(["inspect", "--format", "{{.State.Running}}", &self.id])
            .output()
            .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "true")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The image the container tests run (`WASMHOUSE_IMAGE`); `None`, after
/// saying the test is skipped, when none is given.
fn container_image() -> Option<String> {
    let image = std::env::var("WASMHOUSE_IMAGE")
        .ok()
        .filter(|image| !image.is_empty());
    if image.is_none() {
        eprintln!(
            "skipped: set WASMHOUSE_IMAGE (scripts/docker-image builds one) to run the container test"
        );
    }
    image
}

#[tokio::test]
async fn container_serves_simple_query() {
    let Some(image) = container_image() else {
        return;
    };
    let clickhouse = ClickHouse::start();
    let port = clickhouse.http_port().to_string();
    let (container, base) = run_container(
        &image,
        &[("CLICKHOUSE_HOST", "127.0.0.1"), ("CLICKHOUSE_PORT", &port)],
        &[],
    )
    .await;
    common::seed::assert_simple_query(&base).await;
    let status = get(&format!("{base}/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["port"], clickhouse.http_port());

    // Not root, as configured and as the kernel sees the process.
    let user = container.inspect("{{.Config.User}}");
    assert_eq!(user, "65534:65534");
    let pid = container.inspect("{{.State.Pid}}");
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("reading /proc/{pid}/status: {err}"));
    let uids = proc_status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("a Uid line");
    assert!(
        uids.split_whitespace().all(|uid| uid == "65534"),
        "the server runs with uids {uids}"
    );

    // The image's HEALTHCHECK (`wasmhouse healthcheck`) turns it healthy.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = container.inspect("{{.State.Health.Status}}");
        if health == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "health still {health:?} after 60 s: {}",
            container.inspect("{{json .State.Health}}")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log: serde_json::Value =
        serde_json::from_str(&container.inspect("{{json .State.Health.Log}}")).expect("JSON");
    let last = log
        .as_array()
        .and_then(|probes| probes.last())
        .expect("a probe");
    assert_eq!(last["ExitCode"], 0, "{last}");
    let probe = last["Output"].as_str().unwrap_or_default();
    assert!(
        probe.starts_with(&format!("healthy: {base}/health: status 200")),
        "{probe}"
    );

    // Nothing in a scratch image got in the way (no HOME, no /tmp, no
    // passwd): in particular the compile cache was usable.
    let logs = container.logs();
    assert!(!logs.contains("compile cache unavailable"), "{logs}");

    // SIGTERM to PID 1 is a graceful shutdown with exit status 0.
    let mut wait = Command::new("docker")
        .args(["wait", &container.id])
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker wait");
    let stop = run(Command::new("docker").args([
        "stop",
        "--time",
        &(REQUEST_BUDGET.as_secs() + 10).to_string(),
        &container.id,
    ]));
    assert!(stop.status.success(), "docker stop: {}", text(&stop));
    assert!(
        exited_within(&mut wait, Duration::from_secs(30)),
        "docker wait did not return"
    );
    let mut status = String::new();
    std::io::Read::read_to_string(wait.stdout.as_mut().expect("piped"), &mut status)
        .expect("docker wait's output");
    assert_eq!(status.trim(), "0", "exit status after SIGTERM");
}

#[tokio::test]
async fn container_serves_a_component_from_a_registry() {
    let Some(image) = container_image() else {
        return;
    };
    // The image carries CA roots where TLS clients look (a scratch image has
    // none of its own): the registry client needs them for HTTPS.
    let created = run(Command::new("docker").args(["create", &image]));
    assert!(
        created.status.success(),
        "docker create: {}",
        text(&created)
    );
    let id = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let copied = run(Command::new("docker").args([
        "cp",
        &format!("{id}:/etc/ssl/certs/ca-certificates.crt"),
        "-",
    ]));
    let _ = Command::new("docker").args(["rm", &id]).output();
    assert!(
        copied.status.success(),
        "no CA bundle in the image: {}",
        text(&copied)
    );
    assert!(
        copied.stdout.len() > 10_000,
        "the CA bundle is nearly empty"
    );

    // The seed routes pushed to a registry, served by the container from it.
    let registry = common::registry::Registry::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let component = dir.path().join("seed.wasm");
    std::fs::write(&component, wasmhouse::BUILTIN_COMPONENT).expect("write the component");
    let target = registry.reference("seed:live");
    let pushed = run(Command::new(env!("CARGO_BIN_EXE_wasmhouse")).args([
        "push",
        component.to_str().expect("UTF-8 path"),
        &target,
        "--insecure-registry",
        &registry.host(),
    ]));
    assert!(pushed.status.success(), "push: {}", text(&pushed));
    let clickhouse = ClickHouse::start();
    let port = clickhouse.http_port().to_string();
    let (container, base) = run_container(
        &image,
        &[
            ("CLICKHOUSE_HOST", "127.0.0.1"),
            ("CLICKHOUSE_PORT", &port),
            ("WASMHOUSE_COMPONENT", &target),
            ("WASMHOUSE_INSECURE_REGISTRIES", &registry.host()),
        ],
        &[],
    )
    .await;
    common::seed::assert_simple_query(&base).await;
    assert!(container.logs().contains("pulled"), "{}", container.logs());
}

/// `image` run with `env` (and extra `docker run` arguments), answering
/// `/health`: the container and its base URL.
async fn run_container(image: &str, env: &[(&str, &str)], extra: &[&str]) -> (Container, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "run".to_owned(),
        "--detach".into(),
        "--rm".into(),
        "--network".into(),
        "host".into(),
        // The image's own check, run more often than its 10 s so the test
        // need not wait as long.
        "--health-interval".into(),
        "1s".into(),
        "--env".into(),
        format!("WASMHOUSE_LISTEN={listen}"),
    ];
    for (name, value) in env {
        args.extend(["--env".to_owned(), format!("{name}={value}")]);
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args.push(image.to_owned());
    let output = run(Command::new("docker").args(&args));
    assert!(output.status.success(), "docker run: {}", text(&output));
    let container = Container {
        id: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    };
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = common::client()
            .get(format!("{base}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if answer.is_ok_and(|response| response.status() == 200) {
            break;
        }
        assert!(
            container.running() && Instant::now() < deadline,
            "the container did not answer /health within 60 s; its log:\n{}",
            container.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (container, base)
}

#[tokio::test]
async fn container_reaches_clickhouse_over_https() {
    let Some(image) = container_image() else {
        return;
    };
    let certs = common::certs::Certs::generate();
    // The container runs as nobody: let it read the test's files.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(certs.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("certificate directory mode");
    std::fs::set_permissions(certs.path("ca.crt"), std::fs::Permissions::from_mode(0o644))
        .expect("CA mode");
    let clickhouse = ClickHouse::start_with(common::clickhouse::Setup {
        https: Some(common::clickhouse::Https {
            cert: certs.path("server.crt"),
            key: certs.path("server.key"),
            client_ca: None,
        }),
        ..Default::default()
    });
    // An address, not a name: a scratch image resolves nothing itself.
    let url = format!(
        "https://127.0.0.1:{}",
        clickhouse.https_port().expect("https")
    );
    let mount = format!("{}:/etc/wasmhouse/tls:ro", certs.dir().display());
    let (container, base) = run_container(
        &image,
        &[
            ("CLICKHOUSE_URL", &url),
            ("CLICKHOUSE_CA_CERT", "/etc/wasmhouse/tls/ca.crt"),
        ],
        &["--volume", &mount],
    )
    .await;
    let reply = get(&format!("{base}/concurrent/simple-query")).await;
    assert_eq!(reply.status, 200, "{}: {}", reply.text, container.logs());
}

/// Whether `child` exited within `timeout` (killed if not).
fn exited_within(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[test]
fn image_variables_are_the_binarys() {
    let dockerfile = read_repo_file("deploy/docker/Dockerfile");
    let mut names = Vec::new();
    let mut in_env = false;
    for line in dockerfile.lines() {
        let line = line.trim();
        // `ENV A=1 \` continues on the next line.
        let rest = match line.strip_prefix("ENV ") {
            Some(rest) => rest,
            None if in_env => line,
            None => continue,
        };
        in_env = rest.ends_with('\\');
        for assignment in rest.trim_end_matches('\\').split_whitespace() {
            let (name, _) = assignment.split_once('=').expect("ENV NAME=value");
            names.push(name.to_owned());
        }
    }
    assert!(names.contains(&"WASMHOUSE_LISTEN".to_owned()), "{names:?}");
    assert_variables_exist(&names);
    for directive in [
        "FROM scratch",
        "USER 65534:65534",
        "EXPOSE 8000",
        "HEALTHCHECK",
        "CMD [\"/usr/local/bin/wasmhouse\", \"healthcheck\"]",
    ] {
        assert!(
            dockerfile.contains(directive),
            "Dockerfile lacks {directive}"
        );
    }
}

/// Every name is a variable `wasmhouse serve` reads.
fn assert_variables_exist(names: &[String]) {
    let help = run(Command::new(env!("CARGO_BIN_EXE_wasmhouse")).args(["serve", "--help"]));
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for name in names {
        assert!(
            help.contains(&format!("<{name}>")),
            "`wasmhouse serve` reads no {name}"
        );
    }
}

// ---------------------------------------------------------------------------
// The systemd unit

const UNIT: &str = "deploy/systemd/wasmhouse.service";

/// The `[Service]` section's `key=value` lines, in order.
fn service_directives(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut directives = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]" {
            let (key, value) = line.split_once('=').expect("key=value");
            directives.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    directives
}

#[test]
fn systemd_unit_keeps_its_hardening() {
    let directives = service_directives(&read_repo_file(UNIT));
    let value = |key: &str| {
        directives
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("RestrictNamespaces", "yes"),
        ("EnvironmentFile", "-/etc/wasmhouse/wasmhouse.env"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(value(key), [expected], "{key}");
    }
    assert!(
        value("MemoryDenyWriteExecute").is_empty(),
        "Wasmtime's JIT needs writable-then-executable code"
    );
    assert!(!value("LimitNOFILE").is_empty());
    let stop = humantime::parse_duration(value("TimeoutStopSec")[0]).expect("TimeoutStopSec");
    assert!(
        stop > REQUEST_BUDGET,
        "TimeoutStopSec {stop:?} must be above the shutdown grace {REQUEST_BUDGET:?}"
    );

    // Only variables the binary reads.
    let names: Vec<String> = value("Environment")
        .iter()
        .map(|assignment| assignment.split_once('=').expect("NAME=value").0.to_owned())
        .collect();
    assert!(!names.is_empty());
    assert_variables_exist(&names);
    assert_eq!(value("ExecStart"), ["/usr/local/bin/wasmhouse serve"]);
}

#[test]
fn systemd_unit_verifies() {
    if !installed("systemd-analyze") {
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    // `verify` checks that ExecStart's program exists and is executable, so
    // the copy points at the binary this test built rather than at
    // /usr/local/bin, where nothing may be installed.
    let unit = read_repo_file(UNIT);
    let binary = env!("CARGO_BIN_EXE_wasmhouse");
    let pointed = unit.replace(
        "ExecStart=/usr/local/bin/wasmhouse ",
        &format!("ExecStart={binary} "),
    );
    assert_ne!(
        pointed, unit,
        "ExecStart=/usr/local/bin/wasmhouse not found"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("wasmhouse.service");
    std::fs::write(&path, pointed).expect("write the unit");

    let output = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    let said = text(&output);
    assert!(output.status.success(), "systemd-analyze verify:\n{said}");
    // Unknown or misspelt directives are only warnings: none may be ours.
    let ours: Vec<&str> = said
        .lines()
        .filter(|line| {
            line.contains("wasmhouse.service") || line.contains(&*dir.path().to_string_lossy())
        })
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify warned:\n{}",
        ours.join("\n")
    );
}

/// The system calls in a systemd group such as `@system-service`, groups
/// inside it expanded.
fn syscall_group(group: &str) -> std::collections::BTreeSet<String> {
    let output = run(Command::new("systemd-analyze").args(["syscall-filter", group]));
    assert!(
        output.status.success(),
        "systemd-analyze syscall-filter {group}"
    );
    let mut calls = std::collections::BTreeSet::new();
    // The first line names the group; the rest are calls and groups, with
    // `# comments`.
    for line in String::from_utf8_lossy(&output.stdout).lines().skip(1) {
        let item = line.split('#').next().unwrap_or_default().trim();
        if item.starts_with('@') {
            calls.extend(syscall_group(item));
        } else if !item.is_empty() {
            calls.insert(item.to_owned());
        }
    }
    calls
}

/// Every system call the host makes (starting, answering requests, a
/// query, a SIGHUP reload, a SIGTERM shutdown), traced with strace, is in
/// the unit's `SystemCallFilter`: a call outside it would kill the service.
#[tokio::test]
async fn system_calls_fit_the_units_filter() {
    if !installed("strace") || !installed("systemd-analyze") {
        eprintln!("skipped: needs strace and systemd-analyze (apt-get install strace systemd)");
        return;
    }
    let filter = service_directives(&read_repo_file(UNIT))
        .into_iter()
        .find(|(key, _)| key == "SystemCallFilter")
        .map(|(_, value)| value)
        .expect("a SystemCallFilter");
    let allowed = syscall_group(&filter);
    assert!(
        allowed.contains("read") && allowed.len() > 100,
        "{allowed:?}"
    );

    let clickhouse = ClickHouse::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new("strace");
    command
        .args(["--follow-forks", "--output-separately", "-qq", "-o"])
        .arg(dir.path().join("trace"))
        .arg(env!("CARGO_BIN_EXE_wasmhouse"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CLICKHOUSE_HOST", "127.0.0.1")
        .env("CLICKHOUSE_PORT", clickhouse.http_port().to_string())
        .env_remove("CLICKHOUSE_URL")
        .env("WASMHOUSE_COMPILE_CACHE", dir.path().join("cache"));
    let mut host = HostBuilder::from_command(command).start();
    let simple = get(&host.url("/concurrent/simple-query")).await;
    assert_eq!(simple.status, 200, "{}", simple.text);
    assert_eq!(get(&host.url("/health")).await.status, 200);

    // Signals go to the traced server, strace's child.
    let children = run(Command::new("pgrep").args(["-P", &host.pid().to_string()]));
    let server = String::from_utf8_lossy(&children.stdout).trim().to_owned();
    assert!(!server.is_empty(), "no traced server process");
    for signal in ["-HUP", "-TERM"] {
        assert!(
            run(Command::new("kill").args([signal, &server]))
                .status
                .success()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(host.wait_exit(Duration::from_secs(40)), Some(0));

    let mut used = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir.path())
        .expect("trace files")
        .flatten()
    {
        if !entry.file_name().to_string_lossy().starts_with("trace") {
            continue;
        }
        let trace = std::fs::read_to_string(entry.path()).expect("a trace file");
        for line in trace.lines() {
            // `name(args) = result`; `<... name resumed>`, `+++ exited`
            // and `--- SIGHUP` lines repeat or are not calls.
            if let Some((name, _)) = line.split_once('(')
                && !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                used.insert(name.to_owned());
            }
        }
    }
    assert!(used.len() > 20 && used.contains("accept4"), "{used:?}");
    // execve is strace starting the binary, before any filter would apply.
    let outside: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        outside.is_empty(),
        "system calls outside {filter}: {outside:?}"
    );
}

// ---------------------------------------------------------------------------
// nginx in front

const NGINX: &str = "deploy/nginx/wasmhouse.conf";

/// A main nginx.conf around the repository's server config (which belongs
/// in `http {}`), with every path nginx writes inside `dir`.
fn nginx_wrapper(dir: &Path, server_config: &Path) -> PathBuf {
    let d = dir.display();
    let config = format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         include {};\n}}\n",
        server_config.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, config).expect("write nginx.conf");
    path
}

#[test]
fn nginx_config_is_valid() {
    if !installed("nginx") {
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let wrapper = nginx_wrapper(dir.path(), &repo_file(NGINX));
    let output = run(Command::new("nginx").arg("-t").arg("-c").arg(&wrapper));
    assert!(output.status.success(), "nginx -t:\n{}", text(&output));

    let config = read_repo_file(NGINX);
    for directive in [
        "keepalive 64;",
        "proxy_http_version 1.1;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Request-Id $http_x_request_id;",
    ] {
        assert!(config.contains(directive), "{NGINX} lacks {directive}");
    }
    for timeout in ["proxy_read_timeout", "proxy_send_timeout"] {
        let value = config
            .lines()
            .find_map(|line| line.trim().strip_prefix(timeout))
            .unwrap_or_else(|| panic!("{NGINX} sets no {timeout}"));
        let value = humantime::parse_duration(value.trim().trim_end_matches(';')).expect(timeout);
        assert!(
            value > REQUEST_BUDGET,
            "{timeout} {value:?} is not above the request budget"
        );
    }
}

/// nginx in the foreground, stopped (gracefully, then for good) when dropped.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: the master stops its workers too (a SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        exited_within(&mut self.child, Duration::from_secs(10));
    }
}

/// Through the repository's nginx config: request ids pass both ways, and
/// with `WASMHOUSE_TRUSTED_PROXIES=127.0.0.1` per-client limits count the
/// client nginx names in X-Forwarded-For, not nginx.
#[tokio::test]
async fn nginx_passes_clients_and_request_ids() {
    if !installed("nginx") {
        eprintln!("skipped: nginx is not installed (apt-get install nginx)");
        return;
    }
    let manifest_dir = tempfile::tempdir().expect("temp dir");
    let manifest = manifest_dir.path().join("wasmhouse.toml");
    std::fs::write(
        &manifest,
        "[[route]]\nname = \"seed\"\nprefix = \"/\"\ncomponent = \"builtin\"\n\
         rate_limit_per_client = \"1/min\"\n",
    )
    .expect("write manifest");
    let host = HostBuilder::without_clickhouse()
        .args(&["--manifest", manifest.to_str().expect("UTF-8 path")])
        .env("WASMHOUSE_TRUSTED_PROXIES", "127.0.0.1")
        .start();

    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = read_repo_file(NGINX)
        .replace(
            "server 127.0.0.1:8000;",
            &format!("server {};", host.addr()),
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let server_config = dir.path().join("wasmhouse.conf");
    std::fs::write(&server_config, config).expect("write the server config");
    let wrapper = nginx_wrapper(dir.path(), &server_config);
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&wrapper)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting nginx");
    let nginx = Nginx { child, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen; its log:\n{}",
            std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let through = |client: &'static str, request_id: &'static str| {
        let url = format!("http://127.0.0.1:{port}/health");
        async move {
            common::send(
                common::client()
                    .get(url)
                    .header("x-forwarded-for", client)
                    .header("x-request-id", request_id),
            )
            .await
        }
    };
    let first = through("203.0.113.1", "through-nginx-1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.headers["x-request-id"], "through-nginx-1");
    // The same client again: over its 1/min.
    let again = through("203.0.113.1", "through-nginx-2").await;
    assert_eq!(again.status, 429, "{}", again.text);
    assert!(again.headers.contains_key("retry-after"));
    // Another client behind the same nginx has its own bucket.
    let other = through("203.0.113.2", "through-nginx-3").await;
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.headers["x-request-id"], "through-nginx-3");
}

// ---------------------------------------------------------------------------
// Kubernetes

/// Every document of a YAML file, as JSON values.
fn yaml_documents(path: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(&read_repo_file(path))
        .map(|document| {
            serde_json::Value::deserialize(document).unwrap_or_else(|err| panic!("{path}: {err}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found: Vec<_> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

fn seconds(value: &serde_json::Value) -> u64 {
    let text = value.as_str().expect("a duration string");
    let digits = text.strip_suffix('s').expect("a duration in seconds");
    digits.parse().expect("whole seconds")
}

#[test]
fn kubernetes_manifests_hold_what_the_readme_says() {
    let documents = yaml_documents("deploy/kubernetes/wasmhouse.yaml");
    let secrets = yaml_documents("deploy/kubernetes/secret.example.yaml");
    let deployment = of_kind(&documents, "Deployment");
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    let containers = pod["spec"]["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let env: std::collections::BTreeMap<String, serde_json::Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v.clone()))
        .collect();
    let value = |name: &str| {
        env[name]["value"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no value"))
            .to_owned()
    };
    // Every variable is one the binary reads (DOCKER_CONFIG is Docker's own,
    // read for registry credentials).
    let names: Vec<String> = env
        .keys()
        .filter(|n| *n != "DOCKER_CONFIG")
        .cloned()
        .collect();
    assert_variables_exist(&names);

    // Ports: the named ports the probes and the Service use exist, and the
    // host listens where they say.
    let port_of = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert!(value("WASMHOUSE_LISTEN").ends_with(&format!(":{}", port_of("http"))));
    assert!(value("WASMHOUSE_ADMIN_LISTEN").ends_with(&format!(":{}", port_of("admin"))));
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/health", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // A component from a registry, following its tag.
    assert!(value("WASMHOUSE_COMPONENT").starts_with("oci://"));
    assert!(seconds(&env["WASMHOUSE_FOLLOW"]["value"]) >= 1);

    // The drain: the grace period covers the preStop pause and the host's
    // own drain (the request budget).
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("preStop sleep");
    let drain = seconds(&env["WASMHOUSE_REQUEST_TIMEOUT"]["value"]);
    assert_eq!(
        drain,
        REQUEST_BUDGET.as_secs(),
        "the manifest's request timeout is the default"
    );
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    assert!(
        grace > pause + drain,
        "grace {grace}s ≤ pause {pause}s + drain {drain}s"
    );

    // Requests from the measured RSS (BENCHMARKS.md: 33–48 MiB), a memory limit.
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The image's user, a read-only root, the compile cache writable.
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 65534);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let mounts = container["volumeMounts"].as_array().unwrap();
    let mounted_at = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"))["name"]
            .clone()
    };
    assert!(!mounted_at(&value("WASMHOUSE_COMPILE_CACHE")).is_null());
    let volume_named = |name: &serde_json::Value| {
        pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| &v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
            .clone()
    };

    // Secrets: every key the Deployment reads is in the example; the pull
    // secret is mounted as DOCKER_CONFIG's config.json.
    let secret = |name: &str| {
        secrets
            .iter()
            .find(|s| s["kind"] == "Secret" && s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("secret.example.yaml has no secret {name}"))
            .clone()
    };
    for (name, variable) in &env {
        if let Some(reference) = variable.get("valueFrom").map(|v| &v["secretKeyRef"]) {
            let held = secret(reference["name"].as_str().unwrap());
            assert!(
                held["stringData"]
                    .get(reference["key"].as_str().unwrap())
                    .is_some(),
                "{name}: the secret has no key {}",
                reference["key"]
            );
        }
    }
    assert!(
        env["CLICKHOUSE_URL"].get("valueFrom").is_some(),
        "ClickHouse credentials come from a Secret"
    );
    let registry = volume_named(&mounted_at(&value("DOCKER_CONFIG")));
    let pull = secret(registry["secret"]["secretName"].as_str().unwrap());
    assert_eq!(pull["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(registry["secret"]["items"][0]["key"], ".dockerconfigjson");
    assert_eq!(registry["secret"]["items"][0]["path"], "config.json");
    let config: serde_json::Value =
        serde_json::from_str(pull["stringData"][".dockerconfigjson"].as_str().unwrap())
            .expect("JSON");
    assert!(config["auths"].is_object());

    // The Service, the autoscaler and the budget all point at these pods.
    let service = of_kind(&documents, "Service");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let autoscaler = of_kind(&documents, "HorizontalPodAutoscaler");
    assert_eq!(
        autoscaler["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert_eq!(autoscaler["spec"]["metrics"][0]["resource"]["name"], "cpu");
    let budget = of_kind(&documents, "PodDisruptionBudget");
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], labels);
    assert!(
        budget["spec"]["minAvailable"].as_u64().unwrap()
            < deployment["spec"]["replicas"].as_u64().unwrap()
    );
}
