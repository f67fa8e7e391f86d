//! OCI image layouts, as directories or tarballs, and `docker save` archives.
//!
//! An image digest counts as rebuilt only when every blob beneath it was read and verified against its
//! name and size: a manifest whose config or a layer is missing, unreadable or wrong is *incomplete*, and so
//! is every index above it. Each descriptor is visited once per image however often it is named, and the
//! whole walk spends from one [`Budget`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};

use super::limits::{push_bounded, Budget, ScanLimits};
use super::store::{blob_name, BlobStore};
use super::{is_index_media_type, is_manifest_media_type, sha256_bytes, Algorithm};

/// JSON blobs (indexes, manifests) larger than this are refused rather than read into memory.
const MAX_JSON_BLOB: u64 = 4 << 20;
/// Nested indexes deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 8;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How an image was found in the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageKind {
    /// A directory with `oci-layout` and `index.json`.
    OciLayout,
    /// A tarball of an OCI layout (also what `docker save` writes since Docker 25).
    OciArchive,
    /// A legacy `docker save` tarball: only config digests exist, no manifest digest to compare.
    DockerArchive,
}

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::OciLayout => "oci-layout",
            ImageKind::OciArchive => "oci-archive",
            ImageKind::DockerArchive => "docker-archive",
        }
    }
}

/// An entry of the layout's `index.json`: what a push of this layout would publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopEntry {
    /// sha256 of the blob's bytes (the descriptor's digest when the blob could not be read).
    pub digest: String,
    pub media_type: String,
    /// `org.opencontainers.image.ref.name`, when set.
    pub ref_name: Option<String>,
    /// Every blob beneath it was read and verified.
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

/// An image found among the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuiltImage {
    /// Path relative to the scanned root.
    pub path: String,
    pub kind: ImageKind,
    pub entries: Vec<TopEntry>,
    /// Index and manifest digests (any platform) whose every blob was read and verified, plus the digest of
    /// `index.json` itself when all of it was: only these can match a subject.
    pub digests: BTreeSet<String>,
    /// Index and manifest digests found whose own bytes are right but beneath which something is missing,
    /// unreadable or wrong, with the first such problem. They never match a subject.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incomplete: BTreeMap<String, String>,
    /// Blobs that are missing, unreadable or whose bytes do not match their name (the first ones).
    pub problems: Vec<String>,
    /// Problems beyond those kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub problems_omitted: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RebuiltImage {
    fn new(path: &str, kind: ImageKind) -> Self {
        RebuiltImage {
            path: path.to_string(),
            kind,
            entries: Vec::new(),
            digests: BTreeSet::new(),
            incomplete: BTreeMap::new(),
            problems: Vec::new(),
            problems_omitted: 0,
        }
    }
}

/// A blob as found: its digest in the descriptor's algorithm, its sha256, size, and the bytes themselves
/// when small enough to parse.
struct Blob {
    computed: String,
    sha256: String,
    size: u64,
    bytes: Option<Vec<u8>>,
}

/// Reads an image from an OCI layout directory or a tarball (OCI archive or legacy `docker save`) within
/// default limits. `Ok(None)` when `path` is neither (a tarball is then just a file).
pub fn read_image(path: &Path, display_path: &str) -> Result<Option<RebuiltImage>, String> {
    read_image_within(path, display_path, &mut Budget::new(ScanLimits::default()))
}

/// [`read_image`], spending from `budget`.
pub fn read_image_within(
    path: &Path,
    display_path: &str,
    budget: &mut Budget,
) -> Result<Option<RebuiltImage>, String> {
    let store = BlobStore::open(path)?;
    let at = |e: String| format!("{display_path}/{e}");
    if store.exists("oci-layout") && store.exists("index.json") {
        let index = store.read_small("index.json", MAX_JSON_BLOB).map_err(at)?;
        let kind = if store.is_archive() {
            ImageKind::OciArchive
        } else {
            ImageKind::OciLayout
        };
        let max_problems = budget.limits.max_problems;
        let mut walk = Walk {
            store: &store,
            budget,
            image: RebuiltImage::new(display_path, kind),
            memo: HashMap::new(),
            max_problems,
        };
        walk.index_json(&index);
        return Ok(Some(walk.image));
    }
    if store.is_archive() && store.exists("manifest.json") {
        let manifest = store
            .read_small("manifest.json", MAX_JSON_BLOB)
            .map_err(at)?;
        return Ok(Some(docker_archive(display_path, &manifest)));
    }
    Ok(None)
}

/// A legacy `docker save` archive has no manifest digest; its config digests are reported as entries so a
/// reader sees what was built, but they never match a subject (a subject names a manifest or index).
fn docker_archive(display_path: &str, manifest: &[u8]) -> RebuiltImage {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "RepoTags", default)]
        repo_tags: Option<Vec<String>>,
    }
    let mut image = RebuiltImage::new(display_path, ImageKind::DockerArchive);
    image.problems.push(
        "legacy docker save archive: it carries no manifest digest, so it cannot match a subject; \
         have the build write an OCI layout (docker save from Docker 25+, or buildx --output type=oci)"
            .to_string(),
    );
    match serde_json::from_slice::<Vec<Entry>>(manifest) {
        Ok(entries) => {
            for e in entries {
                let hex = e
                    .config
                    .trim_start_matches("blobs/sha256/")
                    .trim_end_matches(".json");
                image.entries.push(TopEntry {
                    digest: format!("sha256:{hex}"),
                    media_type: "application/vnd.docker.container.image.v1+json".into(),
                    ref_name: e.repo_tags.and_then(|t| t.into_iter().next()),
                    complete: false,
                });
            }
        }
        Err(e) => image.problems.push(format!("manifest.json: {e}")),
    }
    image
}

/// One walk over one image: index.json → (nested indexes) → manifests → config and layers.
struct Walk<'a> {
    store: &'a BlobStore,
    budget: &'a mut Budget,
    image: RebuiltImage,
    /// Outcome per (claimed digest, media type): `Ok(sha256 of the bytes)` when it and everything beneath
    /// verified, else the first problem.
    memo: HashMap<(String, String), Result<String, String>>,
    max_problems: usize,
}

impl Walk<'_> {
    fn problem(&mut self, p: String) {
        push_bounded(
            &mut self.image.problems,
            &mut self.image.problems_omitted,
            self.max_problems,
            p,
        );
    }

    fn index_json(&mut self, index_json: &[u8]) {
        let own = sha256_bytes(index_json);
        let index: ImageIndex = match serde_json::from_slice(index_json) {
            Ok(i) => i,
            Err(e) => {
                let p = format!("index.json is not an OCI image index: {e}");
                self.image.incomplete.insert(own, p.clone());
                self.problem(p);
                return;
            }
        };
        let mut first_problem = None;
        for desc in index.manifests() {
            let outcome = self.visit(desc, 0);
            if let Err(p) = &outcome {
                first_problem.get_or_insert_with(|| p.clone());
            }
            self.image.entries.push(TopEntry {
                digest: outcome
                    .as_ref()
                    .map_or_else(|_| desc.digest().to_string(), Clone::clone),
                media_type: desc.media_type().to_string(),
                ref_name: desc
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME).cloned()),
                complete: outcome.is_ok(),
            });
        }
        match first_problem {
            None => {
                self.image.digests.insert(own);
            }
            Some(p) => {
                self.image
                    .incomplete
                    .insert(own, format!("index.json: {p}"));
            }
        }
    }

    /// Verifies one descriptor's blob and everything beneath it, once per image.
    fn visit(&mut self, desc: &Descriptor, depth: usize) -> Result<String, String> {
        let key = (desc.digest().to_string(), desc.media_type().to_string());
        if let Some(known) = self.memo.get(&key) {
            return known.clone();
        }
        let outcome = self.visit_once(desc, depth);
        self.memo.insert(key, outcome.clone());
        outcome
    }

    fn visit_once(&mut self, desc: &Descriptor, depth: usize) -> Result<String, String> {
        let claimed = desc.digest().to_string();
        let media_type = desc.media_type().to_string();
        let is_index = is_index_media_type(&media_type);
        let is_manifest = is_manifest_media_type(&media_type);
        let blob = match self.read(&claimed, is_index || is_manifest) {
            Ok(b) => b,
            Err(e) => {
                self.problem(e.clone());
                return Err(e);
            }
        };
        if blob.computed != claimed {
            let p = format!(
                "blob {claimed} does not match its digest: its bytes hash to {}",
                blob.computed
            );
            self.problem(p.clone());
            return Err(p);
        }
        let declared = desc.size();
        if declared != blob.size {
            let p = format!(
                "blob {claimed} is {} bytes, but its descriptor says {declared}",
                blob.size
            );
            self.problem(p.clone());
            return Err(p);
        }
        if !(is_index || is_manifest) {
            return Ok(blob.computed);
        }
        let own = blob.sha256.clone();
        let Some(bytes) = blob.bytes else {
            let p =
                format!("{media_type} blob {claimed} is over {MAX_JSON_BLOB} bytes; not parsed");
            self.problem(p.clone());
            self.image.incomplete.insert(own, p.clone());
            return Err(p);
        };
        if let Err(p) = agrees_with(&bytes, is_index, &claimed) {
            self.problem(p.clone());
            self.image.incomplete.insert(own, p.clone());
            return Err(p);
        }
        let children: Result<Vec<Descriptor>, String> = if is_index {
            if depth >= MAX_INDEX_DEPTH {
                Err(format!(
                    "indexes nested deeper than {MAX_INDEX_DEPTH}; stopped at {claimed}"
                ))
            } else {
                serde_json::from_slice::<ImageIndex>(&bytes)
                    .map(|i| i.manifests().clone())
                    .map_err(|e| format!("index {claimed} does not parse: {e}"))
                    .and_then(|children| {
                        // An index names images: a descriptor of another kind there is content the walk
                        // cannot verify as an image, so the index cannot count as rebuilt.
                        match children.iter().find(|c| {
                            let m = c.media_type().to_string();
                            !is_index_media_type(&m) && !is_manifest_media_type(&m)
                        }) {
                            Some(c) => Err(format!(
                                "index {claimed} names {} of media type {}, which is not an image",
                                c.digest(),
                                c.media_type()
                            )),
                            None => Ok(children),
                        }
                    })
            }
        } else {
            serde_json::from_slice::<ImageManifest>(&bytes)
                .map(|m| {
                    std::iter::once(m.config().clone())
                        .chain(m.layers().iter().cloned())
                        .collect()
                })
                .map_err(|e| format!("manifest {claimed} does not parse: {e}"))
        };
        let children = match children {
            Ok(c) => c,
            Err(p) => {
                self.problem(p.clone());
                self.image.incomplete.insert(own, p.clone());
                return Err(p);
            }
        };
        let mut first_problem = None;
        for child in &children {
            if let Err(p) = self.visit(child, depth + 1) {
                first_problem.get_or_insert(p);
            }
        }
        match first_problem {
            None => {
                self.image.digests.insert(own.clone());
                Ok(own)
            }
            Some(p) => {
                let kind = if is_index { "index" } else { "manifest" };
                let p = format!("{kind} {own}: {p}");
                self.image.incomplete.insert(own, p.clone());
                Err(p)
            }
        }
    }

    /// Opens and hashes one blob (keeping the bytes of JSON documents small enough to parse).
    fn read(&mut self, digest: &str, want_bytes: bool) -> Result<Blob, String> {
        let fail = |e: String| format!("blob {digest}: {e}");
        let name = blob_name(digest)?;
        let alg = Algorithm::of(digest).ok_or_else(|| fail("unregistered algorithm".into()))?;
        self.budget.blob().map_err(fail)?;
        let (mut reader, size) = match self.store.open_blob(&name) {
            Ok(r) => r,
            Err(e) if e.starts_with(super::store::HOST_FAULT) => {
                return Err(self.budget.fail_host(e));
            }
            Err(e) => return Err(fail(e)),
        };
        if want_bytes && size <= MAX_JSON_BLOB {
            let mut bytes = Vec::with_capacity(size as usize);
            reader
                .by_ref()
                .take(MAX_JSON_BLOB + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| fail(e.to_string()))?;
            self.budget.bytes(bytes.len()).map_err(fail)?;
            Ok(Blob {
                computed: super::digest_bytes(alg, &bytes),
                sha256: sha256_bytes(&bytes),
                size: bytes.len() as u64,
                bytes: Some(bytes),
            })
        } else {
            let (computed, read) = self.budget.digest(alg, reader).map_err(fail)?;
            Ok(Blob {
                sha256: computed.clone(),
                computed,
                size: read,
                bytes: None,
            })
        }
    }
}

/// A document's own declaration must agree with the descriptor that named it: one JSON cannot be read as an
/// index by one name and as a manifest by another (a publisher's index carrying harmless `config` and
/// `layers` fields would otherwise verify as a manifest).
fn agrees_with(bytes: &[u8], as_index: bool, claimed: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("blob {claimed} is not JSON: {e}"))?;
    let media = doc.get("mediaType").and_then(|m| m.as_str());
    let index_fields = doc.get("manifests").is_some();
    let manifest_fields = doc.get("layers").is_some() || doc.get("config").is_some();
    let declared_other = media.is_some_and(|m| {
        if as_index {
            is_manifest_media_type(m)
        } else {
            is_index_media_type(m)
        }
    });
    if declared_other || (index_fields && !as_index) || (manifest_fields && as_index) {
        return Err(format!(
            "blob {claimed} is named as {} but its own content says otherwise (mediaType {media:?})",
            if as_index { "an index" } else { "a manifest" }
        ));
    }
    Ok(())
}
