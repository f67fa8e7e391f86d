//! One rebuild, end to end: provenance → recipe → checkout → steps in the sandbox → outputs → verdict.

mod matching;
mod steps;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reprod_sandbox::{Sandbox, StepMount};

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

/// Marks a job directory a worker keeps only until it has collected the logs.
const COLLECTED_MARKER: &str = ".collected-by-worker";

/// Removes the marked job directories of worker processes that no longer run (killed before they
/// collected and removed them). Job directory names carry the creating process id. Blocking. Returns how
/// many were removed.
pub fn sweep_abandoned_job_dirs(data_dir: &Path) -> std::io::Result<usize> {
    let jobs = data_dir.join("jobs");
    let entries = match std::fs::read_dir(&jobs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let abandoned = path.join(COLLECTED_MARKER).exists()
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists();
        if abandoned {
            std::fs::remove_dir_all(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Rebuilds from provenance bytes. Returns a verdict whenever one can honestly be given.
pub async fn rebuild(
    config: &Config,
    bytes: &[u8],
    opts: &RebuildOptions<'_>,
) -> Result<Verdict, RebuildError> {
    let started = Instant::now();
    let findings =
        crate::examine::examine(bytes, config.max_document_bytes, opts.blobs, &opts.material)
            .map_err(|error| RebuildError::Parse {
                path: opts.origin.clone(),
                error,
            })?;
    // A document may hold several statements (JSON Lines, Cloud Build's list): the first that is
    // provenance reprod can read is the one rebuilt.
    let Some(finding) = findings
        .iter()
        .find(|f| f.recipe.is_some())
        .or_else(|| findings.first())
    else {
        return Err(RebuildError::Parse {
            path: opts.origin.clone(),
            error: ParseError::NotAStatement("the document holds no statement".into()),
        });
    };
    if findings.len() > 1 {
        (opts.progress)(&format!(
            "the document holds {} statements; rebuilding the one at {}",
            findings.len(),
            finding.at
        ));
    }
    let mut verdict = Verdict {
        status: Status::Unrebuildable,
        reason: None,
        detail: String::new(),
        provenance: ProvenanceInfo {
            origin: opts.origin.clone(),
            sha256: oci::sha256_bytes(bytes)["sha256:".len()..].to_string(),
            signature: finding.verification.summary(),
            verification: finding.verification.clone(),
            container: finding.container.clone(),
            predicate_type: finding.predicate_type.clone().unwrap_or_default(),
        },
        source: None,
        fetched_url: None,
        subjects: subjects_unmatched(&finding.subjects),
        steps: Vec::new(),
        outputs: None,
        claimed_results: BTreeMap::new(),
        job_dir: None,
        reprod_version: env!("CARGO_PKG_VERSION"),
        duration_ms: 0,
    };
    if let Some(rejection) = judge(config, finding, &opts.material) {
        verdict.status = Status::Rejected;
        verdict.reason = Some(rejection.reason);
        verdict.detail = rejection.detail;
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
        (Some(recipe), None) => {
            verdict.source = recipe.source.clone();
            run(config, recipe, &mut verdict, opts).await?
        }
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
        verdict.status = Status::Unrebuildable;
        verdict.reason = Some(u.reason.to_string());
        verdict.detail = u.detail;
    }
    verdict.duration_ms = started.elapsed().as_millis() as u64;
    Ok(verdict)
}

/// Signature and policy: `Some` when the provenance must be refused before anything runs. (`_material` is
/// not consulted: how a keyless signer's identity was required is recorded in the signer itself.)
pub(crate) fn judge(
    config: &Config,
    finding: &crate::examine::Finding,
    _material: &crate::trust::TrustMaterial,
) -> Option<crate::examine::Problem> {
    use crate::trust::Verification;
    let refuse = |reason: &str, detail: String| {
        Some(crate::examine::Problem {
            reason: reason.to_string(),
            detail,
        })
    };
    match &finding.verification {
        Verification::Failed { reason } => refuse("signature-failed", reason.clone()),
        Verification::Unsigned { reason } if config.trust.require_signature => refuse(
            "unsigned",
            format!("{reason}; trust.require_signature is on"),
        ),
        Verification::Unverifiable { reason } if config.trust.require_signature => refuse(
            "unverified",
            format!("{reason}; trust.require_signature is on"),
        ),
        Verification::Verified { signers } => config
            .trust
            .admit(signers, &finding.subjects, finding.builder_id())
            .err()
            .and_then(|e| refuse("policy", e.to_string())),
        _ => None,
    }
}

fn subjects_unmatched(subjects: &[crate::provenance::Subject]) -> Vec<SubjectResult> {
    subjects
        .iter()
        .map(|s| SubjectResult {
            name: s.name.clone(),
            digest: s.sha256().unwrap_or_else(|| {
                s.digests
                    .iter()
                    .next()
                    .map_or_else(|| "(none)".into(), |(alg, hex)| format!("{alg}:{hex}"))
            }),
            matched: false,
            rebuilt_digest: None,
            rebuilt_path: None,
            explanation: None,
        })
        .collect()
}

/// The directories of one job. Everything a step can see lives under `root`.
struct JobDirs {
    root: PathBuf,
}

impl JobDirs {
    const WORKSPACE: &'static str = "workspace";
    const RESULTS: &'static str = "results";
    const HOME: &'static str = "home";
    const SCRIPTS: &'static str = "scripts";
    /// Full captured step logs; not mounted into any step.
    const LOGS: &'static str = "logs";

    fn create(data_dir: &Path, job_id: &str) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let root = data_dir.join("jobs").join(job_id);
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(root.join(Self::LOGS))?;
        for sub in [Self::WORKSPACE, Self::RESULTS, Self::HOME, Self::SCRIPTS] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p)?;
            // Steps may run as any user the image chooses; like Tekton's emptyDir volumes, these are writable.
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777))?;
        }
        Ok(JobDirs { root })
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }

    fn mounts(workspace_at: &str) -> Vec<StepMount> {
        let m = |sub: &str, at: &str, read_only: bool| StepMount {
            workspace_subdir: PathBuf::from(sub),
            container_path: at.to_string(),
            read_only,
        };
        vec![
            m(Self::WORKSPACE, workspace_at, false),
            m(Self::RESULTS, tekton::RESULTS_DIR, false),
            m(Self::HOME, tekton::HOME_DIR, false),
            m(Self::SCRIPTS, tekton::SCRIPTS_DIR, true),
        ]
    }
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
    let dirs = JobDirs::create(&config.data_dir, &job_id).map_err(|e| {
        infra(&format!(
            "cannot create the job directory under {}: {e}",
            config.data_dir.join("jobs").display()
        ))
    })?;
    if opts.collected {
        std::fs::write(dirs.root.join(COLLECTED_MARKER), b"")
            .map_err(|e| infra(&format!("cannot mark the job directory: {e}")))?;
    }
    let job = Job {
        config,
        recipe,
        opts,
        sandbox: &sandbox,
        id: job_id,
        dirs,
    };
    let result = run_in(&job, verdict).await;
    // A step cut short by the job deadline was dropped mid-flight; make sure its container is gone.
    if let Err(e) = sandbox.remove_job_containers(&job.id).await {
        tracing::warn!(job = %job.id, error = %e, "could not remove the job's containers");
    }
    let dirs = job.dirs;
    if opts.keep_workspace {
        (opts.progress)(&format!("kept the job directory: {}", dirs.root.display()));
        verdict.job_dir = Some(dirs.root.display().to_string());
    } else if let Err(e) = remove_job_dir(&dirs.root).await {
        tracing::warn!(path = %dirs.root.display(), error = %e, "could not remove the job directory");
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

/// Removes a job directory kept for its artifacts.
pub async fn remove_job_dir(root: &Path) -> std::io::Result<()> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::remove_dir_all(root))
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

    let deadline = Duration::from_secs(config.sandbox.job_timeout_secs);
    let steps = steps::run_steps(job, verdict);
    let finished = match tokio::time::timeout(deadline, steps).await {
        Ok(r) => r?,
        Err(_) => {
            verdict.status = Status::BuildFailed;
            verdict.reason = Some("job-timed-out".into());
            verdict.detail = format!(
                "the job exceeded its {}s wall-clock limit",
                deadline.as_secs()
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
    let root = dirs.path(JobDirs::WORKSPACE);
    let outputs = tokio::task::spawn_blocking(move || oci::collect(&root))
        .await
        .map_err(|e| RebuildError::Infrastructure(format!("output scan failed: {e}")))?;
    verdict.claimed_results = read_results(&dirs.path(JobDirs::RESULTS));
    matching::compare(recipe, &outputs, verdict);
    verdict.outputs = Some(outputs);
    if config.images.fetch_originals && verdict.status == Status::Unreproducible {
        matching::explain(job, verdict).await;
    }
    Ok(Ok(()))
}

fn source_failure(e: SourceError) -> Result<Result<(), Unrebuildable>, RebuildError> {
    let reason = match &e {
        SourceError::DisallowedScheme { .. } => UnrebuildableReason::DisallowedSourceScheme,
        SourceError::CommitNotFound { .. } | SourceError::BadCommit(_) => {
            UnrebuildableReason::CommitNotFound
        }
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
        std::fs::write(jobs.join(dead).join(COLLECTED_MARKER), b"").unwrap();
        std::fs::write(jobs.join(&mine).join(COLLECTED_MARKER), b"").unwrap();
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
