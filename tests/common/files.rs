//! Files the test processes share: the build's target directory, and locks
//! that let one process at a time build a guest or use the CPU.

/// The build's target directory: `CARGO_TARGET_DIR` when it is set (CI keeps
/// one outside the clone), else `target/` in the workspace.
pub fn target_dir() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// An exclusive lock named `name`, shared by every test process of this
/// checkout; held until the file is dropped.
pub fn file_lock(name: &str) -> std::fs::File {
    let dir = target_dir().join("test-locks");
    std::fs::create_dir_all(&dir).expect("creating the test lock directory");
    let path = dir.join(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|err| panic!("opening {}: {err}", path.display()));
    file.lock()
        .unwrap_or_else(|err| panic!("locking {}: {err}", path.display()));
    file
}
