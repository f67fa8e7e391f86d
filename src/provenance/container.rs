//! Containers: how statements arrive. A document is split into items, each holding the exact statement
//! bytes and whatever signs them; nothing here parses a signed payload (that waits for its signature).
//!
//! Recognised: bare statements, DSSE envelopes, JSON Lines of either, Sigstore bundles (by `mediaType`),
//! Google Cloud Build `--show-provenance` output, npm attestation responses, cosign `.att` manifests (with
//! their DSSE layer from a [`Blobs`] source) and `rekor-cli get --format json` output.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use super::statement::{self, Statement};
use super::ParseError;
use crate::json::{self, JsonError};
use crate::trust::bundle::{Bundle, BundleVersion, Material};
use crate::trust::certificate::LeafCertificate;
use crate::trust::dsse::Envelope;
use crate::trust::rekor::TlogEntry;

/// How an item was wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Container {
    /// A bare statement: nothing signs it.
    BareStatement,
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
    fn from_value(value: &Value) -> Result<Self, ParseError> {
        serde_json::from_value(value.clone())
            .map_err(|e| ParseError::Envelope(format!("{WITH_BLOBS_MEDIA_TYPE}: {e}")))
    }
}

impl Blobs for WithBlobs {
    fn get(&self, digest: &str) -> Option<Vec<u8>> {
        json::decode_base64(self.blobs.get(digest)?).ok()
    }
}

/// Splits a document into its statements. `max_bytes` caps the input and every decoded payload.
pub fn decode(bytes: &[u8], max_bytes: usize, blobs: &dyn Blobs) -> Result<Vec<Item>, ParseError> {
    let value = match json::parse(bytes, max_bytes) {
        Ok(v) => v,
        Err(err @ JsonError::Syntax { .. }) => {
            return match json_lines(bytes, max_bytes) {
                Some(lines) => {
                    let mut items = Vec::new();
                    for (n, line) in lines {
                        let v = json::parse(line, max_bytes).map_err(|e| {
                            ParseError::Envelope(format!("JSON Lines, line {n}: {e}"))
                        })?;
                        items.extend(decode_value(
                            &v,
                            line,
                            &format!("line {n}"),
                            max_bytes,
                            blobs,
                        )?);
                    }
                    Ok(items)
                }
                None => Err(err.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    decode_value(&value, bytes, "document", max_bytes, blobs)
}

/// `Some` when the text is two or more lines, the first of which is a JSON object on its own.
fn json_lines(bytes: &[u8], max_bytes: usize) -> Option<Vec<(usize, &[u8])>> {
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    if lines.len() < 2 {
        return None;
    }
    json::parse(lines[0].1, max_bytes)
        .ok()
        .filter(Value::is_object)
        .map(|_| lines)
}

fn decode_value(
    value: &Value,
    raw: &[u8],
    at: &str,
    max_bytes: usize,
    blobs: &dyn Blobs,
) -> Result<Vec<Item>, ParseError> {
    let Value::Object(obj) = value else {
        return Err(ParseError::NotAStatement(format!(
            "{at} is a JSON {}, expected an object",
            statement::kind(value)
        )));
    };
    let env_err = ParseError::Envelope;
    let is_bundle = obj
        .get("mediaType")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle"))
        || obj.contains_key("verificationMaterial");
    if is_bundle {
        return Ok(vec![bundle_item(
            value,
            at,
            Container::SigstoreBundle {
                version: BundleVersion::V01,
            },
        )?]);
    }
    if obj.contains_key("payload") && obj.contains_key("payloadType") {
        let envelope = Envelope::from_value(value, at).map_err(env_err)?;
        return Ok(vec![Item {
            at: at.to_string(),
            container: Container::DsseEnvelope,
            payload: envelope.payload.clone(),
            signing: Signing::Dsse {
                envelope,
                legacy: false,
            },
            attached_to: None,
        }]);
    }
    if let Some(summary) = obj.get("provenance_summary") {
        return gcb(obj, summary, at);
    }
    if let Some(Value::Array(attestations)) = obj.get("attestations") {
        return attestations
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let bundle = a.get("bundle").ok_or_else(|| {
                    ParseError::Envelope(format!("attestations[{i}] has no `bundle`"))
                })?;
                bundle_item(
                    bundle,
                    &format!("attestations[{i}].bundle"),
                    Container::NpmAttestation,
                )
            })
            .collect();
    }
    if obj.contains_key("schemaVersion") && obj.contains_key("layers") {
        return cosign(value, at, max_bytes, blobs);
    }
    if obj.get("mediaType").and_then(Value::as_str) == Some(WITH_BLOBS_MEDIA_TYPE) {
        let inner = WithBlobs::from_value(value)?;
        let doc = json::parse(inner.document.as_bytes(), max_bytes).map_err(|e| {
            ParseError::Envelope(format!("{WITH_BLOBS_MEDIA_TYPE}: the document: {e}"))
        })?;
        return decode_value(&doc, inner.document.as_bytes(), at, max_bytes, &inner);
    }
    if let Some(attestation) = obj.get("Attestation") {
        let text = attestation.as_str().ok_or_else(|| {
            ParseError::Envelope("rekor-cli entry: `Attestation` is not a string".into())
        })?;
        if text.is_empty() {
            return Err(ParseError::Envelope(
                "rekor-cli entry: `Attestation` is empty (the log did not keep the statement; fetch it with `rekor-cli get --format json` from a log that stores attestations)".into(),
            ));
        }
        return Ok(vec![Item {
            at: "Attestation".into(),
            container: Container::RekorEntry,
            payload: text.as_bytes().to_vec(),
            signing: Signing::Unsigned,
            attached_to: None,
        }]);
    }
    // A bare statement: validate now so a non-statement gets a precise message.
    Statement::from_json(value)?;
    Ok(vec![Item {
        at: at.to_string(),
        container: Container::BareStatement,
        payload: raw.to_vec(),
        signing: Signing::Unsigned,
        attached_to: None,
    }])
}

fn bundle_item(value: &Value, at: &str, container: Container) -> Result<Item, ParseError> {
    let bundle = Bundle::from_value(value, at).map_err(ParseError::Envelope)?;
    let container = match container {
        Container::SigstoreBundle { .. } => Container::SigstoreBundle {
            version: bundle.version,
        },
        other => other,
    };
    let payload = match &bundle.content {
        crate::trust::bundle::Content::Dsse(env) => env.payload.clone(),
        crate::trust::bundle::Content::MessageSignature { .. } => Vec::new(),
    };
    Ok(Item {
        at: at.to_string(),
        container,
        payload,
        signing: Signing::Bundle(Box::new(bundle)),
        attached_to: None,
    })
}

/// `{image_summary: {digest}, provenance_summary: {provenance: [{envelope}, …]}}`.
fn gcb(
    obj: &serde_json::Map<String, Value>,
    summary: &Value,
    at: &str,
) -> Result<Vec<Item>, ParseError> {
    let attached_to = obj
        .get("image_summary")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let list = summary
        .get("provenance")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ParseError::Envelope(format!("{at}: provenance_summary.provenance is not a list"))
        })?;
    if list.is_empty() {
        return Err(ParseError::Envelope(
            "provenance_summary.provenance is empty".into(),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let here = format!("provenance_summary.provenance[{i}].envelope");
            let env = p
                .get("envelope")
                .ok_or_else(|| ParseError::Envelope(format!("{here}: missing")))?;
            let envelope = Envelope::from_value(env, &here).map_err(ParseError::Envelope)?;
            Ok(Item {
                at: here,
                container: Container::GcbProvenance,
                payload: envelope.payload.clone(),
                signing: Signing::Dsse {
                    envelope,
                    legacy: true,
                },
                attached_to: attached_to.clone(),
            })
        })
        .collect()
}

/// A cosign `.att` manifest: each DSSE layer with the certificate and Rekor bundle in its annotations.
fn cosign(
    value: &Value,
    at: &str,
    max_bytes: usize,
    blobs: &dyn Blobs,
) -> Result<Vec<Item>, ParseError> {
    let err = |m: String| ParseError::Envelope(format!("cosign attestation manifest: {m}"));
    let layers = value
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| err("`layers` is not a list".into()))?;
    let mut items = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let here = format!("layers[{i}]");
        let media_type = layer
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let in_toto = media_type == "application/vnd.in-toto+json";
        if media_type != "application/vnd.dsse.envelope.v1+json" && !in_toto {
            continue;
        }
        let digest = layer
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| err(format!("{here}: no digest")))?;
        let blob = blobs.get(digest).ok_or_else(|| {
            err(format!(
                "{here}: the DSSE layer {digest} is not available; put the blob beside the manifest (or in an OCI layout's blobs/sha256/)"
            ))
        })?;
        if crate::oci::sha256_bytes(&blob) != digest {
            return Err(err(format!(
                "{here}: the blob does not have digest {digest}"
            )));
        }
        if in_toto {
            // A bare statement as a layer (BuildKit, OCI 1.1 referrers): nothing signs it.
            items.push(Item {
                at: format!("{at} {here}"),
                container: Container::BareStatement,
                payload: blob,
                signing: Signing::Unsigned,
                attached_to: None,
            });
            continue;
        }
        let env_value =
            json::parse(&blob, max_bytes).map_err(|e| err(format!("{here} ({digest}): {e}")))?;
        let envelope =
            Envelope::from_value(&env_value, &format!("{here} ({digest})")).map_err(err)?;
        let annotations = layer.get("annotations").cloned().unwrap_or(Value::Null);
        let ann = |k: &str| annotations.get(k).and_then(Value::as_str);
        let payload = envelope.payload.clone();
        let signing = match ann("dev.sigstore.cosign/certificate") {
            None => Signing::Dsse {
                envelope,
                legacy: false,
            },
            Some(pem) => {
                let cert = LeafCertificate::from_pem(pem.as_bytes())
                    .map_err(|e| err(format!("{here}: dev.sigstore.cosign/certificate: {e}")))?;
                let tlog_entries = match ann("dev.sigstore.cosign/bundle") {
                    None => Vec::new(),
                    Some(text) => vec![cosign_tlog_entry(text)
                        .map_err(|e| err(format!("{here}: dev.sigstore.cosign/bundle: {e}")))?],
                };
                Signing::Bundle(Box::new(Bundle {
                    version: BundleVersion::CosignAnnotations,
                    material: Material::Certificate(cert),
                    // The `dev.sigstore.cosign/chain` annotation is not read: intermediates and roots come
                    // from the trust root only.
                    document_chain: Vec::new(),
                    tlog_entries,
                    timestamps: Vec::new(),
                    content: crate::trust::bundle::Content::Dsse(envelope),
                }))
            }
        };
        items.push(Item {
            at: format!("{at} {here}"),
            container: Container::CosignAttestation,
            payload,
            signing,
            attached_to: None,
        });
    }
    if items.is_empty() {
        return Err(err(
            "no layer of media type application/vnd.dsse.envelope.v1+json or application/vnd.in-toto+json"
                .into(),
        ));
    }
    Ok(items)
}

/// `{"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime", "logIndex", "logID": hex}}`.
fn cosign_tlog_entry(text: &str) -> Result<TlogEntry, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let p = v.get("Payload").ok_or("no Payload")?;
    let body = p
        .get("body")
        .and_then(Value::as_str)
        .ok_or("no Payload.body")?;
    let decoded = json::decode_base64(body).map_err(|e| format!("Payload.body: {e}"))?;
    let bv: Value =
        serde_json::from_slice(&decoded).map_err(|e| format!("Payload.body is not JSON: {e}"))?;
    let set = v
        .get("SignedEntryTimestamp")
        .and_then(Value::as_str)
        .ok_or("no SignedEntryTimestamp")?;
    Ok(TlogEntry {
        log_index: p
            .get("logIndex")
            .and_then(Value::as_u64)
            .ok_or("no Payload.logIndex")?,
        log_id: hex::decode(
            p.get("logID")
                .and_then(Value::as_str)
                .ok_or("no Payload.logID")?,
        )
        .map_err(|e| format!("Payload.logID: {e}"))?,
        kind: bv
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        version: bv
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        integrated_time: p.get("integratedTime").and_then(Value::as_i64),
        signed_entry_timestamp: Some(
            json::decode_base64(set).map_err(|e| format!("SignedEntryTimestamp: {e}"))?,
        ),
        inclusion_proof: None,
        canonicalized_body_b64: body.to_string(),
    })
}
