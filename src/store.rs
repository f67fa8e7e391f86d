//! What the daemon keeps besides the queue: the provenance as received, one verdict per job, intake
//! rejections, and an index by subject digest. Every write is flushed before it is acknowledged.
//!
//! Trees: `meta` (schema version), `provenance` (document sha256 → exact bytes), `verdicts` (job id →
//! verdict JSON, written at most once), `by_subject` (`<digest> <job id>` → ()), `rejections` (document
//! sha256 → reason JSON), `artifacts` (`<job> <logs/…|diffs/…>` → zstd bytes: full step logs and diff
//! reports), `watched` (`registry/repo@digest` whose attestations were ingested).

use std::path::Path;

/// The layout this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} has schema version {found}; this reprod reads version {SCHEMA_VERSION} and will not touch a newer store (upgrade reprod)")]
    NewerSchema { path: String, found: u32 },
    #[error("the store at {path} is corrupt or not a reprod store ({detail}); restore it from a backup or move it aside")]
    Corrupt { path: String, detail: String },
    #[error("store write failed ({0}); nothing was acknowledged (check disk space and permissions of the data directory)")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

pub struct Store {
    db: sled::Db,
    provenance: sled::Tree,
    verdicts: sled::Tree,
    by_subject: sled::Tree,
    rejections: sled::Tree,
    watched: sled::Tree,
    artifacts: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        // sled opens a directory of garbage as an empty database: refuse a non-empty directory without our
        // schema key instead of starting afresh over it.
        let existed = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) => StoreError::Storage(format!("cannot open {path}: {io}")),
                other => StoreError::Corrupt {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            })?;
        let tree = |n: &str| db.open_tree(n).map_err(storage);
        let meta = tree("meta")?;
        let store = Store {
            provenance: tree("provenance")?,
            verdicts: tree("verdicts")?,
            by_subject: tree("by_subject")?,
            rejections: tree("rejections")?,
            watched: tree("watched")?,
            artifacts: tree("artifacts")?,
            db,
        };
        match meta.get(SCHEMA_KEY).map_err(storage)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: path.clone(),
                        detail: "malformed schema version".into(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
            }
            None if !existed && store.verdicts.is_empty() && store.provenance.is_empty() => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(storage)?;
                store.flush()?;
            }
            None => {
                return Err(StoreError::Corrupt {
                    path,
                    detail: "the directory holds files but no store schema version; if its very first start was interrupted it holds nothing and can be removed".into(),
                })
            }
        }
        Ok(store)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }

    /// Keeps the document exactly as received (idempotent).
    pub fn put_provenance(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.provenance.contains_key(sha256).map_err(storage)? {
            return Ok(());
        }
        self.provenance.insert(sha256, bytes).map_err(storage)?;
        self.flush()
    }

    pub fn provenance(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .provenance
            .get(sha256)
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Writes a job's verdict unless it has one: a job never gets two. Returns whether this call wrote it.
    pub fn put_verdict_once(
        &self,
        job: &str,
        verdict: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let bytes = serde_json::to_vec(verdict).map_err(storage)?;
        let inserted = self
            .verdicts
            .compare_and_swap(job, None as Option<&[u8]>, Some(bytes))
            .map_err(storage)?
            .is_ok();
        if inserted {
            for s in verdict["subjects"].as_array().into_iter().flatten() {
                if let Some(d) = s["digest"].as_str() {
                    self.by_subject
                        .insert(format!("{d} {job}"), &[])
                        .map_err(storage)?;
                }
            }
            self.flush()?;
        }
        Ok(inserted)
    }

    pub fn verdict(&self, job: &str) -> Result<Option<serde_json::Value>, StoreError> {
        self.verdicts
            .get(job)
            .map_err(storage)?
            .map(|v| serde_json::from_slice(&v).map_err(storage))
            .transpose()
    }

    /// Job ids with a verdict naming this subject digest.
    pub fn jobs_for_subject(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        self.by_subject
            .scan_prefix(format!("{digest} "))
            .keys()
            .map(|k| {
                k.map_err(storage)
                    .map(|k| String::from_utf8_lossy(&k[digest.len() + 1..]).into_owned())
            })
            .collect()
    }

    pub fn verdict_count(&self) -> usize {
        self.verdicts.len()
    }

    /// Keeps a job's full step logs and diff reports, zstd-compressed, replacing any earlier attempt's. The
    /// worker stores them before the verdict, so a verdict's artifacts are those of the run that made it.
    pub fn put_artifacts(&self, job: &str, files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for old in self.artifacts.scan_prefix(format!("{job} ")).keys() {
            self.artifacts
                .remove(old.map_err(storage)?)
                .map_err(storage)?;
        }
        for (name, bytes) in files {
            let packed = zstd::encode_all(bytes.as_slice(), 3).map_err(storage)?;
            self.artifacts
                .insert(format!("{job} {name}"), packed)
                .map_err(storage)?;
        }
        self.flush()
    }

    /// Names of a job's stored artifacts (`logs/00-build.log`, `diffs/0.json`, …).
    pub fn artifact_names(&self, job: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{job} ");
        self.artifacts
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                k.map_err(storage)
                    .map(|k| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    pub fn artifact(&self, job: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.artifacts
            .get(format!("{job} {name}"))
            .map_err(storage)?
            .map(|v| zstd::decode_all(v.as_ref()).map_err(storage))
            .transpose()
    }

    /// Whether the registry watcher has ingested the attestations of `image` (`registry/repo@digest`).
    pub fn watched(&self, image: &str) -> Result<bool, StoreError> {
        self.watched.contains_key(image).map_err(storage)
    }

    pub fn mark_watched(&self, image: &str) -> Result<(), StoreError> {
        self.watched.insert(image, &[]).map_err(storage)?;
        self.flush()
    }

    /// Records why a document was refused at intake.
    pub fn put_rejection(
        &self,
        sha256: &str,
        reason: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.rejections
            .insert(sha256, serde_json::to_vec(reason).map_err(storage)?)
            .map_err(storage)?;
        self.flush()
    }
}
