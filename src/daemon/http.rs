//! The daemon's HTTP API (this part): submit provenance with a token, read a job, health, and
//! the remote-worker protocol (lease, heartbeat, complete with the lease token).
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
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/provenance", post(submit))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/artifacts/{*name}", get(artifact));
    worker_routes(router)
        // Verdicts uploaded by workers carry logs tails; allow them beside documents.
        .layer(DefaultBodyLimit::max(limit.max(64 << 20)))
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
    if body.len() > shared.config.max_document_bytes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!(
                "the document is over the {}-byte limit (max_document_bytes)",
                shared.config.max_document_bytes
            ),
        );
    }
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
        let artifacts = s.store.artifact_names(&lookup).map_err(|e| e.to_string())?;
        Ok((info, verdict, artifacts))
    })
    .await;
    match found {
        Ok((Some(info), verdict, artifacts)) => Json(json!({
            "id": id,
            "state": info.state.name(),
            "attempt": info.attempt,
            "last_error": info.last_error,
            "verdict": verdict,
            "artifacts": artifacts,
        }))
        .into_response(),
        Ok((None, _, _)) => error(StatusCode::NOT_FOUND, "unknown-job", format!("no job {id}")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}

/// One stored log (`logs/00-build.log`, text) or diff report (`diffs/0.json`).
async fn artifact(
    State(shared): State<Arc<Shared>>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let (j, n) = (id.clone(), name.clone());
    match blocking(&shared, move |s| s.store.artifact(&j, &n)).await {
        Ok(Some(bytes)) => {
            let kind = if name.ends_with(".json") {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            ([("content-type", kind)], bytes).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "unknown-artifact",
            format!("job {id} has no artifact {name}"),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}

// ---- remote workers ----

/// The worker a `Bearer` token belongs to (`server.worker_tokens`), or the refusal.
fn worker_of(shared: &Shared, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.trim().as_bytes()));
    let Some(presented) = presented else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "workers authenticate with `Authorization: Bearer <token>` from server.worker_tokens",
        )));
    };
    shared
        .config
        .server
        .worker_tokens
        .iter()
        .find(|(_, t)| Sha256::digest(t.as_bytes()) == presented)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| {
            Box::new(error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "not a registered worker (registration is closed: workers are configured in server.worker_tokens)",
            ))
        })
}

/// A lease handed to a remote worker.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RemoteLease {
    pub job: String,
    pub token: String,
    pub attempt: u32,
    pub lease_secs: u64,
    /// The provenance document, base64.
    pub payload: String,
}

/// What a remote worker reports.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RemoteCompletion {
    pub job: String,
    pub token: String,
    /// The verdict, when one was reached.
    pub verdict: Option<serde_json::Value>,
    /// Why the job should be retried, when no verdict was reached.
    pub retry: Option<String>,
    /// Full step logs and diff reports (`logs/…`, `diffs/…` → base64), kept with the verdict.
    #[serde(default)]
    pub artifacts: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
pub struct RemoteHeartbeat {
    pub job: String,
    pub token: String,
}

pub fn worker_routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/v1/worker/lease", post(worker_lease))
        .route("/v1/worker/heartbeat", post(worker_heartbeat))
        .route("/v1/worker/complete", post(worker_complete))
}

async fn worker_lease(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let secs = shared.config.server.lease_secs;
    let who = format!("remote:{name}");
    match blocking(&shared, move |s| {
        s.queue.lease(&who, std::time::Duration::from_secs(secs))
    })
    .await
    {
        Ok(Some(l)) => {
            use base64::Engine;
            Json(RemoteLease {
                job: l.job.0,
                token: l.token.0,
                attempt: l.attempt,
                lease_secs: secs,
                payload: base64::engine::general_purpose::STANDARD.encode(l.payload),
            })
            .into_response()
        }
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}

/// The lease must be current (409 otherwise) and this worker's (403 otherwise).
async fn check_lease(shared: &Arc<Shared>, name: &str, job: &str, token: &str) -> Option<Response> {
    let id = JobId(job.to_string());
    let info = match blocking(shared, move |s| s.queue.get(&id)).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Some(error(
                StatusCode::NOT_FOUND,
                "unknown-job",
                format!("no job {job}"),
            ))
        }
        Err(e) => {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                e.to_string(),
            ))
        }
    };
    match info.state {
        reprod_jobs::JobState::Leased {
            token: t, worker, ..
        } if t.0 == token => (worker != format!("remote:{name}")).then(|| {
            error(
                StatusCode::FORBIDDEN,
                "not-your-lease",
                format!("job {job} is leased to {worker}"),
            )
        }),
        _ => Some(error(
            StatusCode::CONFLICT,
            "stale-lease",
            format!(
                "job {job} is not leased with this token (it expired, was completed or taken over)"
            ),
        )),
    }
}

async fn worker_heartbeat(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<RemoteHeartbeat>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let Ok(Json(hb)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad-body",
            "expected {\"job\", \"token\"}",
        );
    };
    if let Some(refusal) = check_lease(&shared, &name, &hb.job, &hb.token).await {
        return refusal;
    }
    let secs = shared.config.server.lease_secs;
    let (job, token) = (JobId(hb.job), reprod_jobs::LeaseToken(hb.token));
    match blocking(&shared, move |s| {
        s.queue
            .heartbeat(&job, &token, std::time::Duration::from_secs(secs))
    })
    .await
    {
        Ok(_) => Json(json!({"lease_secs": secs})).into_response(),
        Err(e) => queue_failure(e),
    }
}

async fn worker_complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Json<RemoteCompletion>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let name = match worker_of(&shared, &headers) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let done = match body {
        Ok(Json(d)) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-body", e.body_text()),
    };
    if let Some(refusal) = check_lease(&shared, &name, &done.job, &done.token).await {
        return refusal;
    }
    let how = match (done.verdict, done.retry) {
        (Some(verdict), None) => {
            let job = done.job.clone();
            let mut files = Vec::new();
            for (name, b64) in &done.artifacts {
                let ok_name = (name.starts_with("logs/") || name.starts_with("diffs/"))
                    && !name.contains("..");
                match crate::provenance::json::decode_base64(b64) {
                    Ok(bytes) if ok_name => files.push((name.clone(), bytes)),
                    _ => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "bad-body",
                            format!(
                                "artifact {name:?}: expected logs/… or diffs/… with base64 content"
                            ),
                        )
                    }
                }
            }
            let stored = blocking(&shared, move |s| {
                s.store.put_artifacts(&job, &files)?;
                s.store.put_verdict_once(&job, &verdict)
            });
            if let Err(e) = stored.await {
                return error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string());
            }
            reprod_jobs::Completion::Done
        }
        (None, Some(reason)) => reprod_jobs::Completion::Retry { reason },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "give exactly one of `verdict` and `retry`",
            )
        }
    };
    let (job, token) = (JobId(done.job), reprod_jobs::LeaseToken(done.token));
    match blocking(&shared, move |s| s.queue.complete(&job, &token, how)).await {
        Ok(state) => Json(json!({"state": state.name()})).into_response(),
        Err(e) => queue_failure(e),
    }
}

/// A lease that expired between the check and the write is a conflict; anything else is storage.
fn queue_failure(e: Blocking<reprod_jobs::QueueError>) -> Response {
    match e {
        Blocking::Op(reprod_jobs::QueueError::StaleLease(j)) => error(
            StatusCode::CONFLICT,
            "stale-lease",
            format!("job {j}: the lease expired"),
        ),
        e => error(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    }
}
