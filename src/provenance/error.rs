//! Why a document yields no statement at all, for every reader of the folder (containers, statements).

use crate::json::JsonError;

/// Why a document yields no statement at all (as opposed to a statement reprod cannot rebuild).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Json(#[from] JsonError),
    #[error("not an in-toto statement or a known provenance container: {0}")]
    NotAStatement(String),
    #[error("{0}")]
    Envelope(String),
    /// A document that is something else than provenance (build metadata, an SBOM-only attestation).
    #[error("not provenance: this is {what}: {detail}")]
    NotProvenance { what: String, detail: String },
    /// A template whose placeholders were never filled.
    #[error("line {line}, column {column}: `{placeholder}` is a template placeholder (Go text/template); this is a template of a document, not a document: fill its placeholders first (JSON parsing stopped at {syntax})")]
    Template {
        line: usize,
        column: usize,
        placeholder: String,
        syntax: String,
    },
    #[error("statement field `{field}`: {problem}")]
    Field { field: String, problem: String },
}
