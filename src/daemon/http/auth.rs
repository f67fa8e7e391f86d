//! Who may write: submitters (`server.submit_tokens`), operators (`server.admin_tokens`) and workers
//! (`server.worker_tokens`), as axum
//! extractors. They read only headers, so a handler that takes one never reads the body of a caller
//! without a token. Tokens are compared as sha256 digests.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::daemon::shared::Shared;
use crate::wire::ErrorCode;

/// The sha256 of the `Authorization: Bearer <token>` presented: `Ok(None)` for an `Authorization` header
/// that is not a bearer token, 401 saying what is needed when there is none at all.
fn presented(parts: &Parts, needed: &str) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(value) = parts.headers.get("authorization") else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            needed,
        ));
    };
    Ok(value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()).into()))
}

fn matches(token: &str, presented: &[u8; 32]) -> bool {
    Sha256::digest(token.as_bytes()).as_slice() == presented
}

/// `Ok` when the bearer token presented is one of `tokens` (the option `option`); 401 without one, 403
/// for any other (another kind of credential is no token this server accepts).
fn holds_one_of(
    parts: &Parts,
    tokens: &[String],
    option: &str,
    needed: &str,
) -> Result<(), ApiError> {
    let presented = presented(parts, needed)?;
    if presented.is_some_and(|p| tokens.iter().any(|t| matches(t, &p))) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        if tokens.is_empty() {
            format!("this server has no {option}: it accepts no token here")
        } else {
            format!("the token is not one of this server's {option}")
        },
    ))
}

/// A caller holding one of the submit tokens.
pub struct Submitter;

impl FromRequestParts<Arc<Shared>> for Submitter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        holds_one_of(
            parts,
            &shared.config.server.submit_tokens,
            "server.submit_tokens",
            "submitting needs `Authorization: Bearer <token>` with a token from server.submit_tokens",
        )
        .map(|()| Submitter)
    }
}

/// An operator holding one of the admin tokens.
pub struct Admin;

impl FromRequestParts<Arc<Shared>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        holds_one_of(
            parts,
            &shared.config.server.admin_tokens,
            "server.admin_tokens",
            "the admin routes need `Authorization: Bearer <token>` with a token from server.admin_tokens",
        )
        .map(|()| Admin)
    }
}

/// A registered remote worker, by its name in `server.worker_tokens`.
pub struct WorkerName(pub String);

impl WorkerName {
    /// The name the queue and the dashboard know this worker by.
    pub fn queue_name(&self) -> String {
        format!("remote:{}", self.0)
    }
}

impl FromRequestParts<Arc<Shared>> for WorkerName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let needed =
            "workers authenticate with `Authorization: Bearer <token>` from server.worker_tokens";
        let Some(presented) = presented(parts, needed)? else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthenticated,
                needed,
            ));
        };
        shared
            .config
            .server
            .worker_tokens
            .iter()
            .find(|(_, t)| matches(t, &presented))
            .map(|(name, _)| WorkerName(name.clone()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "not a registered worker (registration is closed: workers are configured in server.worker_tokens)",
                )
            })
    }
}
