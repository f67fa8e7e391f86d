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

/// Marks an error that is this host's (out of descriptors or memory, an I/O error, a refused system call),
/// not anything the build wrote: a scan that meets one stops, and the job is retried rather than judged.
pub const HOST_FAULT: &str = "host I/O error: ";

/// Whether an error opening a file is the host's rather than the file's.
pub(crate) fn host_fault(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.raw_os_error().is_some_and(|code| {
        let errno = Errno::from_raw_os_error(code);
        [
            Errno::MFILE,
            Errno::NFILE,
            Errno::NOMEM,
            Errno::IO,
            Errno::PERM,
            Errno::NOSYS,
            Errno::AGAIN,
        ]
        .contains(&errno)
    })
}

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
                    _ if host_fault(&e) => format!("{HOST_FAULT}{name}: {e}"),
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

/// Entries a tarball may have to be read as an image.
const MAX_TAR_ENTRIES: usize = 200_000;
/// Largest GNU long-name or PAX extended header read (the tar reader holds those whole in memory).
const MAX_TAR_META: u64 = 64 << 10;

/// Walks the tar headers without reading any data, refusing what would make the tar reader allocate
/// without bound: more than [`MAX_TAR_ENTRIES`] entries, or long-name / PAX headers over [`MAX_TAR_META`].
fn precheck_tar(file: &mut File) -> Result<(), String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut offset = 0u64;
    let mut header = [0u8; 512];
    for _ in 0..=MAX_TAR_ENTRIES {
        if offset + 512 > len {
            return Ok(());
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        file.read_exact(&mut header).map_err(|e| e.to_string())?;
        if header.iter().all(|b| *b == 0) {
            return Ok(());
        }
        let size = tar_size(&header[124..136]).ok_or("a tar header with a malformed size")?;
        if matches!(header[156], b'L' | b'K' | b'x' | b'g') && size > MAX_TAR_META {
            return Err(format!(
                "a long-name or extended header of {size} bytes (over {MAX_TAR_META}); not read"
            ));
        }
        offset = offset
            .checked_add(512)
            .and_then(|o| o.checked_add(size.div_ceil(512) * 512))
            .ok_or("a tar entry size past the end")?;
    }
    Err(format!("more than {MAX_TAR_ENTRIES} entries; not read"))
}

/// A tar size field: octal digits, or GNU's base-256 form (high bit set).
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// Maps each regular file of a tarball to its data offset and size.
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>, String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    precheck_tar(&mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_headers_that_would_allocate_without_bound_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.tar");
        let mut header = [0u8; 512];
        header[..9].copy_from_slice(b"././@Long");
        header[124..136].copy_from_slice(b"77777777777\0");
        header[156] = b'L';
        header[257..262].copy_from_slice(b"ustar");
        std::fs::write(&path, header).unwrap();
        let e = index_tar(&path).unwrap_err();
        assert!(e.contains("long-name or extended header"), "{e}");
        assert_eq!(tar_size(b"00000001000\0"), Some(512));
        assert_eq!(
            tar_size(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Some(256)
        );
    }
}
