//! Intake: a provenance document, from HTTP, the inbox directory ([`inbox`]) or a watched registry
//! ([`registry`]), becomes a queued job or a recorded rejection. Signatures and the trust policy are
//! decided here, before anything is queued.

pub mod inbox;
pub mod registry;
mod registry_client;

use reprod_jobs::{Enqueued, JobId, NewJob, Queue};

use crate::daemon::shared::Shared;
use crate::examine;
use crate::provenance::container::NoBlobs;

/// What became of a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Intake {
    /// Queued under `job` (`duplicate_of` names it when this very document was already queued).
    Queued {
        job: String,
        duplicate_of: Option<String>,
    },
    /// Refused before queuing (signature, policy), with the reason code and a sentence.
    Rejected { reason: String, detail: String },
}

/// Why intake could not decide.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0}")]
    Parse(String),
    /// The stores could not be written: nothing was acknowledged.
    #[error("{0}")]
    Storage(String),
}

/// Decides about one document (blocking: parsing, verification and flushed writes).
pub fn ingest(shared: &Shared, bytes: &[u8]) -> Result<Intake, IntakeError> {
    let outcome = decide(shared, bytes);
    shared.metrics.intake(match &outcome {
        Ok(Intake::Queued {
            duplicate_of: None, ..
        }) => "queued",
        Ok(Intake::Queued { .. }) => "duplicate",
        Ok(Intake::Rejected { .. }) => "rejected",
        Err(IntakeError::Parse(_)) => "unparsable",
        Err(IntakeError::Storage(_)) => "storage-failed",
    });
    outcome
}

fn decide(shared: &Shared, bytes: &[u8]) -> Result<Intake, IntakeError> {
    let admitted = examine::admit(&shared.config, bytes, &NoBlobs, &shared.material)
        .map_err(|e| IntakeError::Parse(e.to_string()))?;
    let digest = format!("sha256:{}", admitted.sha256);
    if let Some(problem) = &admitted.refusal {
        shared
            .store
            .put_rejection(&digest, problem)
            .map_err(|e| IntakeError::Storage(e.to_string()))?;
        return Ok(Intake::Rejected {
            reason: problem.reason.clone(),
            detail: problem.detail.clone(),
        });
    }
    shared
        .store
        .put_provenance(&digest, bytes)
        .map_err(|e| IntakeError::Storage(e.to_string()))?;
    // The images its steps will run in stay until it has its verdict (a collection after another job
    // would otherwise remove them); noted before it is queued, so a worker that takes it at once finds
    // the note. Best effort: a failure costs a pull again, never the document.
    if shared.config.images.cache_bytes > 0 {
        if let Some(recipe) = &admitted.finding().recipe {
            let refs = crate::rebuild::images::step_references(&shared.config, recipe);
            if let Err(e) =
                crate::rebuild::images::want(&shared.config.data_dir, &admitted.sha256, &refs)
            {
                tracing::warn!(job = %digest, error = %e, "could not note the job's step images");
            }
        }
    }
    // Every document is its own job, judged on its own subjects: two documents for the same work (source
    // commit and steps) are not merged here. The worker reuses a completed rebuild of the same work for the
    // second, so the work runs once while each document gets a verdict of its own.
    let outcome = shared
        .queue
        .enqueue(NewJob {
            id: JobId(digest.clone()),
            aliases: Vec::new(),
            payload: bytes.to_vec(),
            priority: 0,
        })
        .map_err(|e| IntakeError::Storage(e.to_string()))?;
    if matches!(outcome, Enqueued::Duplicate(_))
        && shared.store.has_verdict(&digest).unwrap_or(false)
    {
        // Known and already judged: nothing will run for it.
        crate::rebuild::images::settle(&shared.config.data_dir, &admitted.sha256);
    }
    shared.wake.notify_waiters();
    if matches!(outcome, Enqueued::New) {
        tracing::info!(target: crate::daemon::JOBS, job = %digest, "queued");
    }
    Ok(match outcome {
        Enqueued::New => Intake::Queued {
            job: digest,
            duplicate_of: None,
        },
        Enqueued::Duplicate(known) => Intake::Queued {
            job: known.0.clone(),
            duplicate_of: Some(known.0),
        },
    })
}
