//! The daemon's publisher (`[publish]`): takes up each recorded verdict from the store's timeline, pushes
//! its signed statements to registries ([`push`]), and records the outcome per
//! verdict. It runs beside the work queue and never holds it up: a registry that does not answer only
//! delays publications, each retried with backoff until `publish.max_attempts`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::shared::{blocking, Shared};
mod push;

use crate::wire::{Publication, PublicationState};
pub use push::Publisher;
use push::{Attempt, Signed};

/// Verdicts taken up, and publications tried, per round.
const BATCH: usize = 64;

pub async fn run(shared: Arc<Shared>, publisher: Publisher, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(shared.config.server.poll_ms.clamp(200, 5000));
    loop {
        if let Err(e) = round(&shared, &publisher, &stop).await {
            tracing::error!(error = %e, "publisher: the store fails");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn round(
    shared: &Arc<Shared>,
    publisher: &Publisher,
    stop: &watch::Receiver<bool>,
) -> Result<(), String> {
    let now = unix_now();
    blocking(shared, move |s| s.store.take_up_publications(now, BATCH))
        .await
        .map_err(|e| e.to_string())?;
    let due = blocking(shared, move |s| s.store.due_publications(now, BATCH))
        .await
        .map_err(|e| e.to_string())?;
    for job in due {
        if *stop.borrow() {
            break;
        }
        publish_one(shared, publisher, &job).await?;
    }
    Ok(())
}

async fn publish_one(shared: &Arc<Shared>, publisher: &Publisher, job: &str) -> Result<(), String> {
    let j = job.to_string();
    let (record, current, signed) = blocking(shared, move |s| -> Result<_, String> {
        let e = |e: crate::store::StoreError| e.to_string();
        let record = s.store.record(&j).map_err(e)?;
        let current = s.store.publication(&j).map_err(e)?.unwrap_or_default();
        let mut signed = Vec::new();
        for kind in record.iter().flat_map(|r| &r.attestations) {
            if let Some(envelope) = s.store.attestation(&j, kind).map_err(e)? {
                signed.push(Signed {
                    kind: kind.clone(),
                    envelope,
                });
            }
        }
        Ok((record, current, signed))
    })
    .await
    .map_err(|e| e.to_string())?;
    let recorded_at = record.map(|r| r.recorded_at).unwrap_or_default();
    let attempt = publisher.publish(job, &recorded_at, &signed).await;
    let next = settle(current, attempt, publisher, unix_now());
    let outcome = match (next.state, next.error.is_some()) {
        (PublicationState::Pending, _) => "retry",
        (state, _) => state.as_str(),
    };
    shared.metrics.publish_attempt(outcome);
    match &next.error {
        Some(error) => tracing::warn!(
            job,
            attempts = next.attempts,
            state = next.state.as_str(),
            error,
            "verdict not published"
        ),
        None => tracing::info!(
            job,
            state = next.state.as_str(),
            pushed = next.pushed.len(),
            skipped = next.skipped.len(),
            "verdict publication"
        ),
    }
    let j = job.to_string();
    blocking(shared, move |s| s.store.put_publication(&j, &next))
        .await
        .map_err(|e| e.to_string())
}

/// The record after an attempt: published (or not publishable) when it went through; else pending with
/// its next attempt's time, or failed once `publish.max_attempts` are spent.
fn settle(current: Publication, attempt: Attempt, publisher: &Publisher, now: u64) -> Publication {
    let attempts = current.attempts.saturating_add(1);
    let config = publisher.config();
    let (state, due) = match &attempt.error {
        None if attempt.pushed.is_empty() => (PublicationState::NotPublished, None),
        None => (PublicationState::Published, None),
        Some(_) if attempts >= config.max_attempts => (PublicationState::Failed, None),
        Some(_) => (
            PublicationState::Pending,
            Some(now + crate::publish::backoff(config.retry_base_secs, attempts)),
        ),
    };
    Publication {
        state,
        attempts,
        last_attempt_at: Some(crate::store::now_rfc3339()),
        due,
        error: attempt.error,
        pushed: attempt.pushed,
        skipped: attempt.skipped,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
