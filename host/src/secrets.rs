//! The inventory of secrets: every credential the host holds, where it
//! comes from, the only destinations that may receive it, and what keeps it
//! from guests, logs and errors. The security model's table
//! (`docs/security.md`, "Secrets, and the only places each may go") says
//! the same, row for row; a test holds the two together.
//!
//! The host logs at start which of them are set, and where each may go:
//! by name, never the value.

/// One kind of credential.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Secret {
    /// What it is, as the security model's table names it.
    pub(crate) name: &'static str,
    /// The variables (or flags' variables) it is read from.
    pub(crate) sources: &'static [&'static str],
    /// The only places it may be sent.
    pub(crate) destinations: &'static str,
    /// What keeps it from guests, logs and errors.
    pub(crate) kept_by: &'static str,
}

/// Every secret the host holds.
pub(crate) const SECRETS: &[Secret] = &[
    Secret {
        name: "API keys",
        sources: &["WASMHOUSE_API_KEYS", "WASMHOUSE_API_KEYS_FILE"],
        destinations: "nowhere: kept as SHA-256 hashes and compared",
        kept_by: "access::strip_keys on every request to every route",
    },
    Secret {
        name: "the admin token",
        sources: &["WASMHOUSE_ADMIN_TOKEN"],
        destinations: "the admin API's check",
        kept_by: "admin::strip_admin_token on every request bound for a route",
    },
    Secret {
        name: "the ClickHouse password",
        sources: &["CLICKHOUSE_PASSWORD", "CLICKHOUSE_URL"],
        destinations: "the configured ClickHouse servers",
        kept_by: "error bodies that name the failure only; help that hides the value",
    },
    Secret {
        name: "the ClickHouse client key",
        sources: &["CLICKHOUSE_CLIENT_CERT_KEY"],
        destinations: "TLS handshakes with the ClickHouse servers",
        kept_by: "read into the TLS configuration only; errors name its variable",
    },
    Secret {
        name: "registry credentials",
        sources: &[
            crate::registry::auth::USERNAME_VARIABLE,
            crate::registry::auth::PASSWORD_VARIABLE,
            crate::registry::auth::HOST_VARIABLE,
            "DOCKER_CONFIG",
        ],
        destinations: "the one registry host and port they are bound to, and the token service that registry names (over HTTPS, or on its own host and port)",
        kept_by: "registry::auth, which gives them to that registry only; registry::distribution, which sends none on a redirect or upload to another origin",
    },
    Secret {
        name: "OTLP headers",
        sources: &["OTEL_EXPORTER_OTLP_HEADERS"],
        destinations: "the collector at OTEL_EXPORTER_OTLP_ENDPOINT",
        kept_by: "the exporter, which reads them itself and never logs them",
    },
];

/// The secrets that `set` (is this variable set?) says are configured.
pub(crate) fn configured(set: impl Fn(&str) -> bool) -> Vec<&'static Secret> {
    SECRETS
        .iter()
        .filter(|secret| secret.sources.iter().any(|source| set(source)))
        .collect()
}

/// Log, at start, each secret set in the environment (flags given instead
/// of variables are not seen: the lines are a record, not a check): its
/// name, where it may go and what keeps it from guests, never its value.
pub(crate) fn log_configured() {
    let set = |variable: &str| std::env::var_os(variable).is_some_and(|value| !value.is_empty());
    for secret in configured(set) {
        tracing::info!(
            secret = secret.name,
            goes_to = secret.destinations,
            kept_by = secret.kept_by,
            "a secret is set"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable of the inventory is one the host reads: a flag's
    /// variable of `serve`, or one named in the code that reads it.
    #[test]
    fn every_source_is_a_variable_the_host_reads() {
        use clap::CommandFactory as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: crate::config::ServeArgs,
        }
        let command = Cli::command();
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        let read_directly = [
            crate::registry::auth::USERNAME_VARIABLE,
            crate::registry::auth::PASSWORD_VARIABLE,
            crate::registry::auth::HOST_VARIABLE,
            "DOCKER_CONFIG",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ];
        for secret in SECRETS {
            for source in secret.sources {
                assert!(
                    flags.iter().any(|flag| flag == source) || read_directly.contains(source),
                    "{}: {source} is read by nothing",
                    secret.name
                );
            }
        }
    }

    /// The security model's table lists the same secrets from the same
    /// variables, going to the same places and kept by the same means, in
    /// the same order.
    #[test]
    fn the_security_model_lists_every_secret() {
        let doc = include_str!("../../docs/security.md");
        let table: Vec<&str> = doc
            .lines()
            .skip_while(|line| !line.starts_with("**Secrets, and the only places each may go**"))
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .collect();
        assert_eq!(table.len(), SECRETS.len(), "{table:#?}");
        for (row, secret) in table.iter().zip(SECRETS) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells.get(1), Some(&secret.name), "{row}");
            assert_eq!(cells.get(3), Some(&secret.destinations), "{row}");
            assert_eq!(cells.get(4), Some(&secret.kept_by), "{row}");
            for source in secret.sources {
                assert!(
                    row.contains(source),
                    "{}: the table does not name {source}",
                    secret.name
                );
            }
        }
    }

    #[test]
    fn configured_secrets_are_named_never_shown() {
        let set = |variable: &str| matches!(variable, "WASMHOUSE_ADMIN_TOKEN" | "CLICKHOUSE_URL");
        let names: Vec<&str> = configured(set).iter().map(|secret| secret.name).collect();
        assert_eq!(names, ["the admin token", "the ClickHouse password"]);
        assert!(configured(|_| false).is_empty());
    }
}
