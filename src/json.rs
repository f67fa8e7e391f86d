//! Decoding untrusted JSON with a size cap, a nesting cap and messages that point at the offending character.

use serde_json::Value;

/// Default cap on a provenance document (16 MiB).
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;
/// Maximum nesting of arrays and objects.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not an acceptable JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("{size} bytes is over the {limit}-byte limit for a provenance document; raise `max_document_bytes` in the config if this is genuine")]
    TooLarge { size: usize, limit: usize },
    #[error("not UTF-8: invalid byte sequence at line {line}, column {column} (byte offset {offset}); provenance is JSON and must be UTF-8")]
    NotUtf8 {
        line: usize,
        column: usize,
        offset: usize,
    },
    #[error("line {line}, column {column}: {name} (U+{code:04X}) is not JSON whitespace; the text was probably copied from a web page: replace it with plain spaces")]
    ForeignWhitespace {
        line: usize,
        column: usize,
        name: &'static str,
        code: u32,
    },
    #[error("nested more than {MAX_DEPTH} levels deep at line {line}, column {column}; no provenance format needs that")]
    TooDeep { line: usize, column: usize },
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the document is empty")]
    Empty,
}

/// Parses one JSON document from untrusted bytes.
pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<Value, JsonError> {
    if bytes.len() > max_bytes {
        return Err(JsonError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = position(&bytes[..e.valid_up_to()]);
        JsonError::NotUtf8 {
            line,
            column,
            offset: e.valid_up_to(),
        }
    })?;
    if text.trim().is_empty() {
        return Err(JsonError::Empty);
    }
    if let Some(err) = depth_error(text) {
        return Err(err);
    }
    serde_json::from_str(text).map_err(|e| explain(text, e))
}

/// Line and 1-based character column just after `prefix`.
fn position(prefix: &[u8]) -> (usize, usize) {
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn unicode_space_name(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{00A0}' => "NO-BREAK SPACE",
        '\u{FEFF}' => "BYTE ORDER MARK / ZERO WIDTH NO-BREAK SPACE",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{2000}'..='\u{200A}' => "a Unicode typographic space",
        '\u{202F}' => "NARROW NO-BREAK SPACE",
        '\u{3000}' => "IDEOGRAPHIC SPACE",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        _ => return None,
    })
}

/// Turns serde_json's error into one that names a foreign whitespace character when that is the cause.
fn explain(text: &str, e: serde_json::Error) -> JsonError {
    let (line, column) = (e.line(), e.column());
    if let Some(l) = text.split('\n').nth(line.saturating_sub(1)) {
        // serde_json's column counts bytes; report characters, and look around the error for the culprit.
        let byte_col = column.saturating_sub(1).min(l.len());
        let start = l.floor_char_boundary(byte_col.saturating_sub(4));
        if let Some((i, c)) = l[start..]
            .char_indices()
            .map(|(i, c)| (i + start, c))
            .find(|(_, c)| unicode_space_name(*c).is_some())
        {
            return JsonError::ForeignWhitespace {
                line,
                column: l[..i].chars().count() + 1,
                name: unicode_space_name(c).unwrap_or("a Unicode space"),
                code: c as u32,
            };
        }
        let char_col = l[..l.floor_char_boundary(byte_col)].chars().count() + 1;
        return JsonError::Syntax {
            line,
            column: char_col,
            message: strip_position(&e.to_string()),
        };
    }
    JsonError::Syntax {
        line,
        column,
        message: strip_position(&e.to_string()),
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Finds nesting deeper than [`MAX_DEPTH`] without building anything (strings are skipped).
fn depth_error(text: &str) -> Option<JsonError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in text.bytes().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    let (line, column) = position(&text.as_bytes()[..i]);
                    return Some(JsonError::TooDeep { line, column });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Decodes base64 as real producers write it: the standard or the URL-safe alphabet (GCB signs with the
/// latter), padded or not. Whitespace around the text is ignored; inside it, it is an error.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    // Non-zero trailing bits are accepted, as Go's and Python's decoders do: a signature is checked over
    // the decoded bytes, so this changes no verdict, and refusing would turn a failed check into a
    // parse error.
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    let text = text.trim();
    if text.contains(['-', '_']) {
        URL_SAFE.decode(text)
    } else {
        STANDARD.decode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_no_break_space_with_position() {
        let err = parse("{\n\n\u{a0}\u{a0}\"a\": 1}".as_bytes(), 1000).unwrap_err();
        assert_eq!(
            err,
            JsonError::ForeignWhitespace {
                line: 3,
                column: 1,
                name: "NO-BREAK SPACE",
                code: 0xA0
            }
        );
        assert!(err.to_string().contains("U+00A0"));
    }

    #[test]
    fn caps_size_depth_and_utf8() {
        assert!(matches!(
            parse(b"{}", 1),
            Err(JsonError::TooLarge { size: 2, limit: 1 })
        ));
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(matches!(
            parse(deep.as_bytes(), 1000),
            Err(JsonError::TooDeep {
                line: 1,
                column: 65
            })
        ));
        assert!(matches!(
            parse(b"{\"a\":\n \"\xff\"}", 100),
            Err(JsonError::NotUtf8 {
                line: 2,
                column: 3,
                offset: 8
            })
        ));
        assert_eq!(parse(b"  ", 10), Err(JsonError::Empty));
    }

    #[test]
    fn truncated_json_has_position() {
        let err = parse(b"{\"a\": [1, 2", 100).unwrap_err();
        assert!(matches!(err, JsonError::Syntax { line: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("EOF"), "{err}");
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let s = format!("{{\"a\": \"{}\"}}", "[".repeat(200));
        assert!(parse(s.as_bytes(), 10_000).is_ok());
    }
}
