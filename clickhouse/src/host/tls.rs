//! TLS to ClickHouse (ClickHouse Cloud's HTTPS interface, a server behind
//! TLS): rustls, certificates always verified, no switch to turn that off.
//!
//! - Roots: the system's (`/etc/ssl/certs` and friends), or Mozilla's
//!   compiled into the binary where the system has none (a `FROM scratch`
//!   image); only `CLICKHOUSE_CA_CERT`'s certificates when it is set (a
//!   private CA).
//! - A client certificate (`CLICKHOUSE_CLIENT_CERT` and
//!   `CLICKHOUSE_CLIENT_CERT_KEY`) for servers that require one (mutual TLS).
//! - The server's name (SNI, and the name its certificate must have) is the
//!   host name of its URL.
//!
//! One configuration, built at start-up (so a bad file stops it with the
//! variable's name), serves every connection the host makes to ClickHouse:
//! the query pool, health checks, server facts and `KILL QUERY`, on each
//! replica; a list may mix `http://` and `https://` servers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the host's TLS material comes from; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// A PEM bundle of the CAs to trust instead of the system's
    /// (`CLICKHOUSE_CA_CERT`).
    pub ca_cert: Option<PathBuf>,
    /// The client certificate (chain), PEM (`CLICKHOUSE_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// Its private key, PEM (`CLICKHOUSE_CLIENT_CERT_KEY`).
    pub client_key: Option<PathBuf>,
}

/// Why the TLS configuration cannot be built; names the variable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds nothing usable.
    #[error("{variable}: {path}: {why}")]
    File {
        /// The variable that names the file.
        variable: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A certificate without its key, or the reverse.
    #[error(
        "CLICKHOUSE_CLIENT_CERT and CLICKHOUSE_CLIENT_CERT_KEY go together: set both or neither"
    )]
    HalfAClientCertificate,
    /// rustls refused the material (a key that does not fit the certificate, say).
    #[error("{variable}: {why}")]
    Rejected {
        /// The variable at fault.
        variable: &'static str,
        /// rustls' reason.
        why: String,
    },
}

/// Make ring rustls' process-wide provider (once): every HTTP client the
/// host builds, TLS or not, needs one.
pub fn install_crypto_provider() {
    // Another provider installed first (by an embedding program) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The client configuration for every HTTPS connection to ClickHouse.
pub fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    install_crypto_provider();
    let roots = match &files.ca_cert {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs("CLICKHOUSE_CA_CERT", path)? {
                roots.add(cert).map_err(|err| TlsError::File {
                    variable: "CLICKHOUSE_CA_CERT",
                    path: path.display().to_string(),
                    why: format!("not a CA certificate rustls accepts: {err}"),
                })?;
            }
            roots
        }
        None => default_roots(),
    };
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match (&files.client_cert, &files.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = read_certs("CLICKHOUSE_CLIENT_CERT", cert)?;
            let key = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| TlsError::Rejected {
                    variable: "CLICKHOUSE_CLIENT_CERT",
                    why: format!("the certificate or its key cannot be used: {err}"),
                })?
        }
        _ => return Err(TlsError::HalfAClientCertificate),
    };
    // ClickHouse's HTTP interface is HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's roots, or Mozilla's compiled in where the system has none
/// (a scratch container has no `/etc/ssl/certs`).
fn default_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(system.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

/// A client builder for the host's HTTP requests that are not to ClickHouse
/// (its own health check, `wasmhouse load`, OTLP export): HTTPS verified
/// against the same default roots, so it builds in a scratch container too
/// (reqwest's own default refuses to build without a system store, even for
/// a plain `http://` URL), and no proxy from the environment.
pub fn web_client_builder() -> reqwest::ClientBuilder {
    verified_client_builder().no_proxy()
}

/// A client builder verifying HTTPS against the host's default roots, and
/// taking proxies from the environment (`HTTPS_PROXY`, `NO_PROXY`): for
/// registries, which a host behind a proxy reaches through it.
pub fn verified_client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(default_roots())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

fn read_certs(
    variable: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |why: String| TlsError::File {
        variable,
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|err| bad(err.to_string()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|err| bad(format!("not PEM certificates: {err}")))?;
    if certs.is_empty() {
        return Err(bad(
            "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bad = |why: String| TlsError::File {
        variable: "CLICKHOUSE_CLIENT_CERT_KEY",
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|err| bad(err.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|err| bad(format!("no PEM private key in it: {err}")))
}

/// A TLS failure behind a transport error, in words for the host's log (the
/// guest sees only that the connection failed): what is wrong and what to do.
pub fn describe(err: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(why) => match why {
                    rustls::CertificateError::UnknownIssuer => {
                        "the server's certificate is not signed by a trusted CA (set CLICKHOUSE_CA_CERT to its CA)"
                    }
                    rustls::CertificateError::Expired => "the server's certificate has expired",
                    rustls::CertificateError::NotValidYet => {
                        "the server's certificate is not valid yet"
                    }
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => {
                        "the server's certificate is not for this host name (use the name it was issued for)"
                    }
                    rustls::CertificateError::Revoked => "the server's certificate is revoked",
                    _ => "the server's certificate is not valid",
                },
                rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
                    "the server does not speak TLS on this port (is it the plain http port? use http:// or the https port)"
                }
                rustls::Error::AlertReceived(alert) => match alert {
                    rustls::AlertDescription::CertificateRequired => {
                        "the server requires a client certificate: set CLICKHOUSE_CLIENT_CERT and CLICKHOUSE_CLIENT_CERT_KEY"
                    }
                    rustls::AlertDescription::UnknownCA
                    | rustls::AlertDescription::BadCertificate
                    | rustls::AlertDescription::CertificateUnknown => {
                        "the server does not accept the client certificate (is it signed by a CA the server trusts?), or wants one: check CLICKHOUSE_CLIENT_CERT and CLICKHOUSE_CLIENT_CERT_KEY"
                    }
                    rustls::AlertDescription::CertificateExpired => {
                        "the server says the client certificate has expired"
                    }
                    _ => {
                        "the server ended the TLS handshake (does it require a client certificate? set CLICKHOUSE_CLIENT_CERT and CLICKHOUSE_CLIENT_CERT_KEY)"
                    }
                },
                _ => "the TLS handshake failed",
            });
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(words) = describe(inner)
        {
            return Some(words);
        }
        source = cause.source();
    }
    None
}
