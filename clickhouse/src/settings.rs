//! Which ClickHouse settings a guest may pass with a query (the `settings`
//! option, or a `SETTINGS` clause where the route allows one).

/// Settings a guest may set unless the route says otherwise: ones that shape
/// the output, never the resources a query may use. A trailing `*` matches
/// any suffix.
pub const DEFAULT_ALLOWED_SETTINGS: &[&str] = &[
    "output_format_*",
    "format_*",
    "date_time_output_format",
    "date_time_input_format",
    "extremes",
    "join_use_nulls",
    "totals_mode",
];

/// Settings the host sets on every guest query, or that would let a guest
/// step outside its request: no allow-list pattern ever unlocks them.
pub const HOST_SETTINGS: &[&str] = &[
    "readonly",
    "allow_ddl",
    "allow_introspection_functions",
    "max_execution_time",
    "timeout_overflow_mode",
    "max_memory_usage",
    "max_memory_usage_for_user",
    "max_memory_usage_for_all_queries",
    "max_threads",
    "max_rows_to_read",
    "max_bytes_to_read",
    "read_overflow_mode",
    "max_result_rows",
    "max_result_bytes",
    "result_overflow_mode",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "replace_running_query",
    "database",
    "default_format",
    "user",
    "password",
    "quota_key",
    "max_concurrent_queries_for_user",
    "priority",
];

/// Whether `name` matches one of `patterns` (a trailing `*` matches any
/// suffix).
pub fn is_allowed<S: AsRef<str>>(name: &str, patterns: &[S]) -> bool {
    patterns.iter().any(|pattern| {
        let pattern = pattern.as_ref();
        match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        }
    })
}

/// Whether a guest may set `name` under `allowed`; the reason when not.
pub fn check_name<S: AsRef<str>>(name: &str, allowed: &[S]) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!(
            "{:?} is not a ClickHouse setting name",
            crate::response::truncate(name, 128)
        ));
    }
    let lower = name.to_ascii_lowercase();
    if HOST_SETTINGS.contains(&lower.as_str()) || lower.starts_with("param_") {
        return Err(format!("setting {name} is controlled by the host"));
    }
    if !is_allowed(name, allowed) {
        return Err(format!(
            "setting {name} is not allowed on this route (manifest: allowed_settings)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_prefixes() {
        assert!(is_allowed(
            "output_format_json_quote_denormals",
            DEFAULT_ALLOWED_SETTINGS
        ));
        assert!(!is_allowed("max_memory_usage", DEFAULT_ALLOWED_SETTINGS));
        assert!(!is_allowed("max_block_size", DEFAULT_ALLOWED_SETTINGS));
    }

    #[test]
    fn host_settings_are_never_the_guests() {
        let everything = ["*"];
        for name in [
            "readonly",
            "max_execution_time",
            "param_x",
            "MAX_THREADS",
            "query_id",
        ] {
            let why = check_name(name, &everything).unwrap_err();
            assert!(why.contains("controlled by the host"), "{name}: {why}");
        }
        assert!(check_name("max_block_size", &everything).is_ok());
        assert!(check_name("a-b", &everything).is_err());
        assert!(check_name("", &everything).is_err());
    }
}
