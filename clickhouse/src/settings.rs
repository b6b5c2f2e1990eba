//! Which ClickHouse settings a guest may pass with a query (the `settings`
//! option, or a `SETTINGS` clause where the route allows one).
//!
//! Every setting both servers know is classified in `catalog/setting.tsv`
//! ([`crate::catalog`]): `guest` settings shape the output and every guest
//! may set them; `route` settings change resources or behaviour, and a
//! route's `allowed_settings` may open them to its guests; `host` settings
//! (limits, sessions, paths, the network) never are the guests'. A name no
//! server the host knows has is refused.

use crate::catalog::{self, SettingClass};

/// Parameters of ClickHouse's HTTP interface that are not settings, or that
/// the host sends itself: the guest never names them.
pub const HOST_PARAMETERS: &[&str] = &[
    "query",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "database",
    "default_format",
    "user",
    "password",
    "quota_key",
    "compress",
    "decompress",
    "buffer_size",
    "wait_end_of_query",
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

/// Whether `name` is always the host's: an HTTP parameter, a `param_`
/// value, or a setting classified `host`.
pub fn is_host_setting(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    HOST_PARAMETERS.contains(&lower.as_str())
        || lower.starts_with("param_")
        || catalog::setting(name) == Some(SettingClass::Host)
}

/// Whether a guest may set `name` on a route whose `allowed_settings` are
/// `allowed`; the reason when not.
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
    if is_host_setting(name) {
        return Err(format!("setting {name} is controlled by the host"));
    }
    match catalog::setting(name) {
        Some(SettingClass::Guest) => Ok(()),
        Some(SettingClass::Route) if is_allowed(name, allowed) => Ok(()),
        Some(_) => Err(format!(
            "setting {name} is not allowed on this route (manifest: allowed_settings)"
        )),
        None => Err(format!(
            "{name} is not a setting wasmhouse knows, so guests may not set it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_and_prefixes() {
        assert!(is_allowed(
            "output_format_json_quote_denormals",
            &["output_format_*"]
        ));
        assert!(!is_allowed("max_memory_usage", &["output_format_*"]));
        assert!(is_allowed("max_block_size", &["max_block_size"]));
    }

    #[test]
    fn guest_settings_pass_route_settings_need_the_route() {
        let none: [&str; 0] = [];
        assert!(check_name("output_format_json_quote_denormals", &none).is_ok());
        assert!(check_name("max_block_size", &none).is_err());
        assert!(check_name("max_block_size", &["max_block_size"]).is_ok());
        assert!(check_name("max_block_size", &["max_*"]).is_ok());
        assert!(check_name("no_such_setting_anywhere", &["*"]).is_err());
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
            "max_threads",
            "format_schema",
        ] {
            let why = check_name(name, &everything).unwrap_err();
            assert!(
                why.contains("controlled by the host") || why.contains("not a setting"),
                "{name}: {why}"
            );
        }
        assert!(check_name("a-b", &everything).is_err());
        assert!(check_name("", &everything).is_err());
    }
}
