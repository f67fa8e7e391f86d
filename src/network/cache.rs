//! The content-addressed cache of what builds fetched: every body a GET received whole with a 2xx answer
//! is kept by its sha256 in the data directory (`network-cache/<hex>`), bounded, least recently used going
//! first. It is what [`super::replay`] serves: an air-gapped rebuilder re-rebuilds from it what it has
//! rebuilt once.
//!
//! Crash safety: a body is written to a `tmp-*` file beside the entries, synced, and renamed to its digest
//! only once the digest is known to be right; a `kill -9` leaves at most `tmp-*` files, which the next
//! [`Cache::open`] removes. An entry's name is its content's digest, and it is checked again whenever it
//! is served, so a damaged entry can never pass for the body it names.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The cache directory and its budget.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

/// Whether `hex` is a lowercase sha256 in hex (an entry name; never a path of anything else).
fn is_digest(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Cache {
    /// Opens (creating, mode 0700) the cache at `dir`, removing what an interrupted write left.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Cache> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            max_bytes,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry for `sha256` (`sha256:<hex>` or `<hex>`), if present; its time is touched, so it is
    /// used recently. Blocking.
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let hex = sha256.strip_prefix("sha256:").unwrap_or(sha256);
        if !is_digest(hex) {
            return None;
        }
        let path = self.dir.join(hex);
        let file = File::options().append(true).open(&path).ok()?;
        let _ = file.set_modified(std::time::SystemTime::now());
        Some(path)
    }

    /// Starts keeping a body. Blocking.
    pub fn writer(&self) -> std::io::Result<CacheWriter> {
        let file = tempfile::Builder::new()
            .prefix("tmp-")
            .tempfile_in(&self.dir)?;
        Ok(CacheWriter {
            cache: self.clone(),
            file,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Removes the least recently used entries until the cache is within its budget. Blocking.
    fn evict(&self) -> std::io::Result<()> {
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .flatten()
            .filter(|e| is_digest(&e.file_name().to_string_lossy()))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        Ok(())
    }
}

/// A body being kept; nothing of it is an entry until [`CacheWriter::commit`].
pub struct CacheWriter {
    cache: Cache,
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    bytes: u64,
}

impl CacheWriter {
    /// Appends a chunk. Blocking.
    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    /// Makes the body an entry named by its digest, once it is the digest the proxy recorded (`expected`,
    /// `sha256:<hex>`); a body larger than the whole budget is not kept. Blocking.
    pub fn commit(self, expected: &str) -> std::io::Result<bool> {
        let hex = hex::encode(self.hasher.finalize());
        if expected.strip_prefix("sha256:") != Some(hex.as_str())
            || self.bytes > self.cache.max_bytes
        {
            return Ok(false);
        }
        self.file.as_file().sync_all()?;
        self.file
            .persist(self.cache.dir.join(&hex))
            .map_err(|e| e.error)?;
        File::open(&self.cache.dir)?.sync_all()?;
        self.cache.evict()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(cache: &Cache, body: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
        let mut w = cache.writer().unwrap();
        w.write(body).unwrap();
        assert!(w.commit(&digest).unwrap());
        digest
    }

    #[test]
    fn bodies_are_kept_by_digest_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 25).unwrap();
        let a = keep(&cache, b"aaaaaaaaaa");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = keep(&cache, b"bbbbbbbbbb");
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Using a makes b the least recently used.
        assert!(cache.get(&a).is_some());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let c = keep(&cache, b"cccccccccc");
        assert!(cache.get(&a).is_some(), "a was used most recently but one");
        assert!(cache.get(&b).is_none(), "b was the least recently used");
        assert_eq!(
            std::fs::read(cache.get(&c).unwrap()).unwrap(),
            b"cccccccccc"
        );
    }

    #[test]
    fn a_body_that_is_not_what_was_recorded_or_is_cut_short_is_never_an_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        let mut w = cache.writer().unwrap();
        w.write(b"tampered").unwrap();
        let claimed = format!("sha256:{}", hex::encode(Sha256::digest(b"original")));
        assert!(!w.commit(&claimed).unwrap());
        assert!(cache.get(&claimed).is_none());
        // A writer dropped half-way (the build went away) leaves nothing.
        let mut w = cache.writer().unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // What a kill -9 left is removed at the next open; names that are not digests are never looked up.
        std::fs::write(dir.path().join("tmp-left"), b"x").unwrap();
        let cache = Cache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(cache.get("../../etc/passwd").is_none());
    }
}
