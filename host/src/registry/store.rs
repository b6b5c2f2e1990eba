//! What this host has pulled, on its own disk: manifests and layers by
//! digest (checked again when read), and the digest each tag last resolved
//! to. A host started with a pinned digest it pulled before, or with a tag
//! while the registry is down, starts from here without the network.
//!
//! ```text
//! <dir>/blobs/sha256/<hex>   a manifest or a component, as pulled
//! <dir>/tags/<hex of name>   the digest registry/repository:tag last had
//! ```

use std::path::{Path, PathBuf};

use super::reference::is_sha256_digest;

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::runtime::component::hex_sha256(bytes))
}

/// The local store; without a directory it remembers nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct LocalStore {
    dir: Option<PathBuf>,
}

impl LocalStore {
    /// A store under `dir` (created on first write), or none.
    pub(crate) fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The blob with `digest`, if it is here and still has that digest (a
    /// damaged file counts as missing).
    pub(crate) fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = std::fs::read(path).ok()?;
        (sha256_digest(&bytes) == digest).then_some(bytes)
    }

    /// Keep `bytes`, whose digest the caller checked, under `digest`.
    pub(crate) fn keep_blob(&self, digest: &str, bytes: &[u8]) {
        if let Some(path) = self.blob_path(digest) {
            write_atomically(&path, bytes);
        }
    }

    /// The digest tag `name` last resolved to here.
    pub(crate) fn tag(&self, name: &str) -> Option<String> {
        let path = self.tag_path(name)?;
        let text = std::fs::read_to_string(path).ok()?;
        let digest = text.trim();
        is_sha256_digest(digest).then(|| digest.to_owned())
    }

    /// Remember that tag `name` resolved to `digest`.
    pub(crate) fn keep_tag(&self, name: &str, digest: &str) {
        if let Some(path) = self.tag_path(name) {
            write_atomically(&path, digest.as_bytes());
        }
    }

    fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|_| is_sha256_digest(digest))?;
        Some(self.dir.as_ref()?.join("blobs").join("sha256").join(hex))
    }

    fn tag_path(&self, name: &str) -> Option<PathBuf> {
        let hex = crate::runtime::component::hex_sha256(name.as_bytes());
        Some(self.dir.as_ref()?.join("tags").join(hex))
    }
}

/// Write `bytes` to `path` whole, creating its directory; a failure is
/// logged and otherwise ignored (the store is a cache).
fn write_atomically(path: &Path, bytes: &[u8]) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::runtime::compile_cache::write_whole(path, bytes));
    if let Err(err) = written {
        tracing::warn!(path = %path.display(), error = %err, "could not keep a pulled blob on disk");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_when_read_and_tags_remembered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(Some(dir.path().to_path_buf()));
        let digest = sha256_digest(b"component");
        assert_eq!(store.blob(&digest), None);
        store.keep_blob(&digest, b"component");
        assert_eq!(store.blob(&digest).as_deref(), Some(&b"component"[..]));
        let file = dir
            .path()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..]);
        std::fs::write(&file, b"damaged").expect("damage");
        assert_eq!(store.blob(&digest), None, "a damaged blob is not served");

        assert_eq!(store.tag("r/app:v1"), None);
        store.keep_tag("r/app:v1", &digest);
        assert_eq!(store.tag("r/app:v1"), Some(digest.clone()));
        assert_eq!(store.tag("r/app:v2"), None);

        let nowhere = LocalStore::new(None);
        nowhere.keep_blob(&digest, b"component");
        assert_eq!(nowhere.blob(&digest), None);
    }
}
