//! In-process workers: lease, rebuild with heartbeats, store the verdict once, complete.
//!
//! The verdict is written before the job is completed, and a worker that finds a verdict already stored
//! completes without rebuilding: a crash between the two never yields a second verdict.

use std::sync::Arc;
use std::time::Duration;

use reprod_jobs::{Completion, Lease, Queue, QueueError};
use tokio::sync::watch;

use super::{blocking, Shared};
use crate::rebuild::{self, RebuildError, RebuildOptions};

/// Runs until `stop` turns true; a job in progress is finished first (the caller bounds that).
pub async fn run(shared: Arc<Shared>, name: String, mut stop: watch::Receiver<bool>) {
    let ttl = Duration::from_secs(shared.config.server.lease_secs);
    let poll = Duration::from_millis(shared.config.server.poll_ms);
    shared.saw_worker(&name, None);
    while !*stop.borrow() {
        let worker = name.clone();
        let leased = blocking(&shared, move |s| s.queue.lease(&worker, ttl)).await;
        let lease = match leased {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tokio::select! {
                    _ = shared.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!(worker = %name, error = %e, "cannot lease: the queue store fails");
                tokio::time::sleep(poll * 5).await;
                continue;
            }
        };
        shared
            .active
            .lock()
            .map(|mut a| a.insert(lease.job.clone(), lease.token.clone()))
            .ok();
        let job = lease.job.clone();
        shared.saw_worker(&name, Some(job.0.clone()));
        tracing::info!(worker = %name, job = %job, attempt = lease.attempt, "leased");
        let outcome = run_job(&shared, &lease, ttl).await;
        shared.active.lock().map(|mut a| a.remove(&job)).ok();
        shared.saw_worker(&name, None);
        let Some(how) = outcome else {
            tracing::warn!(worker = %name, job = %job, "lease lost while rebuilding; the job is someone else's now");
            continue;
        };
        let (j, t) = (lease.job.clone(), lease.token.clone());
        match blocking(&shared, move |s| s.queue.complete(&j, &t, how)).await {
            Ok(state) => {
                tracing::info!(worker = %name, job = %job, state = state.name(), "completed")
            }
            Err(super::Blocking::Op(QueueError::StaleLease(_))) => {
                tracing::warn!(worker = %name, job = %job, "completion refused: the lease had expired")
            }
            Err(e) => tracing::error!(worker = %name, job = %job, error = %e, "cannot complete"),
        }
    }
}

/// `None` when the lease was lost (heartbeat refused): the result must not be used.
async fn run_job(shared: &Arc<Shared>, lease: &Lease, ttl: Duration) -> Option<Completion> {
    let job = lease.job.0.clone();
    let known = {
        let j = job.clone();
        blocking(shared, move |s| s.store.verdict(&j)).await
    };
    match known {
        Ok(Some(_)) => return Some(Completion::Done),
        Ok(None) => {}
        Err(e) => {
            return Some(Completion::Retry {
                reason: format!("store: {e}"),
            })
        }
    }
    let heartbeat = async {
        loop {
            tokio::time::sleep(ttl / 3).await;
            let (j, t) = (lease.job.clone(), lease.token.clone());
            if let Err(e) = blocking(shared, move |s| s.queue.heartbeat(&j, &t, ttl)).await {
                tracing::warn!(job = %lease.job, error = %e, "heartbeat refused");
                return;
            }
        }
    };
    let log_job = job.clone();
    let progress = move |line: &str| tracing::info!(job = %log_job, "{}", crate::text::inert(line));
    let opts = RebuildOptions {
        origin: format!("job {job}"),
        // Kept until its logs and diffs are in the store, then removed.
        keep_workspace: true,
        progress: &progress,
        variations: Default::default(),
        material: shared.material.clone(),
        blobs: &crate::provenance::container::NoBlobs,
        collected: true,
    };
    let admitted = {
        let payload = lease.payload.clone();
        blocking(shared, move |s| {
            crate::examine::admit(
                &s.config,
                &payload,
                &crate::provenance::container::NoBlobs,
                &s.material,
            )
        })
        .await
    };
    let admitted = match admitted {
        Ok(a) => a,
        Err(e) => {
            return Some(Completion::Retry {
                reason: format!("the leased document does not parse: {e}"),
            })
        }
    };
    let work_key = admitted
        .finding()
        .recipe
        .as_ref()
        .map(crate::provenance::Recipe::work_key);
    // The same work already rebuilt for another document: judge this one against it.
    let prior = match &work_key {
        Some(key) => {
            let k = key.clone();
            match blocking(shared, move |s| s.store.prior_rebuild(&k)).await {
                Ok(p) => p.filter(|(_, v)| rebuild::Prior::usable(v)),
                Err(e) => {
                    return Some(Completion::Retry {
                        reason: format!("store: {e}"),
                    })
                }
            }
        }
        None => None,
    };
    if let Some((prior_job, _)) = &prior {
        tracing::info!(job = %job, reused = %prior_job, "same work as an earlier rebuild: judging against it");
    }
    let rebuilt = rebuild::rebuild_admitted(
        &shared.config,
        &admitted,
        &opts,
        prior
            .as_ref()
            .map(|(j, v)| rebuild::Prior { job: j, verdict: v }),
    );
    let result = tokio::select! {
        r = rebuilt => r,
        () = heartbeat => return None,
    };
    Some(match result {
        Ok(mut verdict) => {
            let dir = verdict.job_dir.take().map(std::path::PathBuf::from);
            let j = job.clone();
            let kept = dir.clone();
            let stored = blocking(shared, move |s| {
                let files = kept
                    .as_deref()
                    .map(rebuild::job_artifacts)
                    .unwrap_or_default();
                s.store.put_artifacts(&j, &files)?;
                super::record::record_verdict(s, &j, &verdict, work_key.as_deref())
            })
            .await;
            if let Some(dir) = dir {
                if let Err(e) = rebuild::remove_job_dir(&dir).await {
                    tracing::warn!(path = %dir.display(), error = %e, "could not remove the job directory");
                }
            }
            match stored {
                Ok(_) => Completion::Done,
                Err(e) => Completion::Retry {
                    reason: format!("store: {e}"),
                },
            }
        }
        Err(RebuildError::Infrastructure(e)) => Completion::Retry { reason: e },
        Err(other) => Completion::Retry {
            reason: other.to_string(),
        },
    })
}
