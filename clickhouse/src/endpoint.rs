//! Where a ClickHouse server is and who to be there: the FastAPI service's
//! variables (`CLICKHOUSE_HOST`, `CLICKHOUSE_PORT`, …) and the one-line
//! `CLICKHOUSE_URL`, read the same way by the host and by the adapter.

use std::fmt;

/// The port of ClickHouse's HTTP interface.
pub const DEFAULT_HTTP_PORT: u16 = 8123;
/// The port of ClickHouse's HTTPS interface.
pub const DEFAULT_HTTPS_PORT: u16 = 8443;
/// The user ClickHouse logs in as when none is named.
pub const DEFAULT_USER: &str = "default";
/// The database unqualified table names resolve in when none is named.
pub const DEFAULT_DATABASE: &str = "default";
/// The host when none is named.
pub const DEFAULT_HOST: &str = "localhost";

/// How the connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

/// A ClickHouse HTTP endpoint with its credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port of the HTTP(S) interface.
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// Database unqualified names resolve in.
    pub database: String,
}

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            scheme: Scheme::Http,
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_HTTP_PORT,
            user: DEFAULT_USER.to_owned(),
            password: String::new(),
            database: DEFAULT_DATABASE.to_owned(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// Why a `CLICKHOUSE_URL` or an endpoint value cannot be used. The message
/// never repeats the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(String);

impl Endpoint {
    /// Take the parts `CLICKHOUSE_URL` gives (`http[s]://user:password@host:port/database`):
    /// each part present in the URL replaces the current value. User and
    /// password are percent-decoded (`%40` is `@`; a `+` stays a `+`).
    pub fn apply_url(&mut self, text: &str) -> Result<(), EndpointError> {
        let url = url::Url::parse(text.trim())
            .map_err(|err| EndpointError(format!("not a URL: {err}")))?;
        self.scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            other => {
                return Err(EndpointError(format!(
                    "scheme {other:?} is not supported; use http://host:8123 or https://host:8443"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| EndpointError("has no host".into()))?;
        self.host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        self.port = url.port().unwrap_or(match self.scheme {
            Scheme::Http => DEFAULT_HTTP_PORT,
            Scheme::Https => DEFAULT_HTTPS_PORT,
        });
        // A user without a password keeps the password given apart
        // (CLICKHOUSE_PASSWORD), so that it need not be in the URL.
        if !url.username().is_empty() {
            self.user = percent_decode(url.username(), "user")?;
        }
        if let Some(password) = url.password() {
            self.password = percent_decode(password, "password")?;
        }
        let database = url.path().trim_matches('/');
        if !database.is_empty() {
            self.database = percent_decode(database, "database")?;
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(EndpointError(
                "has a query string or fragment; settings belong in the host's configuration"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Check the values: a host, a port, a database name ClickHouse accepts.
    pub fn validate(&self) -> Result<(), (&'static str, EndpointError)> {
        if self.host.trim().is_empty() {
            return Err(("CLICKHOUSE_HOST", EndpointError("must not be empty".into())));
        }
        if self.port == 0 {
            return Err((
                "CLICKHOUSE_PORT",
                EndpointError("must be a port from 1 to 65535".into()),
            ));
        }
        if !is_database_name(&self.database) {
            return Err((
                "CLICKHOUSE_DATABASE",
                EndpointError(format!(
                    "{:?} is not a database name (letters, digits, '_')",
                    self.database
                )),
            ));
        }
        Ok(())
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `scheme://host:port/` (no credentials).
    pub fn base_url(&self) -> String {
        format!("{}://{}/", self.scheme.as_str(), self.authority())
    }

    /// The `Authorization` header value for HTTP basic authentication.
    pub fn basic_authorization(&self) -> String {
        use base64::Engine as _;
        let credentials = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }
}

/// Whether `name` is a database name wasmhouse accepts: ASCII letters,
/// digits and `_`, so it never needs quoting.
pub fn is_database_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn percent_decode(text: &str, what: &str) -> Result<String, EndpointError> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| EndpointError(format!("the {what} is not UTF-8 once percent-decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_url(text: &str) -> Result<Endpoint, EndpointError> {
        let mut endpoint = Endpoint::default();
        endpoint.apply_url(text).map(|()| endpoint)
    }

    #[test]
    fn url_parts_replace_the_defaults() {
        let endpoint = from_url("http://reader:s%40cret@db.internal:9123/analytics").unwrap();
        assert_eq!(endpoint.authority(), "db.internal:9123");
        assert_eq!(endpoint.user, "reader");
        assert_eq!(endpoint.password, "s@cret");
        assert_eq!(endpoint.database, "analytics");
        assert_eq!(endpoint.scheme, Scheme::Http);
    }

    #[test]
    fn a_plus_in_a_password_stays_a_plus() {
        let endpoint = from_url("http://u:a+b%2Bc@h/").unwrap();
        assert_eq!(endpoint.password, "a+b+c");
    }

    #[test]
    fn https_defaults_to_the_https_port() {
        let endpoint = from_url("https://h").unwrap();
        assert_eq!((endpoint.scheme, endpoint.port), (Scheme::Https, 8443));
        assert_eq!(endpoint.base_url(), "https://h:8443/");
    }

    #[test]
    fn ipv6_hosts_lose_and_regain_their_brackets() {
        let endpoint = from_url("http://[::1]:8123").unwrap();
        assert_eq!(endpoint.host, "::1");
        assert_eq!(endpoint.authority(), "[::1]:8123");
    }

    #[test]
    fn unusable_urls_are_explained_without_the_password() {
        for bad in ["ftp://h", "not a url", "http://u:pw@h/?readonly=0"] {
            let err = from_url(bad).unwrap_err().to_string();
            assert!(!err.contains("pw"), "{err}");
        }
        assert!(from_url("http://u:%FF@h").is_err());
    }

    #[test]
    fn validation_names_the_variable() {
        let endpoint = Endpoint {
            database: "a;b".into(),
            ..Endpoint::default()
        };
        assert_eq!(endpoint.validate().unwrap_err().0, "CLICKHOUSE_DATABASE");
    }
}
