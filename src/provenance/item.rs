//! What a container yields: items, each the exact statement bytes plus what signs them, and the blob
//! sources containers that refer to blobs by digest read from.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::statement::Statement;
use super::ParseError;
use crate::json;
use crate::trust::bundle::{Bundle, BundleVersion};
use crate::trust::dsse::Envelope;

/// How an item was wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Container {
    /// A bare statement: nothing signs it.
    BareStatement,
    /// A JSON array of bare statements: nothing signs them.
    StatementList,
    DsseEnvelope,
    SigstoreBundle {
        version: BundleVersion,
    },
    /// An envelope inside `gcloud artifacts docker images describe --show-provenance` output.
    GcbProvenance,
    /// A bundle inside an npm registry attestations response.
    NpmAttestation,
    /// A cosign `.att` manifest layer, with the signing evidence in its annotations.
    CosignAttestation,
    /// `rekor-cli get` output: the statement as the log stored it, with no signature in this view.
    RekorEntry,
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Container::BareStatement => f.write_str("bare statement"),
            Container::StatementList => f.write_str("statement in a JSON array"),
            Container::DsseEnvelope => f.write_str("DSSE envelope"),
            Container::SigstoreBundle { version } => {
                write!(f, "Sigstore bundle {}", version.as_str())
            }
            Container::GcbProvenance => f.write_str("Cloud Build provenance (DSSE)"),
            Container::NpmAttestation => f.write_str("npm attestation (Sigstore bundle)"),
            Container::CosignAttestation => f.write_str("cosign attestation layer (DSSE)"),
            Container::RekorEntry => f.write_str("rekor-cli entry"),
        }
    }
}

/// What signs an item's statement.
#[derive(Debug, Clone)]
pub enum Signing {
    /// Nothing: a bare statement or a view without signatures.
    Unsigned,
    /// A DSSE envelope checked against keys. `legacy` allows Cloud Build's pre-DSSE form, a signature over
    /// the payload itself rather than its PAE.
    Dsse { envelope: Envelope, legacy: bool },
    /// Sigstore evidence (a bundle, or cosign annotations read as one).
    Bundle(Box<Bundle>),
}

/// One statement found in a document.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where it sits in the document (`provenance_summary.provenance[1].envelope`, `line 2`…).
    pub at: String,
    pub container: Container,
    /// The exact statement bytes (the signed payload, or the bare statement as received).
    pub payload: Vec<u8>,
    pub signing: Signing,
    /// The image digest the container says this provenance is attached to; a statement that does not
    /// name it as a subject is refused.
    pub attached_to: Option<String>,
}

impl Item {
    /// Parses the statement. Call only after the signature decision: the bytes are untrusted until then.
    pub fn statement(&self, max_bytes: usize) -> Result<Statement, ParseError> {
        Statement::parse(&self.payload, max_bytes).map_err(|e| match e {
            ParseError::Json(j) if !matches!(self.container, Container::BareStatement) => {
                ParseError::Envelope(format!("{}: the payload is not JSON: {j}", self.at))
            }
            other => other,
        })
    }
}

/// Blobs a container refers to by digest (cosign's DSSE layers).
pub trait Blobs: Send + Sync {
    /// The bytes whose sha256 is `digest` (`sha256:<hex>`), if known. Callers verify the digest.
    fn get(&self, digest: &str) -> Option<Vec<u8>>;
}

/// No blob source: containers that need one fail with a message saying so.
pub struct NoBlobs;

impl Blobs for NoBlobs {
    fn get(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

/// Blobs from a directory: an OCI layout's `blobs/sha256/<hex>`, or any regular file beside the document
/// whose content has the digest (how registry exports are often saved).
pub struct DirBlobs {
    pub dir: PathBuf,
    pub max_bytes: usize,
}

impl Blobs for DirBlobs {
    fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let matches = |bytes: &[u8]| crate::oci::sha256_bytes(bytes) == digest;
        for candidate in [
            self.dir.join("blobs/sha256").join(hex),
            self.dir.join("../blobs/sha256").join(hex),
        ] {
            if let Ok(bytes) = read_capped(&candidate, self.max_bytes) {
                if matches(&bytes) {
                    return Some(bytes);
                }
            }
        }
        let entries = std::fs::read_dir(&self.dir).ok()?;
        for entry in entries.flatten().take(10_000) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                if let Ok(bytes) = read_capped(&path, self.max_bytes) {
                    if matches(&bytes) {
                        return Some(bytes);
                    }
                }
            }
        }
        None
    }
}

fn read_capped(path: &std::path::Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > max {
        return Err(std::io::Error::other("too large"));
    }
    Ok(out)
}

/// reprod's own transport for a registry document that needs blobs (a cosign `.att` manifest and its DSSE
/// layers), so a queued job is self-contained: `{"mediaType", "document": "<the manifest, exactly as
/// fetched>", "blobs": {"sha256:…": "<base64>"}}`. Blobs are checked against their digests when used.
pub const WITH_BLOBS_MEDIA_TYPE: &str = "application/vnd.reprod.document-with-blobs.v1+json";

/// A document plus the blobs it refers to.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WithBlobs {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub document: String,
    pub blobs: std::collections::BTreeMap<String, String>,
}

impl WithBlobs {
    pub(super) fn from_value(value: &Value) -> Result<Self, ParseError> {
        serde_json::from_value(value.clone())
            .map_err(|e| ParseError::Envelope(format!("{WITH_BLOBS_MEDIA_TYPE}: {e}")))
    }
}

impl Blobs for WithBlobs {
    fn get(&self, digest: &str) -> Option<Vec<u8>> {
        json::decode_base64(self.blobs.get(digest)?).ok()
    }
}
