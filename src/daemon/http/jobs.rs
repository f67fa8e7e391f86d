//! `GET /v1/jobs/{id}` (a job, its record and its verdict as kept) and its stored logs and diff reports.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use reprod_jobs::{JobId, Queue};
use serde_json::value::RawValue;

use super::base::Base;
use super::conditional::conditional;
use super::error::ApiError;
use super::read::record_view;
use crate::daemon::shared::{blocking, Shared};
use crate::store::VerdictRecord;
use crate::wire::{ErrorCode, JobView};

/// Everything known about a job, for the API and the job page. The verdict is its JSON as kept.
pub(crate) struct JobParts {
    pub info: reprod_jobs::JobInfo,
    pub verdict: Option<Box<RawValue>>,
    pub record: Option<VerdictRecord>,
    pub artifacts: Vec<String>,
    pub publication: Option<crate::wire::Publication>,
}

pub(crate) async fn job_parts(
    shared: &Arc<Shared>,
    id: &str,
) -> Result<Option<JobParts>, ApiError> {
    let lookup = id.to_string();
    let parts = blocking(shared, move |s| -> Result<_, String> {
        let Some(info) = s
            .queue
            .get(&JobId(lookup.clone()))
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        Ok(Some(JobParts {
            info,
            verdict: s.store.verdict_json(&lookup).map_err(|e| e.to_string())?,
            record: s.store.record(&lookup).map_err(|e| e.to_string())?,
            artifacts: s.store.artifact_names(&lookup).map_err(|e| e.to_string())?,
            publication: s.store.publication(&lookup).map_err(|e| e.to_string())?,
        }))
    })
    .await?;
    Ok(parts)
}

pub async fn job(
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(v) = job_parts(&shared, &id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::UnknownJob,
            format!("no job {id}"),
        ));
    };
    let view: JobView<Box<RawValue>> = JobView {
        state: v.info.state.name().to_string(),
        attempt: v.info.attempt,
        last_error: v.info.last_error,
        record: v.record.as_ref().map(|r| record_view(&base, r)),
        verdict: v.verdict,
        artifacts: v.artifacts,
        publication: v.publication,
        id,
    };
    // The queue state changes after the verdict is recorded: no date, the ETag decides.
    conditional(&headers, &view, None)
}

/// One stored log (`logs/00-build.log`, text) or diff report (`diffs/0.json`).
pub async fn artifact(
    State(shared): State<Arc<Shared>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (j, n) = (id.clone(), name.clone());
    match blocking(&shared, move |s| s.store.artifact(&j, &n)).await? {
        Some(bytes) => {
            let kind = if name.ends_with(".json") {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            Ok(([("content-type", kind)], bytes).into_response())
        }
        None => Err(ApiError::not_found(
            ErrorCode::UnknownArtifact,
            format!("job {id} has no artifact {name}"),
        )),
    }
}
