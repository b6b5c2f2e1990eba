//! The real `wasmhouse` binary, started on a free port, killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::clickhouse::ClickHouse;

/// A running `wasmhouse serve`.
pub struct Wasmhouse {
    child: Option<Child>,
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

/// How to start a `wasmhouse serve`.
pub struct HostBuilder {
    command: Command,
}

impl HostBuilder {
    /// `wasmhouse serve` against `clickhouse`, listening on a free port.
    pub fn new(clickhouse: &ClickHouse) -> Self {
        Self::without_clickhouse().env("CLICKHOUSE_PORT", clickhouse.http_port().to_string())
    }

    /// `wasmhouse serve` with no ClickHouse configured (port 9 is discard,
    /// nothing listens there).
    pub fn without_clickhouse() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CLICKHOUSE_HOST", "127.0.0.1")
            .env("CLICKHOUSE_PORT", "9")
            .env("RUST_LOG", "info,wasmhouse=debug")
            .env_remove("CLICKHOUSE_URL")
            .env_remove("WASMHOUSE_COMPONENT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self { command }
    }

    /// Start from a prepared command (it must run `serve --listen ...:0`).
    pub fn from_command(mut command: Command) -> Self {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Self { command }
    }

    /// Set an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Unset an environment variable.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Add command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.command.args(args);
        self
    }

    /// Run in `dir` (where a `.env` would be read from).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Start and wait for the "listening" line.
    pub fn start(mut self) -> Wasmhouse {
        let mut child = self.command.spawn().expect("spawning wasmhouse");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[wasmhouse] {line}");
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            let mut admin = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("wasmhouse admin listening on http://") {
                    admin = Some(addr.trim().to_owned());
                }
                if let Some(addr) = line.strip_prefix("wasmhouse listening on http://")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send((addr.trim().to_owned(), admin.clone()));
                }
            }
        });
        let (addr, admin_addr) = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok((addr, admin)) => (
                addr.parse().expect("a socket address"),
                admin.map(|a| a.parse().expect("a socket address")),
            ),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "wasmhouse did not start (exit: {status:?}); log:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Wasmhouse {
            child: Some(child),
            addr,
            admin_addr,
            log,
        }
    }
}

impl Wasmhouse {
    /// Start with the built-in routes against `clickhouse`.
    pub fn start(clickhouse: &ClickHouse) -> Self {
        HostBuilder::new(clickhouse).start()
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://<admin addr><path>` when the admin API has its own listener.
    pub fn admin_url(&self, path: &str) -> Option<String> {
        self.admin_addr.map(|addr| format!("http://{addr}{path}"))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send a signal by name (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Wait for the process to exit, up to `timeout`; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Wasmhouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
