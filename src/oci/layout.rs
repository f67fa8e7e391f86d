//! OCI image layouts, as directories or tarballs, and `docker save` archives.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

use super::store::{blob_name, BlobStore};
use super::{is_index_media_type, is_manifest_media_type, sha256_bytes, sha256_reader};

/// JSON blobs (indexes, manifests) larger than this are refused rather than read into memory.
const MAX_JSON_BLOB: u64 = 4 << 20;
/// Nested indexes deeper than this are refused.
const MAX_INDEX_DEPTH: usize = 8;
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How an image was found in the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopEntry {
    /// sha256 of the blob's bytes.
    pub digest: String,
    pub media_type: String,
    /// `org.opencontainers.image.ref.name`, when set.
    pub ref_name: Option<String>,
}

/// An image found among the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuiltImage {
    /// Path relative to the scanned root.
    pub path: String,
    pub kind: ImageKind,
    pub entries: Vec<TopEntry>,
    /// Every index and manifest digest reachable (any platform), plus the digest of `index.json` itself.
    pub digests: BTreeSet<String>,
    /// Blobs that are missing, unreadable or whose bytes do not match their name.
    pub problems: Vec<String>,
}

/// A blob as found: the digest of its bytes, and the bytes themselves when small enough to parse.
struct Blob {
    computed: String,
    bytes: Option<Vec<u8>>,
}

/// Reads an image from an OCI layout directory or a tarball (OCI archive or legacy `docker save`).
/// `Ok(None)` when `path` is neither (a tarball is then just a file).
pub fn read_image(path: &Path, display_path: &str) -> Result<Option<RebuiltImage>, String> {
    let store = BlobStore::open(path)?;
    let at = |e: String| format!("{display_path}/{e}");
    if store.exists("oci-layout") && store.exists("index.json") {
        let index = store.read_small("index.json", MAX_JSON_BLOB).map_err(at)?;
        let get = |digest: &str, want_bytes: bool| -> Result<Blob, String> {
            let fail = |e: String| format!("blob {digest}: {e}");
            let (mut reader, size) = store.open_blob(&blob_name(digest)).map_err(fail)?;
            if want_bytes && size <= MAX_JSON_BLOB {
                let mut bytes = Vec::with_capacity(size as usize);
                reader
                    .read_to_end(&mut bytes)
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Blob {
                    computed: sha256_bytes(&bytes),
                    bytes: Some(bytes),
                })
            } else {
                let (computed, _) = sha256_reader(reader).map_err(|e| fail(e.to_string()))?;
                Ok(Blob {
                    computed,
                    bytes: None,
                })
            }
        };
        let kind = if store.is_archive() {
            ImageKind::OciArchive
        } else {
            ImageKind::OciLayout
        };
        return Ok(Some(walk(display_path, kind, &index, get)));
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
    let mut image = RebuiltImage {
        path: display_path.to_string(),
        kind: ImageKind::DockerArchive,
        entries: Vec::new(),
        digests: BTreeSet::new(),
        problems: vec![
            "legacy docker save archive: it carries no manifest digest, so it cannot match a subject; \
             have the build write an OCI layout (docker save from Docker 25+, or buildx --output type=oci)"
                .to_string(),
        ],
    };
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
                });
            }
        }
        Err(e) => image.problems.push(format!("manifest.json: {e}")),
    }
    image
}

/// Walks index.json → (nested indexes) → manifests → config and layers, verifying every blob.
fn walk(
    display_path: &str,
    kind: ImageKind,
    index_json: &[u8],
    get: impl Fn(&str, bool) -> Result<Blob, String>,
) -> RebuiltImage {
    let mut image = RebuiltImage {
        path: display_path.to_string(),
        kind,
        entries: Vec::new(),
        digests: BTreeSet::new(),
        problems: Vec::new(),
    };
    image.digests.insert(sha256_bytes(index_json));
    let index: ImageIndex = match serde_json::from_slice(index_json) {
        Ok(i) => i,
        Err(e) => {
            image
                .problems
                .push(format!("index.json is not an OCI image index: {e}"));
            return image;
        }
    };
    for desc in index.manifests() {
        let computed = visit(desc, 0, &get, &mut image);
        image.entries.push(TopEntry {
            digest: computed.unwrap_or_else(|| desc.digest().to_string()),
            media_type: desc.media_type().to_string(),
            ref_name: desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME).cloned()),
        });
    }
    image
}

/// Verifies one descriptor's blob and descends into it. Returns the digest computed from its bytes.
fn visit(
    desc: &Descriptor,
    depth: usize,
    get: &impl Fn(&str, bool) -> Result<Blob, String>,
    image: &mut RebuiltImage,
) -> Option<String> {
    let claimed = desc.digest().to_string();
    let media_type = desc.media_type().to_string();
    let is_index = is_index_media_type(&media_type);
    let is_manifest = is_manifest_media_type(&media_type);
    let blob = match get(&claimed, is_index || is_manifest) {
        Ok(b) => b,
        Err(e) => {
            image.problems.push(e);
            return None;
        }
    };
    if blob.computed != claimed {
        image.problems.push(format!(
            "blob {claimed} does not match its digest: its bytes hash to {}",
            blob.computed
        ));
    }
    if !(is_index || is_manifest) {
        return Some(blob.computed);
    }
    image.digests.insert(blob.computed.clone());
    let Some(bytes) = blob.bytes else {
        image.problems.push(format!(
            "{media_type} blob {claimed} is over {MAX_JSON_BLOB} bytes; not parsed"
        ));
        return Some(blob.computed);
    };
    if is_index {
        if depth >= MAX_INDEX_DEPTH {
            image.problems.push(format!(
                "indexes nested deeper than {MAX_INDEX_DEPTH}; stopped at {claimed}"
            ));
            return Some(blob.computed);
        }
        match serde_json::from_slice::<ImageIndex>(&bytes) {
            Ok(nested) => {
                for child in nested.manifests() {
                    visit(child, depth + 1, get, image);
                }
            }
            Err(e) => image
                .problems
                .push(format!("index {claimed} does not parse: {e}")),
        }
    } else {
        match serde_json::from_slice::<ImageManifest>(&bytes) {
            Ok(manifest) => {
                for child in std::iter::once(manifest.config()).chain(manifest.layers()) {
                    visit(child, depth + 1, get, image);
                }
            }
            Err(e) => image
                .problems
                .push(format!("manifest {claimed} does not parse: {e}")),
        }
    }
    Some(blob.computed)
}
