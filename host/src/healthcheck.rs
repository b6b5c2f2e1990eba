//! `wasmhouse healthcheck`: does the server on this machine answer
//! `GET /health`? A container image `FROM scratch` has no curl, so its
//! HEALTHCHECK runs the binary itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Args;

use crate::config::DEFAULT_LISTEN;
use crate::errors::error_chain;

/// Default budget for the whole check: below Docker's default HEALTHCHECK
/// timeout (30 s) and well below the image's (3 s).
pub const DEFAULT_HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Flags of `wasmhouse healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// URL to GET; default `http://<the listen address>/health`, with an
    /// unspecified address (0.0.0.0, [::]) replaced by loopback.
    #[arg(long)]
    pub url: Option<String>,

    /// The address `wasmhouse serve` listens on, which the default URL is
    /// made from.
    #[arg(
        long,
        env = "WASMHOUSE_LISTEN",
        value_name = "WASMHOUSE_LISTEN",
        default_value = DEFAULT_LISTEN
    )]
    pub listen: SocketAddr,

    /// Budget for connecting and reading the answer.
    #[arg(long, default_value = humantime::format_duration(DEFAULT_HEALTHCHECK_TIMEOUT).to_string(), value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

impl HealthcheckArgs {
    /// The URL the check GETs.
    pub fn url(&self) -> String {
        self.url.clone().unwrap_or_else(|| health_url(self.listen))
    }
}

/// `http://<addr>/health`, where a server listening on every address is
/// reached through loopback.
pub fn health_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/health", SocketAddr::new(ip, listen.port()))
}

/// A 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthy {
    /// The status code.
    pub status: u16,
    /// How long the answer took.
    pub elapsed: Duration,
}

/// Why the server is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// The URL cannot be requested.
    #[error("{url}: not a usable URL: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No answer: refused, reset or timed out.
    #[error("{url}: no answer: {reason}")]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport failure, with its causes.
        reason: String,
    },
    /// An answer, but not 2xx.
    #[error("{url}: status {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
    },
}

/// GET `url` within `timeout`: healthy on 2xx, an error otherwise.
pub async fn check(url: &str, timeout: Duration) -> Result<Healthy, HealthcheckError> {
    let parsed = reqwest::Url::parse(url).map_err(|err| HealthcheckError::BadUrl {
        url: url.to_owned(),
        reason: err.to_string(),
    })?;
    let unreachable = |err: reqwest::Error| HealthcheckError::Unreachable {
        url: url.to_owned(),
        reason: error_chain(&err),
    };
    // No proxy from the environment between a server and its own health
    // check, and no need for a system CA store (a scratch image has none).
    let client = wasmhouse_clickhouse::host::tls::web_client_builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(unreachable)?;
    let started = Instant::now();
    let response = client.get(parsed).send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(HealthcheckError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    // The answer (up to 1 MiB: /health's is a few bytes), so a server
    // that stalls mid-body is not healthy.
    wasmhouse_clickhouse::host::transport::read_capped(response, 1 << 20)
        .await
        .map_err(unreachable)?;
    Ok(Healthy {
        status: status.as_u16(),
        elapsed: started.elapsed(),
    })
}

/// Run the check on a runtime of its own; the one line to print and whether
/// the server is healthy.
pub fn run(args: &HealthcheckArgs) -> (String, bool) {
    let url = args.url();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return (format!("unhealthy: starting a runtime: {err}"), false),
    };
    match runtime.block_on(check(&url, args.timeout)) {
        Ok(healthy) => (
            format!(
                "healthy: {url}: status {} in {} ms",
                healthy.status,
                healthy.elapsed.as_millis()
            ),
            true,
        ),
        Err(err) => (format!("unhealthy: {err}"), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn unspecified_listen_addresses_are_reached_through_loopback() {
        let url = |listen: &str| health_url(listen.parse().expect("an address"));
        assert_eq!(url("0.0.0.0:8000"), "http://127.0.0.1:8000/health");
        assert_eq!(url("[::]:8000"), "http://[::1]:8000/health");
        assert_eq!(url("10.1.2.3:9000"), "http://10.1.2.3:9000/health");
        assert_eq!(url("[fe80::1]:80"), "http://[fe80::1]:80/health");
    }

    /// A one-connection HTTP server that answers with `response`.
    async fn answering(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
        format!("http://{addr}/health")
    }

    #[tokio::test]
    async fn a_2xx_answer_is_healthy() {
        let url = answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        let healthy = check(&url, DEFAULT_HEALTHCHECK_TIMEOUT)
            .await
            .expect("healthy");
        assert_eq!(healthy.status, 200);
    }

    #[tokio::test]
    async fn other_statuses_are_not() {
        let url = answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        let err = check(&url, DEFAULT_HEALTHCHECK_TIMEOUT)
            .await
            .expect_err("unhealthy");
        assert!(
            matches!(err, HealthcheckError::Status { status: 503, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        // Bound and dropped: nothing listens there any more.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let err = check(
            &format!("http://{addr}/health"),
            DEFAULT_HEALTHCHECK_TIMEOUT,
        )
        .await
        .expect_err("unreachable");
        assert!(matches!(err, HealthcheckError::Unreachable { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let started = Instant::now();
        let err = check(&format!("http://{addr}/health"), Duration::from_millis(200))
            .await
            .expect_err("timed out");
        assert!(matches!(err, HealthcheckError::Unreachable { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(listener);
    }

    #[test]
    fn a_bad_url_is_reported() {
        let args = HealthcheckArgs {
            url: Some("not a url".into()),
            listen: DEFAULT_LISTEN.parse().expect("an address"),
            timeout: DEFAULT_HEALTHCHECK_TIMEOUT,
        };
        let (line, healthy) = run(&args);
        assert!(!healthy);
        assert!(
            line.starts_with("unhealthy: not a url: not a usable URL"),
            "{line}"
        );
    }
}
