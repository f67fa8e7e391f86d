//! `POST /v1/provenance`: a document, with a submit token, becomes a queued job or a recorded refusal.

use super::base::Base;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::auth::Submitter;
use super::body::read_body;
use super::error::ApiError;
use crate::daemon::intake::{ingest, Intake, IntakeError};
use crate::daemon::shared::{blocking, Blocking, Shared};
use crate::wire::{ErrorCode, Submission, SubmitAnswer, SubmittedJob};

pub async fn submit(
    State(shared): State<Arc<Shared>>,
    Base(base): Base,
    _: Submitter,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SubmitAnswer>), ApiError> {
    let limit = shared.config.max_document_bytes;
    let body = read_body(&headers, body, limit, "the document", "max_document_bytes").await?;
    match blocking(&shared, move |s| ingest(s, &body)).await {
        Ok(Intake::Queued { job, duplicate_of }) => Ok((
            StatusCode::ACCEPTED,
            Json(SubmitAnswer {
                jobs: vec![SubmittedJob {
                    url: format!("{base}/v1/jobs/{job}"),
                    page: format!("{base}/jobs/{job}"),
                    id: job,
                    status: if duplicate_of.is_some() {
                        Submission::Duplicate
                    } else {
                        Submission::New
                    },
                }],
            }),
        )),
        Ok(Intake::Rejected { reason, detail }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Refused(reason),
            detail,
        )),
        Err(Blocking::Op(IntakeError::Parse(msg))) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Unparsable,
            msg,
        )),
        Err(e) => Err(ApiError::storage(format!(
            "intake stopped, nothing was recorded: {e}"
        ))),
    }
}
