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
    #[error("statement field `{field}`: {problem}")]
    Field { field: String, problem: String },
}
