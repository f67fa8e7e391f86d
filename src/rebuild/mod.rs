//! One rebuild, end to end: provenance → recipe → checkout → steps in the sandbox → outputs → verdict.

mod images;
mod jobdir;
mod matching;
mod steps;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use reprod_sandbox::Sandbox;

use crate::config::Config;
use crate::oci;
use crate::provenance::{tekton, ParseError, Recipe, Unrebuildable, UnrebuildableReason};
use crate::source::{self, SourceError};
use crate::verdict::{ProvenanceInfo, Status, SubjectResult, Verdict};

/// Largest Tekton result read back from the workspace.
const MAX_RESULT_BYTES: u64 = 64 << 10;

/// Failures that prevent any verdict (the input is unusable, or the infrastructure is down).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot read provenance {path}: {error}; check the path and permissions")]
    Read { path: String, error: std::io::Error },
    #[error("provenance {path} is {size} bytes, over the {limit}-byte limit (max_document_bytes)")]
    TooLarge {
        path: String,
        size: u64,
        limit: usize,
    },
    #[error("provenance {path} cannot be parsed: {error}")]
    Parse { path: String, error: ParseError },
    #[error("infrastructure failure (not a verdict on the artifact; retry once fixed): {0}")]
    Infrastructure(String),
}

/// Receives progress lines for a human watching.
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Reads a provenance file with the size cap applied before the bytes are held.
pub fn read_provenance(path: &Path, limit: usize) -> Result<Vec<u8>, RebuildError> {
    let display = path.display().to_string();
    let read_err = |error| RebuildError::Read {
        path: display.clone(),
        error,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() > limit {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(RebuildError::TooLarge {
            path: display,
            size,
            limit,
        });
    }
    Ok(bytes)
}

/// Options of one rebuild.
#[derive(Clone)]
pub struct RebuildOptions<'a> {
    /// Where the document came from (a path or a URL), for the verdict.
    pub origin: String,
    /// Keep the job directory (workspace, results, scripts) for inspection.
    pub keep_workspace: bool,
    pub progress: Progress<'a>,
    /// Environment variations to apply to every step (empty for a faithful rebuild).
    pub variations: std::collections::BTreeSet<crate::vary::Variation>,
    /// Keys and trust roots signatures are checked against.
    pub material: crate::trust::TrustMaterial,
    /// Where containers that refer to blobs (cosign `.att` manifests) find them.
    pub blobs: &'a (dyn crate::provenance::container::Blobs + Send + Sync),
    /// The kept job directory is only waiting for this process to collect its logs (daemon and remote
    /// workers): it is marked, so that if the process dies first the next `serve` or `worker` on this data
    /// directory removes it ([`sweep_abandoned_job_dirs`]). A directory kept for a person never is.
    pub collected: bool,
}

pub use jobdir::sweep_abandoned as sweep_abandoned_job_dirs;
use jobdir::JobDirs;

/// Rebuilds from provenance bytes. Returns a verdict whenever one can honestly be given.
pub async fn rebuild(
    config: &Config,
    bytes: &[u8],
    opts: &RebuildOptions<'_>,
) -> Result<Verdict, RebuildError> {
    let admitted =
        crate::examine::admit(config, bytes, opts.blobs, &opts.material).map_err(|error| {
            RebuildError::Parse {
                path: opts.origin.clone(),
                error,
            }
        })?;
    rebuild_admitted(config, &admitted, opts, None).await
}

/// A completed rebuild of the same work (same source commit, steps and conventions) for another document,
/// to judge this document's subjects against instead of running the steps again.
pub struct Prior<'a> {
    /// The job whose verdict carries that rebuild.
    pub job: &'a str,
    pub verdict: &'a Verdict,
}

impl Prior<'_> {
    /// Whether the prior verdict holds a rebuild this process can stand behind for other documents: it ran
    /// here (not a remote worker's claim), to completion, and its outputs were scanned and listed whole (a
    /// file left off the list could be another document's subject).
    pub fn usable(verdict: &Verdict) -> bool {
        verdict.reused_rebuild.is_none()
            && verdict.rebuilt_by.is_none()
            && matches!(
                verdict.status,
                Status::Reproducible | Status::Unreproducible
            )
            && verdict
                .outputs
                .as_ref()
                .is_some_and(|o| o.stopped.is_none() && o.files_omitted == 0)
    }
}

/// The verdict skeleton for an admitted document: every subject not compared yet.
pub fn verdict_for(admitted: &crate::examine::Admitted, origin: &str) -> Verdict {
    let finding = admitted.finding();
    Verdict::new(
        ProvenanceInfo {
            origin: origin.to_string(),
            sha256: admitted.sha256.clone(),
            signature: finding.verification.summary(),
            verification: finding.verification.clone(),
            container: finding.container.clone(),
            predicate_type: finding.predicate_type.clone().unwrap_or_default(),
        },
        finding.recipe.as_ref().and_then(|r| r.source.clone()),
        subjects_uncompared(&finding.subjects),
    )
}

/// Rebuilds an admitted document, or (with `prior`) judges it against a rebuild of the same work.
pub async fn rebuild_admitted(
    config: &Config,
    admitted: &crate::examine::Admitted,
    opts: &RebuildOptions<'_>,
    prior: Option<Prior<'_>>,
) -> Result<Verdict, RebuildError> {
    let started = Instant::now();
    let finding = admitted.finding();
    if admitted.findings.len() > 1 {
        (opts.progress)(&format!(
            "the document holds {} statements; rebuilding the one at {}",
            admitted.findings.len(),
            finding.at
        ));
    }
    let mut verdict = verdict_for(admitted, &opts.origin);
    if let Some(rejection) = &admitted.refusal {
        verdict.conclude_uncompared(
            Status::Rejected,
            &rejection.reason,
            rejection.detail.clone(),
        );
        verdict.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(verdict);
    }
    if !finding.verification.is_verified() {
        (opts.progress)(&format!(
            "warning: {}; this verdict says nothing about who wrote the provenance",
            finding.verification.summary()
        ));
    }
    let outcome = match (&finding.recipe, &finding.unrebuildable) {
        (Some(_), None) if prior.is_some() => {
            if let Some(p) = prior {
                judge_against(&mut verdict, &p);
            }
            Ok(())
        }
        (Some(recipe), None) => run(config, recipe, &mut verdict, opts).await?,
        (_, Some(problem)) => Err(Unrebuildable::new(
            UnrebuildableReason::Other(problem.reason.clone()),
            problem.detail.clone(),
        )),
        (None, None) => Err(Unrebuildable::new(
            UnrebuildableReason::Other("no-recipe".into()),
            "the statement yields no recipe",
        )),
    };
    if let Err(u) = outcome {
        verdict.conclude_uncompared(Status::Unrebuildable, &u.reason.to_string(), u.detail);
    }
    verdict.duration_ms = started.elapsed().as_millis() as u64;
    Ok(verdict)
}

/// Judges this document's subjects against a prior rebuild's outputs: what that rebuild ran and found is
/// carried over and named as reused; nothing is run.
fn judge_against(verdict: &mut Verdict, prior: &Prior<'_>) {
    let p = prior.verdict;
    verdict.source = p.source.clone();
    verdict.fetched_url = p.fetched_url.clone();
    verdict.steps = p.steps.clone();
    verdict.claimed_results = p.claimed_results.clone();
    verdict.reused_rebuild = Some(prior.job.to_string());
    verdict.rebuilt_by = p.rebuilt_by.clone();
    matching::compare(p.outputs.clone().unwrap_or_default(), verdict);
}

/// Sets every subject's state from `outputs` and decides the verdict, exactly as a rebuild here does (the
/// server holds a remote worker's claimed states to this).
pub fn judge_outputs(outputs: crate::oci::Outputs, verdict: &mut Verdict) {
    matching::compare(outputs, verdict);
}

fn subjects_uncompared(subjects: &[crate::provenance::Subject]) -> Vec<SubjectResult> {
    subjects
        .iter()
        .map(|s| {
            SubjectResult::not_compared(
                &s.name,
                s.sha256().unwrap_or_else(|| {
                    s.digests
                        .iter()
                        .next()
                        .map_or_else(|| "(none)".into(), |(alg, hex)| format!("{alg}:{hex}"))
                }),
            )
        })
        .collect()
}

/// Runs checkout, steps and comparison. The outer `Err` is infrastructure; the inner one an unrebuildable.
async fn run(
    config: &Config,
    recipe: &Recipe,
    verdict: &mut Verdict,
    opts: &RebuildOptions<'_>,
) -> Result<Result<(), Unrebuildable>, RebuildError> {
    let infra = |e: &dyn std::fmt::Display| RebuildError::Infrastructure(e.to_string());
    let sandbox = Sandbox::connect(config.policy())
        .await
        .map_err(|e| infra(&e))?;
    match sandbox.sweep_orphans().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            removed = n,
            "removed containers left by a reprod process that no longer runs"
        ),
        Err(e) => return Err(infra(&e)),
    }

    let job_id = format!(
        "{}-{}-{}",
        &verdict.provenance.sha256[..12],
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let (data_dir, quota, owner, collected) = (
        config.data_dir.clone(),
        config.sandbox.workspace_bytes,
        sandbox.userns_root(),
        opts.collected,
    );
    let id = job_id.clone();
    let dirs = tokio::task::spawn_blocking(move || {
        JobDirs::create(&data_dir, &id, quota, owner, collected)
    })
    .await
    .map_err(|e| infra(&e))?
    .map_err(|e| infra(&format!("cannot create the job directory: {e}")))?;
    let job = Job {
        config,
        recipe,
        opts,
        sandbox: &sandbox,
        id: job_id,
        dirs,
        deadline: Instant::now() + Duration::from_secs(config.sandbox.job_timeout_secs),
        used_images: std::sync::Mutex::new(Vec::new()),
    };
    let result = run_in(&job, verdict).await;
    // A step cut short by the job deadline was dropped mid-flight; make sure its container is gone.
    if let Err(e) = sandbox.remove_job_containers(&job.id).await {
        tracing::warn!(job = %job.id, error = %e, "could not remove the job's containers");
    }
    let used = job
        .used_images
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    images::collect_garbage(&sandbox, &config.data_dir, used, config.images.cache_bytes).await;
    let dirs = job.dirs;
    let image = dirs.image().map(Path::to_path_buf);
    let root = dirs.keep();
    // No verdict (an infrastructure failure): nobody is told where the directory is, so it goes.
    if opts.keep_workspace && matches!(result, Ok(Ok(()))) {
        (opts.progress)(&match image {
            Some(image) if !opts.collected => format!(
                "kept the job directory: {} (a mounted filesystem image; `umount {0} && rm -r {0} {}` when done)",
                root.display(),
                image.display()
            ),
            _ => format!("kept the job directory: {}", root.display()),
        });
        verdict.job_dir = Some(root.display().to_string());
    } else if let Err(e) = remove_job_dir(&root).await {
        tracing::warn!(path = %root.display(), error = %e, "could not remove the job directory");
    }
    result
}

/// A kept job directory's full step logs and diff reports, as `(logs/<file>, bytes)` pairs, for the
/// daemon's store. Blocking.
pub fn job_artifacts(job_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [JobDirs::LOGS, "diffs"] {
        let Ok(entries) = std::fs::read_dir(job_dir.join(sub)) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .collect();
        files.sort_by_key(|e| e.file_name());
        for e in files {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((format!("{sub}/{}", e.file_name().to_string_lossy()), bytes));
            }
        }
    }
    out
}

/// Removes a kept job directory (unmounting its filesystem, if it has one). Blocking.
pub fn remove_job_dir_blocking(root: &Path) -> std::io::Result<()> {
    jobdir::remove_at(root)
}

/// Removes a job directory kept for its artifacts (unmounting its filesystem, if it has one).
pub async fn remove_job_dir(root: &Path) -> std::io::Result<()> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || jobdir::remove_at(&root))
        .await
        .map_err(std::io::Error::other)?
}

/// Everything one running job needs.
struct Job<'a> {
    config: &'a Config,
    recipe: &'a Recipe,
    opts: &'a RebuildOptions<'a>,
    sandbox: &'a Sandbox,
    id: String,
    dirs: JobDirs,
    /// Steps, the output scan and the explanation of differences all end by this instant.
    deadline: Instant,
    /// The step images (as pulled) the job's steps ran in, for the image cache.
    used_images: std::sync::Mutex<Vec<String>>,
}

async fn run_in(
    job: &Job<'_>,
    verdict: &mut Verdict,
) -> Result<Result<(), Unrebuildable>, RebuildError> {
    let Job {
        config,
        recipe,
        opts,
        dirs,
        ..
    } = job;
    let Some(src) = recipe.source.clone() else {
        return Ok(Err(Unrebuildable::new(
            UnrebuildableReason::NoSource,
            "no source",
        )));
    };
    (opts.progress)(&format!("fetching {} at {}", src.uri, src.commit));
    let source_config = config.source.clone();
    let dest = dirs.path(JobDirs::WORKSPACE).join(tekton::SOURCE_WORKSPACE);
    let checkout = tokio::task::spawn_blocking(move || {
        source::checkout(&source_config, &src.uri, &src.commit, &dest)
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("checkout task failed: {e}")))?;
    match checkout {
        Ok(c) => verdict.fetched_url = Some(c.fetched_url),
        Err(e) => return source_failure(e),
    }
    if let Some(owner) = job.sandbox.userns_root() {
        // The checkout is the steps' to write in (builds write their outputs beside the source).
        let source = dirs.path(JobDirs::WORKSPACE).join(tekton::SOURCE_WORKSPACE);
        tokio::task::spawn_blocking(move || jobdir::chown_tree(&source, owner))
            .await
            .map_err(|e| RebuildError::Infrastructure(e.to_string()))?
            .map_err(|e| {
                RebuildError::Infrastructure(format!("handing the checkout to the step user: {e}"))
            })?;
    }
    // What the workspace holds before any step runs is the build's input: it is taken out of the outputs
    // afterwards, so a subject that is only a file of the source is never "rebuilt".
    let root = dirs.path(JobDirs::WORKSPACE);
    let limits = oci::ScanLimits {
        deadline: Some(job.deadline),
        ..oci::ScanLimits::default()
    };
    let inputs = {
        // Every input file is kept (not only the first listed ones), so none can pass as an output.
        let limits = oci::ScanLimits {
            max_files_listed: usize::MAX,
            ..limits.clone()
        };
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            oci::collect_within(&root, limits, &std::collections::HashSet::new())
        })
        .await
        .map_err(|e| RebuildError::Infrastructure(format!("source scan failed: {e}")))?
    };

    let limit = Duration::from_secs(config.sandbox.job_timeout_secs);
    let steps = steps::run_steps(job, verdict);
    let finished = match tokio::time::timeout_at(job.deadline.into(), steps).await {
        Ok(r) => r?,
        Err(_) => {
            verdict.conclude_uncompared(
                Status::BuildFailed,
                "job-timed-out",
                format!("the job exceeded its {}s wall-clock limit", limit.as_secs()),
            );
            return Ok(Ok(()));
        }
    };
    if let Err(u) = finished {
        return Ok(Err(u));
    }
    if verdict.status == Status::BuildFailed {
        return Ok(Ok(()));
    }

    (opts.progress)("collecting outputs");
    let wanted: std::collections::HashSet<String> =
        verdict.subjects.iter().map(|s| s.digest.clone()).collect();
    let outputs = tokio::task::spawn_blocking(move || {
        oci::collect_within(&root, limits, &wanted).without_inputs(&inputs)
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("output scan failed: {e}")))?;
    if outputs.host_fault {
        return Err(RebuildError::Infrastructure(format!(
            "the output scan stopped on a fault of this host: {}",
            outputs.stopped.as_deref().unwrap_or("(unknown)")
        )));
    }
    verdict.claimed_results = read_results(&dirs.path(JobDirs::RESULTS));
    let stopped = outputs.stopped.clone();
    matching::compare(outputs, verdict);
    if let (Some(why), false) = (stopped, verdict.status == Status::Reproducible) {
        // A subject not found in a scan that stopped early may only not have been reached: that is a limit
        // of this rebuilder, not a finding about the artifact.
        verdict.conclude_uncompared(
            Status::BuildFailed,
            "output-scan-limit",
            format!("the outputs could not all be read ({why}); this is a limit of this rebuilder, not a finding about the artifact"),
        );
        return Ok(Ok(()));
    }
    if config.images.fetch_originals && verdict.status == Status::Unreproducible {
        // Explaining is best effort and bounded by the same deadline; the verdict stands without it (the
        // subjects left unexplained say how to see why).
        let explained =
            tokio::time::timeout_at(job.deadline.into(), matching::explain(job, verdict));
        if explained.await.is_err() {
            (opts.progress)("the job deadline came before every difference was explained");
        }
    }
    Ok(Ok(()))
}

fn source_failure(e: SourceError) -> Result<Result<(), Unrebuildable>, RebuildError> {
    let reason = match &e {
        SourceError::DisallowedScheme { .. } => UnrebuildableReason::DisallowedSourceScheme,
        SourceError::CommitNotFound { .. } | SourceError::BadCommit(_) => {
            UnrebuildableReason::CommitNotFound
        }
        SourceError::Fetch {
            transient: true, ..
        } => return Err(RebuildError::Infrastructure(format!("checkout: {e}"))),
        SourceError::Fetch { .. } => UnrebuildableReason::SourceUnavailable,
        SourceError::HeadMismatch { .. } | SourceError::Git { .. } | SourceError::Io { .. } => {
            return Err(RebuildError::Infrastructure(format!("checkout: {e}")))
        }
    };
    Ok(Err(Unrebuildable::new(reason, e.to_string())))
}

/// Tekton results the build wrote (claims, not evidence), each bounded.
fn read_results(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let mut text = String::new();
        if let Ok(f) = std::fs::File::open(e.path()) {
            let _ = f.take(MAX_RESULT_BYTES).read_to_string(&mut text);
        }
        out.insert(e.file_name().to_string_lossy().into_owned(), text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_marked_job_directories_of_dead_processes_are_swept() {
        let data = tempfile::tempdir().unwrap();
        let jobs = data.path().join("jobs");
        // Above any pid_max Linux allows: no such process.
        let dead = "0123456789ab-4194399-1";
        let kept_by_a_person = "0123456789ab-4194398-1";
        let mine = format!("0123456789ab-{}-1", std::process::id());
        for name in [dead, kept_by_a_person, &mine] {
            std::fs::create_dir_all(jobs.join(name).join("workspace")).unwrap();
        }
        std::fs::write(jobs.join(format!("{dead}.collected")), b"").unwrap();
        std::fs::write(jobs.join(format!("{mine}.collected")), b"").unwrap();
        assert_eq!(sweep_abandoned_job_dirs(data.path()).unwrap(), 1);
        assert!(!jobs.join(dead).exists());
        assert!(
            jobs.join(kept_by_a_person).exists(),
            "--keep-workspace directories stay"
        );
        assert!(
            jobs.join(&mine).exists(),
            "a running process's directory stays"
        );
        assert_eq!(
            sweep_abandoned_job_dirs(&data.path().join("none")).unwrap(),
            0
        );
    }
}
