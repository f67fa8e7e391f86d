//! Containers: how an in-toto statement arrives (bare, or inside a DSSE envelope).
//!
//! Signature verification is a separate concern: this module only records that a container carries
//! signatures, so callers can say plainly when they were not checked.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use super::json::{self, JsonError};
use super::Subject;

/// Why a document yields no statement at all (as opposed to a statement reprod cannot rebuild).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("not an in-toto statement or DSSE envelope: {0}")]
    NotAStatement(String),
    #[error("DSSE envelope: {0}")]
    Envelope(String),
    #[error("statement field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

/// How the statement was wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Container {
    /// A bare statement: nothing signs it.
    BareStatement,
    /// A DSSE envelope with this many signatures (not verified here).
    DsseEnvelope {
        payload_type: String,
        signatures: usize,
    },
}

impl Container {
    /// One line for humans on what was (not) checked.
    pub fn signature_note(&self) -> String {
        match self {
            Container::BareStatement => "unsigned (bare statement)".into(),
            Container::DsseEnvelope { signatures, .. } => format!(
                "DSSE envelope with {signatures} signature(s), NOT verified: signature checks are not part of this build yet"
            ),
        }
    }
}

/// An in-toto statement, with its predicate kept as JSON for the family-specific normalizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `_type` as written (may be empty or custom, e.g. the distroless seed's `distroless-provenance`).
    pub statement_type: String,
    pub predicate_type: String,
    pub subjects: Vec<Subject>,
    pub predicate: Value,
}

/// Decodes a document into its container and statement. `max_bytes` caps the input and any decoded payload.
pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<(Container, Statement), ParseError> {
    let value = json::parse(bytes, max_bytes)?;
    let Value::Object(obj) = &value else {
        return Err(ParseError::NotAStatement(format!(
            "the document is a JSON {}, expected an object",
            kind(&value)
        )));
    };
    if obj.contains_key("payload") && obj.contains_key("payloadType") {
        let payload_type = obj["payloadType"].as_str().unwrap_or_default().to_string();
        let encoded = obj["payload"]
            .as_str()
            .ok_or_else(|| ParseError::Envelope("`payload` is not a string".into()))?;
        let payload = decode_base64(encoded)
            .map_err(|e| ParseError::Envelope(format!("`payload` is not valid base64: {e}")))?;
        let signatures = match obj.get("signatures") {
            Some(Value::Array(s)) => s.len(),
            _ => 0,
        };
        let statement_value = json::parse(&payload, max_bytes).map_err(|e| {
            ParseError::Envelope(format!(
                "the payload (type {payload_type:?}) is not JSON: {e}"
            ))
        })?;
        let statement = statement(&statement_value)?;
        return Ok((
            Container::DsseEnvelope {
                payload_type,
                signatures,
            },
            statement,
        ));
    }
    Ok((Container::BareStatement, statement(&value)?))
}

/// Standard or URL-safe base64, padded or not.
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let trimmed = text.trim();
    STANDARD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed.trim_end_matches('=')))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn statement(value: &Value) -> Result<Statement, ParseError> {
    let Value::Object(obj) = value else {
        return Err(ParseError::NotAStatement(format!(
            "a JSON {}, expected an object",
            kind(value)
        )));
    };
    let predicate_type = match obj.get("predicateType") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ParseError::Field {
                field: "predicateType".into(),
                problem: format!("a {}, expected a string", kind(other)),
            })
        }
        None => {
            return Err(ParseError::NotAStatement(
                "no `predicateType` field; an in-toto statement has `_type`, `subject`, `predicateType` and `predicate` \
                 (a bare predicate must be wrapped in a statement)"
                    .into(),
            ))
        }
    };
    let predicate = obj.get("predicate").cloned().unwrap_or(Value::Null);
    if !predicate.is_object() {
        return Err(ParseError::Field {
            field: "predicate".into(),
            problem: format!("a {}, expected an object", kind(&predicate)),
        });
    }
    let statement_type = obj
        .get("_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(Statement {
        statement_type,
        predicate_type,
        subjects: subjects(obj.get("subject"))?,
        predicate,
    })
}

/// `subject` may be an array, a single object, or null.
fn subjects(value: Option<&Value>) -> Result<Vec<Subject>, ParseError> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        Some(other) => {
            return Err(ParseError::Field {
                field: "subject".into(),
                problem: format!("a {}, expected an array of {{name, digest}}", kind(other)),
            })
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |problem: String| ParseError::Field {
                field: format!("subject[{i}]"),
                problem,
            };
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let mut digests = BTreeMap::new();
            match item.get("digest") {
                Some(Value::Object(d)) => {
                    for (alg, v) in d {
                        let hex = v
                            .as_str()
                            .ok_or_else(|| field(format!("digest `{alg}` is not a string")))?;
                        digests.insert(alg.to_ascii_lowercase(), hex.to_ascii_lowercase());
                    }
                }
                None | Some(Value::Null) => {}
                Some(other) => {
                    return Err(field(format!(
                        "`digest` is a {}, expected an object",
                        kind(other)
                    )))
                }
            }
            Ok(Subject { name, digests })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsse_payload_is_decoded_and_signatures_counted() {
        let payload = base64::engine::general_purpose::STANDARD
            .encode(br#"{"_type":"x","predicateType":"p","subject":{"name":"a","digest":{"SHA256":"AB"}},"predicate":{}}"#);
        let env = format!(
            r#"{{"payloadType":"application/vnd.in-toto+json","payload":"{payload}","signatures":[{{"sig":""}}]}}"#
        );
        let (c, s) = decode(env.as_bytes(), 1 << 20).unwrap();
        assert_eq!(
            c,
            Container::DsseEnvelope {
                payload_type: "application/vnd.in-toto+json".into(),
                signatures: 1
            }
        );
        assert_eq!(s.subjects.len(), 1);
        assert_eq!(s.subjects[0].digests["sha256"], "ab");
    }

    #[test]
    fn bad_base64_and_bare_predicate_are_precise() {
        let err = decode(
            br#"{"payloadType":"x","payload":"!!!","signatures":[]}"#,
            1000,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not valid base64"), "{err}");
        let err = decode(br#"{"buildType":"x","builder":{}}"#, 1000).unwrap_err();
        assert!(err.to_string().contains("no `predicateType`"), "{err}");
        let err = decode(b"[1]", 1000).unwrap_err();
        assert!(err.to_string().contains("JSON array"), "{err}");
    }
}
