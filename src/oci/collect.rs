//! Scanning a workspace for build outputs, within [`ScanLimits`].

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::limits::{push_bounded, Budget, ScanLimits};
use super::{read_image_within, Algorithm, RebuiltImage};

/// A plain file among the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuiltFile {
    pub path: String,
    pub digest: String,
    pub size: u64,
    /// The file's bytes are an OCI or Docker image index or manifest: a copy of an image's top document is
    /// not that image, so such a file never matches a subject.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_document: bool,
}

/// Everything found under a root.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outputs {
    pub images: Vec<RebuiltImage>,
    /// The first files found (and, beyond that, those whose digest was asked for).
    pub files: Vec<RebuiltFile>,
    /// Files hashed but not listed (over `max_files_listed`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub files_omitted: usize,
    /// Things that could not be read (unreadable files, corrupt archives, a limit reached).
    pub problems: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub problems_omitted: usize,
    /// Why the scan stopped before reading everything (a deadline or a limit): then a subject not found
    /// may only not have been reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The scan stopped on a fault of this host (descriptors, memory, I/O): nothing may be concluded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_fault: bool,
    /// Files and images that were there before the steps ran and are unchanged (the checked-out source):
    /// inputs, not outputs, so they are not listed and match nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inputs_unchanged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Outputs {
    /// Adds what a second scan found (of a directory beside the scanned root), its paths under `prefix`.
    pub fn absorb(&mut self, other: Outputs, prefix: &str) {
        let under = |p: &str| {
            if p.is_empty() || p == "." {
                prefix.to_string()
            } else {
                format!("{prefix}/{p}")
            }
        };
        for mut image in other.images {
            image.path = under(&image.path);
            self.images.push(image);
        }
        for mut file in other.files {
            file.path = under(&file.path);
            self.files.push(file);
        }
        self.files_omitted += other.files_omitted;
        self.problems.extend(other.problems);
        self.problems_omitted += other.problems_omitted;
        self.stopped = self.stopped.take().or(other.stopped);
        self.host_fault |= other.host_fault;
    }

    /// True when some image whose every blob was verified, or some file (that is not a copy of an image's
    /// index or manifest), has exactly this digest.
    pub fn contains(&self, digest: &str) -> bool {
        self.images.iter().any(|i| i.digests.contains(digest))
            || self
                .files
                .iter()
                .any(|f| f.digest == digest && !f.image_document)
    }

    /// Why an image with this digest was found but does not count (a blob beneath it is missing or wrong).
    pub fn incomplete(&self, digest: &str) -> Option<(&RebuiltImage, &str)> {
        self.images
            .iter()
            .find_map(|i| i.incomplete.get(digest).map(|p| (i, p.as_str())))
    }

    /// Removes what `before` (a scan of the same root before the steps ran) already held at the same
    /// path with the same digests: a build's outputs are what its steps wrote, not the source it was given.
    pub fn without_inputs(mut self, before: &Outputs) -> Outputs {
        let files_before: std::collections::HashMap<&str, &str> = before
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.digest.as_str()))
            .collect();
        let n = self.files.len() + self.images.len();
        self.files
            .retain(|f| files_before.get(f.path.as_str()) != Some(&f.digest.as_str()));
        self.images.retain(|i| {
            !before
                .images
                .iter()
                .any(|b| b.path == i.path && b.digests == i.digests && b.entries == i.entries)
        });
        self.inputs_unchanged += n - self.files.len() - self.images.len();
        self
    }

    fn problem(&mut self, max: usize, p: String) {
        push_bounded(&mut self.problems, &mut self.problems_omitted, max, p);
    }
}

/// Scans `root` within default limits.
pub fn collect(root: &Path) -> Outputs {
    collect_within(root, ScanLimits::default(), &HashSet::new())
}

/// Scans `root` (symlinks are not followed, `.git` directories are skipped). Files whose digest is in
/// `wanted` are listed even beyond `max_files_listed`. Blocking: run it off the async runtime.
pub fn collect_within(root: &Path, limits: ScanLimits, wanted: &HashSet<String>) -> Outputs {
    let max_problems = limits.max_problems;
    let max_entries = limits.max_entries;
    let max_files = limits.max_files_listed;
    let mut budget = Budget::new(limits);
    let mut out = Outputs::default();
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0usize;
    let regular = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
    while let Some(dir) = stack.pop() {
        if let Err(why) = budget.check_time() {
            out.problem(max_problems, why);
            break;
        }
        let rel = |p: &Path| p.strip_prefix(root).unwrap_or(p).display().to_string();
        if regular(&dir.join("oci-layout")) && regular(&dir.join("index.json")) {
            match read_image_within(&dir, &rel(&dir), &mut budget) {
                Ok(Some(image)) => out.images.push(image),
                Ok(None) => {}
                Err(e) => out.problem(max_problems, e),
            }
            continue;
        }
        let mut entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
            Err(e) => {
                out.problem(max_problems, format!("{}: {e}", rel(&dir)));
                continue;
            }
        };
        entries.sort_by_key(|e| e.file_name());
        for entry in entries.into_iter().rev() {
            seen += 1;
            if seen > max_entries {
                let why = format!(
                    "stopped after {max_entries} directory entries; later outputs were not scanned"
                );
                out.problem(max_problems, why.clone());
                out.stopped = Some(why);
                return finish(out, &budget, max_problems);
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
                file(&path, &rel(&path), &mut out, &mut budget, wanted, max_files);
            }
        }
    }
    finish(out, &budget, max_problems)
}

fn finish(mut out: Outputs, budget: &Budget, max_problems: usize) -> Outputs {
    if let Some(why) = budget.exhausted() {
        let why = why.to_string();
        if !out.problems.contains(&why) {
            out.problem(max_problems, why.clone());
        }
        out.stopped.get_or_insert(why);
    }
    out.host_fault = budget.host_fault();
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn file(
    path: &Path,
    rel: &str,
    out: &mut Outputs,
    budget: &mut Budget,
    wanted: &HashSet<String>,
    max_files: usize,
) {
    let max_problems = budget.limits.max_problems;
    let hashed = match crate::safe_fs::open_regular(path) {
        Ok(f) => budget.digest(Algorithm::Sha256, f),
        Err(e) if super::store::host_fault(&e) => {
            budget.fail_host(format!("{rel}: {e}"));
            return;
        }
        Err(e) => Err(e.to_string()),
    };
    match hashed {
        Ok((digest, size)) => {
            if out.files.len() < max_files || wanted.contains(&digest) {
                out.files.push(RebuiltFile {
                    path: rel.to_string(),
                    digest,
                    size,
                    image_document: is_image_document(path, size),
                });
            } else {
                out.files_omitted += 1;
            }
        }
        Err(e) => {
            out.problem(max_problems, format!("{rel}: {e}"));
            return;
        }
    }
    if looks_like_tar(path) {
        match read_image_within(path, rel, budget) {
            Ok(Some(image)) => out.images.push(image),
            Ok(None) => {}
            Err(e) => out.problem(max_problems, e),
        }
    }
}

/// Whether a file's bytes are an image index or manifest (by its `mediaType`, or by the fields only those
/// carry), read back within the size of a JSON document.
fn is_image_document(path: &Path, size: u64) -> bool {
    if size > 4 << 20 {
        return false;
    }
    let Ok(bytes) = crate::safe_fs::open_regular(path).and_then(|f| {
        let mut b = Vec::new();
        f.take(4 << 20).read_to_end(&mut b).map(|_| b)
    }) else {
        return false;
    };
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(&bytes)
    else {
        return false;
    };
    let media = doc.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
    super::is_index_media_type(media)
        || super::is_manifest_media_type(media)
        || doc.contains_key("manifests")
        || (doc.contains_key("schemaVersion")
            && (doc.contains_key("layers") || doc.contains_key("config")))
}

/// A POSIX/GNU tar header carries `ustar` at offset 257.
fn looks_like_tar(path: &Path) -> bool {
    let mut header = [0u8; 263];
    crate::safe_fs::open_regular(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header[257..262] == b"ustar")
}
