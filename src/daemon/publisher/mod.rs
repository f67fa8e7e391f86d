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
    let publisher = Arc::new(publisher);
    loop {
        // A push in flight when the server stops is dropped: it is tried again after the restart, and
        // pushing again writes the same bytes.
        tokio::select! {
            r = round(&shared, &publisher) => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "publisher: the store fails");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn round(shared: &Arc<Shared>, publisher: &Arc<Publisher>) -> Result<(), String> {
    let now = unix_now();
    blocking(shared, move |s| s.store.take_up_publications(now, BATCH))
        .await
        .map_err(|e| e.to_string())?;
    let due = blocking(shared, move |s| s.store.due_publications(now, BATCH))
        .await
        .map_err(|e| e.to_string())?;
    for job in due {
        // One job the store cannot read for is logged and waits; the others go on.
        if let Err(e) = publish_one(shared, publisher, &job).await {
            tracing::error!(job, error = %e, "publisher: cannot publish");
        }
    }
    Ok(())
}

async fn publish_one(
    shared: &Arc<Shared>,
    publisher: &Arc<Publisher>,
    job: &str,
) -> Result<(), String> {
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
    let recorded_at = record
        .as_ref()
        .map(|r| r.recorded_at.clone())
        .unwrap_or_default();
    let recorded: Vec<(String, String)> = record
        .iter()
        .flat_map(|r| &r.subjects)
        .map(|s| (s.name.clone(), s.digest.clone()))
        .collect();
    // In a task of its own: a registry client that panics on a hostile answer costs this attempt only.
    let (p, j) = (publisher.clone(), job.to_string());
    let attempt =
        tokio::spawn(async move { p.publish(&j, &recorded_at, &signed, &recorded).await })
            .await
            .unwrap_or_else(|e| {
                tracing::error!(job, error = %e, "publisher: the attempt ended abnormally");
                Attempt {
                error: Some(
                    "the attempt ended abnormally in the registry client (this host's log says why)"
                        .into(),
                ),
                ..Attempt::default()
            }
            });
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
