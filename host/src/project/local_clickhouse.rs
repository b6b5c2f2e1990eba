//! The ClickHouse `wasmhouse dev` uses when none is configured: one already
//! answering on the development port, or a `clickhouse-server` started here
//! with its data in the project's `.wasmhouse/` and stopped with `dev`.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The HTTP port a development ClickHouse listens on, unless
/// `WASMHOUSE_DEV_CLICKHOUSE_PORT` says otherwise.
const DEFAULT_PORT: u16 = 8123;
/// How long a starting server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A development ClickHouse on 127.0.0.1; stopped when dropped if this
/// process started it.
pub(crate) struct LocalClickHouse {
    /// Its HTTP port.
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Drop for LocalClickHouse {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The development ClickHouse: the one answering on the port, or a new one
/// with its data under `state` (the project's `.wasmhouse/`).
pub(crate) fn start(state: &Path) -> anyhow::Result<LocalClickHouse> {
    let port = match std::env::var("WASMHOUSE_DEV_CLICKHOUSE_PORT") {
        Ok(text) => text
            .parse()
            .with_context(|| format!("WASMHOUSE_DEV_CLICKHOUSE_PORT={text:?} is not a port"))?,
        Err(_) => DEFAULT_PORT,
    };
    if answers(port) {
        eprintln!("using the ClickHouse already answering on 127.0.0.1:{port}");
        return Ok(LocalClickHouse { port, child: None });
    }
    let server = server_binary().context(
        "no ClickHouse is configured and clickhouse-server is not installed: \
         set CLICKHOUSE_URL (or CLICKHOUSE_HOST, …) to use yours, or install it \
         (Debian and Ubuntu: apt-get install clickhouse-server)",
    )?;
    let data = state.join("clickhouse");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let log = state.join("clickhouse.log");
    eprintln!(
        "starting a local ClickHouse on 127.0.0.1:{port} (data in {}, log in {})",
        data.display(),
        log.display()
    );
    let mut command = Command::new(&server);
    // Debian's package ships the server's configuration; newer single-binary
    // servers run without one.
    let config = Path::new("/etc/clickhouse-server/config.xml");
    if config.is_file() {
        command.arg(format!("--config-file={}", config.display()));
    }
    let dir = |name: &str| format!("{}/", data.join(name).display());
    command
        .current_dir(&data)
        .arg("--")
        .arg(format!("--path={}", dir("data")))
        .arg(format!("--tmp_path={}", dir("tmp")))
        .arg(format!("--user_files_path={}", dir("user_files")))
        .arg(format!("--format_schema_path={}", dir("format_schemas")))
        .arg(format!("--http_port={port}"))
        // The native and interserver ports on free ones: a system server
        // holds the usual 9000 and 9009.
        .arg(format!("--tcp_port={}", free_port()?))
        .arg(format!("--interserver_http_port={}", free_port()?))
        .arg("--listen_host=127.0.0.1")
        .arg(format!(
            "--logger.log={}",
            data.join("server.log").display()
        ))
        .arg(format!(
            "--logger.errorlog={}",
            data.join("server.err.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?)
        .stderr(std::fs::File::options().append(true).open(&log)?);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    let mut clickhouse = LocalClickHouse {
        port,
        child: Some(child),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    while !answers(port) {
        if let Some(child) = &mut clickhouse.child
            && let Ok(Some(status)) = child.try_wait()
        {
            clickhouse.child = None;
            bail!(
                "ClickHouse stopped during start-up ({status}); the end of {}:\n{}",
                log.display(),
                tail(&log, 15)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "ClickHouse did not answer on 127.0.0.1:{port} within {} s (see {})",
                START_TIMEOUT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(clickhouse)
}

/// `clickhouse-server`: `CLICKHOUSE_SERVER_BIN`, on the PATH, or where
/// Debian puts it.
fn server_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CLICKHOUSE_SERVER_BIN") {
        return Some(path.into());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("clickhouse-server"));
    on_path
        .chain(["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"].map(PathBuf::from))
        .find(|path| path.is_file())
}

/// Does a ClickHouse answer `/ping` on 127.0.0.1:`port`?
fn answers(port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.take(4096).read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.ends_with("Ok.\n")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("finding a free port")?
        .local_addr()?
        .port())
}

/// The last `lines` lines of a file, for an error message.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
