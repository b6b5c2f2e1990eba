//! Shared harness for the integration tests: real processes, real HTTP.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of the harness"
)]

pub mod browser;
pub mod certs;
pub mod clickhouse;
pub mod deploys;
pub mod files;
pub mod guests;
pub mod host;
pub mod oracle;
pub mod registry;
pub mod seed;
pub mod swap;

pub use clickhouse::ClickHouse;
pub use files::{file_lock, target_dir};
pub use host::{HostBuilder, Wasmhouse};

/// A response: status and body parsed as JSON (`Null` when it is not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

/// A memory figure of process `pid`'s `/proc/PID/status` (`VmRSS`,
/// `VmHWM`, `VmSwap`: kB there), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let kb = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb = kb.trim().strip_suffix("kB")?.trim();
        kb.parse::<u64>().ok().map(|kb| kb * 1024)
    })
}

/// GET `url`.
pub async fn get(url: &str) -> Reply {
    send(client().get(url)).await
}

/// `count` requests to `spin` (a path whose guest never returns) at once;
/// while they run, each of `others` answers 200 in each of `rounds` rounds;
/// then every spinning request ends in 504 `timeout` with a request id.
pub async fn spinning_guests_time_out_while_others_answer(
    host: &Wasmhouse,
    spin: &str,
    count: usize,
    others: &[&str],
    rounds: usize,
) {
    let spinning: Vec<_> = (0..count)
        .map(|_| {
            let url = host.url(spin);
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..rounds {
        for path in others {
            let reply = get(&host.url(path)).await;
            assert_eq!(reply.status, 200, "{path} {i} during loops: {}", reply.text);
        }
    }
    assert!(
        spinning.iter().all(|task| !task.is_finished()),
        "the loops ended before the other requests were answered"
    );
    for task in spinning {
        let reply = task.await.expect("spinning request");
        assert_eq!(reply.status, 504, "{}", reply.text);
        assert_eq!(reply.json["kind"], "timeout");
        assert!(reply.json["request_id"].is_string());
    }
}

/// Send a prepared request.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A client that never goes through a proxy.
pub fn client() -> reqwest::Client {
    // reqwest's rustls needs a provider (the host installs the same one).
    wasmhouse_clickhouse::host::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

/// At most the first `max` bytes of `text`, for messages.
pub fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Held by tests that keep guests spinning on the CPU, so two of them never
/// compete for the same cores: a lock file, because the suite runs tests in
/// processes of their own, several at once (`scripts/test`).
pub async fn cpu_heavy() -> std::fs::File {
    tokio::task::spawn_blocking(|| file_lock("cpu-heavy"))
        .await
        .expect("waiting for the CPU-heavy lock")
}

/// A `wasmhouse.toml` in a temporary directory, whose `{guest}` stands for
/// the hostile test guest's path. The directory lives as long as this.
pub struct Manifest {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Manifest {
    /// Write `toml` with `{guest}` replaced by the hostile guest's path.
    pub fn with_hostile_guest(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("wasmhouse.toml");
        let guest = guests::hostile(1);
        std::fs::write(&path, toml.replace("{guest}", &guest.display().to_string()))
            .expect("write manifest");
        Self { _dir: dir, path }
    }

    /// The file, as a flag value.
    pub fn path(&self) -> &str {
        self.path.to_str().expect("UTF-8 path")
    }
}

/// Send raw bytes to `addr` and return the status code of the answer (0 if
/// none came): for requests no HTTP client would send.
pub fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
