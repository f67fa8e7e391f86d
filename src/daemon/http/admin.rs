//! The operator's routes (`server.admin_tokens`): the queue's jobs by state, cancelling a job that waits,
//! retrying a dead one. A job's verdict is never touched: a done job keeps it.

use super::base::Base;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use reprod_jobs::{JobId, JobInfo, JobState, Operate, Queue, QueueError};

use super::auth::Admin;
use super::error::ApiError;
use crate::daemon::shared::{blocking, Blocking, Shared};
use crate::wire::{ErrorCode, QueuedJob, QueuedJobs};

/// The states a job can be listed by.
const STATES: [&str; 5] = ["ready", "delayed", "leased", "done", "dead"];
/// Longest cancellation reason kept.
const MAX_REASON_CHARS: usize = 200;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelQuery {
    reason: Option<String>,
}

/// `GET /v1/admin/jobs?state=&after=&limit=`.
pub async fn jobs(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<QueuedJobs>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_parameter(e.body_text()))?;
    if let Some(state) = q.state.as_deref().filter(|s| !STATES.contains(s)) {
        return Err(ApiError::bad_parameter(format!(
            "state {:?} is not one of {}",
            crate::text::inert_line(state),
            STATES.join(", ")
        )));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=reprod_jobs::MAX_LIST).contains(&limit) {
        return Err(ApiError::bad_parameter(format!(
            "limit must be 1 to {}",
            reprod_jobs::MAX_LIST
        )));
    }
    let list = blocking(&shared, move |s| {
        s.queue
            .list(q.state.as_deref(), q.after.map(JobId).as_ref(), limit)
    })
    .await
    .map_err(failure)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|j| j.id.0.clone()))
        .flatten();
    Ok(Json(QueuedJobs {
        jobs: list.iter().map(|j| view(j, &base)).collect(),
        next,
    }))
}

/// `POST /v1/admin/jobs/{id}/cancel?reason=`: a ready or delayed job to the dead letters.
pub async fn cancel(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    Path(id): Path<String>,
    query: Result<Query<CancelQuery>, QueryRejection>,
) -> Result<Json<QueuedJob>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_parameter(e.body_text()))?;
    let reason = q.reason.unwrap_or_else(|| "no reason given".into());
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::bad_parameter(format!(
            "reason is over {MAX_REASON_CHARS} characters"
        )));
    }
    let reason = crate::text::inert_line(&reason).into_owned();
    let info = blocking(&shared, move |s| s.queue.cancel(&JobId(id), &reason))
        .await
        .map_err(failure)?;
    tracing::warn!(job = %info.id, "job cancelled by an operator");
    Ok(Json(view(&info, &base)))
}

/// `POST /v1/admin/jobs/{id}/retry`: a dead job back to the queue, its attempts given back.
pub async fn retry(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    Path(id): Path<String>,
) -> Result<Json<QueuedJob>, ApiError> {
    let info = blocking(&shared, move |s| s.queue.retry(&JobId(id)))
        .await
        .map_err(failure)?;
    shared.wake.notify_waiters();
    tracing::warn!(job = %info.id, "dead job queued again by an operator");
    Ok(Json(view(&info, &base)))
}

fn view(info: &JobInfo, base: &str) -> QueuedJob {
    let updated =
        chrono::DateTime::from_timestamp_millis(info.updated_ms as i64).unwrap_or_default();
    QueuedJob {
        id: info.id.0.clone(),
        state: info.state.name().to_string(),
        attempt: info.attempt,
        last_error: info.last_error.clone(),
        dead_reason: match &info.state {
            JobState::Dead { reason } => Some(reason.clone()),
            _ => None,
        },
        worker: match &info.state {
            JobState::Leased { worker, .. } => Some(worker.clone()),
            _ => None,
        },
        updated: crate::store::format_time(updated),
        url: format!("{base}{}", super::pages::job_href(&info.id.0)),
    }
}

fn failure(e: Blocking<QueueError>) -> ApiError {
    match e {
        Blocking::Op(QueueError::UnknownJob(j)) => {
            ApiError::not_found(ErrorCode::UnknownJob, format!("no job {j} in the queue"))
        }
        Blocking::Op(e @ QueueError::WrongState { .. }) => {
            ApiError::new(StatusCode::CONFLICT, ErrorCode::WrongState, e.to_string())
        }
        e => ApiError::storage(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecheckQuery {
    /// A digest (`sha256:…`), or an image name (its newest digest).
    target: String,
}

/// `POST /v1/admin/recheck?target=DIGEST|NAME`: a fresh rebuild of the document whose verdict decides the
/// digest (for a name, its newest digest), as a job of its own; its verdict joins the history.
pub async fn recheck(
    _: Admin,
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    query: Result<Query<RecheckQuery>, QueryRejection>,
) -> Result<(StatusCode, Json<QueuedJob>), ApiError> {
    let Query(RecheckQuery { target }) = query.map_err(|e| {
        ApiError::bad_parameter(format!(
            "{}; the one parameter is `target`, a digest or an image name",
            e.body_text()
        ))
    })?;
    let n = target.chars().count();
    if n == 0 || n > crate::store::MAX_IMAGE_NAME || target.chars().any(char::is_control) {
        return Err(ApiError::bad_parameter(format!(
            "target must be a digest or an image name of 1 to {} characters without control characters",
            crate::store::MAX_IMAGE_NAME
        )));
    }
    let t = target.clone();
    let found = blocking(&shared, move |s| -> Result<_, crate::store::StoreError> {
        let decided = if crate::verdict::is_sha256(&t) {
            let history = s.store.history(&t)?;
            crate::store::deciding(&history, &t, None).cloned()
        } else {
            s.store
                .digests_under(&t, 200)?
                .into_iter()
                .next()
                .map(|d| d.decided_by)
        };
        let Some(document) = decided.and_then(|r| r.provenance_sha256) else {
            return Ok(None);
        };
        let document = format!("sha256:{document}");
        Ok(s.store
            .provenance(&document)?
            .map(|bytes| (document, bytes)))
    })
    .await?;
    let Some((document, payload)) = found else {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!(
                "no verdict with a kept document decides {}",
                crate::text::inert_line(&target)
            ),
        ));
    };
    let id = crate::daemon::work::recheck::job_id(&document, chrono::Utc::now());
    let job = JobId(id.clone());
    let info = blocking(&shared, move |s| {
        s.queue.enqueue(reprod_jobs::NewJob {
            id: job.clone(),
            aliases: Vec::new(),
            payload,
            priority: 0,
        })?;
        s.queue
            .get(&job)?
            .ok_or_else(|| QueueError::UnknownJob(job.clone()))
    })
    .await
    .map_err(failure)?;
    shared.wake.notify_waiters();
    tracing::info!(target: crate::daemon::JOBS, job = %id, "queued (a recheck asked by an operator)");
    Ok((StatusCode::ACCEPTED, Json(view(&info, &base))))
}
