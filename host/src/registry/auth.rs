//! Registry credentials: the environment's, else the Docker config file's
//! (`$DOCKER_CONFIG/config.json`, or `~/.docker/config.json`) — the
//! `auths` a `docker login` writes, or the credential helper it names.
//! Kubernetes' `.dockerconfigjson` secrets are the same file.
//!
//! Every credential is bound to one registry host: the Docker config's are
//! per host already, and the environment's name theirs
//! (`WASMHOUSE_REGISTRY_HOST`). A deploy that names another registry gets
//! none of them.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use serde::Deserialize;

/// User name for the registry of [`HOST_VARIABLE`], over the Docker config
/// file.
pub(crate) const USERNAME_VARIABLE: &str = "WASMHOUSE_REGISTRY_USERNAME";
/// Password (or access token) for that registry.
pub(crate) const PASSWORD_VARIABLE: &str = "WASMHOUSE_REGISTRY_PASSWORD";
/// The registry (`host` or `host:port`) the environment's credentials are
/// for: they are sent there and nowhere else.
pub(crate) const HOST_VARIABLE: &str = "WASMHOUSE_REGISTRY_HOST";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// None: the registry is asked anonymously.
    Anonymous,
    /// A user name and password (or access token), sent as HTTP Basic to
    /// the registry or its token service.
    Basic(String, String),
    /// A token sent as `Authorization: Bearer` as it is (a Docker config's
    /// `identitytoken`, a credential helper's token).
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    /// Says which kind, never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Anonymous => "Anonymous",
            Self::Basic(..) => "Basic(…)",
            Self::Bearer(_) => "Bearer(…)",
        })
    }
}

/// Where credentials were found, for logs (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// None: the registry is asked anonymously.
    Anonymous,
    /// From the environment variables.
    Environment,
    /// From the Docker config file at this path.
    DockerConfig(PathBuf),
    /// From this Docker credential helper.
    Helper(String),
}

/// The credentials for `registry` (`host` or `host:port`), and where they
/// came from. A config file that cannot be read or parsed is an error, not
/// silence: an operator who wrote one meant it.
pub(crate) fn credentials(registry: &str) -> Result<(Credentials, Found), String> {
    let from_environment =
        environment_credentials().map_err(|(variable, why)| format!("{variable} {why}"))?;
    if let Some(given) = from_environment
        && same_registry(&given.host, registry)
    {
        return Ok((
            Credentials::Basic(given.username, given.password),
            Found::Environment,
        ));
    }
    let Some(path) = docker_config_path() else {
        return Ok((Credentials::Anonymous, Found::Anonymous));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Credentials::Anonymous, Found::Anonymous));
        }
        Err(err) => return Err(format!("reading {}: {err}", path.display())),
    };
    let config: DockerConfig = serde_json::from_str(&text)
        .map_err(|err| format!("{} is not a Docker config file: {err}", path.display()))?;
    if let Some(helper) = config.cred_helpers.get(registry) {
        return helper_credentials(helper, registry)
            .map(|auth| (auth, Found::Helper(helper.clone())));
    }
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| normalise_registry(key) == registry)
        .map(|(_, entry)| entry);
    if let Some(entry) = entry {
        return entry_credentials(entry)
            .map(|auth| (auth, Found::DockerConfig(path.clone())))
            .map_err(|why| format!("{}: auths[{registry:?}]: {why}", path.display()));
    }
    match &config.creds_store {
        Some(helper) => {
            helper_credentials(helper, registry).map(|auth| (auth, Found::Helper(helper.clone())))
        }
        None => Ok((Credentials::Anonymous, Found::Anonymous)),
    }
}

/// Credentials from the environment, and the registry they are for.
pub(crate) struct EnvironmentCredentials {
    host: String,
    username: String,
    password: String,
}

/// A variable that is wrong, and why.
pub(crate) type BadVariable = (&'static str, String);

/// The environment's credentials: all three
/// variables or none. Checked at start, so that a half-given pair stops it
/// rather than the first pull.
pub(crate) fn environment_credentials() -> Result<Option<EnvironmentCredentials>, BadVariable> {
    let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    match (
        read(HOST_VARIABLE),
        read(USERNAME_VARIABLE),
        read(PASSWORD_VARIABLE),
    ) {
        (Some(host), Some(username), Some(password)) => Ok(Some(EnvironmentCredentials {
            host: host.trim().to_owned(),
            username,
            password,
        })),
        (None, None, None) => Ok(None),
        (_, Some(_), None) => Err((
            USERNAME_VARIABLE,
            format!("is set without {PASSWORD_VARIABLE}: set both, or neither"),
        )),
        (_, None, Some(_)) => Err((
            PASSWORD_VARIABLE,
            format!("is set without {USERNAME_VARIABLE}: set both, or neither"),
        )),
        (None, Some(_), Some(_)) => Err((
            HOST_VARIABLE,
            format!(
                "set {HOST_VARIABLE} to the registry (host or host:port) that {USERNAME_VARIABLE} and \
             {PASSWORD_VARIABLE} are for: they are sent to that registry only"
            ),
        )),
        (Some(_), None, None) => Err((
            HOST_VARIABLE,
            format!(
                "is set without {USERNAME_VARIABLE} and {PASSWORD_VARIABLE}: pulls from it would \
                 be anonymous (set the credentials, or unset it)"
            ),
        )),
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(".docker").join("config.json"))
}

/// Whether `named` (as an operator wrote it: `host`, `host:port`, or a URL
/// `docker login` would write) is the registry `registry` (`host` or
/// `host:port`). Host names compare without regard to case; ports must
/// match, so the same host on another port is another registry.
fn same_registry(named: &str, registry: &str) -> bool {
    normalise_registry(named.trim()).eq_ignore_ascii_case(registry)
}

/// `https://host:port/v1/` → `host:port`: the forms `docker login` writes.
fn normalise_registry(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn entry_credentials(entry: &DockerAuth) -> Result<Credentials, String> {
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic(username.clone(), password.clone()));
    }
    let encoded = entry.auth.as_deref().unwrap_or_default();
    if encoded.is_empty() {
        return Ok(Credentials::Anonymous);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "`auth` is not base64".to_owned())?;
    let decoded = String::from_utf8(decoded).map_err(|_| "`auth` is not UTF-8".to_owned())?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| "`auth` is not base64 of user:password".to_owned())?;
    Ok(Credentials::Basic(username.to_owned(), password.to_owned()))
}

/// Ask `docker-credential-<helper> get` (the Docker credential helper
/// protocol: the registry on stdin, JSON on stdout).
fn helper_credentials(helper: &str, registry: &str) -> Result<Credentials, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| {
            format!("running {program} (the Docker config's credential helper): {err}")
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|err| format!("writing to {program}: {err}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|err| format!("running {program}: {err}"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        // "credentials not found" is the protocol's way of saying none.
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(Credentials::Anonymous);
        }
        return Err(format!("{program} get failed: {}", said.trim()));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("{program} answered something other than its JSON: {err}"))?;
    if answer.username == "<token>" {
        Ok(Credentials::Bearer(answer.secret))
    } else {
        Ok(Credentials::Basic(answer.username, answer.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries_in_every_form_docker_writes() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("ci:s3cret:with:colons");
        let entry = DockerAuth {
            auth: Some(encoded),
            ..DockerAuth::default()
        };
        assert!(matches!(
            entry_credentials(&entry),
            Ok(Credentials::Basic(user, password)) if user == "ci" && password == "s3cret:with:colons"
        ));
        let split = DockerAuth {
            username: Some("u".into()),
            password: Some("p".into()),
            ..DockerAuth::default()
        };
        assert!(
            matches!(entry_credentials(&split), Ok(Credentials::Basic(u, p)) if u == "u" && p == "p")
        );
        let bad = DockerAuth {
            auth: Some("not base64!".into()),
            ..DockerAuth::default()
        };
        assert!(entry_credentials(&bad).expect_err("bad").contains("base64"));
        assert_eq!(
            normalise_registry("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(normalise_registry("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn a_named_registry_is_that_host_and_port_only() {
        assert!(same_registry("ghcr.io", "ghcr.io"));
        assert!(same_registry(" GHCR.io ", "ghcr.io"));
        assert!(same_registry("https://ghcr.io/v2/", "ghcr.io"));
        assert!(same_registry("127.0.0.1:5000", "127.0.0.1:5000"));
        for other in [
            "ghcr.io.evil.example",
            "evil.example",
            "ghcr.io:444",
            "127.0.0.1:5001",
        ] {
            assert!(!same_registry("ghcr.io", other), "{other}");
            assert!(!same_registry("127.0.0.1:5000", other), "{other}");
        }
    }
}
