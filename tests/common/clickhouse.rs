//! A real `clickhouse-server` on free loopback ports with a temporary data
//! directory, stopped when dropped.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A ClickHouse server owned by one test.
pub struct ClickHouse {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The main configuration file: Debian's, or a copy with extra users.
    config: PathBuf,
    http_port: u16,
    tcp_port: u16,
    interserver_port: u16,
    /// The `default` user's password, when the configuration sets one.
    default_password: Option<String>,
    /// HTTPS: the port, and the server's certificate and key files.
    https: Option<(u16, Https)>,
}

/// An HTTPS port for the server: its certificate and key (PEM files), and
/// the CA whose client certificates it then requires, if any.
#[derive(Debug, Clone)]
pub struct Https {
    /// The server's certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// Require a client certificate signed by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// A server's extra configuration: files for `users.d/` and `config.d/`
/// beside a copy of Debian's configuration.
#[derive(Default)]
pub struct Setup<'a> {
    /// A `users.d` file (`<yandex><users>…</users><profiles>…</profiles></yandex>`).
    pub users: Option<&'a str>,
    /// A `config.d` file.
    pub config: Option<&'a str>,
    /// The password the `users` file gives `default`: the harness's own
    /// queries send it.
    pub default_password: Option<&'a str>,
    /// Serve HTTPS too.
    pub https: Option<Https>,
}

impl ClickHouse {
    /// Start a server and wait until it answers `/ping`.
    pub fn start() -> Self {
        Self::start_with(Setup::default())
    }

    /// Start a server whose users include those of `users_fragment`, a
    /// `users.d` file (`<yandex><users>…</users><profiles>…</profiles></yandex>`).
    pub fn start_with_users(users_fragment: &str) -> Self {
        Self::start_with(Setup {
            users: Some(users_fragment),
            ..Setup::default()
        })
    }

    /// Start a server with the extra configuration of `setup`.
    pub fn start_with(setup: Setup<'_>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wasmhouse-ch-")
            .tempdir()
            .expect("temporary directory for ClickHouse");
        let config = if setup.users.is_none() && setup.config.is_none() {
            PathBuf::from("/etc/clickhouse-server/config.xml")
        } else {
            // A copy of Debian's configuration, so `users.d/` and
            // `config.d/` beside it are merged into it.
            let etc = dir.path().join("etc");
            for sub in ["users.d", "config.d"] {
                std::fs::create_dir_all(etc.join(sub)).expect("config directory");
            }
            for file in ["config.xml", "users.xml"] {
                std::fs::copy(
                    Path::new("/etc/clickhouse-server").join(file),
                    etc.join(file),
                )
                .expect("copying Debian's ClickHouse configuration");
            }
            if let Some(users) = setup.users {
                std::fs::write(etc.join("users.d/wasmhouse.xml"), users)
                    .expect("writing the users fragment");
            }
            if let Some(config) = setup.config {
                std::fs::write(etc.join("config.d/wasmhouse.xml"), config)
                    .expect("writing the config fragment");
            }
            etc.join("config.xml")
        };
        let mut server = Self {
            child: None,
            dir,
            config,
            http_port: 0,
            tcp_port: 0,
            interserver_port: 0,
            default_password: setup.default_password.map(str::to_owned),
            https: setup.https.map(|https| (0, https)),
        };
        // Free ports can be taken between choosing and binding them; try again.
        for attempt in 1..=5 {
            server.http_port = free_port();
            server.tcp_port = free_port();
            server.interserver_port = free_port();
            if let Some((port, _)) = &mut server.https {
                *port = free_port();
            }
            match server.launch() {
                Ok(()) => return server,
                Err(why) if attempt < 5 => {
                    eprintln!("clickhouse-server did not start ({why}); retrying")
                }
                Err(why) => panic!("clickhouse-server did not start: {why}"),
            }
        }
        unreachable!()
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Kill the server (as a crash would) and wait until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.http_port)).is_ok() && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Start the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(why) if Instant::now() < deadline => {
                    eprintln!("restart failed ({why}); retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(why) => panic!("clickhouse-server did not restart: {why}"),
            }
        }
    }

    /// The HTTPS port, when it serves one.
    pub fn https_port(&self) -> Option<u16> {
        self.https.as_ref().map(|(port, _)| *port)
    }

    /// The TCP (native protocol) port.
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// Run `sql` directly as `user` with `password`; status and body.
    pub fn query_as(&self, user: &str, password: &str, sql: &str) -> (u16, String) {
        use std::fmt::Write as _;
        let mut path = String::from("/?user=");
        for byte in user.bytes().chain(*b"&password=").chain(password.bytes()) {
            let _ = if byte.is_ascii_alphanumeric() || b"&=_".contains(&byte) {
                write!(path, "{}", byte as char)
            } else {
                write!(path, "%{byte:02X}")
            };
        }
        raw_http(self.http_port, "POST", &path, sql)
    }

    /// Wait (up to 10 s) until a query of wasmhouse's whose text contains
    /// `fragment` is running.
    pub fn wait_for_query(&self, fragment: &str) {
        self.wait_for_running(fragment, 1, Duration::from_secs(10));
    }

    /// Wait until `count` queries of wasmhouse's with `fragment` in their
    /// text run in the server at once.
    pub fn wait_for_queries(&self, fragment: &str, count: usize) {
        self.wait_for_running(fragment, count, Duration::from_secs(20));
    }

    fn wait_for_running(&self, fragment: &str, count: usize, within: Duration) {
        let sql = format!(
            "SELECT count() FROM system.processes WHERE query_id LIKE 'wasmhouse-%' AND position(query, '{}') > 0 FORMAT TabSeparated",
            fragment.replace('\\', "\\\\").replace('\'', "\\'")
        );
        let deadline = Instant::now() + within;
        loop {
            let running: usize = self.query(&sql).trim().parse().unwrap_or(0);
            if running >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never {count} queries with {fragment:?} at once (at most {running} seen last)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Run `sql` directly (not through wasmhouse) and return the body.
    pub fn query(&self, sql: &str) -> String {
        let response = match &self.default_password {
            Some(password) => self.query_as("default", password, sql),
            None => ureq_post(self.http_port, sql),
        };
        assert!(
            response.0 == 200,
            "direct query {sql:?} failed: {} {}",
            response.0,
            response.1
        );
        response.1
    }

    /// Rows of `system.query_log` matching `condition` (SQL), once at least
    /// `expected` are there or 10 s have passed. ClickHouse queues a query's
    /// log entry after the client has read the whole answer, so a flush right
    /// after the last answer can miss the newest entries.
    pub fn query_log_count(&self, condition: &str, expected: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.query("SYSTEM FLUSH LOGS");
            let count: u64 = self
                .query(&format!(
                    "SELECT count() FROM system.query_log WHERE {condition} FORMAT TabSeparated"
                ))
                .trim()
                .parse()
                .expect("a count");
            if count >= expected || Instant::now() >= deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The HTTPS port's arguments (18.16's OpenSSL settings).
    fn https_args(&self) -> Vec<String> {
        let Some((port, https)) = &self.https else {
            return Vec::new();
        };
        let mut args = vec![
            format!("--https_port={port}"),
            format!("--openSSL.server.certificateFile={}", https.cert.display()),
            format!("--openSSL.server.privateKeyFile={}", https.key.display()),
            "--openSSL.server.dhParamsFile=".to_owned(),
        ];
        if let Some(ca) = &https.client_ca {
            args.push("--openSSL.server.verificationMode=strict".to_owned());
            args.push(format!("--openSSL.server.caConfig={}", ca.display()));
        }
        args
    }

    fn launch(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let path = |sub: &str| format!("{}/{sub}", root.display());
        let log = root.join(format!("server-{}.log", self.http_port));
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = Command::new(server_binary())
            .current_dir(root)
            .arg(format!("--config-file={}", self.config.display()))
            .arg("--")
            .arg(format!("--path={}", path("data/")))
            .arg(format!("--tmp_path={}", path("tmp/")))
            .arg(format!("--user_files_path={}", path("user_files/")))
            .arg(format!("--format_schema_path={}", path("format_schemas/")))
            .arg(format!("--http_port={}", self.http_port))
            .arg(format!("--tcp_port={}", self.tcp_port))
            .arg(format!("--interserver_http_port={}", self.interserver_port))
            .args(self.https_args())
            .arg("--listen_host=127.0.0.1")
            .arg("--logger.console=1")
            .arg(format!("--logger.log={}", path("clickhouse.log")))
            .arg(format!("--logger.errorlog={}", path("clickhouse.err.log")))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", server_binary().display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut text = String::new();
                let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
                let tail: String = text.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                return Err(format!(
                    "exited with {status}; log tail (newest first):\n{tail}"
                ));
            }
            if ping(self.http_port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("no answer to /ping within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CLICKHOUSE_SERVER_BIN") {
        return path.into();
    }
    for candidate in ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "clickhouse-server not found: install it (apt-get install -y clickhouse-server) \
         or set CLICKHOUSE_SERVER_BIN"
    );
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

fn ping(port: u16) -> bool {
    let (status, body) = raw_http(port, "GET", "/ping", "");
    status == 200 && body.starts_with("Ok.")
}

fn ureq_post(port: u16, sql: &str) -> (u16, String) {
    raw_http(port, "POST", "/", sql)
}

/// A tiny blocking HTTP/1.0 exchange, enough for pings and direct queries
/// from synchronous setup code.
fn raw_http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::Write as _;
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
