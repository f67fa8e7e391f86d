//! Raw access to the blobs of an image on disk: an OCI layout directory, or a tarball (an OCI archive or a
//! `docker save` archive), read in place with random access and nothing unpacked.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the bytes are.
enum Root {
    Dir(PathBuf),
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
            Root::Dir(path.to_path_buf())
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

    pub fn exists(&self, name: &str) -> bool {
        match &self.root {
            Root::Dir(dir) => dir.join(name).is_file(),
            Root::Tar { entries, .. } => entries.contains_key(name),
        }
    }

    /// Opens a file for streaming; returns it with its size. Names that leave the image are refused.
    pub fn open_blob(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), String> {
        match &self.root {
            Root::Dir(dir) => {
                let relative = Path::new(name);
                let escapes = relative.is_absolute()
                    || relative
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                if escapes {
                    return Err(format!("{name}: names a path outside the image directory"));
                }
                let path = dir.join(relative);
                let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{name}: {e}"))?;
                if !meta.is_file() {
                    return Err(format!("{name}: not a regular file"));
                }
                let f = File::open(&path).map_err(|e| format!("{name}: {e}"))?;
                Ok((Box::new(f), meta.len()))
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

/// `blobs/<alg>/<hex>` for a digest; one that is not plain lowercase alphanumerics maps to a name that
/// never exists.
pub fn blob_name(digest: &str) -> String {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match digest.split_once(':') {
        Some((alg, hex)) if plain(alg) && plain(hex) => format!("blobs/{alg}/{hex}"),
        _ => "blobs/(malformed digest)".to_string(),
    }
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
