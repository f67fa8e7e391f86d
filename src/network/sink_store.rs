//! The sink's storage: blobs by digest, uploads under way, and the OCI layout naming what was pushed
//! (the protocol is [`super::sink`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A manifest or index a build pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// `host/name:tag` or `host/name@sha256:…`, as pushed.
    pub reference: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// A job's registry sink, in `dir` (an OCI image layout once something is pushed).
pub struct Sink {
    pub(super) dir: PathBuf,
    pub(super) uploads: Mutex<HashMap<String, PathBuf>>,
    pub(super) pushed: Mutex<Vec<Pushed>>,
    pub(super) next: AtomicU64,
}

impl Sink {
    /// A sink kept in `dir` (created, mode 0700).
    pub fn open(dir: &Path) -> std::io::Result<Sink> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("blobs/sha256"))?;
        std::fs::create_dir_all(dir.join("uploads"))?;
        Ok(Sink {
            dir: dir.to_path_buf(),
            uploads: Mutex::new(HashMap::new()),
            pushed: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    /// What was pushed, in order.
    pub fn pushed(&self) -> Vec<Pushed> {
        self.pushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn blob(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }
}

/// Writes the sink's `oci-layout` and `index.json` (atomically) naming every pushed manifest.
pub(super) fn write_layout(dir: &Path, pushed: &[Pushed]) -> std::io::Result<()> {
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let manifests: Vec<serde_json::Value> = pushed
        .iter()
        .map(|p| {
            serde_json::json!({
                "mediaType": p.media_type,
                "digest": p.digest,
                "size": p.size,
                "annotations": {"org.opencontainers.image.ref.name": p.reference},
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let tmp = dir.join("index.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&index)?)?;
    std::fs::rename(tmp, dir.join("index.json"))
}
