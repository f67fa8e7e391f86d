//! Listing a layer's tar entries, streamed: compression detected by magic bytes, content hashed on the
//! way through, nothing written to disk, a cap on decompressed bytes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Layer compression, from the blob's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One tar entry, everything that can differ about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: String,
    /// Position in the layer (0-based), for file order.
    pub position: usize,
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo`, or the raw type byte.
    pub kind: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: String,
    pub gname: String,
    pub size: u64,
    /// sha256 of the content (regular files).
    pub digest: Option<String>,
    pub link: Option<String>,
    pub mtime: u64,
    /// PAX records (xattrs as `SCHILY.xattr.*`), sorted.
    pub pax: BTreeMap<String, String>,
    /// `ustar`, `gnu`, `v7`, plus `+pax` when PAX records are present.
    pub format: String,
    /// Looks like text (valid UTF-8, no NUL) and small enough for a line diff.
    pub text: bool,
}

/// A layer's listing.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub compression: Compression,
    pub entries: Vec<Entry>,
    /// Entries with `..` components or absolute paths (reported, never extracted).
    pub unsafe_paths: Vec<String>,
}

/// Text files up to this size get a unified diff.
pub const MAX_TEXT_DIFF_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("decompressed size passed the {0}-byte cap (a decompression bomb, or raise --max-layer-bytes)")]
    TooLarge(u64),
    #[error("{0}")]
    Corrupt(String),
}

/// Counts decompressed bytes and fails past a cap.
struct Capped<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(std::io::Error::other(CapExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapExceeded;
impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decompression cap exceeded")
    }
}
impl std::error::Error for CapExceeded {}

/// Wraps a blob reader in the right decompressor, capped at `cap` decompressed bytes.
pub fn decompress(
    reader: Box<dyn Read + Send>,
    cap: u64,
) -> Result<(Compression, Box<dyn Read + Send>), LayerError> {
    let mut buffered = BufReader::with_capacity(1 << 16, reader);
    let magic = buffered
        .fill_buf()
        .map_err(|e| LayerError::Corrupt(e.to_string()))?;
    let (compression, inner): (Compression, Box<dyn Read + Send>) =
        if magic.starts_with(&[0x1f, 0x8b]) {
            (
                Compression::Gzip,
                Box::new(flate2::read::MultiGzDecoder::new(buffered)),
            )
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            let decoder = zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| LayerError::Corrupt(format!("zstd: {e}")))?;
            (Compression::Zstd, Box::new(decoder))
        } else {
            (Compression::None, Box::new(buffered))
        };
    Ok((
        compression,
        Box::new(Capped {
            inner,
            read: 0,
            cap,
        }),
    ))
}

fn map_io(e: std::io::Error, cap: u64) -> LayerError {
    if e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>()) {
        LayerError::TooLarge(cap)
    } else {
        LayerError::Corrupt(e.to_string())
    }
}

fn kind(t: tar::EntryType) -> String {
    use tar::EntryType::*;
    match t {
        Regular | Continuous => "file".into(),
        Directory => "dir".into(),
        Symlink => "symlink".into(),
        Link => "hardlink".into(),
        Char => "char".into(),
        Block => "block".into(),
        Fifo => "fifo".into(),
        other => format!("type-{}", other.as_byte() as char),
    }
}

/// Normalizes an entry path (`./a/b/` → `a/b`) and says whether it is unsafe to extract.
fn normalize(raw: &str) -> (String, bool) {
    let unsafe_path = raw.starts_with('/') || raw.split('/').any(|c| c == "..");
    let p = raw
        .trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/');
    (
        if p.is_empty() {
            ".".into()
        } else {
            p.to_string()
        },
        unsafe_path,
    )
}

/// Lists a layer.
pub fn list(reader: Box<dyn Read + Send>, cap: u64) -> Result<Listing, LayerError> {
    list_inner(reader, cap, false)
}

/// Lists a layer and then reads the blob to its end (padding, trailing blocks), so that a wrapper that
/// hashes the blob sees every byte.
pub fn list_draining(reader: Box<dyn Read + Send>, cap: u64) -> Result<Listing, LayerError> {
    list_inner(reader, cap, true)
}

fn list_inner(reader: Box<dyn Read + Send>, cap: u64, drain: bool) -> Result<Listing, LayerError> {
    let (compression, stream) = decompress(reader, cap)?;
    let mut archive = tar::Archive::new(stream);
    let mut entries = Vec::new();
    let mut unsafe_paths = Vec::new();
    let iter = archive.entries().map_err(|e| map_io(e, cap))?;
    for (position, entry) in iter.enumerate() {
        let mut entry = entry.map_err(|e| map_io(e, cap))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let (path, is_unsafe) = normalize(&raw_path);
        if is_unsafe {
            unsafe_paths.push(raw_path);
        }
        let mut pax = BTreeMap::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                let key = ext.key().unwrap_or("?").to_string();
                if key == "path" || key == "linkpath" || key == "size" {
                    continue; // already reflected in the entry's own fields
                }
                pax.insert(key, String::from_utf8_lossy(ext.value_bytes()).into_owned());
            }
        }
        let header = entry.header();
        let mut format = if header.as_gnu().is_some() {
            "gnu"
        } else if header.as_ustar().is_some() {
            "ustar"
        } else {
            "v7"
        }
        .to_string();
        if !pax.is_empty() {
            format.push_str("+pax");
        }
        let kind = kind(header.entry_type());
        let mode = header.mode().unwrap_or(0);
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let uname =
            String::from_utf8_lossy(header.username_bytes().unwrap_or_default()).into_owned();
        let gname =
            String::from_utf8_lossy(header.groupname_bytes().unwrap_or_default()).into_owned();
        let mtime = header.mtime().unwrap_or(0);
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let size = entry.size();
        let (digest, text) = if kind == "file" {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            let mut looks_text = size <= MAX_TEXT_DIFF_BYTES;
            let mut head = Vec::new();
            loop {
                let n = entry.read(&mut buf).map_err(|e| map_io(e, cap))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if looks_text {
                    head.extend_from_slice(&buf[..n]);
                }
            }
            looks_text = looks_text && !head.contains(&0) && std::str::from_utf8(&head).is_ok();
            (
                Some(format!("sha256:{}", hex::encode(hasher.finalize()))),
                looks_text,
            )
        } else {
            (None, false)
        };
        entries.push(Entry {
            path,
            position,
            kind,
            mode,
            uid,
            gid,
            uname,
            gname,
            size,
            digest,
            link,
            mtime,
            pax,
            format,
            text,
        });
    }
    if drain {
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
            .map_err(|e| map_io(e, cap))?;
    }
    Ok(Listing {
        compression,
        entries,
        unsafe_paths,
    })
}

/// Reads the contents of the named text files from a layer (second pass, only what a line diff needs).
pub fn read_texts(
    reader: Box<dyn Read + Send>,
    cap: u64,
    wanted: &[String],
) -> Result<BTreeMap<String, String>, LayerError> {
    let (_, stream) = decompress(reader, cap)?;
    let mut archive = tar::Archive::new(stream);
    let mut out = BTreeMap::new();
    for entry in archive.entries().map_err(|e| map_io(e, cap))? {
        let mut entry = entry.map_err(|e| map_io(e, cap))?;
        let (path, _) = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        if wanted.contains(&path) && entry.size() <= MAX_TEXT_DIFF_BYTES {
            let mut text = String::new();
            if entry.read_to_string(&mut text).is_ok() {
                out.insert(path, text);
            }
        }
        if out.len() == wanted.len() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_escapes_flagged() {
        assert_eq!(normalize("./a/b/"), ("a/b".to_string(), false));
        assert_eq!(normalize("/etc/passwd"), ("etc/passwd".to_string(), true));
        assert_eq!(normalize("a/../../x"), ("a/../../x".to_string(), true));
        assert_eq!(normalize("./"), (".".to_string(), false));
    }

    #[test]
    fn gzip_bomb_hits_the_cap() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(10 << 20);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "zeros", std::io::repeat(0).take(10 << 20))
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
        let bytes = gz.finish().unwrap();
        assert!(bytes.len() < 64 << 10, "{} compressed bytes", bytes.len());
        let err = list(Box::new(std::io::Cursor::new(bytes.clone())), 1 << 20).unwrap_err();
        assert!(matches!(err, LayerError::TooLarge(_)), "{err}");
        let ok = list(Box::new(std::io::Cursor::new(bytes)), 64 << 20).unwrap();
        assert_eq!((ok.compression, ok.entries.len()), (Compression::Gzip, 1));
    }

    #[test]
    fn truncated_layer_is_an_error_not_a_panic() {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(5000);
        header.set_cksum();
        tar.append_data(&mut header, "f", std::io::repeat(1).take(5000))
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        let err = list(
            Box::new(std::io::Cursor::new(bytes[..2000].to_vec())),
            1 << 20,
        )
        .unwrap_err();
        assert!(matches!(err, LayerError::Corrupt(_)), "{err}");
    }
}
