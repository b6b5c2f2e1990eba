//! Compiled components on disk, mapped rather than read.
//!
//! Each component is compiled once into an uncompressed `.cwasm` file named
//! after the component's SHA-256 and the engine's settings. Loading maps that
//! file: its machine code and its initial memory image stay file-backed
//! pages, read in only when touched and shared by every instance, instead of
//! a private copy of each (Wasmtime's own cache decompresses into anonymous
//! memory). A host with a hundred components holds little private memory for
//! them: what is resident of the files is page cache the kernel can drop
//! (BENCHMARKS.md, "Components loaded").
//!
//! The files are machine code the host executes, so the directory must be
//! writable by the host's user alone: a directory anyone may write to, or one
//! owned by another (non-root) user, is not used. Files are written under a
//! temporary name and renamed into place, so a crash never leaves half a file
//! under a real name; a file that does not load (another Wasmtime, a damaged
//! disk) is compiled again and replaced. Least recently used files are removed
//! past [`CACHE_LIMIT_BYTES`].

use std::hash::{Hash as _, Hasher as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::error::Context as _;

/// Most bytes of compiled components kept on disk; the least recently used
/// go first.
pub(crate) const CACHE_LIMIT_BYTES: u64 = 1 << 30;

/// The extension of compiled component files.
const EXTENSION: &str = "cwasm";

/// A directory of compiled components for one engine's settings.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    directory: PathBuf,
    /// Differs between engines whose code is not interchangeable (Wasmtime
    /// version, compiler settings, CPU features).
    engine: u64,
}

impl CompileCache {
    /// Use (creating it, private to this user) `directory` for `engine`'s
    /// compiled components. Refuses a directory others could write to.
    pub(crate) fn open(directory: &Path, engine: &Engine) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
        let metadata = std::fs::metadata(directory)
            .with_context(|| format!("reading {}", directory.display()))?;
        anyhow::ensure!(
            metadata.is_dir(),
            "{} is not a directory",
            directory.display()
        );
        anyhow::ensure!(
            metadata.mode() & 0o002 == 0,
            "{} is writable by every user; the cache holds machine code the host runs (chmod o-w it or choose another)",
            directory.display()
        );
        if let Some(me) = own_uid() {
            anyhow::ensure!(
                metadata.uid() == me || metadata.uid() == 0,
                "{} belongs to another user (uid {}); the cache holds machine code the host runs",
                directory.display(),
                metadata.uid()
            );
        }
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            directory: directory.to_owned(),
            engine: hasher.finish(),
        })
    }

    #[cfg(test)]
    /// The directory.
    pub(crate) fn directory(&self) -> &Path {
        &self.directory
    }

    /// The component with SHA-256 `sha256` and contents `bytes`: mapped from
    /// its file when compiled before, else compiled, written and mapped.
    /// Errors are compile errors; trouble with the directory costs only
    /// speed (logged, and the code stays in memory).
    pub(crate) fn component(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        if let Some(component) = self.cached(engine, sha256) {
            return Ok(component);
        }
        let path = self.path(sha256);
        let compiled = engine.precompile_component(bytes);
        // Only a compile leaves compiler memory behind, not a mapped file.
        super::release_compile_memory();
        let compiled = compiled?;
        match self.store(&path, &compiled) {
            Ok(()) => match self.map(engine, &path) {
                Ok(component) => {
                    self.evict(&path);
                    return Ok(component);
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %format!("{err:#}"), "a just compiled component does not load from its file")
                }
            },
            Err(err) => tracing::warn!(
                directory = %self.directory.display(),
                error = %format!("{err:#}"),
                "could not write to the compile cache; keeping the compiled code in memory"
            ),
        }
        // SAFETY: `compiled` is what this engine produced a moment ago.
        #[expect(unsafe_code, reason = "loading machine code this engine just compiled")]
        unsafe {
            Component::deserialize(engine, &compiled)
        }
    }

    /// The component with SHA-256 `sha256`, mapped from its file if it was
    /// compiled before; `None` if it was not (or its file does not load).
    pub(crate) fn cached(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.is_file() {
            return None;
        }
        match self.map(engine, &path) {
            Ok(component) => {
                // Recently used: the last to be evicted.
                touch(&path);
                Some(component)
            }
            Err(err) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %format!("{err:#}"),
                    "a cached compiled component does not load; compiling it again"
                );
                None
            }
        }
    }

    /// Where the compiled component with SHA-256 `sha256` is kept.
    fn path(&self, sha256: &str) -> PathBuf {
        self.directory
            .join(format!("{sha256}-{:016x}.{EXTENSION}", self.engine))
    }

    /// Map the compiled component at `path`.
    fn map(&self, engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
        // SAFETY: the file is one this host wrote with its own engine (the
        // name carries the engine's settings, and Wasmtime checks them again
        // in the file's header), in a directory only this user (or root) can
        // write to (checked in `open`); files are renamed into place whole
        // and never modified, so the mapping does not change under Wasmtime.
        #[expect(
            unsafe_code,
            reason = "mapping machine code from the host's own private cache directory"
        )]
        unsafe {
            Component::deserialize_file(engine, path)
        }
    }

    /// Write `compiled` to `path` whole (see [`write_whole`]).
    fn store(&self, path: &Path, compiled: &[u8]) -> std::io::Result<()> {
        write_whole(path, compiled)
    }

    /// Remove the least recently used files past [`CACHE_LIMIT_BYTES`],
    /// never `keep` (just written).
    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.directory) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|entry| {
                entry.path().extension().is_some_and(|ext| ext == EXTENSION) && entry.path() != keep
            })
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, metadata.len(), entry.path()))
            })
            .collect();
        let kept = std::fs::metadata(keep).map_or(0, |metadata| metadata.len());
        let mut total = kept + files.iter().map(|(_, len, _)| len).sum::<u64>();
        files.sort();
        for (_, len, path) in files {
            if total <= CACHE_LIMIT_BYTES {
                break;
            }
            // Mapped copies stay valid: the kernel keeps a removed file's
            // pages while they are mapped.
            if std::fs::remove_file(&path).is_ok() {
                tracing::debug!(path = %path.display(), "compile cache full: removed the least recently used component");
                total -= len;
            }
        }
    }
}

/// Mark `path` as just used.
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// This process's user id (`/proc/self` belongs to it), where `/proc` is.
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self")
        .ok()
        .map(|metadata| metadata.uid())
}

/// Write `bytes` to `path` whole: a temporary file beside it of this write
/// alone (two writers of one file, in this process or another host sharing
/// the directory, never write the same temporary), then a rename, so a
/// reader sees no file or all of it. The directory must exist.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let directory = path.parent().unwrap_or(Path::new("."));
    let temporary = directory.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written =
        std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::default()
    }

    /// The smallest component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn compiles_once_then_maps_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = engine();
        let cache = CompileCache::open(&dir.path().join("cache"), &engine).expect("open");
        let component = cache
            .component(&engine, "abc", EMPTY_COMPONENT)
            .expect("compiles");
        let files: Vec<_> = std::fs::read_dir(cache.directory())
            .expect("listing")
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(
            files[0].starts_with("abc-") && files[0].ends_with(".cwasm"),
            "{files:?}"
        );
        let mode = std::fs::metadata(cache.directory()).expect("dir").mode();
        assert_eq!(mode & 0o077, 0, "the directory is private: {mode:o}");
        // The code is the file, mapped: not a copy in the host's memory.
        let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
        assert!(maps.contains(&files[0]), "{files:?} is not mapped");
        drop(component);

        // A damaged file is compiled again and replaced.
        let path = cache.directory().join(&files[0]);
        std::fs::write(&path, b"not machine code").expect("damage");
        cache
            .component(&engine, "abc", EMPTY_COMPONENT)
            .expect("recompiles");
        assert!(std::fs::metadata(&path).expect("file").len() > 16);
    }

    #[test]
    fn refuses_a_directory_everyone_can_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let err = CompileCache::open(&shared, &engine()).expect_err("refused");
        assert!(err.to_string().contains("writable by every user"), "{err}");
    }
}
