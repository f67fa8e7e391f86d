//! In-toto statements: `_type`, `subject`, `predicateType` and `predicate`, read leniently where real
//! producers differ (an empty or custom `_type`, a single subject object, a null subject) and strictly
//! everywhere else.

use std::collections::BTreeMap;

use serde_json::Value;

use super::container::ParseError;
use super::json;
use super::Subject;

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
