//! HTTPS to ClickHouse: a real 18.16 with an HTTPS port and certificates
//! made by the test (`openssl`). The seed's routes run over TLS with a
//! private CA; a server the host cannot trust, one whose certificate names
//! another host, a plain-HTTP port named `https://` and the reverse each
//! fail with a JSON 503 while the host's log says what is wrong; a server
//! that requires client certificates is reached with one and refused
//! without.

mod common;

use std::time::Duration;

use common::certs::Certs;
use common::clickhouse::{Https, Setup};
use common::{ClickHouse, HostBuilder, get};

fn https_server(certs: &Certs, cert: &str, client_ca: bool) -> ClickHouse {
    ClickHouse::start_with(Setup {
        https: Some(Https {
            cert: certs.path(&format!("{cert}.crt")),
            key: certs.path(&format!("{cert}.key")),
            client_ca: client_ca.then(|| certs.path("ca.crt")),
        }),
        ..Setup::default()
    })
}

/// A host (the binary, so its log can be read) on `url`, with `env` set.
fn host(url: &str, env: &[(&str, String)]) -> common::Wasmhouse {
    let mut builder = HostBuilder::without_clickhouse().env("CLICKHOUSE_URL", url);
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start()
}

fn path(certs: &Certs, file: &str) -> String {
    certs.path(file).display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_routes_run_over_https_with_a_private_ca() {
    let certs = Certs::generate();
    let clickhouse = https_server(&certs, "server", false);
    let port = clickhouse.https_port().expect("an https port");
    let host = host(
        &format!("https://localhost:{port}"),
        &[("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt"))],
    );
    let status = get(&host.url("/clickhouse-status")).await;
    assert_eq!(status.status, 200, "{}", status.text);
    assert_eq!(status.json["version"], "18.16.1");
    assert_eq!(status.json["port"], port);
    common::seed::assert_simple_query(&host.url("")).await;
    let heavy = get(&host.url("/concurrent/heavy-query")).await;
    assert_eq!(heavy.status, 200, "{}", heavy.text);
    assert_eq!(heavy.json["result"][0]["c"], 10_000_000);
    let isolation = get(&host.url("/concurrent/test-isolation?delay=0")).await;
    assert_eq!(isolation.status, 200, "{}", isolation.text);
    common::seed::assert_client_errors(&host.url("")).await;
    // Keep-alive over TLS: many queries, few handshakes (connections).
    for _ in 0..20 {
        assert_eq!(get(&host.url("/concurrent/simple-query")).await.status, 200);
    }
    let connections: u64 = clickhouse
        .query("SELECT value FROM system.events WHERE event = 'HTTPConnection' FORMAT TabSeparated")
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        connections < 10,
        "{connections} connections for 25 queries: the pool does not keep TLS connections"
    );
    // CLICKHOUSE_SECURE with the separate variables reaches the same port.
    let secure = HostBuilder::without_clickhouse()
        .env("CLICKHOUSE_HOST", "localhost")
        .env("CLICKHOUSE_PORT", port.to_string())
        .env("CLICKHOUSE_SECURE", "true")
        .env("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt"))
        .start_in_process();
    common::seed::assert_simple_query(&secure.url("")).await;
}

/// A database route's answer: 503 JSON, nothing of the cause's internals.
async fn assert_unavailable(host: &common::Wasmhouse) {
    let reply = get(&host.url("/concurrent/simple-query")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(
        reply.json["kind"], "clickhouse_unavailable",
        "{}",
        reply.text
    );
    assert!(
        !reply.text.contains("rustls") && !reply.text.contains("https://"),
        "{}",
        reply.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tls_failure_is_a_503_and_the_log_names_its_cause() {
    let certs = Certs::generate();
    let clickhouse = https_server(&certs, "server", false);
    let (tls_port, http_port) = (
        clickhouse.https_port().expect("https"),
        clickhouse.http_port(),
    );
    let timeout = Duration::from_secs(10);

    // The system's roots do not know the test CA.
    let untrusted = host(&format!("https://localhost:{tls_port}"), &[]);
    assert_unavailable(&untrusted).await;
    untrusted
        .wait_for_log("not signed by a trusted CA", timeout)
        .await;
    // Nor does another CA.
    let wrong_ca = host(
        &format!("https://localhost:{tls_port}"),
        &[("CLICKHOUSE_CA_CERT", path(&certs, "other-ca.crt"))],
    );
    assert_unavailable(&wrong_ca).await;
    wrong_ca
        .wait_for_log("not signed by a trusted CA", timeout)
        .await;
    // A plain HTTP port named https://. ClickHouse answers the handshake
    // with an HTTP error, or waits for more bytes until the connect timeout
    // (by the handshake's random bytes): the log names the cause either way.
    let plain = host(
        &format!("https://localhost:{http_port}"),
        &[("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt"))],
    );
    assert_unavailable(&plain).await;
    plain
        .wait_for_log("does not speak TLS on this port", timeout)
        .await;
    // The TLS port named http://: the server answers no HTTP.
    let reverse = host(&format!("http://localhost:{tls_port}"), &[]);
    assert_unavailable(&reverse).await;
    reverse.wait_for_log("is it an HTTPS port", timeout).await;
    drop(clickhouse);

    // A certificate for another name.
    let elsewhere = https_server(&certs, "wrong-name", false);
    let wrong_name = host(
        &format!(
            "https://localhost:{}",
            elsewhere.https_port().expect("https")
        ),
        &[("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt"))],
    );
    assert_unavailable(&wrong_name).await;
    wrong_name
        .wait_for_log("not for this host name", timeout)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_requires_client_certificates_is_reached_with_one() {
    let certs = Certs::generate();
    let clickhouse = https_server(&certs, "server", true);
    let url = format!(
        "https://localhost:{}",
        clickhouse.https_port().expect("https")
    );
    let without = host(&url, &[("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt"))]);
    assert_unavailable(&without).await;
    without
        .wait_for_log("requires a client certificate", Duration::from_secs(10))
        .await;
    let with = host(
        &url,
        &[
            ("CLICKHOUSE_CA_CERT", path(&certs, "ca.crt")),
            ("CLICKHOUSE_CLIENT_CERT", path(&certs, "client.crt")),
            ("CLICKHOUSE_CLIENT_CERT_KEY", path(&certs, "client.key")),
        ],
    );
    common::seed::assert_simple_query(&with.url("")).await;
}

#[test]
fn bad_tls_files_stop_start_up_with_the_variables_name() {
    let certs = Certs::generate();
    std::fs::write(certs.path("empty.pem"), "not a certificate\n").expect("a file");
    for (variable, file, also) in [
        ("CLICKHOUSE_CA_CERT", "missing.pem", None),
        ("CLICKHOUSE_CA_CERT", "empty.pem", None),
        ("CLICKHOUSE_CLIENT_CERT", "client.crt", None),
        (
            "CLICKHOUSE_CLIENT_CERT_KEY",
            "server.key",
            Some(("CLICKHOUSE_CLIENT_CERT", "client.crt")),
        ),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhouse"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("CLICKHOUSE_URL", "https://localhost:1")
            .env(variable, path(&certs, file));
        if let Some((other, other_file)) = also {
            command.env(other, path(&certs, other_file));
        }
        let output = command.output().expect("wasmhouse runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={file} started");
        assert!(
            stderr.contains(variable) || stderr.contains("CLICKHOUSE_CLIENT_CERT"),
            "{variable}={file}: {stderr}"
        );
    }
    let _ = certs.dir();
}
