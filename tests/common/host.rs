//! A wasmhouse server on a free port, stopped when dropped: the real
//! `wasmhouse` binary, or the library's `serve` in this process (the same
//! flags and variables, without a process of its own).

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
    in_process: Option<tokio::sync::oneshot::Sender<()>>,
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
        // For the HTTPS clients of this process (the in-process host's
        // among them): each test is a process of its own.
        wasmhouse_clickhouse::host::tls::install_crypto_provider();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CLICKHOUSE_HOST", "127.0.0.1")
            .env("CLICKHOUSE_PORT", "9")
            .env(
                "RUST_LOG",
                "info,wasmhouse=debug,wasmhouse_clickhouse=debug",
            )
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

    /// Set an environment variable. `CLICKHOUSE_URL` names the servers
    /// itself: the builder's `CLICKHOUSE_HOST` and `CLICKHOUSE_PORT` go.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        if key == "CLICKHOUSE_URL" {
            self.command
                .env_remove("CLICKHOUSE_HOST")
                .env_remove("CLICKHOUSE_PORT");
        }
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

    /// Run `wasmhouse::serve` in this process, on a thread and runtime of
    /// its own, with the same flags; the environment variables set on this
    /// builder are passed as their flags. Returns once it is listening.
    pub fn start_in_process(self) -> Wasmhouse {
        use clap::{CommandFactory as _, Parser as _};

        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: wasmhouse::ServeArgs,
        }

        let mut args: Vec<std::ffi::OsString> = vec!["wasmhouse".into()];
        args.extend(
            self.command
                .get_args()
                .skip_while(|arg| *arg == "serve")
                .map(std::ffi::OsStr::to_owned),
        );
        let command = Cli::command();
        for (key, value) in self.command.get_envs() {
            let Some(value) = value else { continue };
            let key = key.to_string_lossy();
            if key == "RUST_LOG" {
                continue;
            }
            let flag = command
                .get_arguments()
                .find(|arg| {
                    arg.get_env()
                        .is_some_and(|env| env.to_string_lossy() == key)
                })
                .and_then(|arg| Some((arg.get_long()?, arg.get_action().takes_values())))
                .unwrap_or_else(|| panic!("an in-process server takes no variable {key}"));
            if flag.1 {
                args.push(format!("--{}", flag.0).into());
                args.push(value.to_owned());
            } else if value != "0" && !value.is_empty() {
                args.push(format!("--{}", flag.0).into());
            }
        }
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
        let listener = std::net::TcpListener::bind(cli.serve.listen).expect("binding a port");
        let addr = listener.local_addr().expect("local address");
        let config = cli.serve.into_config().expect("a valid configuration");
        let admin = config
            .admin_listen()
            .map(|addr| std::net::TcpListener::bind(addr).expect("binding the admin port"));
        let admin_addr = admin
            .as_ref()
            .map(|listener| listener.local_addr().expect("admin address"));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the server");
            runtime.block_on(async move {
                let server =
                    match tokio::task::spawn_blocking(move || wasmhouse::Server::new(config)).await
                    {
                        Ok(Ok(server)) => server,
                        Ok(Err(err)) => return drop(ready.send(Err(format!("{err:#}")))),
                        Err(err) => return drop(ready.send(Err(err.to_string()))),
                    };
                let _ = ready.send(Ok(()));
                if let Err(err) = server
                    .run(listener, admin, async {
                        let _ = stop.await;
                    })
                    .await
                {
                    eprintln!("in-process wasmhouse failed: {err:#}");
                }
            });
        });
        match started.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("wasmhouse did not start: {err}"),
            Err(_) => panic!("wasmhouse did not start within 120 s"),
        }
        Wasmhouse {
            child: None,
            in_process: Some(shutdown),
            addr,
            admin_addr,
            log: Arc::default(),
        }
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
            in_process: None,
            addr,
            admin_addr,
            log,
        }
    }
}

impl Wasmhouse {
    /// Start the binary with the built-in routes against `clickhouse`.
    pub fn start(clickhouse: &ClickHouse) -> Self {
        HostBuilder::new(clickhouse).start()
    }

    /// Serve the built-in routes against `clickhouse` in this process.
    pub fn start_in_process(clickhouse: &ClickHouse) -> Self {
        HostBuilder::new(clickhouse).start_in_process()
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

    /// Everything it logged so far (nothing for an in-process server: its
    /// log is this process's).
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Wait until a line of the log holds `fragment`; fail the test, with
    /// the log, when none does within `timeout`.
    pub async fn wait_for_log(&self, fragment: &str, timeout: Duration) {
        self.wait_for_log_line(&format!("{fragment:?}"), timeout, |line| {
            line.contains(fragment)
        })
        .await;
    }

    /// Wait until a line of the log `matches`; fail the test, naming `what`
    /// and showing the log, when none does within `timeout`.
    pub async fn wait_for_log_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.log().lines().any(&matches) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} was not logged within {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        if let Some(shutdown) = self.in_process.take() {
            let _ = shutdown.send(());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
