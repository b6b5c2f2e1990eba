//! Components in OCI registries: resolve a tag to a digest, pull and check
//! what it names, push a component in the CNCF Wasm OCI format.
//!
//! - [`reference`]: `oci://registry/repository:tag` and `@sha256:…`.
//! - [`format`]: the manifest and config `wasmhouse push` writes, and which
//!   layer of a pulled manifest is the component.
//! - [`store`]: what this host pulled, on its disk, by digest.
//! - [`auth`]: credentials from the environment or the Docker config file.
//!
//! Every pull is checked twice over: the manifest's bytes against the digest
//! the tag resolved to (or the reference pins), the component's bytes
//! against the digest the manifest names; then the deployer validates and
//! compiles the component as it does an upload. Failures come in two kinds,
//! so a follower knows whether to try again: the registry did not answer
//! ([`RegistryError::Unreachable`]: down, slow, 5xx, 429), or it answered
//! something this host will not serve ([`RegistryError::Refused`]: no such
//! tag, no access, not a component, a digest that does not match, too big).

pub(crate) mod auth;
pub(crate) mod format;
pub(crate) mod reference;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Args;
use futures::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;

use crate::errors::error_chain;
pub(crate) use reference::OciReference;
use store::{LocalStore, sha256_digest};

/// How long connecting to a registry may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a registry may leave a started answer unfinished.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long resolving a tag may take in all (auth included).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a whole pull or push may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest manifest accepted: real ones are a few hundred bytes.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Flags for reaching registries, shared by `serve` and `push`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Registries")]
pub(crate) struct RegistryArgs {
    /// Registries (HOST:PORT) spoken to over plain HTTP instead of HTTPS,
    /// comma-separated; every other registry is HTTPS only.
    #[arg(
        long = "insecure-registry",
        env = "WASMHOUSE_INSECURE_REGISTRIES",
        value_name = "WASMHOUSE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub(crate) insecure: Vec<String>,
}

/// Why a registry gave no component.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RegistryError {
    /// The registry did not answer (down, slow, overloaded): try later.
    #[error("{reference}: the registry did not answer: {why}")]
    Unreachable {
        /// What was asked for.
        reference: String,
        /// What happened.
        why: String,
    },
    /// The registry answered, and the answer is not a component this host
    /// serves (or no answer it may have): trying again gives the same.
    #[error("{reference}: {why}")]
    Refused {
        /// What was asked for.
        reference: String,
        /// Why.
        why: String,
    },
}

impl RegistryError {
    fn refused(reference: &OciReference, why: impl Into<String>) -> Self {
        Self::Refused {
            reference: reference.to_string(),
            why: why.into(),
        }
    }

    fn unreachable(reference: &OciReference, why: impl Into<String>) -> Self {
        Self::Unreachable {
            reference: reference.to_string(),
            why: why.into(),
        }
    }

    /// Sort a distribution client error into the two kinds.
    fn from_client(reference: &OciReference, err: OciDistributionError) -> Self {
        use OciDistributionError as E;
        match &err {
            E::RequestError(_) | E::IoError(_) => {
                let mut why = error_chain(&err);
                if why.contains("https://") {
                    why.push_str(&format!(
                        " (a registry that serves plain HTTP must be listed: --insecure-registry {} or WASMHOUSE_INSECURE_REGISTRIES)",
                        reference.registry
                    ));
                }
                Self::unreachable(reference, why)
            }
            E::ServerError { code, message, .. } if *code >= 500 || *code == 429 => {
                Self::unreachable(reference, format!("HTTP {code}: {}", message.trim()))
            }
            E::ServerError {
                code: code @ (401 | 403),
                message,
                ..
            } => Self::refused(
                reference,
                format!(
                    "the registry refused access (HTTP {code}: {}); {}",
                    message.trim(),
                    credentials_hint(reference)
                ),
            ),
            E::ServerError { code: 404, .. } => {
                Self::refused(reference, "not found in the registry")
            }
            E::ServerError { code, message, .. } => Self::refused(
                reference,
                format!("the registry answered HTTP {code}: {}", message.trim()),
            ),
            E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Self::refused(
                reference,
                format!(
                    "the registry refused access ({err}); {}",
                    credentials_hint(reference)
                ),
            ),
            E::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                let overloaded = envelope
                    .errors
                    .iter()
                    .any(|e| matches!(e.code, oci_client::errors::OciErrorCode::Toomanyrequests));
                let denied = envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        oci_client::errors::OciErrorCode::Unauthorized
                            | oci_client::errors::OciErrorCode::Denied
                    )
                });
                if overloaded {
                    Self::unreachable(reference, codes.join("; "))
                } else if denied {
                    Self::refused(
                        reference,
                        format!(
                            "the registry refused access ({}); {}",
                            codes.join("; "),
                            credentials_hint(reference)
                        ),
                    )
                } else {
                    Self::refused(
                        reference,
                        format!("the registry answered {}", codes.join("; ")),
                    )
                }
            }
            // Answers that are not the protocol's: a broken or impostor
            // registry, which may mend.
            _ => Self::unreachable(
                reference,
                format!("the registry's answer makes no sense: {err}"),
            ),
        }
    }
}

/// `operation` on `reference`, given up as unanswered after `limit`.
async fn within<T>(
    limit: Duration,
    reference: &OciReference,
    operation: &str,
    future: impl Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    tokio::time::timeout(limit, future).await.map_err(|_| {
        RegistryError::unreachable(
            reference,
            format!("{operation} took more than {}s", limit.as_secs()),
        )
    })?
}

/// How to give credentials for `reference`'s registry.
fn credentials_hint(reference: &OciReference) -> String {
    format!(
        "give credentials with `docker login {}` (the Docker config file, or DOCKER_CONFIG's) or {} and {} with {}={}",
        reference.registry,
        auth::USERNAME_VARIABLE,
        auth::PASSWORD_VARIABLE,
        auth::HOST_VARIABLE,
        reference.registry
    )
}

/// A component pulled and checked.
#[derive(Debug, Clone)]
pub(crate) struct Pulled {
    /// What was asked for, pinned to the digest it resolved to.
    pub(crate) reference: OciReference,
    /// The manifest's digest: what the registry calls this component.
    pub(crate) digest: String,
    /// The component's bytes, their digest checked.
    pub(crate) component: Vec<u8>,
    /// Whether it came from this host's disk rather than the network.
    pub(crate) local: bool,
}

/// Registry settings for a host.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryConfig {
    /// Registries spoken to over plain HTTP.
    pub(crate) insecure: Vec<String>,
    /// Where pulled manifests and components are kept (`None`: nowhere).
    pub(crate) store: Option<PathBuf>,
    /// The largest component pulled, in bytes.
    pub(crate) max_component_bytes: u64,
}

impl RegistryArgs {
    /// The settings, with pulls kept under `store` and bounded by `max`.
    pub(crate) fn into_config(self, store: Option<PathBuf>, max: u64) -> RegistryConfig {
        RegistryConfig {
            insecure: self
                .insecure
                .into_iter()
                .map(|host| host.trim().to_owned())
                .filter(|host| !host.is_empty())
                .collect(),
            store,
            max_component_bytes: max,
        }
    }
}

/// Pulls components from registries and pushes them there.
pub(crate) struct Registry {
    /// Made on first use: a host that never pulls never reads a CA store.
    client: OnceLock<Result<oci_client::Client, String>>,
    insecure: Vec<String>,
    store: LocalStore,
    max_component_bytes: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for `config`'s registries.
    pub(crate) fn new(config: &RegistryConfig) -> Self {
        Self {
            client: OnceLock::new(),
            insecure: config.insecure.clone(),
            store: LocalStore::new(config.store.clone()),
            max_component_bytes: config.max_component_bytes,
        }
    }

    /// The distribution client, made on first use: HTTPS verified against
    /// the system's roots (Mozilla's where it has none, as in a scratch
    /// container), plain HTTP for the listed registries.
    fn client(&self, reference: &OciReference) -> Result<&oci_client::Client, RegistryError> {
        let client = self.client.get_or_init(|| {
            wasmhouse_clickhouse::host::tls::install_crypto_provider();
            let roots = wasmhouse_clickhouse::host::tls::default_root_certificates()
                .into_iter()
                .map(|der| oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Der,
                    data: der.to_vec(),
                })
                .collect();
            // oci-client builds a default reqwest client beside the one it
            // is asked for, and that one panics where the system has no CA
            // store: say so rather than die.
            let config = ClientConfig {
                protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
                connect_timeout: Some(CONNECT_TIMEOUT),
                read_timeout: Some(READ_TIMEOUT),
                user_agent: concat!("wasmhouse/", env!("CARGO_PKG_VERSION")),
                tls_certs_only: roots,
                // A reference names one component, never a list to choose from.
                platform_resolver: None,
                ..ClientConfig::default()
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                oci_client::Client::try_from(config)
            }))
                .map_err(|_| {
                    "the system has no CA certificates (install ca-certificates, or point SSL_CERT_FILE at a PEM bundle)".to_owned()
                })?
                .map_err(|err| error_chain(&err))
        });
        client
            .as_ref()
            .map_err(|why| RegistryError::refused(reference, format!("no registry client: {why}")))
    }

    /// The digest `reference` names now: its pinned digest, or what its
    /// tag points at in the registry.
    pub(crate) async fn resolve(&self, reference: &OciReference) -> Result<String, RegistryError> {
        if let Some(digest) = &reference.digest {
            return Ok(digest.clone());
        }
        let auth = self.auth(reference).await?;
        self.resolve_tag(reference, &auth).await
    }

    /// What `reference`'s tag points at, asked with `auth`.
    async fn resolve_tag(
        &self,
        reference: &OciReference,
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        let client = self.client(reference)?;
        let client_reference = reference.client_reference();
        let digest = within(RESOLVE_TIMEOUT, reference, "resolving the tag", async {
            client
                .fetch_manifest_digest(&client_reference, auth)
                .await
                .map_err(|err| RegistryError::from_client(reference, err))
        })
        .await?;
        if !reference::is_sha256_digest(&digest) {
            return Err(RegistryError::refused(
                reference,
                format!("the registry gave digest {digest:?}, not a sha256 one"),
            ));
        }
        Ok(digest)
    }

    /// Resolve `reference`, then pull what it names and check it; what is
    /// on this host's disk already is not fetched again.
    pub(crate) async fn pull(&self, reference: &OciReference) -> Result<Pulled, RegistryError> {
        // The credentials a tag was resolved with serve the pull too.
        let (digest, auth) = match &reference.digest {
            Some(digest) => (digest.clone(), None),
            None => {
                let auth = self.auth(reference).await?;
                (self.resolve_tag(reference, &auth).await?, Some(auth))
            }
        };
        let pinned = reference.at(&digest);
        let pulled = within(
            TRANSFER_TIMEOUT,
            &pinned,
            "the pull",
            self.pull_pinned(&pinned, auth),
        )
        .await?;
        if let Some(name) = reference.tag_name() {
            self.store.keep_tag(&name, &digest);
        }
        Ok(pulled)
    }

    /// [`Registry::pull`], falling back, when the registry does not answer
    /// for a tag, to the digest the tag had when this host last pulled it
    /// (if it is still on disk): a host restarting while the registry is
    /// down serves what it served.
    pub(crate) async fn pull_or_last_known(
        &self,
        reference: &OciReference,
    ) -> Result<Pulled, RegistryError> {
        match self.pull(reference).await {
            Err(err @ RegistryError::Unreachable { .. }) => {
                let Some(last) = reference.tag_name().and_then(|name| self.store.tag(&name)) else {
                    return Err(err);
                };
                let pinned = reference.at(&last);
                match self.pull_pinned_locally(&pinned) {
                    Some(pulled) => {
                        tracing::warn!(
                            reference = %reference,
                            digest = last,
                            error = %err,
                            "the registry did not answer; serving the digest the tag had at the last pull"
                        );
                        Ok(pulled)
                    }
                    None => Err(err),
                }
            }
            other => other,
        }
    }

    fn pull_pinned_locally(&self, pinned: &OciReference) -> Option<Pulled> {
        let digest = pinned.digest.as_deref()?;
        let manifest = self.store.blob(digest)?;
        let layer = format::component_layer(&manifest).ok()?;
        let component = self.store.blob(&layer.digest)?;
        Some(Pulled {
            reference: pinned.clone(),
            digest: digest.to_owned(),
            component,
            local: true,
        })
    }

    /// Pull what `pinned` names (`auth`: the credentials, when the caller
    /// has them already).
    async fn pull_pinned(
        &self,
        pinned: &OciReference,
        auth: Option<RegistryAuth>,
    ) -> Result<Pulled, RegistryError> {
        let digest = pinned.digest.clone().expect("pinned");
        if let Some(pulled) = self.pull_pinned_locally(pinned) {
            return Ok(pulled);
        }
        let auth = match auth {
            Some(auth) => auth,
            None => self.auth(pinned).await?,
        };
        let client = self.client(pinned)?;
        let client_reference = pinned.client_reference();
        client
            .store_auth_if_needed(client_reference.resolve_registry(), &auth)
            .await;
        let manifest = match self.store.blob(&digest) {
            Some(manifest) => manifest,
            None => self.fetch_manifest(pinned, &auth).await?,
        };
        let layer = format::component_layer(&manifest)
            .map_err(|why| RegistryError::refused(pinned, why))?;
        if layer.size > self.max_component_bytes {
            return Err(RegistryError::refused(
                pinned,
                format!(
                    "the component is {} bytes; components are limited to {} (WASMHOUSE_ADMIN_MAX_UPLOAD)",
                    layer.size, self.max_component_bytes
                ),
            ));
        }
        let component = match self.store.blob(&layer.digest) {
            Some(component) => component,
            None => self.pull_layer(pinned, &client_reference, &layer).await?,
        };
        self.store.keep_blob(&digest, &manifest);
        self.store.keep_blob(&layer.digest, &component);
        Ok(Pulled {
            reference: pinned.clone(),
            digest,
            component,
            local: false,
        })
    }

    /// The manifest `pinned` names, bounded and checked against its digest.
    async fn fetch_manifest(
        &self,
        pinned: &OciReference,
        auth: &RegistryAuth,
    ) -> Result<Vec<u8>, RegistryError> {
        let digest = pinned.digest.as_deref().expect("pinned");
        let (manifest, _) = self
            .client(pinned)?
            .pull_manifest_raw(
                &pinned.client_reference(),
                auth,
                &format::ACCEPTED_MANIFESTS,
            )
            .await
            .map_err(|err| RegistryError::from_client(pinned, err))?;
        if manifest.len() > MAX_MANIFEST_BYTES {
            return Err(RegistryError::refused(
                pinned,
                format!(
                    "the manifest is {} bytes; more than {MAX_MANIFEST_BYTES} is no component's",
                    manifest.len()
                ),
            ));
        }
        let actual = sha256_digest(&manifest);
        if actual != digest {
            return Err(RegistryError::refused(
                pinned,
                format!("the registry's manifest has digest {actual}, not {digest}: refused"),
            ));
        }
        Ok(manifest.to_vec())
    }

    /// The layer's bytes, no more than it declares, checked against its digest.
    async fn pull_layer(
        &self,
        pinned: &OciReference,
        client_reference: &oci_client::Reference,
        layer: &format::Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let client = self.client(pinned)?;
        let mut stream = client
            .pull_blob_stream(client_reference, &layer.client_descriptor())
            .await
            .map_err(|err| RegistryError::from_client(pinned, err))?;
        let declared = usize::try_from(layer.size).unwrap_or(usize::MAX);
        let mut bytes = Vec::with_capacity(declared.min(self.max_component_bytes as usize));
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
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
                format!("the download broke off: {err}"),
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

    /// Push `component` (a validated component) to `reference`'s tag in the
    /// Wasm OCI format; the manifest's digest.
    pub(crate) async fn push(
        &self,
        component: &[u8],
        imports: Vec<String>,
        exports: Vec<String>,
        reference: &OciReference,
    ) -> Result<String, RegistryError> {
        let artifact = format::artifact(component, imports, exports);
        let digest = sha256_digest(&artifact.manifest);
        let auth = self.auth(reference).await?;
        let client = self.client(reference)?;
        let client_reference = reference.client_reference();
        let push = async {
            client
                .store_auth_if_needed(client_reference.resolve_registry(), &auth)
                .await;
            client
                .push_blob(
                    &client_reference,
                    component.to_vec(),
                    &artifact.layer_digest,
                )
                .await?;
            client
                .push_blob(
                    &client_reference,
                    artifact.config.clone(),
                    &artifact.config_digest,
                )
                .await?;
            client
                .push_manifest_raw(
                    &client_reference,
                    artifact.manifest.clone(),
                    http::HeaderValue::from_static(format::MANIFEST_MEDIA_TYPE),
                )
                .await
        };
        within(TRANSFER_TIMEOUT, reference, "the push", async {
            push.await
                .map_err(|err| RegistryError::from_client(reference, err))
        })
        .await?;
        Ok(digest)
    }

    /// Point `target`'s tag at the component `source` names (in the same
    /// repository): how a rollback is published. The manifest's digest.
    pub(crate) async fn tag(
        &self,
        source: &OciReference,
        target: &OciReference,
    ) -> Result<String, RegistryError> {
        if (source.registry.as_str(), source.repository.as_str())
            != (target.registry.as_str(), target.repository.as_str())
        {
            return Err(RegistryError::refused(
                target,
                format!("tagging copies no blobs: {source} must be in the same repository"),
            ));
        }
        let auth = self.auth(source).await?;
        let digest = match &source.digest {
            Some(digest) => digest.clone(),
            None => self.resolve_tag(source, &auth).await?,
        };
        let pinned = source.at(&digest);
        let manifest = self.fetch_manifest(&pinned, &auth).await?;
        format::component_layer(&manifest).map_err(|why| RegistryError::refused(&pinned, why))?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| {
                m.get("mediaType")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format::MANIFEST_MEDIA_TYPE.to_owned());
        let content_type = http::HeaderValue::from_str(&media_type).map_err(|_| {
            RegistryError::refused(&pinned, "the manifest's media type is no header value")
        })?;
        let mut target = target.clone();
        target.digest = None;
        self.client(&target)?
            .push_manifest_raw(&target.client_reference(), manifest, content_type)
            .await
            .map_err(|err| RegistryError::from_client(&target, err))?;
        Ok(digest)
    }

    /// The credentials for `reference`'s registry (read off the async
    /// threads: a credential helper is a process).
    async fn auth(&self, reference: &OciReference) -> Result<RegistryAuth, RegistryError> {
        let registry = reference.registry.clone();
        let found = tokio::task::spawn_blocking(move || auth::credentials(&registry))
            .await
            .map_err(|err| RegistryError::refused(reference, err.to_string()))?;
        let (auth, from) = found
            .map_err(|why| RegistryError::refused(reference, format!("credentials: {why}")))?;
        tracing::debug!(registry = reference.registry, from = ?from, "registry credentials");
        Ok(auth)
    }
}
