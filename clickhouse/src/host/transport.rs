//! The HTTP client to ClickHouse, and what it can do wrong in the words a guest
//! may see: the details (URLs with settings and query ids) stay in the
//! host's log.

use crate::error::QueryError;

/// Whether a send failed in a way a second attempt on a new connection can
/// fix: the connection was refused or reset before a response arrived.
pub fn is_retryable(err: &reqwest::Error) -> bool {
    // A handshake that failed (an unknown CA, a wrong name) fails again.
    if err.is_timeout() || super::tls::describe(err).is_some() {
        return false;
    }
    if err.is_connect() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>()
            && (hyper_err.is_incomplete_message() || hyper_err.is_canceled())
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The guest's view of a transport failure: what happened, in a few words.
/// The details (URL, settings, query id) go to the host's log only.
pub fn unavailable(query_id: &str, err: reqwest::Error) -> QueryError {
    if let Some(words) = super::tls::describe(&err) {
        let err = err.without_url();
        tracing::warn!(query_id, tls = words, error = %chain(&err), "ClickHouse's TLS handshake failed");
        return QueryError::Unavailable(
            "cannot connect to ClickHouse (the TLS handshake failed)".into(),
        );
    }
    if let Some(hint) = plain_http_hint(&err) {
        let err = err.without_url();
        tracing::warn!(query_id, hint, error = %chain(&err), "ClickHouse request failed");
        return QueryError::Unavailable(
            "lost the connection to ClickHouse (connection reset)".into(),
        );
    }
    if let Some(hint) = tls_timeout_hint(&err) {
        let err = err.without_url();
        tracing::warn!(query_id, hint, error = %chain(&err), "ClickHouse request failed");
        return QueryError::Unavailable(
            "cannot connect to ClickHouse (connection timed out)".into(),
        );
    }
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    let mut reason = None;
    while let Some(cause) = source {
        detail = format!("{detail}: {cause}");
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            reason = Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused",
                std::io::ErrorKind::ConnectionReset => "connection reset",
                std::io::ErrorKind::TimedOut => "connection timed out",
                _ => "connection failed",
            });
        }
        source = cause.source();
    }
    tracing::warn!(query_id, error = %detail, "ClickHouse request failed");
    let reason = reason.unwrap_or(if err.is_timeout() {
        "connection timed out"
    } else {
        "connection failed"
    });
    QueryError::Unavailable(if err.is_connect() {
        format!("cannot connect to ClickHouse ({reason})")
    } else {
        format!("lost the connection to ClickHouse ({reason})")
    })
}

/// A transport failure in words, for the host's log and a replica's
/// status: the TLS cause when there is one, a hint when plain HTTP met a TLS
/// port, otherwise the error with its causes (never the URL).
pub fn explain(err: &reqwest::Error) -> String {
    if let Some(words) = super::tls::describe(err) {
        return words.to_owned();
    }
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "ClickHouse");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    match plain_http_hint(err).or_else(|| tls_timeout_hint(err)) {
        Some(hint) => format!("{text} ({hint})"),
        None => text,
    }
}

/// An `https://` connection that timed out: a server that does not speak
/// TLS may answer a handshake with an error (then rustls says so) or wait
/// for more bytes, as ClickHouse's plain HTTP port can, until the connect
/// timeout ends it.
fn tls_timeout_hint(err: &reqwest::Error) -> Option<&'static str> {
    let secure = err.url().is_some_and(|url| url.scheme() == "https");
    (secure && err.is_connect() && timed_out(err)).then_some(
        "no TLS answer within the connect timeout: if the server does not speak TLS on this port (the plain http port?), use http:// or the https port",
    )
}

/// Whether `err`, or an I/O error behind it, is a timeout.
fn timed_out(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = cause.source();
    }
    err.is_timeout()
}

/// A plain `http://` request whose connection the server closed before
/// answering: what a TLS port does with one.
fn plain_http_hint(err: &reqwest::Error) -> Option<&'static str> {
    let plain = err.url().is_some_and(|url| url.scheme() == "http");
    (plain && is_retryable(err) && !err.is_connect()).then_some(
        "the server closed the connection without answering: is it an HTTPS port? use https:// or CLICKHOUSE_SECURE=true",
    )
}

/// `err` with its causes, for the log.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// An error body, capped: ClickHouse error texts are short, and a broken
/// proxy in between must not make us buffer without end.
pub async fn read_error_body(response: reqwest::Response) -> String {
    const MAX: usize = 64 * 1024;
    let (text, _) = read_capped(response, MAX).await.unwrap_or_default();
    String::from_utf8_lossy(&text).into_owned()
}

/// At most the first `max` bytes of `response`'s body, and whether there
/// was more (then the rest is not read: the connection is dropped). The one
/// way the host reads an answer from outside whose size it does not
/// decide, so none is buffered past its bound.
pub async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// An HTTP client for ClickHouse, keeping up to `max_idle` connections per
/// server: plain HTTP, or HTTPS with the host's one TLS configuration.
pub(crate) fn http_client(
    config: &super::config::ClickHouseConfig,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    max_idle: usize,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(tls))
        .pool_max_idle_per_host(max_idle)
        .pool_idle_timeout(config.pool_idle_timeout)
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http1_only()
        // Proxy variables in the environment must not reroute database traffic.
        .no_proxy()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    /// A server on loopback whose answer to the first request is `head`,
    /// then 64 KiB chunks for as long as the client reads.
    fn endless_server(head: &'static str) -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            while stream.write_all(&frame).is_ok() {}
        });
        addr
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn an_endless_answer_is_read_to_its_bound_only() {
        crate::host::tls::install_crypto_provider();
        let addr = endless_server("HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n");
        runtime().block_on(async {
            let response = reqwest::get(format!("http://{addr}/"))
                .await
                .expect("an answer");
            let (body, cut) = read_capped(response, 1 << 20).await.expect("read");
            assert_eq!(body.len(), 1 << 20);
            assert!(cut);
            let response = reqwest::get(format!(
                "http://{}/",
                endless_server("HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n")
            ))
            .await
            .expect("an answer");
            assert_eq!(read_error_body(response).await.len(), 64 * 1024);
        });
    }

    #[test]
    fn a_short_answer_is_read_whole() {
        crate::host::tls::install_crypto_provider();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
                );
            }
        });
        runtime().block_on(async {
            let response = reqwest::get(format!("http://{addr}/"))
                .await
                .expect("an answer");
            let (body, cut) = read_capped(response, 1 << 20).await.expect("read");
            assert_eq!((body.as_slice(), cut), (&b"hello"[..], false));
        });
    }
}
