//! In-process workers: lease, rebuild with heartbeats, store the verdict once, complete.
//!
//! The verdict is written before the job is completed, and a worker that finds a verdict already stored
//! completes without rebuilding: a crash between the two never yields a second verdict.

use std::sync::Arc;
use std::time::Duration;

use reprod_jobs::{Completion, Lease, Queue, QueueError};
use reprod_sandbox::Executor;
use tokio::sync::watch;

use crate::daemon::shared::{blocking, Blocking, Shared};
use crate::execute::{self, Executed, Heartbeat};
use crate::rebuild;

/// Runs until `stop` turns true; a job in progress is finished first (the caller bounds that).
/// `executor` runs the steps (one per process, shared by every worker).
pub async fn run(
    shared: Arc<Shared>,
    executor: Arc<dyn Executor>,
    name: String,
    mut stop: watch::Receiver<bool>,
) {
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
        tracing::info!(target: crate::daemon::JOBS, worker = %name, job = %job, attempt = lease.attempt, "leased");
        let outcome = run_job(&shared, executor.as_ref(), &lease, ttl).await;
        shared.active.lock().map(|mut a| a.remove(&job)).ok();
        shared.saw_worker(&name, None);
        let Some(how) = outcome else {
            tracing::warn!(worker = %name, job = %job, "lease lost while rebuilding; the job is someone else's now");
            continue;
        };
        let (j, t) = (lease.job.clone(), lease.token.clone());
        match blocking(&shared, move |s| s.queue.complete(&j, &t, how)).await {
            // Done is said by "verdict recorded"; a retry or giving up is said here.
            Ok(reprod_jobs::JobState::Done) => {
                tracing::debug!(worker = %name, job = %job, "completed")
            }
            Ok(state) => {
                tracing::info!(target: crate::daemon::JOBS, worker = %name, job = %job, state = state.name(), "completed")
            }
            Err(Blocking::Op(QueueError::StaleLease(_))) => {
                tracing::warn!(worker = %name, job = %job, "completion refused: the lease had expired")
            }
            Err(e) => tracing::error!(worker = %name, job = %job, error = %e, "cannot complete"),
        }
    }
}

/// Renews a lease in the queue.
struct QueueHeartbeat<'a> {
    shared: &'a Arc<Shared>,
    lease: &'a Lease,
    ttl: Duration,
}

impl Heartbeat for QueueHeartbeat<'_> {
    fn every(&self) -> Duration {
        self.ttl / 3
    }

    async fn beat(&self) -> bool {
        let (j, t, ttl) = (self.lease.job.clone(), self.lease.token.clone(), self.ttl);
        match blocking(self.shared, move |s| s.queue.heartbeat(&j, &t, ttl)).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(job = %self.lease.job, error = %e, "heartbeat refused");
                false
            }
        }
    }
}

/// `None` when the lease was lost (heartbeat refused): the result must not be used.
async fn run_job(
    shared: &Arc<Shared>,
    executor: &dyn Executor,
    lease: &Lease,
    ttl: Duration,
) -> Option<Completion> {
    let job = lease.job.0.clone();
    let retry = |reason: String| Some(Completion::Retry { reason });
    let j = job.clone();
    match blocking(shared, move |s| s.store.has_verdict(&j)).await {
        Ok(true) => return Some(Completion::Done),
        Ok(false) => {}
        Err(e) => return retry(format!("store: {e}")),
    }
    let admitted =
        match execute::admit(&shared.config, &shared.material, lease.payload.clone()).await {
            Ok(a) => a,
            Err(e) => return retry(e),
        };
    let work_key = admitted
        .finding()
        .recipe
        .as_ref()
        .map(crate::provenance::Recipe::work_key);
    // The same work already rebuilt for another document: judge this one against it (unless this is a
    // recheck, whose point is to rebuild).
    let prior = match &work_key {
        Some(_) if super::recheck::is_recheck(&job) => None,
        Some(key) => {
            let k = key.clone();
            match blocking(shared, move |s| s.store.prior_rebuild(&k)).await {
                Ok(p) => p.filter(|(_, v)| v.holds_reusable_rebuild()),
                Err(e) => return retry(format!("store: {e}")),
            }
        }
        None => None,
    };
    if let Some((prior_job, _)) = &prior {
        tracing::info!(job = %job, reused = %prior_job, "same work as an earlier rebuild: judging against it");
    }
    let heartbeat = QueueHeartbeat { shared, lease, ttl };
    let prior = prior
        .as_ref()
        .map(|(j, v)| rebuild::Prior { job: j, verdict: v });
    let watch = |label: &str, chunk: &[u8]| shared.live.chunk(&job, label, chunk);
    let executed = execute::run(
        &shared.config,
        executor,
        &job,
        &admitted,
        prior,
        &heartbeat,
        Some(&watch),
    )
    .await;
    shared.live.finished(&job);
    match executed {
        Executed::Verdict { verdict, artifacts } => {
            let j = job.clone();
            let stored = blocking(shared, move |s| {
                s.store.put_artifacts(&j, &artifacts)?;
                super::record::record_verdict(s, &j, &verdict, work_key.as_deref())
            })
            .await;
            match stored {
                Ok(_) => Some(Completion::Done),
                Err(e) => retry(format!("store: {e}")),
            }
        }
        Executed::Retry(reason) => retry(reason),
        Executed::LeaseLost => None,
    }
}
