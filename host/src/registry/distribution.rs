//! The OCI distribution protocol as far as this host speaks it: resolve a
//! tag, fetch a manifest and a blob, push blobs and a manifest, and the
//! auth challenge and token exchange in front of them.
//!
//! Every answer a registry (or its token service) gives is read through a
//! bound before it is kept: a manifest 4 MiB, a token 64 KiB, an error
//! answer 16 KiB (of which a message shows 512 characters), a blob the size
//! its manifest declares. A registry that sends more gets a refusal, not
//! the host's memory.
//!
//! Credentials go to the registry they are bound to ([`super::auth`]) and to
//! the token service that registry names in its challenge, over HTTPS (or,
//! for a registry listed as plain HTTP, on that registry's own host and
//! port). A redirect is followed without them when it leaves the registry's
//! origin (reqwest drops `Authorization` on a cross-origin redirect), and
//! an upload location on another origin gets none either.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};

use super::auth::Credentials;
use super::reference::{OciReference, is_sha256_digest};
use super::store::sha256_digest;
use super::{CONNECT_TIMEOUT, READ_TIMEOUT, RegistryError, credentials_hint, format};
use crate::errors::error_chain;
use wasmhouse_clickhouse::host::transport::read_capped;

/// The largest manifest accepted: real ones are a few hundred bytes.
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// The largest token-service answer read.
const MAX_TOKEN_BYTES: usize = 64 << 10;
/// The most of an error answer read.
const MAX_ERROR_BYTES: usize = 16 << 10;
/// The most characters of a registry's error message shown.
const MAX_MESSAGE_CHARS: usize = 512;

/// Pull, or pull and push: the scope a token is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// Reading manifests and blobs.
    Pull,
    /// Reading and writing.
    Push,
}

/// A client for the registries of one host.
pub(crate) struct Distribution {
    http: reqwest::Client,
    /// Registries (`host:port`) spoken to over plain HTTP.
    insecure: Vec<String>,
    /// The `Authorization` each (registry, repository, access) was given
    /// last: a token service's bearer token, or Basic credentials.
    authorizations: Mutex<HashMap<(String, String, Access), HeaderValue>>,
}

impl Distribution {
    /// A client speaking HTTPS (verified against the host's default roots)
    /// to every registry but the `insecure` ones.
    pub(crate) fn new(insecure: Vec<String>) -> Result<Self, String> {
        let http = wasmhouse_clickhouse::host::tls::verified_client_builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("wasmhouse/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|err| error_chain(&err))?;
        Ok(Self {
            http,
            insecure,
            authorizations: Mutex::new(HashMap::new()),
        })
    }

    /// `http` for a listed registry, else `https`.
    fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|listed| listed == registry) {
            "http"
        } else {
            "https"
        }
    }

    /// `scheme://host/v2/repository/` of `reference`.
    fn repository_url(&self, reference: &OciReference) -> String {
        let host = api_host(&reference.registry);
        format!(
            "{}://{host}/v2/{}/",
            self.scheme(&reference.registry),
            reference.repository
        )
    }

    /// Where `reference`'s manifest is: by its digest when it names one (a
    /// tag beside it is a label), else by its tag.
    fn manifest_url(&self, reference: &OciReference) -> String {
        let name = reference
            .digest
            .as_deref()
            .or(reference.tag.as_deref())
            .unwrap_or_default();
        format!("{}manifests/{name}", self.repository_url(reference))
    }

    /// The digest `reference`'s tag names now: the registry's
    /// `Docker-Content-Digest`, or the digest of the manifest itself.
    pub(crate) async fn resolve(
        &self,
        reference: &OciReference,
        credentials: &Credentials,
    ) -> Result<String, RegistryError> {
        let url = self.manifest_url(reference);
        let head = self
            .send(
                reference,
                Access::Pull,
                credentials,
                Method::HEAD,
                &url,
                accept_manifests(),
                None,
            )
            .await?;
        if head.status().is_success()
            && let Some(digest) = digest_header(head.headers())
        {
            return Ok(digest);
        }
        // No digest in the answer: the manifest's own bytes say it.
        let manifest = self.manifest_at(reference, credentials, &url).await?;
        Ok(sha256_digest(&manifest))
    }

    /// The manifest `pinned` names, bounded; its digest is the caller's to check.
    pub(crate) async fn manifest(
        &self,
        pinned: &OciReference,
        credentials: &Credentials,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = self.manifest_url(pinned);
        self.manifest_at(pinned, credentials, &url).await
    }

    async fn manifest_at(
        &self,
        reference: &OciReference,
        credentials: &Credentials,
        url: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let response = self
            .send(
                reference,
                Access::Pull,
                credentials,
                Method::GET,
                url,
                accept_manifests(),
                None,
            )
            .await?;
        let response = success(reference, response).await?;
        let (body, cut) = read_capped(response, MAX_MANIFEST_BYTES)
            .await
            .map_err(|err| transport_error(reference, &err))?;
        if cut {
            return Err(RegistryError::refused(
                reference,
                format!(
                    "the manifest is more than {MAX_MANIFEST_BYTES} bytes, more than any component's"
                ),
            ));
        }
        Ok(body)
    }

    /// The blob `layer` describes: no more bytes than it declares, checked
    /// against its digest.
    pub(crate) async fn blob(
        &self,
        pinned: &OciReference,
        credentials: &Credentials,
        layer: &format::Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = format!("{}blobs/{}", self.repository_url(pinned), layer.digest);
        let response = self
            .send(
                pinned,
                Access::Pull,
                credentials,
                Method::GET,
                &url,
                HeaderMap::new(),
                None,
            )
            .await?;
        let mut response = success(pinned, response).await?;
        let declared = usize::try_from(layer.size).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(declared.min(64 << 20));
        let mut failed = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > declared {
                        return Err(RegistryError::refused(
                            pinned,
                            format!(
                                "the registry sent more than the {declared} bytes the manifest declares for {}",
                                layer.digest
                            ),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    failed = Some(err);
                    break;
                }
            }
        }
        let actual = sha256_digest(&bytes);
        if bytes.len() == declared && actual != layer.digest {
            return Err(RegistryError::refused(
                pinned,
                format!(
                    "the component's bytes have digest {actual}, not the {} its manifest names: refused",
                    layer.digest
                ),
            ));
        }
        if let Some(err) = failed {
            return Err(RegistryError::unreachable(
                pinned,
                format!("the download broke off: {}", error_chain(&err)),
            ));
        }
        if bytes.len() != declared {
            return Err(RegistryError::unreachable(
                pinned,
                format!(
                    "the download ended after {} of {declared} bytes",
                    bytes.len()
                ),
            ));
        }
        Ok(bytes)
    }

    /// Upload `bytes` as the blob `digest` into `reference`'s repository,
    /// unless the registry has it already.
    pub(crate) async fn push_blob(
        &self,
        reference: &OciReference,
        credentials: &Credentials,
        bytes: Bytes,
        digest: &str,
    ) -> Result<(), RegistryError> {
        let base = self.repository_url(reference);
        let exists = self
            .send(
                reference,
                Access::Push,
                credentials,
                Method::HEAD,
                &format!("{base}blobs/{digest}"),
                HeaderMap::new(),
                None,
            )
            .await?;
        if exists.status().is_success() {
            return Ok(());
        }
        let started = self
            .send(
                reference,
                Access::Push,
                credentials,
                Method::POST,
                &format!("{base}blobs/uploads/"),
                HeaderMap::new(),
                Some(Bytes::new()),
            )
            .await?;
        let started = success(reference, started).await?;
        let location = started
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                RegistryError::unreachable(
                    reference,
                    "the registry started an upload and gave no Location",
                )
            })?;
        let mut upload = started.url().join(location).map_err(|err| {
            RegistryError::unreachable(reference, format!("the upload Location is no URL: {err}"))
        })?;
        if !matches!(upload.scheme(), "http" | "https") {
            return Err(RegistryError::refused(
                reference,
                format!(
                    "the upload Location is a {} URL, not http(s)",
                    upload.scheme()
                ),
            ));
        }
        upload.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let same_origin = upload.origin() == started.url().origin();
        let response = if same_origin {
            self.send(
                reference,
                Access::Push,
                credentials,
                Method::PUT,
                upload.as_str(),
                headers,
                Some(bytes),
            )
            .await?
        } else {
            // Another origin (a storage service's signed URL) gets no credentials.
            self.http
                .put(upload)
                .headers(headers)
                .body(bytes)
                .send()
                .await
                .map_err(|err| transport_error(reference, &err))?
        };
        success(reference, response).await.map(drop)
    }

    /// Put `manifest` (of `media_type`) at `reference`'s tag.
    pub(crate) async fn push_manifest(
        &self,
        reference: &OciReference,
        credentials: &Credentials,
        manifest: Bytes,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let tag = reference.tag.as_deref().unwrap_or_default();
        let url = format!("{}manifests/{tag}", self.repository_url(reference));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| {
                RegistryError::refused(reference, "the manifest's media type is no header value")
            })?,
        );
        let response = self
            .send(
                reference,
                Access::Push,
                credentials,
                Method::PUT,
                &url,
                headers,
                Some(manifest),
            )
            .await?;
        success(reference, response).await.map(drop)
    }

    /// Send a request to the registry, answering its auth challenge once.
    #[allow(clippy::too_many_arguments, reason = "one request's parts")]
    async fn send(
        &self,
        reference: &OciReference,
        access: Access,
        credentials: &Credentials,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<Response, RegistryError> {
        let key = (
            reference.registry.clone(),
            reference.repository.clone(),
            access,
        );
        let known = self.authorization(&key);
        let attempt = |authorization: Option<HeaderValue>| {
            let mut request = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            request.send()
        };
        let response = attempt(known.clone())
            .await
            .map_err(|err| transport_error(reference, &err))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenges: Vec<String> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_owned))
            .collect();
        let refusal = error_text(response).await;
        let authorization = match self
            .answer_challenge(reference, access, credentials, &challenges)
            .await?
        {
            Some(authorization) if Some(&authorization) != known.as_ref() => authorization,
            _ => {
                return Err(RegistryError::refused(
                    reference,
                    format!(
                        "the registry refused access (HTTP 401{}); {}",
                        refusal.map(|text| format!(": {text}")).unwrap_or_default(),
                        credentials_hint(reference)
                    ),
                ));
            }
        };
        self.remember(key, authorization.clone());
        attempt(Some(authorization))
            .await
            .map_err(|err| transport_error(reference, &err))
    }

    fn authorization(&self, key: &(String, String, Access)) -> Option<HeaderValue> {
        self.authorizations
            .lock()
            .ok()
            .and_then(|known| known.get(key).cloned())
    }

    fn remember(&self, key: (String, String, Access), value: HeaderValue) {
        if let Ok(mut known) = self.authorizations.lock() {
            known.insert(key, value);
        }
    }

    /// The `Authorization` that answers `challenges`, if any can be made.
    async fn answer_challenge(
        &self,
        reference: &OciReference,
        access: Access,
        credentials: &Credentials,
        challenges: &[String],
    ) -> Result<Option<HeaderValue>, RegistryError> {
        if let Credentials::Bearer(token) = credentials {
            return Ok(bearer(token));
        }
        let parsed: Vec<Challenge> = challenges
            .iter()
            .filter_map(|c| Challenge::parse(c))
            .collect();
        if let Some(challenge) = parsed.iter().find(|c| c.scheme == "bearer") {
            return self
                .token(reference, access, credentials, challenge)
                .await
                .map(Some);
        }
        if parsed.iter().any(|c| c.scheme == "basic")
            && let Credentials::Basic(user, password) = credentials
        {
            return Ok(basic(user, password));
        }
        Ok(None)
    }

    /// A bearer token from the token service `challenge` names.
    async fn token(
        &self,
        reference: &OciReference,
        access: Access,
        credentials: &Credentials,
        challenge: &Challenge,
    ) -> Result<HeaderValue, RegistryError> {
        let realm = challenge.param("realm").ok_or_else(|| {
            RegistryError::unreachable(reference, "the registry's Bearer challenge names no realm")
        })?;
        let mut url = url::Url::parse(realm).map_err(|err| {
            RegistryError::refused(
                reference,
                format!("the token service {realm:?} is no URL: {err}"),
            )
        })?;
        let registry_origin = url::Url::parse(&self.repository_url(reference))
            .map(|u| u.origin())
            .ok();
        let own_origin = Some(url.origin()) == registry_origin;
        match url.scheme() {
            "https" => {}
            "http" if own_origin => {}
            other => {
                return Err(RegistryError::refused(
                    reference,
                    format!(
                        "the registry names a token service over {other}:// on another host ({realm}); \
                         credentials go over HTTPS only"
                    ),
                ));
            }
        }
        let scope = match access {
            Access::Pull => format!("repository:{}:pull", reference.repository),
            Access::Push => format!("repository:{}:pull,push", reference.repository),
        };
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("scope", &scope);
            if let Some(service) = challenge.param("service") {
                query.append_pair("service", service);
            }
        }
        let mut request = self.http.get(url);
        if let Credentials::Basic(user, password) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(reference, &err))?;
        let status = response.status();
        if !status.is_success() {
            let text = error_text(response).await.unwrap_or_default();
            let why = format!(
                "the token service answered HTTP {}: {text}",
                status.as_u16()
            );
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    RegistryError::unreachable(reference, why)
                } else {
                    RegistryError::refused(
                        reference,
                        format!("{why}; {}", credentials_hint(reference)),
                    )
                },
            );
        }
        let (body, cut) = read_capped(response, MAX_TOKEN_BYTES)
            .await
            .map_err(|err| transport_error(reference, &err))?;
        if cut {
            return Err(RegistryError::refused(
                reference,
                format!("the token service's answer is more than {MAX_TOKEN_BYTES} bytes"),
            ));
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&body).map_err(|err| {
            RegistryError::unreachable(
                reference,
                format!("the token service's answer is not a token: {err}"),
            )
        })?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .and_then(|t| bearer(&t))
            .ok_or_else(|| RegistryError::unreachable(reference, "the token service gave no token"))
    }
}

/// The host a registry's API answers on: Docker Hub's is not its name.
fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" => "index.docker.io",
        other => other,
    }
}

fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_str(&format::ACCEPTED_MANIFESTS.join(", ")).expect("ASCII media types"),
    );
    headers
}

/// A sha256 `Docker-Content-Digest`, if the answer has one.
fn digest_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("docker-content-digest")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|digest| is_sha256_digest(digest))
        .map(str::to_owned)
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn basic(user: &str, password: &str) -> Option<HeaderValue> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `response` if it is a success, else the registry's error in one of the
/// two kinds.
async fn success(reference: &OciReference, response: Response) -> Result<Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = error_text(response).await;
    let detail = text
        .as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let code = status.as_u16();
    let codes = text.as_deref().unwrap_or_default();
    Err(match code {
        429 | 500..=599 => RegistryError::unreachable(reference, format!("HTTP {code}{detail}")),
        401 | 403 => RegistryError::refused(
            reference,
            format!(
                "the registry refused access (HTTP {code}{detail}); {}",
                credentials_hint(reference)
            ),
        ),
        404 => RegistryError::refused(reference, "not found in the registry"),
        _ if codes.contains("TOOMANYREQUESTS") => {
            RegistryError::unreachable(reference, format!("HTTP {code}{detail}"))
        }
        _ if codes.contains("DENIED") || codes.contains("UNAUTHORIZED") => RegistryError::refused(
            reference,
            format!(
                "the registry refused access (HTTP {code}{detail}); {}",
                credentials_hint(reference)
            ),
        ),
        _ => RegistryError::refused(
            reference,
            format!("the registry answered HTTP {code}{detail}"),
        ),
    })
}

/// What an error answer says, read through a bound: the OCI error
/// envelope's codes and messages where it is one, else its text; cut to
/// [`MAX_MESSAGE_CHARS`]. `None` for an empty answer.
async fn error_text(response: Response) -> Option<String> {
    let (body, _) = read_capped(response, MAX_ERROR_BYTES).await.ok()?;
    describe_error_body(&body)
}

/// [`error_text`] of bytes already read.
pub(crate) fn describe_error_body(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let text = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(text), None) | (None, Some(text)) => text.clone(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    Some(cut)
}

/// A transport failure (refused connection, TLS, timeout): unreachable,
/// with a hint where the registry may speak plain HTTP.
fn transport_error(reference: &OciReference, err: &reqwest::Error) -> RegistryError {
    let mut why = error_chain(err);
    // Not for a name that does not resolve: listing it would not help.
    if err.url().is_some_and(|url| url.scheme() == "https")
        && (err.is_connect() || err.is_request())
        && !why.contains("dns error")
    {
        why.push_str(&format!(
            " (a registry that serves plain HTTP must be listed: --insecure-registry {} or WASMHOUSE_INSECURE_REGISTRIES)",
            reference.registry
        ));
    }
    RegistryError::unreachable(reference, why)
}

/// One `WWW-Authenticate` challenge: its scheme (lowercase) and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// `Scheme key="value", key=token, …`; `None` if it has no scheme.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (scheme, mut rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        if scheme.is_empty()
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            let Some((key, after)) = rest.split_once('=') else {
                break;
            };
            let key = key.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((at, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = at + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            params.push((key, value));
            rest = remaining;
        }
        Some(Self {
            scheme: scheme.to_ascii_lowercase(),
            params,
        })
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_by_digest_over_tag_and_docker_hub_at_its_api_host() {
        const DIGEST: &str =
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let client = Distribution::new(vec!["127.0.0.1:5000".into()]).expect("client");
        let url = |text: &str| client.manifest_url(&OciReference::parse(text).expect(text));
        assert_eq!(
            url("oci://127.0.0.1:5000/team/app:v1"),
            "http://127.0.0.1:5000/v2/team/app/manifests/v1"
        );
        assert_eq!(
            url(&format!("oci://ghcr.io/team/app:v1@{DIGEST}")),
            format!("https://ghcr.io/v2/team/app/manifests/{DIGEST}")
        );
        assert_eq!(
            url("oci://docker.io/library/app:v1"),
            "https://index.docker.io/v2/library/app/manifests/v1"
        );
    }

    #[test]
    fn challenges_in_the_forms_registries_send() {
        let docker = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull""#,
        )
        .expect("a challenge");
        assert_eq!(docker.scheme, "bearer");
        assert_eq!(docker.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(docker.param("service"), Some("registry.docker.io"));
        assert_eq!(docker.param("scope"), Some("repository:a/b:pull"));
        let basic = Challenge::parse(r#"Basic realm="Registry Realm""#).expect("a challenge");
        assert_eq!(basic.scheme, "basic");
        let spaced =
            Challenge::parse(r#"bearer realm = "https://r/t" , service=svc"#).expect("a challenge");
        assert_eq!(spaced.param("realm"), Some("https://r/t"));
        assert_eq!(spaced.param("service"), Some("svc"));
        let escaped = Challenge::parse(r#"Bearer realm="https://r/\"t\"""#).expect("a challenge");
        assert_eq!(escaped.param("realm"), Some(r#"https://r/"t""#));
        let unterminated = Challenge::parse(r#"Bearer realm="https://r/t"#).expect("a challenge");
        assert_eq!(unterminated.param("realm"), Some("https://r/t"));
        assert_eq!(Challenge::parse(""), None);
        assert_eq!(Challenge::parse("Bear/er x=y"), None);
    }

    #[test]
    fn error_answers_are_read_as_the_envelope_and_cut() {
        let envelope = br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"NAME_UNKNOWN"}]}"#;
        assert_eq!(
            describe_error_body(envelope).as_deref(),
            Some("DENIED: no; NAME_UNKNOWN")
        );
        assert_eq!(describe_error_body(b"  \n").as_deref(), None);
        let long = "x".repeat(10_000);
        let shown = describe_error_body(long.as_bytes()).expect("text");
        assert_eq!(shown.chars().count(), MAX_MESSAGE_CHARS + 1);
    }
}
