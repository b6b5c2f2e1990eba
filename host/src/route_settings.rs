//! A route's settings: its request limits, its query guard-rails and its
//! access rules. They come in layers, each read by the one
//! [`RouteSettings::apply`] with one set of checks:
//!
//! 1. flags and environment (`--max-threads`, `WASMHOUSE_MAX_THREADS`), over
//!    the built-in defaults;
//! 2. a manifest's `[defaults]`, under
//! 3. each of its `[[route]]`s (a route's own value wins).
//!
//! Adding a per-route setting is one field here (with its flag, when it has
//! one), one check in [`RouteSettings::apply`] and one line in
//! docs/deploying.md ("Routes from a manifest").

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmhouse_clickhouse::{QueryPolicy, ReadOnly};

use crate::access::{AccessRules, Rate};
use crate::runtime::InstanceLimits;
use crate::units::parse_bytes;

/// Everything a route is served with, resolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteConfig {
    /// Per-request limits of its instances.
    pub(crate) limits: InstanceLimits,
    /// Guard-rails of its queries.
    pub(crate) policy: QueryPolicy,
    /// Its API key and rate limits.
    pub(crate) access: AccessRules,
}

/// A setting whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub(crate) struct SettingError {
    /// The setting, named where its layer came from.
    pub(crate) setting: String,
    /// What is wrong with its value.
    pub(crate) message: String,
}

/// One layer of a route's settings, every value optional: a flag or
/// variable, a manifest's `[defaults]` or one `[[route]]` (same keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Limits of every route (a manifest may set them per route)")]
pub(crate) struct RouteSettings {
    /// Wall-clock budget of one request, ClickHouse time included [default: 30s].
    #[arg(
        long = "request-timeout",
        env = "WASMHOUSE_REQUEST_TIMEOUT",
        value_name = "WASMHOUSE_REQUEST_TIMEOUT"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<String>,

    /// Largest linear memory one instance may use [default: 64MiB].
    #[arg(
        long = "memory-limit",
        env = "WASMHOUSE_MEMORY_LIMIT",
        value_name = "WASMHOUSE_MEMORY_LIMIT"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) memory: Option<String>,

    /// `true` (reads only, ClickHouse readonly = 1), `"relaxed"` (readonly
    /// = 2) or `false` (writes); the flag is `--allow-writes`.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) readonly: Option<ReadOnlySetting>,

    /// Most rows one query may return (0: no limit) [default: 0].
    #[arg(
        long = "max-result-rows",
        env = "WASMHOUSE_MAX_RESULT_ROWS",
        value_name = "WASMHOUSE_MAX_RESULT_ROWS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_result_rows: Option<u64>,

    /// Most bytes one query may return (0: no limit).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_result_bytes: Option<String>,

    /// Upper bound on one query's run time (0s: the request's budget only)
    /// [default: 0s].
    #[arg(
        long = "max-execution-time",
        env = "WASMHOUSE_MAX_EXECUTION_TIME",
        value_name = "WASMHOUSE_MAX_EXECUTION_TIME"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_execution_time: Option<String>,

    /// Most memory one guest query may use on the ClickHouse server
    /// [default: 1GiB].
    #[arg(
        long = "max-memory-usage",
        env = "WASMHOUSE_MAX_MEMORY_USAGE",
        value_name = "WASMHOUSE_MAX_MEMORY_USAGE"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_memory_usage: Option<String>,

    /// Most memory the open queries of one request may hold on the server
    /// together [default: twice max-memory-usage].
    #[arg(
        long = "max-request-memory-usage",
        env = "WASMHOUSE_MAX_REQUEST_MEMORY_USAGE",
        value_name = "WASMHOUSE_MAX_REQUEST_MEMORY_USAGE"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_request_memory_usage: Option<String>,

    /// Most threads one guest query may use on the ClickHouse server
    /// [default: 4].
    #[arg(
        long = "max-threads",
        env = "WASMHOUSE_MAX_THREADS",
        value_name = "WASMHOUSE_MAX_THREADS"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_threads: Option<u64>,

    /// Most rows one guest query may read [default: 1000000000].
    #[arg(
        long = "max-rows-to-read",
        env = "WASMHOUSE_MAX_ROWS_TO_READ",
        value_name = "WASMHOUSE_MAX_ROWS_TO_READ"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_rows_to_read: Option<u64>,

    /// Most bytes one guest query may read [default: 100GiB].
    #[arg(
        long = "max-bytes-to-read",
        env = "WASMHOUSE_MAX_BYTES_TO_READ",
        value_name = "WASMHOUSE_MAX_BYTES_TO_READ"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_bytes_to_read: Option<String>,

    /// Settings of the `route` class its guests may set (patterns).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_settings: Option<Vec<String>>,

    /// Functions, table functions and engines the catalogue denies or does
    /// not know that its guests may use anyway.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_functions: Option<Vec<String>>,

    /// Callers need an API key.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<bool>,

    /// A token bucket per API key (`100/s`).
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit_per_key: Option<String>,

    /// A token bucket per client address.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit_per_client: Option<String>,

    /// The buckets' size; the rate's count by default.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit_burst: Option<u32>,

    /// Serve every read from the result cache for this long.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache_ttl: Option<String>,

    /// Then serve it stale for this long while one refresh runs.
    #[arg(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache_stale: Option<String>,
}

/// `readonly = true | false | "relaxed"` (also `"strict"` and `"off"`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ReadOnlySetting {
    /// `true` (strict) or `false` (off).
    Flag(bool),
    /// A named level.
    Level(ReadOnlyLevel),
}

/// A named read-only level.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ReadOnlyLevel {
    /// ClickHouse readonly = 1.
    Strict,
    /// ClickHouse readonly = 2.
    Relaxed,
    /// No read-only mode.
    Off,
}

impl From<ReadOnlySetting> for ReadOnly {
    fn from(setting: ReadOnlySetting) -> Self {
        match setting {
            ReadOnlySetting::Flag(true) | ReadOnlySetting::Level(ReadOnlyLevel::Strict) => {
                ReadOnly::Strict
            }
            ReadOnlySetting::Level(ReadOnlyLevel::Relaxed) => ReadOnly::Relaxed,
            ReadOnlySetting::Flag(false) | ReadOnlySetting::Level(ReadOnlyLevel::Off) => {
                ReadOnly::Off
            }
        }
    }
}

impl RouteSettings {
    /// `self`, with `lower`'s values where `self` is silent.
    pub(crate) fn over(&self, lower: &RouteSettings) -> RouteSettings {
        // Every field is optional and serialised only when set, so merging
        // the two tables merges the layers, whatever fields there are.
        let table = |settings: &RouteSettings| match toml::Value::try_from(settings) {
            Ok(toml::Value::Table(table)) => table,
            _ => toml::Table::new(),
        };
        let mut merged = table(lower);
        merged.extend(table(self));
        toml::Value::Table(merged)
            .try_into()
            .unwrap_or_else(|_| self.clone())
    }

    /// `base` with this layer's values applied, each checked. `key` names a
    /// setting where this layer came from (`WASMHOUSE_MAX_THREADS`,
    /// `route "reports": max_threads`), for the error message.
    pub(crate) fn apply(
        &self,
        base: &RouteConfig,
        key: &dyn Fn(&str) -> String,
    ) -> Result<RouteConfig, SettingError> {
        let bad = |name: &str, message: String| SettingError {
            setting: key(name),
            message,
        };
        let duration =
            |name: &str, value: &Option<String>| -> Result<Option<Duration>, SettingError> {
                value
                    .as_deref()
                    .map(|text| {
                        humantime::parse_duration(text.trim())
                            .map_err(|err| bad(name, format!("{text:?}: {err}")))
                    })
                    .transpose()
            };
        let bytes = |name: &str, value: &Option<String>| -> Result<Option<u64>, SettingError> {
            value
                .as_deref()
                .map(|text| {
                    parse_bytes(text)
                        .map(|bytes| bytes as u64)
                        .map_err(|err| bad(name, err.to_string()))
                })
                .transpose()
        };
        let RouteConfig {
            mut limits,
            mut policy,
            mut access,
        } = base.clone();

        if let Some(timeout) = duration("timeout", &self.timeout)? {
            if timeout.is_zero() {
                return Err(bad("timeout", "must be more than 0s".into()));
            }
            limits.timeout = timeout;
        }
        if let Some(memory) = bytes("memory", &self.memory)? {
            if memory < 1 << 20 {
                return Err(bad(
                    "memory",
                    format!("{memory} bytes is too small; give at least 1MiB"),
                ));
            }
            limits.memory_bytes = usize::try_from(memory).unwrap_or(usize::MAX);
        }
        if let Some(readonly) = self.readonly {
            policy.readonly = readonly.into();
        }
        if let Some(rows) = self.max_result_rows {
            policy.max_result_rows = (rows > 0).then_some(rows);
        }
        if let Some(result_bytes) = bytes("max_result_bytes", &self.max_result_bytes)? {
            policy.max_result_bytes = (result_bytes > 0).then_some(result_bytes);
        }
        if let Some(time) = duration("max_execution_time", &self.max_execution_time)? {
            policy.max_execution_time = (!time.is_zero()).then_some(time);
        }
        if let Some(memory) = bytes("max_memory_usage", &self.max_memory_usage)? {
            if memory == 0 {
                return Err(bad(
                    "max_memory_usage",
                    "must be more than 0 (0 would mean no limit)".into(),
                ));
            }
            policy.max_memory_usage = memory;
        }
        if let Some(memory) = bytes("max_request_memory_usage", &self.max_request_memory_usage)? {
            if memory < wasmhouse_clickhouse::policy::MIN_QUERY_MEMORY {
                return Err(bad(
                    "max_request_memory_usage",
                    "must be at least 8MiB (the least a query is started with)".into(),
                ));
            }
            policy.max_request_memory_usage = Some(memory);
        }
        if let Some(threads) = self.max_threads {
            if threads == 0 {
                return Err(bad("max_threads", "must be at least 1".into()));
            }
            policy.max_threads = threads;
        }
        if let Some(rows) = self.max_rows_to_read {
            policy.max_rows_to_read = rows;
        }
        if let Some(read) = bytes("max_bytes_to_read", &self.max_bytes_to_read)? {
            policy.max_bytes_to_read = read;
        }
        if let Some(settings) = &self.allowed_settings {
            // The host refuses these at run time anyway; say so at load time.
            if let Some(host) = settings
                .iter()
                .find(|pattern| wasmhouse_clickhouse::settings::is_host_setting(pattern))
            {
                return Err(bad(
                    "allowed_settings",
                    format!("{host} is always the host's to set"),
                ));
            }
            policy.allowed_settings = settings.clone();
        }
        if let Some(functions) = &self.allowed_functions {
            if let Some(name) = functions.iter().find(|f| {
                f.is_empty() || !f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) {
                return Err(bad(
                    "allowed_functions",
                    format!("{name:?} is not a function name"),
                ));
            }
            policy.allowed_functions = functions.clone();
        }
        if let Some(ttl) = duration("cache_ttl", &self.cache_ttl)? {
            policy.cache_ttl = (!ttl.is_zero()).then_some(ttl);
        }
        if let Some(stale) = duration("cache_stale", &self.cache_stale)? {
            policy.cache_stale = stale;
        }
        let cache_cap = wasmhouse_clickhouse::host::result_cache::MAX_TTL;
        if policy.cache_ttl.is_some_and(|ttl| ttl > cache_cap) || policy.cache_stale > cache_cap {
            return Err(bad(
                "cache_ttl",
                format!(
                    "cache_ttl and cache_stale may be at most {}",
                    humantime::format_duration(cache_cap)
                ),
            ));
        }
        if let Some(api_key) = self.api_key {
            access.api_key = api_key;
        }
        if self.rate_limit_burst.is_some()
            && self.rate_limit_per_key.is_none()
            && self.rate_limit_per_client.is_none()
        {
            return Err(bad(
                "rate_limit_burst",
                "is the bucket size of rate_limit_per_key or rate_limit_per_client set beside it; \
                 alone it has no effect"
                    .into(),
            ));
        }
        let rate = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    Rate::parse(text, self.rate_limit_burst)
                        .map_err(|err| bad(name, err.to_string()))
                })
                .transpose()
        };
        if let Some(per_key) = rate("rate_limit_per_key", &self.rate_limit_per_key)? {
            access.per_key = Some(per_key);
        }
        if let Some(per_client) = rate("rate_limit_per_client", &self.rate_limit_per_client)? {
            access.per_client = Some(per_client);
        }
        Ok(RouteConfig {
            limits,
            policy,
            access,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_key(key: &str) -> String {
        format!("route \"r\": {key}")
    }

    #[test]
    fn a_layer_over_another_keeps_the_upper_value() {
        let lower = RouteSettings {
            max_threads: Some(2),
            timeout: Some("5s".into()),
            ..RouteSettings::default()
        };
        let upper = RouteSettings {
            max_threads: Some(8),
            ..RouteSettings::default()
        };
        let merged = upper.over(&lower);
        assert_eq!(merged.max_threads, Some(8));
        assert_eq!(merged.timeout.as_deref(), Some("5s"));
    }

    #[test]
    fn every_check_names_the_setting_where_it_was_set() {
        let base = RouteConfig::default();
        for (settings, key) in [
            (
                RouteSettings {
                    memory: Some("512KiB".into()),
                    ..RouteSettings::default()
                },
                "memory",
            ),
            (
                RouteSettings {
                    max_threads: Some(0),
                    ..RouteSettings::default()
                },
                "max_threads",
            ),
            (
                RouteSettings {
                    max_memory_usage: Some("0".into()),
                    ..RouteSettings::default()
                },
                "max_memory_usage",
            ),
            (
                RouteSettings {
                    timeout: Some("soon".into()),
                    ..RouteSettings::default()
                },
                "timeout",
            ),
            (
                RouteSettings {
                    allowed_settings: Some(vec!["max_execution_time".into()]),
                    ..RouteSettings::default()
                },
                "allowed_settings",
            ),
            (
                RouteSettings {
                    max_request_memory_usage: Some("1MiB".into()),
                    ..RouteSettings::default()
                },
                "max_request_memory_usage",
            ),
        ] {
            let err = settings.apply(&base, &manifest_key).unwrap_err();
            assert_eq!(err.setting, manifest_key(key), "{err}");
            let flag = settings
                .apply(&base, &|key| format!("WASMHOUSE_{}", key.to_uppercase()))
                .unwrap_err();
            assert_eq!(flag.setting, format!("WASMHOUSE_{}", key.to_uppercase()));
        }
    }

    #[test]
    fn a_burst_without_its_rate_is_refused() {
        let settings = RouteSettings {
            rate_limit_burst: Some(5),
            ..RouteSettings::default()
        };
        let err = settings
            .apply(&RouteConfig::default(), &manifest_key)
            .expect_err("a burst alone");
        assert_eq!(err.setting, "route \"r\": rate_limit_burst");
        assert!(
            err.message.contains("rate_limit_per_key"),
            "{}",
            err.message
        );
    }

    #[test]
    fn values_reach_the_route() {
        let settings = RouteSettings {
            timeout: Some("5s".into()),
            readonly: Some(ReadOnlySetting::Level(ReadOnlyLevel::Relaxed)),
            max_request_memory_usage: Some("64MiB".into()),
            api_key: Some(true),
            rate_limit_per_key: Some("10/s".into()),
            ..RouteSettings::default()
        };
        let route = settings
            .apply(&RouteConfig::default(), &manifest_key)
            .unwrap();
        assert_eq!(route.limits.timeout, Duration::from_secs(5));
        assert_eq!(route.policy.readonly, ReadOnly::Relaxed);
        assert_eq!(route.policy.max_request_memory_usage, Some(64 << 20));
        assert!(route.access.api_key);
        assert!(route.access.per_key.is_some());
    }
}
