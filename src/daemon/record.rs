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
    // One recording at a time: sequence numbers then follow recording times, which lists and
    // Last-Modified rely on. Signing and one flush are short next to a rebuild.
    let _one_at_a_time = shared
        .record_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

/// Holds a remote worker's verdict to the document it was leased: the server signs it, so the worker may
/// not choose what is signed. The provenance digest is the job's; the sha256 subjects must be the
/// document's, each once at least; and `reproducible` needs every one of them matched.
pub fn check_remote_verdict(
    shared: &Shared,
    job: &str,
    verdict: &mut serde_json::Value,
) -> Result<(), String> {
    use crate::attest::statements::is_sha256;
    let document = shared
        .store
        .provenance(job)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("job {job} has no stored document"))?;
    let findings = crate::examine::examine(
        &document,
        shared.config.max_document_bytes,
        &crate::provenance::container::NoBlobs,
        &shared.material,
    )
    .map_err(|e| format!("the job's document no longer parses: {e}"))?;
    let finding = findings
        .iter()
        .find(|f| f.recipe.is_some())
        .or_else(|| findings.first())
        .ok_or("the job's document holds no statement")?;
    let mut expected: Vec<String> = finding
        .subjects
        .iter()
        .filter_map(|s| s.sha256())
        .filter(|d| is_sha256(d))
        .collect();
    expected.sort_unstable();
    expected.dedup();
    let subjects = verdict["subjects"].as_array().cloned().unwrap_or_default();
    let mut given: Vec<String> = subjects
        .iter()
        .filter_map(|s| s["digest"].as_str())
        .filter(|d| is_sha256(d))
        .map(str::to_string)
        .collect();
    given.sort_unstable();
    given.dedup();
    if given != expected {
        return Err(format!(
            "the verdict's sha256 subjects {given:?} are not the document's {expected:?}"
        ));
    }
    if verdict["status"] == "reproducible"
        && subjects
            .iter()
            .any(|s| s["digest"].as_str().is_some_and(is_sha256) && s["matched"] != true)
    {
        return Err("a reproducible verdict with a subject that did not match".into());
    }
    verdict["provenance"]["sha256"] = job.trim_start_matches("sha256:").into();
    Ok(())
}
