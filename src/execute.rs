//! Running one leased job, the same way for in-process workers and remote ones: admit the document, judge
//! it against a prior rebuild of the same work or rebuild it while heartbeats keep the lease, then collect
//! the job's logs and diffs and remove its directory. What becomes of the result (stored here, or sent to
//! the server) is the caller's.

use std::future::Future;
use std::time::Duration;

use reprod_sandbox::{Executor, Sandbox, SandboxError};

use crate::config::Config;
use crate::examine::Admitted;
use crate::rebuild::{self, Prior, RebuildError, RebuildOptions};
use crate::trust::TrustMaterial;
use crate::verdict::Verdict;

/// Keeps a lease while its job runs.
pub trait Heartbeat: Sync {
    /// How often to beat (a third of the lease).
    fn every(&self) -> Duration;
    /// Renews the lease; `false` once the lease is lost (the job is someone else's now).
    fn beat(&self) -> impl Future<Output = bool> + Send;
}

/// What running a leased job came to.
pub enum Executed {
    /// A verdict, with the job's full step logs and diff reports (`logs/…`, `diffs/…`).
    Verdict {
        verdict: Box<Verdict>,
        artifacts: Vec<(String, Vec<u8>)>,
    },
    /// No verdict could honestly be given (an infrastructure failure): run the job again later.
    Retry(String),
    /// A heartbeat was refused: the result must not be used.
    LeaseLost,
}

/// Admits a leased document (blocking work, off the async threads).
pub async fn admit(
    config: &Config,
    material: &TrustMaterial,
    payload: Vec<u8>,
) -> Result<Admitted, String> {
    let (config, material) = (config.clone(), material.clone());
    tokio::task::spawn_blocking(move || {
        crate::examine::admit(
            &config,
            &payload,
            &crate::provenance::container::NoBlobs,
            &material,
        )
        .map_err(|e| format!("the leased document does not parse: {e}"))
    })
    .await
    .map_err(|e| format!("admitting the document: {e}"))?
}

/// Rebuilds with `executor` (or, with `prior`, judges against an earlier rebuild) the admitted document of
/// `job` while `heartbeat` keeps the lease, and decides its verdict.
pub async fn run(
    config: &Config,
    executor: &dyn Executor,
    job: &str,
    admitted: &Admitted,
    prior: Option<Prior<'_>>,
    heartbeat: &impl Heartbeat,
    watch: Option<rebuild::Watch<'_>>,
) -> Executed {
    let log_job = job.to_string();
    let progress = move |line: &str| tracing::info!(job = %log_job, "{}", crate::text::inert(line));
    let opts = RebuildOptions {
        origin: format!("job {job}"),
        // Kept until its logs and diffs are collected, then removed.
        keep_workspace: true,
        progress: &progress,
        environment: &rebuild::Faithful,
        explain: true,
        collected: true,
        watch,
    };
    let beating = async {
        loop {
            tokio::time::sleep(heartbeat.every()).await;
            if !heartbeat.beat().await {
                return;
            }
        }
    };
    let result = tokio::select! {
        r = rebuild::rebuild(config, admitted, executor, &opts, prior) => r,
        () = beating => return Executed::LeaseLost,
    };
    match result {
        Ok(outcome) => {
            let mut verdict = crate::verdict::decide(admitted, outcome);
            let artifacts = match verdict.job_dir.take().map(std::path::PathBuf::from) {
                Some(dir) => collect(&dir).await,
                None => Vec::new(),
            };
            Executed::Verdict {
                verdict: Box::new(verdict),
                artifacts,
            }
        }
        Err(RebuildError::Infrastructure(e)) => Executed::Retry(e),
        Err(other) => Executed::Retry(other.to_string()),
    }
}

/// The job directory's logs and diffs, read before the directory is removed.
async fn collect(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let d = dir.to_path_buf();
    let files = tokio::task::spawn_blocking(move || rebuild::job_artifacts(&d))
        .await
        .unwrap_or_default();
    if let Err(e) = rebuild::remove_job_dir(dir).await {
        tracing::warn!(path = %dir.display(), error = %e, "could not remove the job directory");
    }
    files
}

/// Removes the job directories a killed worker process left, at process start
/// ([`rebuild::sweep_abandoned_job_dirs`]).
pub async fn sweep_job_dirs(data_dir: &std::path::Path) {
    let dir = data_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || rebuild::sweep_abandoned_job_dirs(&dir)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => tracing::warn!(
            removed = n,
            "removed job directories left by a reprod process that no longer runs"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not sweep abandoned job directories"),
        Err(e) => tracing::warn!(error = %e, "job directory sweep failed"),
    }
}

/// The process's one executor: the Docker engine under the configured policy, with the containers that
/// reprod processes no longer running left behind removed (once, at start; rebuilds do not sweep).
pub async fn connect(config: &Config) -> Result<Sandbox, SandboxError> {
    let sandbox = Sandbox::connect(config.policy()).await?;
    let swept = sandbox.sweep_orphans().await?;
    if swept > 0 {
        tracing::warn!(
            removed = swept,
            "removed containers left by a reprod process that no longer runs"
        );
    }
    Ok(sandbox)
}
