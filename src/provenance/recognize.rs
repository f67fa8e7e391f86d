//! Documents people give reprod that are not statements, each told apart so the error says what the
//! document is and what to give instead: a bare SLSA predicate (as `docker buildx imagetools inspect`
//! prints it), an OCI image index, Docker Official Images' build metadata, and an unfilled template.

use serde_json::Value;

use super::ParseError;
use crate::json::JsonError;

/// A precise error for a JSON object without `predicateType` that reprod recognizes, or `None`.
pub fn not_a_statement(value: &Value) -> Option<ParseError> {
    if super::attached::is_index(value) {
        return Some(ParseError::NotAStatement(super::attached::describe_index(
            value,
        )));
    }
    // `docker buildx imagetools inspect --format '{{json .Provenance}}'` prints `{"SLSA": predicate}`.
    if let Some(inner) = value.get("SLSA").filter(|p| is_predicate(p)) {
        return Some(bare_predicate(
            inner,
            "the output of `docker buildx imagetools inspect --format '{{json .Provenance}}'`",
        ));
    }
    if is_predicate(value) {
        return Some(bare_predicate(value, "a bare provenance predicate"));
    }
    if is_official_images_builds(value) {
        return Some(ParseError::NotProvenance {
            what: "Docker Official Images build metadata (meta-scripts' builds.json)".into(),
            detail: "it lists, per build, the git commit, directory and Dockerfile an image was built from \
                     and the index it produced, but no statement signs or attests any of it; the provenance of \
                     these images is the BuildKit provenance attached to each image index"
                .into(),
        });
    }
    None
}

/// A predicate without its statement: the build is described, but no subject says what was built.
fn bare_predicate(predicate: &Value, what: &str) -> ParseError {
    let build_type = predicate
        .get("buildType")
        .or_else(|| predicate.pointer("/buildDefinition/buildType"))
        .and_then(Value::as_str)
        .unwrap_or("(none)");
    let version = if predicate.get("buildDefinition").is_some() {
        "SLSA v1"
    } else {
        "SLSA v0.2"
    };
    let hint = if super::buildkit::is_buildkit_build_type(build_type) {
        " (for BuildKit, the in-toto layer of the image's attestation manifest)"
    } else {
        ""
    };
    ParseError::NotAStatement(format!(
        "{what}: a {version} predicate (build type {build_type}) with no in-toto statement around it, so it \
         names no subject and there is nothing to compare a rebuild with; give reprod the statement itself{hint}"
    ))
}

fn is_predicate(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    let v02 = obj.contains_key("buildType")
        && ["builder", "invocation", "materials", "buildConfig"]
            .iter()
            .any(|k| obj.contains_key(*k));
    let v1 = obj.contains_key("buildDefinition") && obj.contains_key("runDetails");
    v02 || v1
}

/// `{"<build id>": {"buildId", "build": {...}, "source": {...}}, ...}`.
fn is_official_images_builds(v: &Value) -> bool {
    let Some(obj) = v.as_object() else {
        return false;
    };
    !obj.is_empty()
        && obj.values().take(50).all(|b| {
            b.get("buildId").is_some_and(Value::is_string)
                && b.get("build").is_some_and(Value::is_object)
        })
}

/// Most characters of a placeholder quoted in an error.
const MAX_PLACEHOLDER: usize = 60;

/// When a document that is not JSON holds `{{`, it is an unfilled template: the error names the first
/// placeholder's line and column.
pub fn template(bytes: &[u8], syntax: &JsonError) -> Option<ParseError> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("{{")?;
    let rest = &text[start..];
    let end = rest.find("}}").map_or(rest.len(), |e| e + 2);
    let mut placeholder: String = rest[..end].chars().take(MAX_PLACEHOLDER).collect();
    if placeholder.len() < end {
        placeholder.push('…');
    }
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    let syntax = match syntax {
        JsonError::Syntax {
            line,
            column,
            message,
        } => format!("line {line}, column {column}: {message}"),
        other => other.to_string(),
    };
    Some(ParseError::Template {
        line,
        column,
        // The placeholder comes from the document: no control character reaches a terminal.
        placeholder: placeholder
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect(),
        syntax,
    })
}
