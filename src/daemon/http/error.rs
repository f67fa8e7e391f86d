//! Error answers as one type: handlers return `Result<_, ApiError>` and use `?`, and every error leaves as
//! `{"error": {"code", "message"}}` ([`crate::wire::ErrorBody`]) with a code from [`ErrorCode`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::daemon::shared::Blocking;
use crate::wire::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 503 `storage`: a store or the queue could not be read or written.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Storage,
            e.to_string(),
        )
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadParameter, message)
    }

    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadBody, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 400 `malformed-digest`, when `digest` is not one reprod compares.
    pub fn check_digest(digest: &str) -> Result<(), Self> {
        crate::oci::digest::parse_compared(digest)
            .map(|_| ())
            .map_err(|m| Self::new(StatusCode::BAD_REQUEST, ErrorCode::MalformedDigest, m))
    }
}

/// A failed store or queue call is a storage error (503), whatever its own error was.
impl<E: std::fmt::Display> From<Blocking<E>> for ApiError {
    fn from(e: Blocking<E>) -> Self {
        ApiError::storage(e)
    }
}

/// Messages echo what clients sent (ids, names, parse errors quoting a body), so every one is made inert
/// here: a client printing it raw on a terminal sees escape sequences, not their effect.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: crate::text::inert_line(&self.message).into_owned(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}
