//! Attestation manifests whose layers are the statements: cosign's `.att` manifest (DSSE layers, the
//! certificate and Rekor bundle in their annotations) and BuildKit's attestation manifest (bare in-toto
//! layers, SBOM layers left unread).

use serde_json::Value;

use super::item::{Blobs, Container, Item, Signing};
use super::ParseError;
use crate::json;
use crate::trust::bundle::{Bundle, BundleVersion, Material};
use crate::trust::certificate::LeafCertificate;
use crate::trust::dsse::Envelope;
use crate::trust::rekor::TlogEntry;

/// A cosign `.att` manifest: each DSSE layer with the certificate and Rekor bundle in its annotations.
pub(super) fn manifest(
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
    let mut skipped = Vec::new();
    let buildkit = super::attached::is_attestation_manifest(value);
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
        let predicate_type = layer
            .pointer("/annotations/in-toto.io~1predicate-type")
            .and_then(Value::as_str);
        if let Some(what) = predicate_type.and_then(super::slsa::not_provenance) {
            // An SBOM beside the provenance (BuildKit attaches both): not read, and no blob needed.
            skipped.push(format!("{here} ({digest}) is {what}"));
            continue;
        }
        let blob = blobs.get(digest).ok_or_else(|| {
            err(format!(
                "{here}: the {} layer {digest} is not available; put the blob beside the manifest (or in an OCI layout's blobs/sha256/)",
                if in_toto { "in-toto" } else { "DSSE" }
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
    if items.is_empty() && !skipped.is_empty() {
        return Err(ParseError::NotProvenance {
            what: if buildkit {
                format!(
                    "a BuildKit attestation manifest{}",
                    super::attached::attested(value)
                        .map(|d| format!(" for {d}"))
                        .unwrap_or_default()
                )
            } else {
                "an attestation manifest".into()
            },
            detail: format!(
                "its in-toto layers hold no provenance: {}",
                skipped.join("; ")
            ),
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
