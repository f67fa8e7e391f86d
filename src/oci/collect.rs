//! Scanning a workspace for build outputs.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use super::{read_image, sha256_file, RebuiltImage};

/// Stop scanning after this many directory entries (a build that writes more is reported, not followed).
const MAX_ENTRIES: usize = 500_000;

/// A plain file among the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuiltFile {
    pub path: String,
    pub digest: String,
    pub size: u64,
}

/// Everything found under a root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outputs {
    pub images: Vec<RebuiltImage>,
    pub files: Vec<RebuiltFile>,
    /// Things that could not be read (unreadable files, corrupt archives, the entry cap).
    pub problems: Vec<String>,
}

impl Outputs {
    /// True when some image or file has exactly this `sha256:<hex>` digest.
    pub fn contains(&self, digest: &str) -> bool {
        self.images.iter().any(|i| i.digests.contains(digest))
            || self.files.iter().any(|f| f.digest == digest)
    }
}

/// Scans `root` (symlinks are not followed, `.git` directories are skipped). Blocking: run it off the
/// async runtime.
pub fn collect(root: &Path) -> Outputs {
    let mut out = Outputs::default();
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
        if dir.join("oci-layout").is_file() && dir.join("index.json").is_file() {
            match read_image(&dir, &rel(&dir)) {
                Ok(Some(image)) => out.images.push(image),
                Ok(None) => {}
                Err(e) => out.problems.push(e),
            }
            continue;
        }
        let mut entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
            Err(e) => {
                out.problems.push(format!("{}: {e}", rel(&dir)));
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries.into_iter().rev() {
            seen += 1;
            if seen > MAX_ENTRIES {
                out.problems.push(format!(
                    "stopped after {MAX_ENTRIES} directory entries; later outputs were not scanned"
                ));
                return out;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(path);
                }
            } else if meta.is_file() {
                file(&path, &rel(&path), meta.len(), &mut out);
            }
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn file(path: &Path, rel: &str, size: u64, out: &mut Outputs) {
    match sha256_file(path) {
        Ok(digest) => out.files.push(RebuiltFile {
            path: rel.to_string(),
            digest,
            size,
        }),
        Err(e) => {
            out.problems.push(format!("{rel}: {e}"));
            return;
        }
    }
    if looks_like_tar(path) {
        match read_image(path, rel) {
            Ok(Some(image)) => out.images.push(image),
            Ok(None) => {}
            Err(e) => out.problems.push(e),
        }
    }
}

/// A POSIX/GNU tar header carries `ustar` at offset 257.
fn looks_like_tar(path: &Path) -> bool {
    let mut header = [0u8; 263];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header[257..262] == b"ustar")
}
