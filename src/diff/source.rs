//! Reading an image from an OCI layout directory, an OCI archive or a `docker save` archive, with random
//! access to blobs and without unpacking anything to disk.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::DiffError;
use crate::oci::{is_index_media_type, is_manifest_media_type};

/// JSON documents (index, manifest, config) larger than this are refused.
const MAX_JSON: u64 = 16 << 20;
const MAX_INDEX_DEPTH: usize = 8;

/// Where the bytes are.
enum Root {
    Dir(PathBuf),
    /// Entry name → (offset of the data in the tarball, size).
    Tar {
        path: PathBuf,
        entries: HashMap<String, (u64, u64)>,
    },
}

/// One image (one platform) of a source.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// `os/arch[/variant]`, or `default` when the index does not say.
    pub platform: String,
    /// The manifest digest (`None` for legacy `docker save` archives, which have none).
    pub manifest_digest: Option<String>,
    pub manifest_annotations: Vec<(String, String)>,
    /// The config blob's location.
    pub config: BlobRef,
    pub layers: Vec<LayerRef>,
}

/// A blob by name inside the source (`blobs/sha256/<hex>` or a legacy archive path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub name: String,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub blob: BlobRef,
    pub media_type: String,
}

/// An opened image source.
pub struct ImageSource {
    pub display: String,
    root: Root,
    /// Annotations of the top-level index, for the annotation comparison.
    pub index_annotations: Vec<(String, String)>,
    pub images: Vec<PlatformImage>,
}

/// `blobs/<alg>/<hex>`; a digest that is not plain lowercase alphanumerics maps to a name that never exists.
fn blob_name(d: &Descriptor) -> String {
    let digest = d.digest().to_string();
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

fn sorted(map: Option<&HashMap<String, String>>) -> Vec<(String, String)> {
    let mut v: Vec<_> = map
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort();
    v
}

impl ImageSource {
    /// Opens `path`: a layout directory, or a tarball of one (or a `docker save` archive).
    pub fn open(path: &Path) -> Result<Self, DiffError> {
        let display = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| DiffError::Open {
            path: display.clone(),
            problem: e.to_string(),
        })?;
        let root = if meta.is_dir() {
            Root::Dir(path.to_path_buf())
        } else {
            Root::Tar {
                path: path.to_path_buf(),
                entries: index_tar(path).map_err(|problem| DiffError::Open {
                    path: display.clone(),
                    problem,
                })?,
            }
        };
        let mut source = ImageSource {
            display,
            root,
            index_annotations: Vec::new(),
            images: Vec::new(),
        };
        if source.exists("index.json") {
            let index: ImageIndex = source.json("index.json")?;
            source.index_annotations = sorted(index.annotations().as_ref());
            let mut images = Vec::new();
            for d in index.manifests() {
                source.collect(d, 0, &mut images)?;
            }
            source.images = images;
        } else if source.exists("manifest.json") {
            source.images = source.docker_archive()?;
        } else {
            return Err(DiffError::Open {
                path: source.display.clone(),
                problem:
                    "neither an OCI layout (index.json) nor a docker save archive (manifest.json)"
                        .into(),
            });
        }
        Ok(source)
    }

    fn exists(&self, name: &str) -> bool {
        match &self.root {
            Root::Dir(dir) => dir.join(name).is_file(),
            Root::Tar { entries, .. } => entries.contains_key(name),
        }
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), DiffError> {
        let missing = |problem: String| DiffError::Blob {
            image: self.display.clone(),
            name: name.to_string(),
            problem,
        };
        match &self.root {
            Root::Dir(dir) => {
                let relative = Path::new(name);
                let escapes = relative.is_absolute()
                    || relative
                        .components()
                        .any(|c| matches!(c, std::path::Component::ParentDir));
                if escapes {
                    return Err(missing("names a path outside the image directory".into()));
                }
                let path = dir.join(relative);
                let meta = std::fs::symlink_metadata(&path).map_err(|e| missing(e.to_string()))?;
                if !meta.is_file() {
                    return Err(missing("not a regular file".into()));
                }
                let f = File::open(&path).map_err(|e| missing(e.to_string()))?;
                Ok((Box::new(f), meta.len()))
            }
            Root::Tar { path, entries } => {
                let &(offset, size) = entries
                    .get(name)
                    .ok_or_else(|| missing("not in the archive".into()))?;
                let mut f = File::open(path).map_err(|e| missing(e.to_string()))?;
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| missing(e.to_string()))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// Reads a small JSON document whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, DiffError> {
        let (reader, size) = self.open_blob(name)?;
        if size > MAX_JSON {
            return Err(DiffError::Blob {
                image: self.display.clone(),
                name: name.to_string(),
                problem: format!(
                    "{size} bytes is over the {MAX_JSON}-byte limit for a JSON document"
                ),
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(MAX_JSON)
            .read_to_end(&mut bytes)
            .map_err(|e| DiffError::Blob {
                image: self.display.clone(),
                name: name.to_string(),
                problem: e.to_string(),
            })?;
        Ok(bytes)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, DiffError> {
        serde_json::from_slice(&self.read_small(name)?).map_err(|e| DiffError::Blob {
            image: self.display.clone(),
            name: name.to_string(),
            problem: format!("not the expected JSON document: {e}"),
        })
    }

    fn collect(
        &self,
        d: &Descriptor,
        depth: usize,
        out: &mut Vec<PlatformImage>,
    ) -> Result<(), DiffError> {
        let media_type = d.media_type().to_string();
        let name = blob_name(d);
        if is_index_media_type(&media_type) {
            if depth >= MAX_INDEX_DEPTH {
                return Err(DiffError::Blob {
                    image: self.display.clone(),
                    name,
                    problem: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
                });
            }
            let nested: ImageIndex = self.json(&name)?;
            for child in nested.manifests() {
                self.collect(child, depth + 1, out)?;
            }
        } else if is_manifest_media_type(&media_type) {
            let manifest: ImageManifest = self.json(&name)?;
            let platform = d.platform().as_ref().map_or_else(
                || "default".to_string(),
                |p| {
                    let mut s = format!("{}/{}", p.os(), p.architecture());
                    if let Some(v) = p.variant() {
                        s.push('/');
                        s.push_str(v);
                    }
                    s
                },
            );
            out.push(PlatformImage {
                platform,
                manifest_digest: Some(d.digest().to_string()),
                manifest_annotations: sorted(manifest.annotations().as_ref()),
                config: BlobRef {
                    name: blob_name(manifest.config()),
                    digest: Some(manifest.config().digest().to_string()),
                },
                layers: manifest
                    .layers()
                    .iter()
                    .map(|l| LayerRef {
                        blob: BlobRef {
                            name: blob_name(l),
                            digest: Some(l.digest().to_string()),
                        },
                        media_type: l.media_type().to_string(),
                    })
                    .collect(),
            });
        }
        // Other artifacts (attestations, signatures) in an index are not images; they are skipped.
        Ok(())
    }

    fn docker_archive(&self) -> Result<Vec<PlatformImage>, DiffError> {
        #[derive(serde::Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "Layers", default)]
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = self.json("manifest.json")?;
        Ok(entries
            .into_iter()
            .map(|e| PlatformImage {
                platform: "default".into(),
                manifest_digest: None,
                manifest_annotations: Vec::new(),
                config: BlobRef {
                    name: e.config,
                    digest: None,
                },
                layers: e
                    .layers
                    .into_iter()
                    .map(|l| LayerRef {
                        blob: BlobRef {
                            name: l,
                            digest: None,
                        },
                        media_type: String::new(),
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Maps each regular file of a tarball to its data offset and size (one pass, nothing kept in memory).
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut archive = tar::Archive::new(file);
    let mut out = HashMap::new();
    for entry in archive
        .entries()
        .map_err(|e| format!("not a readable tar: {e}"))?
    {
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
