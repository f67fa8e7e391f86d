//! Containers: how statements arrive. A document is split into items, each holding the exact statement
//! bytes and whatever signs them; nothing here parses a signed payload (that waits for its signature).
//!
//! Recognised: bare statements, DSSE envelopes, JSON Lines of either, Sigstore bundles (by `mediaType`),
//! Google Cloud Build `--show-provenance` output, npm attestation responses, cosign `.att` manifests and
//! BuildKit attestation manifests (their layers from a [`Blobs`] source), JSON arrays of statements and
//! `rekor-cli get --format json` output. Documents that are none of these but are recognized (an image
//! index, a bare predicate, build metadata, a template) get an error saying what they are.

use serde_json::Value;

use super::statement::{self, Statement};
use super::ParseError;
use crate::json::{self, JsonError};
use crate::trust::bundle::{Bundle, BundleVersion};
use crate::trust::dsse::Envelope;

pub use super::item::{
    Blobs, Container, DirBlobs, Item, NoBlobs, Signing, WithBlobs, WITH_BLOBS_MEDIA_TYPE,
};

/// Splits a document into its statements. `max_bytes` caps the input and every decoded payload.
pub fn decode(bytes: &[u8], max_bytes: usize, blobs: &dyn Blobs) -> Result<Vec<Item>, ParseError> {
    let value = match json::parse(bytes, max_bytes) {
        Ok(v) => v,
        Err(err @ JsonError::Syntax { .. }) => {
            if let Some(template) = super::recognize::template(bytes, &err) {
                return Err(template);
            }
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
    if let Value::Array(list) = value {
        return statement_list(list, raw, at);
    }
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
        return super::cosign::manifest(value, at, max_bytes, blobs);
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
    if !obj.contains_key("predicateType") {
        if let Some(e) = super::recognize::not_a_statement(value) {
            return Err(e);
        }
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

/// A JSON array of bare statements (Docker Official Images' provenance generator writes one per
/// platform): each item keeps its exact bytes.
fn statement_list(list: &[Value], raw: &[u8], at: &str) -> Result<Vec<Item>, ParseError> {
    let raws: Vec<&serde_json::value::RawValue> = serde_json::from_slice(raw)
        .map_err(|e| ParseError::NotAStatement(format!("{at} is a JSON array: {e}")))?;
    if list.is_empty() {
        return Err(ParseError::NotAStatement(format!(
            "{at} is an empty JSON array: there is no statement in it"
        )));
    }
    let mut items = Vec::with_capacity(list.len());
    for (i, (value, bytes)) in list.iter().zip(raws).enumerate() {
        let here = format!("{at}[{i}]");
        if !value.is_object() || value.get("predicateType").is_none() {
            return Err(ParseError::NotAStatement(format!(
                "{here} is not an in-toto statement (a JSON array is read as a list of statements, and this \
                 item is a JSON {} without `predicateType`)",
                statement::kind(value)
            )));
        }
        Statement::from_json(value).map_err(|e| match e {
            ParseError::Field { field, problem } => ParseError::Field {
                field: format!("[{i}].{field}"),
                problem,
            },
            other => other,
        })?;
        items.push(Item {
            at: here,
            container: Container::StatementList,
            payload: bytes.get().as_bytes().to_vec(),
            signing: Signing::Unsigned,
            attached_to: None,
        });
    }
    Ok(items)
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
