//! Raw access to the blobs of an image on disk: an OCI layout directory, or a tarball (an OCI archive or a
//! `docker save` archive), read in place with random access and nothing unpacked.
//!
//! A layout in a build's workspace is the build's to shape: every name is opened beneath the layout
//! directory without following any symlink ([`crate::safe_fs::open_beneath`]), so a `blobs/sha256 -> /`
//! link cannot make host files look like outputs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the bytes are.
enum Root {
    /// The layout directory, opened once (not through a symlink).
    Dir(File),
    /// Entry name → (offset of the data in the tarball, size).
    Tar {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

/// An image's files by name (`index.json`, `blobs/sha256/<hex>`, `manifest.json`, ...).
pub struct BlobStore {
    /// The path as the user gave it, for messages.
    pub display: String,
    root: Root,
}

impl BlobStore {
    /// Opens a directory, or indexes a tarball (headers only: the data is skipped by seeking).
    pub fn open(path: &Path) -> Result<Self, String> {
        let display = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| format!("{display}: {e}"))?;
        let root = if meta.is_dir() {
            Root::Dir(crate::safe_fs::open_dir(path).map_err(|e| format!("{display}: {e}"))?)
        } else {
            Root::Tar {
                path: path.to_path_buf(),
                entries: index_tar(path).map_err(|e| format!("{display}: {e}"))?,
            }
        };
        Ok(BlobStore { display, root })
    }

    /// True for a tarball.
    pub fn is_archive(&self) -> bool {
        matches!(self.root, Root::Tar { .. })
    }

    /// True when `name` is a regular file of the image (reached without following a symlink).
    pub fn exists(&self, name: &str) -> bool {
        match &self.root {
            Root::Dir(dir) => crate::safe_fs::open_beneath(dir, name).is_ok(),
            Root::Tar { entries, .. } => entries.contains_key(name),
        }
    }

    /// Opens a file for streaming; returns it with its size. Names that leave the image, and names reached
    /// through a symlink, are refused.
    pub fn open_blob(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), String> {
        match &self.root {
            Root::Dir(dir) => {
                let f = crate::safe_fs::open_beneath(dir, name).map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidInput => e.to_string(),
                    _ => format!("{name}: {e}"),
                })?;
                let size = f.metadata().map_err(|e| format!("{name}: {e}"))?.len();
                Ok((Box::new(f), size))
            }
            Root::Tar { path, entries } => {
                let &(offset, size) = entries
                    .get(name)
                    .ok_or_else(|| format!("{name}: not in the archive"))?;
                let mut f = File::open(path).map_err(|e| format!("{name}: {e}"))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// Reads a file whole, refusing one larger than `max` bytes.
    pub fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>, String> {
        let (reader, size) = self.open_blob(name)?;
        if size > max {
            return Err(format!(
                "{name}: {size} bytes is over the {max}-byte limit for a JSON document"
            ));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(max)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(bytes)
    }
}

/// The digest algorithms the OCI image spec registers, with the length of their hex encoding.
pub const REGISTERED_ALGORITHMS: &[(&str, usize)] = &[("sha256", 64), ("sha512", 128)];

/// `blobs/<alg>/<hex>` for a digest of a registered algorithm (`sha256`, `sha512`) in lowercase hex of the
/// right length; anything else is refused with the reason (it could only name a file that is not a blob).
pub fn blob_name(digest: &str) -> Result<String, String> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(format!(
            "{digest:?} is not a digest (expected <algorithm>:<hex>)"
        ));
    };
    let Some(&(_, len)) = REGISTERED_ALGORITHMS.iter().find(|(a, _)| *a == alg) else {
        return Err(format!(
            "digest {digest:?}: algorithm {alg:?} is not one the OCI image spec registers (sha256, sha512)"
        ));
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!(
            "digest {digest:?}: expected {len} lowercase hex digits after {alg}:"
        ));
    }
    Ok(format!("blobs/{alg}/{hex}"))
}

/// Maps each regular file of a tarball to its data offset and size.
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(file);
    let mut out = HashMap::new();
    let entries = archive
        .entries_with_seek()
        .map_err(|e| format!("not a readable tar: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("corrupt tar: {e}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        out.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(out)
}
