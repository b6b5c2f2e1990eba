//! Components in OCI registries: resolve a tag to a digest, pull and check
//! what it names, push a component in the CNCF Wasm OCI format.
//!
//! - [`reference`]: `oci://registry/repository:tag` and `@sha256:…`.
//! - [`format`]: the manifest and config `wasmhouse push` writes, and which
//!   layer of a pulled manifest is the component.
//! - [`store`]: what this host pulled, on its disk, by digest.
//! - [`auth`]: credentials from the environment or the Docker config file.
//! - [`distribution`]: the distribution protocol, every answer bounded.
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
pub(crate) mod distribution;
pub(crate) mod format;
pub(crate) mod reference;
pub(crate) mod store;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;

use auth::Credentials;
use distribution::Distribution;
pub(crate) use reference::OciReference;
use store::{LocalStore, sha256_digest};

/// How long connecting to a registry may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a registry may leave a started answer unfinished.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long resolving a tag may take in all (auth included).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a whole pull or push may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);

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
    pub(crate) fn refused(reference: &OciReference, why: impl Into<String>) -> Self {
        Self::Refused {
            reference: reference.to_string(),
            why: why.into(),
        }
    }

    pub(crate) fn unreachable(reference: &OciReference, why: impl Into<String>) -> Self {
        Self::Unreachable {
            reference: reference.to_string(),
            why: why.into(),
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
pub(crate) fn credentials_hint(reference: &OciReference) -> String {
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
    client: OnceLock<Result<Distribution, String>>,
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
    fn client(&self, reference: &OciReference) -> Result<&Distribution, RegistryError> {
        self.client
            .get_or_init(|| Distribution::new(self.insecure.clone()))
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
        auth: &Credentials,
    ) -> Result<String, RegistryError> {
        let client = self.client(reference)?;
        let digest = within(
            RESOLVE_TIMEOUT,
            reference,
            "resolving the tag",
            client.resolve(reference, auth),
        )
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
        auth: Option<Credentials>,
    ) -> Result<Pulled, RegistryError> {
        let digest = pinned.digest.clone().expect("pinned");
        if let Some(pulled) = self.pull_pinned_locally(pinned) {
            return Ok(pulled);
        }
        let auth = match auth {
            Some(auth) => auth,
            None => self.auth(pinned).await?,
        };
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
            None => self.client(pinned)?.blob(pinned, &auth, &layer).await?,
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
        auth: &Credentials,
    ) -> Result<Vec<u8>, RegistryError> {
        let digest = pinned.digest.as_deref().expect("pinned");
        let manifest = self.client(pinned)?.manifest(pinned, auth).await?;
        let actual = sha256_digest(&manifest);
        if actual != digest {
            return Err(RegistryError::refused(
                pinned,
                format!("the registry's manifest has digest {actual}, not {digest}: refused"),
            ));
        }
        Ok(manifest)
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
        let push = async {
            client
                .push_blob(
                    reference,
                    &auth,
                    Bytes::copy_from_slice(component),
                    &artifact.layer_digest,
                )
                .await?;
            client
                .push_blob(
                    reference,
                    &auth,
                    Bytes::from(artifact.config.clone()),
                    &artifact.config_digest,
                )
                .await?;
            client
                .push_manifest(
                    reference,
                    &auth,
                    Bytes::from(artifact.manifest.clone()),
                    format::MANIFEST_MEDIA_TYPE,
                )
                .await
        };
        within(TRANSFER_TIMEOUT, reference, "the push", push).await?;
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
        let mut target = target.clone();
        target.digest = None;
        self.client(&target)?
            .push_manifest(&target, &auth, Bytes::from(manifest), &media_type)
            .await?;
        Ok(digest)
    }

    /// The credentials for `reference`'s registry (read off the async
    /// threads: a credential helper is a process).
    async fn auth(&self, reference: &OciReference) -> Result<Credentials, RegistryError> {
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
