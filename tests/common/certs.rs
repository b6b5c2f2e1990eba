//! Certificates made at test time with `openssl`: a CA, a server
//! certificate for `localhost` and 127.0.0.1, one for another name, a client
//! certificate, and a second CA nobody trusts.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files, in a temporary directory that lives as long as this.
pub struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    /// Make them all (a second or two).
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wasmhouse-certs-")
            .tempdir()
            .expect("temporary directory for certificates");
        let certs = Self { dir };
        for ca in ["ca", "other-ca"] {
            certs.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=wasmhouse test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        certs.signed(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        );
        certs.signed(
            "wrong-name",
            "elsewhere.example",
            "subjectAltName=DNS:elsewhere.example",
        );
        certs.signed("client", "wasmhouse", "extendedKeyUsage=clientAuth");
        certs
    }

    /// `name.crt` and `name.key`, signed by `ca`, an X.509 v3 certificate
    /// with `extension` (rustls takes no v1 certificates).
    fn signed(&self, name: &str, common_name: &str, extension: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={common_name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        let mut args = vec![
            "x509".to_owned(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            "ca.crt".into(),
            "-CAkey".into(),
            "ca.key".into(),
            "-CAcreateserial".into(),
            "-days".into(),
            "2".into(),
            "-out".into(),
            format!("{name}.crt"),
        ];
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.path().join(&ext), format!("{extension}\n"))
            .expect("writing the extension file");
        args.extend(["-extfile".to_owned(), ext]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openssl(&args);
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl (Debian's openssl package)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A file made here: `ca.crt`, `server.key`, …
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
