//! Throwaway TLS certificates made with the `openssl` command: a CA, and a server certificate
//! it signs for `localhost` and 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Files of a test PKI.
pub struct TestPki {
    /// The CA certificate clients trust (PEM).
    pub ca_cert: PathBuf,
    /// The server certificate (PEM), for `localhost` and 127.0.0.1.
    pub server_cert: PathBuf,
    /// The server's private key (PEM).
    pub server_key: PathBuf,
}

impl TestPki {
    /// Copies the server certificate and key into `dir` (created), given to the system user
    /// `owner` a database server runs as; returns the copies' paths.
    pub(crate) fn server_files_in(
        &self,
        dir: &Path,
        owner: &str,
    ) -> Result<(PathBuf, PathBuf), String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let cert = dir.join("server.crt");
        let key = dir.join("server.key");
        std::fs::copy(&self.server_cert, &cert).map_err(|e| e.to_string())?;
        std::fs::copy(&self.server_key, &key).map_err(|e| e.to_string())?;
        // Servers refuse a key others can read.
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        crate::server::chown_to(dir, owner)?;
        Ok((cert, key))
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command runs (Debian package `openssl`)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA and a server certificate in a new temp dir (removed when the test binary exits).
pub fn test_pki() -> TestPki {
    let dir = crate::reaper::temp_dir("flotilla-tls-").expect("a temp dir");
    let days = "2";
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            days,
            "-subj",
            "/CN=Flotilla test CA",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("writing the extensions file");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            days,
            "-extfile",
            "server.ext",
        ],
    );
    TestPki {
        ca_cert: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}
