//! Which ClickHouse settings a guest may pass with a query.

/// Settings a guest may set unless configured otherwise: ones that shape the
/// output, not the resources a query may use. A trailing `*` matches any
/// suffix.
pub const DEFAULT_ALLOWED_SETTINGS: &[&str] = &[
    "output_format_*",
    "format_*",
    "date_time_output_format",
    "date_time_input_format",
    "extremes",
    "join_use_nulls",
    "max_block_size",
    "totals_mode",
    "use_uncompressed_cache",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_prefixes() {
        assert!(is_allowed(
            "output_format_json_quote_denormals",
            DEFAULT_ALLOWED_SETTINGS
        ));
        assert!(is_allowed("max_block_size", DEFAULT_ALLOWED_SETTINGS));
        assert!(!is_allowed("max_memory_usage", DEFAULT_ALLOWED_SETTINGS));
        assert!(!is_allowed("max_block_size_x", DEFAULT_ALLOWED_SETTINGS));
    }
}
