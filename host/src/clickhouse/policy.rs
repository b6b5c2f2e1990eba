//! Guard-rails a route's queries run under.

use std::time::Duration;

use tokio::time::Instant;

use super::error::{QueryError, ServerException};

/// Settings the host controls; a guest may never set them itself.
const HOST_SETTINGS: &[&str] = &[
    "readonly",
    "max_execution_time",
    "max_result_rows",
    "max_result_bytes",
    "result_overflow_mode",
    "timeout_overflow_mode",
    "query_id",
    "session_id",
    "session_timeout",
    "database",
    "default_format",
    "user",
    "password",
    "quota_key",
    "allow_ddl",
    "allow_introspection_functions",
];

pub use wasmhouse_sql::settings::DEFAULT_ALLOWED_SETTINGS;

/// What one route's queries may do.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPolicy {
    /// Run queries with ClickHouse's `readonly = 2`: no writes, no DDL, but
    /// settings can still be passed.
    pub readonly: bool,
    /// Upper bound on one query's run time; the request's remaining budget
    /// lowers it further.
    pub max_execution_time: Option<Duration>,
    /// Most rows a result may have (`max_result_rows`, overflow throws).
    pub max_result_rows: Option<u64>,
    /// Most bytes a result may have (`max_result_bytes`, overflow throws).
    pub max_result_bytes: Option<u64>,
    /// Settings the guest may pass; `*` at the end matches any suffix.
    pub allowed_settings: Vec<String>,
}

impl Default for QueryPolicy {
    fn default() -> Self {
        Self {
            readonly: true,
            max_execution_time: None,
            max_result_rows: None,
            max_result_bytes: None,
            allowed_settings: DEFAULT_ALLOWED_SETTINGS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// ClickHouse's error code for "cannot do this in read-only mode".
const READONLY: u32 = 164;
/// ClickHouse's error code for "result over max_result_rows/bytes".
const TOO_MANY_ROWS_OR_BYTES: u32 = 396;

/// What a server error means under a policy: the host's own limits show up
/// as refusals, running out of time as a timeout, the rest as server errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorContext {
    readonly: bool,
    limits_results: bool,
}

impl ErrorContext {
    /// Turn an exception ClickHouse reported into the error the guest sees.
    pub fn classify(self, exception: ServerException) -> QueryError {
        if exception.is_timeout() {
            QueryError::Timeout
        } else if self.readonly && exception.code == READONLY {
            QueryError::Refused(format!(
                "this route is read-only ({}); configure it with readonly = false to write",
                exception.message
            ))
        } else if self.limits_results && exception.code == TOO_MANY_ROWS_OR_BYTES {
            QueryError::Refused(format!(
                "the result is over this route's limit ({})",
                exception.message
            ))
        } else {
            exception.into()
        }
    }
}

impl QueryPolicy {
    /// How server errors are reported under this policy.
    pub fn error_context(&self) -> ErrorContext {
        ErrorContext {
            readonly: self.readonly,
            limits_results: self.max_result_rows.is_some() || self.max_result_bytes.is_some(),
        }
    }

    /// Refuse settings this route may not change.
    pub fn check_settings(&self, settings: &[(String, String)]) -> Result<(), QueryError> {
        for (name, _) in settings {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(QueryError::Refused(format!(
                    "{name:?} is not a ClickHouse setting name"
                )));
            }
            if HOST_SETTINGS.contains(&name.as_str()) || name.starts_with("param_") {
                return Err(QueryError::Refused(format!(
                    "setting {name} is controlled by the host"
                )));
            }
            let allowed = wasmhouse_sql::settings::is_allowed(name, &self.allowed_settings);
            if !allowed {
                return Err(QueryError::Refused(format!(
                    "setting {name} is not allowed on this route"
                )));
            }
        }
        Ok(())
    }

    /// The settings that enforce this policy for a query that must finish
    /// by `deadline`.
    pub fn settings(&self, deadline: Instant) -> Vec<(&'static str, String)> {
        let mut settings = Vec::with_capacity(5);
        if self.readonly {
            // 2, not 1: read-only, yet the settings below can still be applied.
            settings.push(("readonly", "2".to_owned()));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let limit = self
            .max_execution_time
            .map_or(remaining, |max| max.min(remaining));
        // Whole milliseconds, at least one: 0 would mean "no limit".
        let seconds = (limit.as_millis().max(1) as f64) / 1000.0;
        settings.push(("max_execution_time", format!("{seconds}")));
        if let Some(rows) = self.max_result_rows {
            settings.push(("max_result_rows", rows.to_string()));
        }
        if let Some(bytes) = self.max_result_bytes {
            settings.push(("max_result_bytes", bytes.to_string()));
        }
        if self.max_result_rows.is_some() || self.max_result_bytes.is_some() {
            settings.push(("result_overflow_mode", "throw".to_owned()));
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_settings_cannot_be_overridden() {
        let policy = QueryPolicy::default();
        for name in ["readonly", "max_execution_time", "param_x", "session_id"] {
            let err = policy
                .check_settings(&settings(&[(name, "0")]))
                .unwrap_err();
            assert!(matches!(err, QueryError::Refused(_)), "{name}");
        }
    }

    #[test]
    fn only_allowed_settings_pass() {
        let policy = QueryPolicy::default();
        assert!(
            policy
                .check_settings(&settings(&[("output_format_json_quote_denormals", "1")]))
                .is_ok()
        );
        assert!(
            policy
                .check_settings(&settings(&[("max_memory_usage", "1")]))
                .is_err()
        );
        assert!(policy.check_settings(&settings(&[("a&b", "1")])).is_err());
    }

    #[test]
    fn readonly_and_deadline_become_settings() {
        let policy = QueryPolicy {
            max_execution_time: Some(Duration::from_secs(60)),
            max_result_rows: Some(10),
            ..QueryPolicy::default()
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let settings = policy.settings(deadline);
        assert_eq!(settings[0], ("readonly", "2".to_owned()));
        let (_, time) = &settings[1];
        let seconds: f64 = time.parse().unwrap();
        assert!(seconds > 4.0 && seconds <= 5.0, "{seconds}");
        assert!(settings.contains(&("max_result_rows", "10".to_owned())));
        assert!(settings.contains(&("result_overflow_mode", "throw".to_owned())));
    }
}
