//! The images (one per platform) of an OCI layout, OCI archive or `docker save` archive, read through
//! [`BlobStore`].

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use super::DiffError;
use crate::oci::{is_index_media_type, is_manifest_media_type, BlobStore};

/// JSON documents (index, manifest, config) larger than this are refused.
const MAX_JSON: u64 = 16 << 20;
const MAX_INDEX_DEPTH: usize = 8;

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
    /// The size its descriptor declares (`None` in legacy archives).
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub blob: BlobRef,
    pub media_type: String,
}

/// An opened image source.
pub struct ImageSource {
    pub display: String,
    store: BlobStore,
    /// Annotations of the top-level index, for the annotation comparison.
    pub index_annotations: Vec<(String, String)>,
    pub images: Vec<PlatformImage>,
    /// Reads fail after this instant.
    pub deadline: Option<std::time::Instant>,
}

/// A reader that fails once its deadline has passed.
struct UntilDeadline<R> {
    inner: R,
    deadline: std::time::Instant,
}

impl<R: Read> Read for UntilDeadline<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if std::time::Instant::now() >= self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the comparison reached its deadline",
            ));
        }
        self.inner.read(buf)
    }
}

impl ImageSource {
    /// The blob file a descriptor names; a digest of an unregistered algorithm or malformed hex names none.
    fn blob_name(&self, d: &Descriptor) -> Result<String, DiffError> {
        crate::oci::blob_name(d.digest().as_ref()).map_err(|why| self.blob_error(why))
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
        let store = BlobStore::open(path).map_err(|problem| DiffError::Open {
            path: display.clone(),
            problem,
        })?;
        let mut source = ImageSource {
            display,
            store,
            index_annotations: Vec::new(),
            images: Vec::new(),
            deadline: None,
        };
        if source.store.exists("index.json") {
            let index: ImageIndex = source.json("index.json", None)?;
            source.index_annotations = sorted(index.annotations().as_ref());
            let mut images = Vec::new();
            for d in index.manifests() {
                source.collect(d, 0, &mut images)?;
            }
            source.images = images;
        } else if source.store.exists("manifest.json") {
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

    /// Opens a blob for streaming.
    pub fn open_blob(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64), DiffError> {
        let (reader, size) = self
            .store
            .open_blob(name)
            .map_err(|problem| self.blob_error(problem))?;
        Ok(match self.deadline {
            Some(deadline) => (
                Box::new(UntilDeadline {
                    inner: reader,
                    deadline,
                }),
                size,
            ),
            None => (reader, size),
        })
    }

    /// Reads a small JSON document whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>, DiffError> {
        self.store
            .read_small(name, MAX_JSON)
            .map_err(|problem| self.blob_error(problem))
    }

    /// Proves a blob that is not read (its digest equals the other side's) is there with the size its
    /// descriptor declares; its bytes are hashed only with `--verify-layers`.
    pub fn check_present(&self, blob: &BlobRef) -> Result<(), DiffError> {
        let (_, size) = self.open_blob(&blob.name)?;
        match blob.size {
            Some(declared) if declared != size => Err(self.blob_error(format!(
                "{} is {size} bytes, but its descriptor says {declared}",
                blob.name
            ))),
            _ => Ok(()),
        }
    }

    /// Hashes a blob and proves it matches its digest.
    pub fn check_digest(&self, blob: &BlobRef) -> Result<(), DiffError> {
        let Some(expected) = blob.digest.as_deref() else {
            return Ok(());
        };
        let alg = crate::oci::Algorithm::of(expected)
            .ok_or_else(|| self.blob_error(format!("{expected}: unregistered digest algorithm")))?;
        let (reader, _) = self.open_blob(&blob.name)?;
        let (found, _) = crate::oci::digest_reader(alg, reader, |_| Ok(()))
            .map_err(|e| self.blob_error(format!("{}: {e}", blob.name)))?;
        if found != expected {
            return Err(self.blob_error(format!(
                "{} does not match its digest {expected}: its bytes hash to {found}",
                blob.name
            )));
        }
        Ok(())
    }

    fn blob_error(&self, problem: String) -> DiffError {
        DiffError::Blob {
            image: self.display.clone(),
            problem,
        }
    }

    /// Reads a small document whole and, when its digest is known, proves the bytes match it.
    pub fn read_verified(&self, name: &str, digest: Option<&str>) -> Result<Vec<u8>, DiffError> {
        let bytes = self.read_small(name)?;
        if let Some(expected) = digest {
            let found = match crate::oci::Algorithm::of(expected) {
                Some(alg) => crate::oci::digest_bytes(alg, &bytes),
                None => String::from("(an algorithm reprod does not compute)"),
            };
            if found != expected {
                return Err(self.blob_error(format!(
                    "{name} does not match its digest {expected}: its bytes hash to {found}"
                )));
            }
        }
        Ok(bytes)
    }

    /// Reads, verifies and parses a JSON document.
    pub fn json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        digest: Option<&str>,
    ) -> Result<T, DiffError> {
        serde_json::from_slice(&self.read_verified(name, digest)?)
            .map_err(|e| self.blob_error(format!("{name}: not the expected JSON document: {e}")))
    }

    fn collect(
        &self,
        d: &Descriptor,
        depth: usize,
        out: &mut Vec<PlatformImage>,
    ) -> Result<(), DiffError> {
        let media_type = d.media_type().to_string();
        let name = self.blob_name(d)?;
        if is_index_media_type(&media_type) {
            if depth >= MAX_INDEX_DEPTH {
                return Err(self.blob_error(format!(
                    "{name}: indexes nested deeper than {MAX_INDEX_DEPTH}"
                )));
            }
            let nested: ImageIndex = self.json(&name, Some(d.digest().as_ref()))?;
            for child in nested.manifests() {
                self.collect(child, depth + 1, out)?;
            }
        } else if is_manifest_media_type(&media_type) {
            let manifest: ImageManifest = self.json(&name, Some(d.digest().as_ref()))?;
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
                    name: self.blob_name(manifest.config())?,
                    digest: Some(manifest.config().digest().to_string()),
                    size: Some(manifest.config().size()),
                },
                layers: manifest
                    .layers()
                    .iter()
                    .map(|l| {
                        Ok(LayerRef {
                            blob: BlobRef {
                                name: self.blob_name(l)?,
                                digest: Some(l.digest().to_string()),
                                size: Some(l.size()),
                            },
                            media_type: l.media_type().to_string(),
                        })
                    })
                    .collect::<Result<_, DiffError>>()?,
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
        let entries: Vec<Entry> = self.json("manifest.json", None)?;
        Ok(entries
            .into_iter()
            .map(|e| PlatformImage {
                platform: "default".into(),
                manifest_digest: None,
                manifest_annotations: Vec::new(),
                config: BlobRef {
                    name: e.config,
                    digest: None,
                    size: None,
                },
                layers: e
                    .layers
                    .into_iter()
                    .map(|l| LayerRef {
                        blob: BlobRef {
                            name: l,
                            digest: None,
                            size: None,
                        },
                        media_type: String::new(),
                    })
                    .collect(),
            })
            .collect())
    }
}
