//! Recording a verdict: sign its attestations, then keep verdict, record, indexes and envelopes in one
//! transaction. The one path both in-process and remote workers' verdicts take.

use crate::attest::{self, AttestError};
use crate::store::{now_rfc3339, StoreError, VerdictRecord};

use super::Shared;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sign(#[from] AttestError),
}

/// Signs and stores `verdict` for `job` unless the job has one. Blocking (signing, flush): call it from
/// `spawn_blocking`. Returns the record when this call wrote it.
pub fn record_verdict(
    shared: &Shared,
    job: &str,
    verdict: &serde_json::Value,
) -> Result<Option<VerdictRecord>, RecordError> {
    if shared.store.has_verdict(job)? {
        return Ok(None);
    }
    let at = now_rfc3339();
    let signed = attest::attest(verdict, job, &at, &shared.signer)?;
    let envelopes: Vec<(&str, Vec<u8>)> =
        signed.into_iter().map(|a| (a.kind, a.envelope)).collect();
    let record = shared
        .store
        .put_verdict_once(job, verdict, &at, &envelopes)?;
    if let Some(r) = &record {
        shared.metrics.verdict_recorded(&r.status, r.duration_ms);
        tracing::info!(job, status = %r.status, attestations = ?r.attestations, "verdict recorded");
    }
    Ok(record)
}
