//! A real OCI registry (distribution's `docker-registry`, the Debian
//! package) on a free loopback port, its storage in a temporary directory,
//! optionally behind htpasswd auth; stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::clickhouse::free_port;

/// A running registry.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    /// A registry anyone may push to and pull from.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A registry that needs `user` and `password` for every call.
    pub fn start_with_login(user: &str, password: &str) -> Self {
        Self::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Self {
        // The registry clients a test builds (the host's, wkg's) use rustls
        // with no provider of their own; each test is a process of its own.
        wasmhouse_clickhouse::host::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut auth = String::new();
        if let Some((user, password)) = login {
            let output = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("running htpasswd (apt-get install apache2-utils)");
            assert!(output.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &output.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: wasmhouse-test\n    path: {}\n",
                file.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("write config");
        let mut registry = Self {
            child: None,
            dir,
            port,
        };
        registry.run();
        registry
    }

    fn run(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the registry did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`, as `--insecure-registry` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/<path>`.
    pub fn reference(&self, path: &str) -> String {
        format!("oci://{}/{path}", self.host())
    }

    /// The file holding blob `digest` (`sha256:…`) in the storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Its directory (config, storage, htpasswd).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop it (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}
