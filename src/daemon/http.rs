//! The daemon's HTTP API (this part): submit provenance with a token, read a job, health.
//! Errors are JSON `{"error": {"code", "message"}}` with a stable code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use reprod_jobs::{JobId, Queue};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ingest::{ingest, Intake, IntakeError};
use super::{blocking, Blocking, Shared};

pub fn router(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_document_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/provenance", post(submit))
        .route("/v1/jobs/{id}", get(job))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match blocking(&shared, |s| s.queue.stats()).await {
        Ok(stats) => Json(json!({"status": "ok", "queue": stats})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}

/// `Authorization: Bearer <token>` against `server.submit_tokens`, compared as sha256 digests. Returns the
/// refusal, if any.
fn refuse_unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(value) = headers.get("authorization") else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "submitting needs `Authorization: Bearer <token>` with a token from server.submit_tokens",
        ));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let known = shared
        .config
        .server
        .submit_tokens
        .iter()
        .any(|t| Some(Sha256::digest(t.as_bytes())) == presented);
    (!known).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token is not one this server accepts",
        )
    })
}

async fn submit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(refusal) = refuse_unauthorized(&shared, &headers) {
        return refusal;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the document is over the {}-byte limit (max_document_bytes)",
                    shared.config.max_document_bytes
                ),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-body", e.body_text()),
    };
    match blocking(&shared, move |s| ingest(s, &body)).await {
        Ok(Intake::Queued { job, duplicate_of }) => (
            StatusCode::ACCEPTED,
            Json(json!({"jobs": [{"id": job, "status": if duplicate_of.is_some() { "duplicate" } else { "new" }}]})),
        )
            .into_response(),
        Ok(Intake::Rejected { reason, detail }) => error(StatusCode::UNPROCESSABLE_ENTITY, &reason, detail),
        Err(Blocking::Op(IntakeError::Parse(msg))) => error(StatusCode::BAD_REQUEST, "unparsable", msg),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            format!("intake stopped, nothing was recorded: {e}"),
        ),
    }
}

async fn job(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    let found = blocking(&shared, move |s| -> Result<_, String> {
        let info = s
            .queue
            .get(&JobId(lookup.clone()))
            .map_err(|e| e.to_string())?;
        let verdict = s.store.verdict(&lookup).map_err(|e| e.to_string())?;
        Ok((info, verdict))
    })
    .await;
    match found {
        Ok((Some(info), verdict)) => Json(json!({
            "id": id,
            "state": info.state.name(),
            "attempt": info.attempt,
            "last_error": info.last_error,
            "verdict": verdict,
        }))
        .into_response(),
        Ok((None, _)) => error(StatusCode::NOT_FOUND, "unknown-job", format!("no job {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}
