//! Who may write: submitters (`server.submit_tokens`) and workers (`server.worker_tokens`), as axum
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

/// The sha256 of the `Authorization: Bearer <token>` presented, or 401 saying what is needed.
fn presented(parts: &Parts, needed: &str) -> Result<[u8; 32], ApiError> {
    parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()).into())
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, needed))
}

fn matches(token: &str, presented: &[u8; 32]) -> bool {
    Sha256::digest(token.as_bytes()).as_slice() == presented
}

/// A caller holding one of the submit tokens.
pub struct Submitter;

impl FromRequestParts<Arc<Shared>> for Submitter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> Result<Self, ApiError> {
        let presented = presented(
            parts,
            "submitting needs `Authorization: Bearer <token>` with a token from server.submit_tokens",
        )?;
        let tokens = &shared.config.server.submit_tokens;
        if tokens.iter().any(|t| matches(t, &presented)) {
            Ok(Submitter)
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "the token is not one this server accepts",
            ))
        }
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
        let presented = presented(
            parts,
            "workers authenticate with `Authorization: Bearer <token>` from server.worker_tokens",
        )?;
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
