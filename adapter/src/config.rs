//! Where ClickHouse is, from the component's environment, read with the same
//! rules as the host (`wasmhouse_clickhouse::Endpoint`).

use wasmhouse_clickhouse::{Endpoint, QueryPolicy, ReadOnly, Scheme};

use crate::bindings::wasi::cli::environment::get_environment;

/// The endpoint and the guard-rails the adapter applies.
pub struct Settings {
    /// The server and the account to use there.
    pub endpoint: Endpoint,
    /// Read-only unless `CLICKHOUSE_ALLOW_WRITES=1`; the host's defaults
    /// otherwise.
    pub policy: QueryPolicy,
}

impl Settings {
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
        let defaults = Endpoint::default();
        // As on the host: CLICKHOUSE_SECURE=true means HTTPS, on port 8443
        // unless CLICKHOUSE_PORT says otherwise (TLS is the platform's).
        let secure = var("CLICKHOUSE_SECURE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        let (scheme, default_port) = if secure {
            (
                Scheme::Https,
                wasmhouse_clickhouse::endpoint::DEFAULT_HTTPS_PORT,
            )
        } else {
            (defaults.scheme, defaults.port)
        };
        let mut endpoint = Endpoint {
            host: var("CLICKHOUSE_HOST").unwrap_or_default(),
            port: match var("CLICKHOUSE_PORT") {
                Some(port) => port
                    .parse()
                    .map_err(|_| format!("CLICKHOUSE_PORT={port:?} is not a port number"))?,
                None => default_port,
            },
            user: var("CLICKHOUSE_USER").unwrap_or(defaults.user),
            password: var("CLICKHOUSE_PASSWORD").unwrap_or_default(),
            database: var("CLICKHOUSE_DATABASE").unwrap_or(defaults.database),
            scheme,
        };
        if let Some(text) = var("CLICKHOUSE_URL") {
            endpoint
                .apply_url(&text)
                .map_err(|err| format!("CLICKHOUSE_URL: {err}"))?;
        }
        if endpoint.host.is_empty() {
            return Err(
                "ClickHouse is not configured: set CLICKHOUSE_URL (or CLICKHOUSE_HOST) in the component's environment"
                    .into(),
            );
        }
        endpoint
            .validate()
            .map_err(|(variable, err)| format!("{variable}: {err}"))?;
        let policy = QueryPolicy {
            readonly: if var("CLICKHOUSE_ALLOW_WRITES").as_deref() == Some("1") {
                ReadOnly::Off
            } else {
                ReadOnly::Strict
            },
            ..QueryPolicy::default()
        };
        Ok(Self { endpoint, policy })
    }
}

/// The environment variable that holds configuration key `key`:
/// `WASMHOUSE_CONFIG_` and the key in upper case, `-` and `.` as `_`
/// (`sql` is `WASMHOUSE_CONFIG_SQL`).
pub fn variable_for(key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("{CONFIG_PREFIX}{key}")
}

/// Configuration key `key`'s value, from its variable ([`variable_for`]).
pub fn value(key: &str) -> Option<String> {
    let variable = variable_for(key);
    get_environment()
        .into_iter()
        .find(|(name, _)| *name == variable)
        .map(|(_, value)| value)
}

/// What every configuration variable's name starts with.
pub const CONFIG_PREFIX: &str = "WASMHOUSE_CONFIG_";

/// Every configuration key the environment gives, lower-cased.
pub fn configured() -> Vec<(String, String)> {
    get_environment()
        .into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(CONFIG_PREFIX)?.to_ascii_lowercase();
            Some((key, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_names_its_variable() {
        assert_eq!(super::variable_for("sql"), "WASMHOUSE_CONFIG_SQL");
        assert_eq!(super::variable_for("max-rows"), "WASMHOUSE_CONFIG_MAX_ROWS");
    }
}
