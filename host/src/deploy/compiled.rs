//! Compiled components by content hash: loading bytes seen before (a
//! rollback, a re-deploy, the same file on two routes) skips compilation.
//!
//! Bounded: every upload of a new component adds an entry, so the least
//! recently used ones go once there are [`MAX_CACHED_COMPONENTS`]. A
//! component still serving a route is not freed by that (routes hold their
//! own reference); it is only compiled again if it comes back later.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use crate::runtime::component::hex_sha256;
use crate::runtime::{ComponentError, RouteComponent, Runtime};

/// Most compiled components kept.
pub(crate) const MAX_CACHED_COMPONENTS: usize = 64;

/// Compiled components by the SHA-256 of their bytes.
pub(crate) struct CompiledComponents {
    compiled: Mutex<LruCache<String, Arc<RouteComponent>>>,
}

impl Default for CompiledComponents {
    fn default() -> Self {
        Self::with_capacity(MAX_CACHED_COMPONENTS)
    }
}

impl CompiledComponents {
    /// A cache of at most `capacity` components (at least one).
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            compiled: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The compiled component for `bytes`, compiling it on first sight.
    /// Slow when it compiles: keep it off the request path.
    pub(crate) fn compile(
        &self,
        runtime: &Runtime,
        bytes: &[u8],
    ) -> Result<Arc<RouteComponent>, ComponentError> {
        let sha256 = hex_sha256(bytes);
        if let Some(known) = self.lock().get(&sha256) {
            return Ok(known.clone());
        }
        let component = RouteComponent::compile(runtime, bytes, sha256.clone())?;
        self.lock().put(sha256, component.clone());
        Ok(component)
    }

    /// [`Self::compile`] for a file.
    pub(crate) fn compile_file(
        &self,
        runtime: &Runtime,
        path: &Path,
    ) -> Result<Arc<RouteComponent>, ComponentError> {
        let bytes = std::fs::read(path).map_err(|source| ComponentError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.compile(runtime, &bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Arc<RouteComponent>>> {
        // Every update is a single call, so a panic elsewhere while the lock
        // was held leaves the map consistent.
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
