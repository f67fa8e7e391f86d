//! The remote-worker protocol: `POST /v1/worker/lease`, `/heartbeat` and `/complete`. A worker token
//! ([`WorkerName`]) opens each; heartbeat and complete also need the current lease's token, and a
//! completion for a lease that expired is refused (another worker may hold the job by then).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use reprod_jobs::{JobId, JobState, LeaseToken, Queue, QueueError};
use serde_json::value::RawValue;

use super::auth::WorkerName;
use super::body::read_body;
use super::error::ApiError;
use crate::daemon::shared::{blocking, Blocking, Shared};
use crate::daemon::work::record;
use crate::wire::{Completion, CompletionAnswer, ErrorCode, Heartbeat, HeartbeatAnswer, Lease};

/// The most a heartbeat body may hold: a job id and a lease token.
pub const HEARTBEAT_BODY_BYTES: usize = 64 << 10;

pub async fn lease(
    State(shared): State<Arc<Shared>>,
    worker: WorkerName,
) -> Result<Response, ApiError> {
    let secs = shared.config.server.lease_secs;
    let who = worker.queue_name();
    let leased = blocking(&shared, move |s| {
        s.queue.lease(&who, Duration::from_secs(secs))
    })
    .await?;
    let Some(l) = leased else {
        shared.saw_worker(&worker.queue_name(), None);
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    shared.saw_worker(&worker.queue_name(), Some(l.job.0.clone()));
    tracing::info!(target: crate::daemon::JOBS, worker = %worker.queue_name(), job = %l.job, attempt = l.attempt, "leased");
    Ok(Json(Lease {
        job: l.job.0,
        token: l.token.0,
        attempt: l.attempt,
        lease_secs: secs,
        payload: base64::engine::general_purpose::STANDARD.encode(l.payload),
    })
    .into_response())
}

/// The lease must be current (409 otherwise) and this worker's (403 otherwise).
async fn check_lease(
    shared: &Arc<Shared>,
    worker: &WorkerName,
    job: &str,
    token: &str,
) -> Result<(), ApiError> {
    let id = JobId(job.to_string());
    let Some(info) = blocking(shared, move |s| s.queue.get(&id)).await? else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownJob,
            format!("no job {job}"),
        ));
    };
    match info.state {
        JobState::Leased {
            token: t,
            worker: holder,
            ..
        } if t.0 == token => {
            if holder == worker.queue_name() {
                Ok(())
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NotYourLease,
                    format!("job {job} is leased to {holder}"),
                ))
            }
        }
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::StaleLease,
            format!(
                "job {job} is not leased with this token (it expired, was completed or taken over)"
            ),
        )),
    }
}

pub async fn heartbeat(
    State(shared): State<Arc<Shared>>,
    worker: WorkerName,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let limit = HEARTBEAT_BODY_BYTES;
    let bytes = read_body(&headers, body, limit, "a heartbeat", "heartbeats are small").await?;
    let hb: Heartbeat = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_body("expected {\"job\", \"token\"}"))?;
    check_lease(&shared, &worker, &hb.job, &hb.token).await?;
    shared.saw_worker(&worker.queue_name(), Some(hb.job.clone()));
    let secs = shared.config.server.lease_secs;
    let (job, token) = (JobId(hb.job), LeaseToken(hb.token));
    blocking(&shared, move |s| {
        s.queue.heartbeat(&job, &token, Duration::from_secs(secs))
    })
    .await
    .map_err(queue_failure)?;
    Ok(Json(HeartbeatAnswer { lease_secs: secs }))
}

/// How long a completion's body may take to arrive once it is being read.
const COMPLETION_READ: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn complete(
    State(shared): State<Arc<Shared>>,
    worker: WorkerName,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CompletionAnswer>, ApiError> {
    let limit = shared.config.server.max_completion_bytes;
    let setting = "server.max_completion_bytes";
    // A few at once, each up to its limit: memory for completions is bounded by that product, however
    // many authenticated workers send at the same time (the others wait, their bodies unread).
    let _reading = shared.completions.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "the server is shutting down; send the completion again",
        )
    })?;
    // Read whole within a deadline: a worker that trickles its body cannot hold a reading slot forever.
    let bytes = tokio::time::timeout(
        COMPLETION_READ,
        read_body(&headers, body, limit, "the completion", setting),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BadBody,
            format!(
                "the completion was not sent whole within {} s; send it again",
                COMPLETION_READ.as_secs()
            ),
        )
    })??;
    // The verdict stays raw JSON until the lease is found to be this worker's.
    let done: Completion<Box<RawValue>> = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_body(format!(
            "expected {{job, token, verdict | retry, artifacts}}: {e}"
        ))
    })?;
    check_lease(&shared, &worker, &done.job, &done.token).await?;
    shared.saw_worker(&worker.queue_name(), None);
    let how = match (done.verdict, done.retry) {
        (Some(verdict), None) => {
            store_remote_verdict(&shared, &worker, &done.job, &verdict, &done.artifacts).await?;
            reprod_jobs::Completion::Done
        }
        (None, Some(reason)) => reprod_jobs::Completion::Retry { reason },
        _ => {
            return Err(ApiError::bad_body(
                "give exactly one of `verdict` and `retry`",
            ))
        }
    };
    let job_id = done.job.clone();
    let (job, token) = (JobId(done.job), LeaseToken(done.token));
    let state = blocking(&shared, move |s| s.queue.complete(&job, &token, how))
        .await
        .map_err(queue_failure)?;
    if state != reprod_jobs::JobState::Done {
        tracing::info!(target: crate::daemon::JOBS, worker = %worker.queue_name(), job = %job_id, state = state.name(), "completed");
    }
    Ok(Json(CompletionAnswer {
        state: state.name().to_string(),
    }))
}

/// Parses a remote worker's verdict, holds it to what this server can check, and records it with the
/// worker's logs and diffs.
async fn store_remote_verdict(
    shared: &Arc<Shared>,
    worker: &WorkerName,
    job: &str,
    verdict: &RawValue,
    artifacts: &std::collections::BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let bad_verdict =
        |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::BadVerdict, m);
    let verdict: crate::verdict::Verdict = serde_json::from_str(verdict.get())
        .map_err(|e| bad_verdict(format!("`verdict` is not a verdict object: {e}")))?;
    let (j, name) = (job.to_string(), worker.0.clone());
    let (verdict, work_key) = blocking(shared, move |s| {
        record::check_remote_verdict(s, &j, &name, verdict)
    })
    .await
    .map_err(|e| match e {
        Blocking::Op(why) => bad_verdict(why),
        e => ApiError::storage(e),
    })?;
    let mut files = Vec::new();
    for (name, b64) in artifacts {
        let ok_name =
            (name.starts_with("logs/") || name.starts_with("diffs/")) && !name.contains("..");
        match crate::json::decode_base64(b64) {
            Ok(bytes) if ok_name => files.push((name.clone(), bytes)),
            _ => {
                return Err(ApiError::bad_body(format!(
                    "artifact {name:?}: expected logs/… or diffs/… with base64 content"
                )))
            }
        }
    }
    let j = job.to_string();
    blocking(shared, move |s| {
        s.store.put_artifacts(&j, &files)?;
        record::record_verdict(s, &j, &verdict, work_key.as_deref())
    })
    .await?;
    Ok(())
}

/// A lease that expired between the check and the write is a conflict; anything else is storage.
fn queue_failure(e: Blocking<QueueError>) -> ApiError {
    match e {
        Blocking::Op(QueueError::StaleLease(j)) => ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::StaleLease,
            format!("job {j}: the lease expired"),
        ),
        e => ApiError::storage(e),
    }
}
