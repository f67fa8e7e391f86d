//! In-toto statements: `_type`, `subject`, `predicateType` and `predicate`, read leniently where real
//! producers differ (an empty or custom `_type`, a single subject object, a null subject) and strictly
//! everywhere else.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ParseError;
use super::Subject;
use crate::json;

/// An in-toto statement, with its predicate kept as JSON for the family-specific normalizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `_type` as written (may be empty or custom, e.g. the distroless seed's `distroless-provenance`).
    pub statement_type: String,
    pub predicate_type: String,
    pub subjects: Vec<Subject>,
    pub predicate: Value,
}

impl Statement {
    /// Parses statement bytes (a payload whose signature, if any, has already been checked).
    pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Self, ParseError> {
        let value = json::parse(bytes, max_bytes)?;
        from_value(&value)
    }

    /// The statement in an already-parsed JSON value (bare statements, rekor-cli output).
    pub fn from_json(value: &Value) -> Result<Self, ParseError> {
        from_value(value)
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn from_value(value: &Value) -> Result<Statement, ParseError> {
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
    // cosign's signature claims (`https://sigstore.dev/cosign/sign/v1`) carry no predicate at all.
    let predicate = match obj.get("predicate") {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(p) => p.clone(),
    };
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
                        let alg = alg.to_ascii_lowercase();
                        if let Some(problem) = malformed_hex(&alg, hex) {
                            let shown = if name.is_empty() { "(unnamed)" } else { &name };
                            return Err(field(format!("subject {shown:?}: {problem}")));
                        }
                        digests.insert(alg, hex.to_string());
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

/// Hash algorithms of the in-toto DigestSet whose values have a fixed form: lowercase hex of this length.
const FIXED_HEX: &[(&str, usize)] = &[
    ("sha256", 64),
    ("sha224", 56),
    ("sha384", 96),
    ("sha512", 128),
    ("sha512_224", 56),
    ("sha512_256", 64),
    ("sha3_224", 56),
    ("sha3_256", 64),
    ("sha3_384", 96),
    ("sha3_512", 128),
    ("sha1", 40),
    ("md5", 32),
];

/// Why a digest value of a known algorithm is malformed (a wrong length, upper case, a non-hex digit): a
/// digest that cannot be what it claims is an error in the document, never a mismatch found by a rebuild.
fn malformed_hex(alg: &str, hex: &str) -> Option<String> {
    let &(_, len) = FIXED_HEX.iter().find(|(a, _)| *a == alg)?;
    if hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let what = if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        "has upper-case letters"
    } else if hex.len() != len {
        "has the wrong length"
    } else {
        "has characters that are not hex digits"
    };
    Some(format!(
        "its {alg} digest {hex:?} {what} ({} characters); a {alg} digest is {len} lowercase hex digits",
        hex.chars().count()
    ))
}

#[cfg(test)]
mod digest_tests {
    use super::*;

    #[test]
    fn malformed_subject_digests_are_parse_errors_naming_the_subject() {
        let doc = |hex: &str| {
            serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "x",
                "subject": [{"name": "reg/app", "digest": {"sha256": hex}}], "predicate": {}})
        };
        let good = "a".repeat(64);
        assert!(Statement::from_json(&doc(&good)).is_ok());
        for bad in [
            "a".repeat(63),
            "A".repeat(64),
            format!("{}g", "a".repeat(63)),
        ] {
            let e = Statement::from_json(&doc(&bad)).unwrap_err().to_string();
            assert!(e.contains("subject[0]") && e.contains("\"reg/app\""), "{e}");
            assert!(e.contains("64 lowercase hex digits"), "{e}");
        }
        // Algorithms without a fixed form are kept as written.
        let custom = serde_json::json!({"predicateType": "x",
            "subject": [{"name": "a", "digest": {"gitCommit": "ABC"}}]});
        assert!(Statement::from_json(&custom).is_ok());
    }
}
