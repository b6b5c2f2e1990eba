//! Where ClickHouse is, from the component's environment.

use crate::bindings::wasi::cli::environment::get_environment;

/// A ClickHouse HTTP endpoint with credentials.
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
    pub readonly: bool,
}

impl Endpoint {
    /// Read `CLICKHOUSE_URL`, or `CLICKHOUSE_HOST` and friends.
    pub fn from_environment() -> Result<Self, String> {
        let environment = get_environment();
        let var = |name: &str| {
            environment
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .filter(|value| !value.is_empty())
        };
        let mut endpoint = Self {
            host: var("CLICKHOUSE_HOST").unwrap_or_default(),
            port: match var("CLICKHOUSE_PORT") {
                Some(port) => port
                    .parse()
                    .map_err(|_| format!("CLICKHOUSE_PORT={port:?} is not a port number"))?,
                None => 8123,
            },
            user: var("CLICKHOUSE_USER").unwrap_or_else(|| "default".into()),
            password: var("CLICKHOUSE_PASSWORD").unwrap_or_default(),
            database: var("CLICKHOUSE_DATABASE").unwrap_or_else(|| "default".into()),
            readonly: var("CLICKHOUSE_ALLOW_WRITES").as_deref() != Some("1"),
        };
        if let Some(text) = var("CLICKHOUSE_URL") {
            let url = url::Url::parse(&text)
                .map_err(|err| format!("CLICKHOUSE_URL is not a URL: {err}"))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(format!(
                    "CLICKHOUSE_URL: scheme {:?} is not http",
                    url.scheme()
                ));
            }
            endpoint.host = url.host_str().unwrap_or_default().to_owned();
            endpoint.port = url.port_or_known_default().unwrap_or(8123);
            if !url.username().is_empty() {
                endpoint.user = decode(url.username());
                endpoint.password = url.password().map(decode).unwrap_or_default();
            }
            let database = url.path().trim_matches('/');
            if !database.is_empty() {
                endpoint.database = decode(database);
            }
        }
        if endpoint.host.is_empty() {
            return Err(
                "ClickHouse is not configured: set CLICKHOUSE_URL (or CLICKHOUSE_HOST) in the component's environment"
                    .into(),
            );
        }
        Ok(endpoint)
    }
}

fn decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}
