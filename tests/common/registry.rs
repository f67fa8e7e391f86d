//! The local registry (127.0.0.1:5000), spoken to as a client would: blobs and manifests pushed by hand.

use std::process::Command;

use serde_json::{json, Value};

use super::sh;

/// Pushes `bytes` as a blob of `repo` in the local registry; returns its digest.
pub fn push_blob(repo: &str, bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let start = sh(Command::new("curl").args([
        "-sfi",
        "-X",
        "POST",
        &format!("http://127.0.0.1:5000/v2/{repo}/blobs/uploads/"),
    ]));
    let location = start
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://127.0.0.1:5000{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), bytes).unwrap();
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", tmp.path().display()),
        &format!("{url}{sep}digest={digest}"),
    ]));
    digest
}

/// Pushes `manifest` as `repo:reference` in the local registry; returns its digest.
pub fn push_manifest(repo: &str, reference: &str, media_type: &str, manifest: &Value) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(manifest).unwrap();
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &bytes).unwrap();
    sh(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &format!("@{}", tmp.path().display()),
        &format!("http://127.0.0.1:5000/v2/{repo}/manifests/{reference}"),
    ]));
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)))
}

/// A small image of its own (one layer), pushed under `tag`; returns its manifest digest.
pub fn push_small_image(repo: &str, tag: &str) -> String {
    push_image(repo, tag, format!("layer of {repo}:{tag}").as_bytes())
}

/// An image whose one layer is `layer` (uncompressed, as is), pushed under `tag`; returns its manifest
/// digest.
pub fn push_image(repo: &str, tag: &str, layer: &[u8]) -> String {
    let layer_digest = push_blob(repo, layer);
    // A configuration an engine accepts: its one diff id is the (uncompressed) layer's digest.
    let config = serde_json::to_string(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"tag": tag}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = push_blob(repo, config.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    });
    push_manifest(
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
}

/// A docker-registry process of a test's own on 127.0.0.1, serving the configuration `yaml` writes for
/// its directory and port; killed when dropped.
pub struct RegistryProcess {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RegistryProcess {
    /// Starts it in `dir` (where the caller put what the configuration names) and waits until it listens.
    pub fn start(
        dir: tempfile::TempDir,
        yaml: impl FnOnce(&str, u16) -> String,
    ) -> RegistryProcess {
        let port = super::daemon::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(&config, yaml(&dir.path().display().to_string(), port)).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting docker-registry");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return RegistryProcess {
                    port,
                    child,
                    _dir: dir,
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("docker-registry did not listen on 127.0.0.1:{port}");
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A second registry on 127.0.0.1, plain HTTP, that asks for a user and password (htpasswd, bcrypt).
pub struct AuthRegistry {
    pub user: String,
    pub password: String,
    process: RegistryProcess,
}

impl AuthRegistry {
    pub fn start(user: &str, password: &str) -> AuthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let hash = sh(Command::new("htpasswd").args(["-Bbn", user, password]));
        std::fs::write(dir.path().join("htpasswd"), hash).unwrap();
        let process = RegistryProcess::start(dir, |d, port| {
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/data\n\
                 http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: reprod-test\n    path: {d}/htpasswd\n"
            )
        });
        AuthRegistry {
            user: user.into(),
            password: password.into(),
            process,
        }
    }

    /// `127.0.0.1:<port>`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.process.port)
    }
}
