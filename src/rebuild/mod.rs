//! One rebuild, end to end: an admitted document's recipe → checkout → steps in the executor → outputs →
//! a [`RebuildOutcome`] of facts. [`crate::verdict::decide`] turns the outcome into a verdict; nothing here
//! decides a status.

mod buildkit;
mod config_source;
mod environment;
mod explain;
pub mod images;
mod jobdir;
mod network;
mod results;
mod steps;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use reprod_sandbox::Executor;

use crate::config::Config;
use crate::examine::Admitted;
use crate::oci;
use crate::provenance::{ParseError, Recipe, UnrebuildableReason};
use crate::source::{self, SourceError};
use crate::verdict::{Ending, RebuildOutcome, Reused, SubjectState, Verdict};

pub use environment::{move_workspace, Faithful, StepEnvironment};

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

/// A running step's output as it is written, for a person watching (`reprod rebuild` on a terminal): called
/// with the step's label (`step 2/3 build`) and each chunk. Lossy when the watcher lags; the step's log is
/// captured whole regardless.
pub type Watch<'a> = &'a (dyn Fn(&str, &[u8]) + Send + Sync);

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
    /// Who watches the running step's output, if anyone.
    pub watch: Option<Watch<'a>>,
    /// How each step is launched: faithfully ([`Faithful`]), or varied (`reprod rebuild --vary`).
    pub environment: &'a dyn StepEnvironment,
    /// Fetch each differing subject's original image and diff it against the rebuild (when
    /// `images.fetch_originals` is on too).
    pub explain: bool,
    /// The kept job directory is only waiting for this process to collect its logs (daemon and remote
    /// workers): it is marked, so that if the process dies first the next `serve` or `worker` on this data
    /// directory removes it ([`sweep_abandoned_job_dirs`]). A directory kept for a person never is.
    pub collected: bool,
}

pub use jobdir::artifacts as job_artifacts;
pub use jobdir::sweep_abandoned as sweep_abandoned_job_dirs;
use jobdir::JobDirs;

/// A completed rebuild of the same work (same source commit, steps and conventions) for another document,
/// to judge this document's subjects against instead of running the steps again.
pub struct Prior<'a> {
    /// The job whose verdict carries that rebuild.
    pub job: &'a str,
    pub verdict: &'a Verdict,
}

impl Prior<'_> {
    /// What the prior rebuild ran and found, carried over and named as reused; nothing runs.
    fn outcome(&self, origin: &str) -> RebuildOutcome {
        let p = self.verdict;
        RebuildOutcome {
            fetched_url: p.fetched_url.clone(),
            steps: p.steps.clone(),
            claimed_results: p.claimed_results.clone(),
            network: p.network.clone(),
            steps_from: p.steps_from.clone(),
            reused: Some(Reused {
                job: self.job.to_string(),
                source: p.source.clone(),
            }),
            ..RebuildOutcome::new(
                origin,
                Ending::Built {
                    outputs: p.outputs.clone().unwrap_or_default(),
                    explanations: BTreeMap::new(),
                },
            )
        }
    }
}

/// Tells the person watching which statement stands for the document, and when nothing vouches for who
/// wrote it.
pub fn announce(admitted: &Admitted, opts: &RebuildOptions<'_>) {
    let finding = admitted.finding();
    if admitted.findings.len() > 1 {
        (opts.progress)(&format!(
            "the document holds {} statements; rebuilding the one at {}",
            admitted.findings.len(),
            finding.at
        ));
    }
    if admitted.refusal.is_none() && !finding.verification.is_verified() {
        (opts.progress)(&format!(
            "warning: {}; this verdict says nothing about who wrote the provenance",
            finding.verification.summary()
        ));
    }
}

/// The outcome of a document that nothing can be run for (refused, or unrebuildable from what it says),
/// or `None` when its recipe can be run. Needs no engine.
pub fn settled(admitted: &Admitted, origin: &str) -> Option<RebuildOutcome> {
    let finding = admitted.finding();
    let ending = match (&admitted.refusal, &finding.recipe, &finding.unrebuildable) {
        (Some(rejection), _, _) => Ending::Refused {
            reason: rejection.reason.clone(),
            detail: rejection.detail.clone(),
        },
        (None, _, Some(problem)) => {
            Ending::unrebuildable(problem.reason.clone(), problem.detail.clone())
        }
        (None, None, None) => Ending::unrebuildable("no-recipe", "the statement yields no recipe"),
        (None, Some(_), None) => return None,
    };
    Some(RebuildOutcome::new(origin, ending))
}

/// Rebuilds an admitted document with `executor`, or (with `prior`) judges it against a rebuild of the
/// same work. `Err` only when no honest outcome can be given (an infrastructure failure).
pub async fn rebuild(
    config: &Config,
    admitted: &Admitted,
    executor: &dyn Executor,
    opts: &RebuildOptions<'_>,
    prior: Option<Prior<'_>>,
) -> Result<RebuildOutcome, RebuildError> {
    let started = Instant::now();
    let finding = admitted.finding();
    announce(admitted, opts);
    if let Some(outcome) = settled(admitted, &opts.origin) {
        return Ok(RebuildOutcome {
            duration_ms: started.elapsed().as_millis() as u64,
            ..outcome
        });
    }
    let mut outcome = match (&finding.recipe, prior) {
        (Some(_), Some(prior)) => prior.outcome(&opts.origin),
        (Some(recipe), None) => run(config, admitted, recipe, executor, opts).await?,
        (None, _) => RebuildOutcome::new(
            &opts.origin,
            Ending::unrebuildable("no-recipe", "the statement yields no recipe"),
        ),
    };
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// Runs checkout, steps, the output scan and the explanation of differences in a fresh job directory.
async fn run(
    config: &Config,
    admitted: &Admitted,
    recipe: &Recipe,
    executor: &dyn Executor,
    opts: &RebuildOptions<'_>,
) -> Result<RebuildOutcome, RebuildError> {
    let infra = |e: &dyn std::fmt::Display| RebuildError::Infrastructure(e.to_string());
    let job_id = format!(
        "{}-{}-{}",
        &admitted.sha256[..12],
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let (data_dir, quota, owner, collected) = (
        config.data_dir.clone(),
        config.sandbox.workspace_bytes,
        executor.userns_root(),
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
        admitted,
        recipe,
        opts,
        executor,
        id: job_id,
        dirs,
        deadline: Instant::now() + Duration::from_secs(config.sandbox.job_timeout_secs),
        used_images: std::sync::Mutex::new(Vec::new()),
        network: tokio::sync::Mutex::new(None),
    };
    let mut outcome = RebuildOutcome::new(&opts.origin, Ending::unrebuildable("not-run", ""));
    let ended = run_in(&job, &mut outcome).await;
    // Whatever ended the job (a deadline included), what the proxy saw is the job's record.
    if let Some(network) = job.network.lock().await.take() {
        outcome.network = Some(network.close());
    }
    // A step cut short by the job deadline was dropped mid-flight; make sure its container is gone.
    if let Err(e) = executor.remove_job_containers(&job.id).await {
        tracing::warn!(job = %job.id, error = %e, "could not remove the job's containers");
    }
    let used = job
        .used_images
        .lock()
        .map(|u| u.clone())
        .unwrap_or_default();
    images::collect_garbage(
        executor,
        &config.data_dir,
        &admitted.sha256,
        used,
        config.images.cache_bytes,
    )
    .await;
    let dirs = job.dirs;
    let image = dirs.image().map(Path::to_path_buf);
    let root = dirs.keep();
    // No outcome (an infrastructure failure), or nothing was built (unrebuildable): nobody is told where
    // the directory is, so it goes.
    let built_or_ran = matches!(ended, Ok(Ending::Built { .. } | Ending::BuildFailed { .. }));
    if opts.keep_workspace && built_or_ran {
        (opts.progress)(&match image {
            Some(image) if !opts.collected => format!(
                "kept the job directory: {} (a mounted filesystem image; `umount {0} && rm -r {0} {}` when done)",
                root.display(),
                image.display()
            ),
            _ => format!("kept the job directory: {}", root.display()),
        });
        outcome.job_dir = Some(root.display().to_string());
    } else if let Err(e) = remove_job_dir(&root).await {
        tracing::warn!(path = %root.display(), error = %e, "could not remove the job directory");
    }
    outcome.ending = ended?;
    Ok(outcome)
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
    admitted: &'a Admitted,
    recipe: &'a Recipe,
    opts: &'a RebuildOptions<'a>,
    executor: &'a dyn Executor,
    id: String,
    dirs: JobDirs,
    /// Steps, the output scan and the explanation of differences all end by this instant.
    deadline: Instant,
    /// The step images (as pulled) the job's steps ran in, for the image cache.
    used_images: std::sync::Mutex<Vec<String>>,
    /// The job's build network, once its first step opened it.
    network: tokio::sync::Mutex<Option<network::BuildNetwork>>,
}

/// Checkout, steps, output scan and explanations; facts go into `outcome` as they are learned, and the
/// ending is returned.
async fn run_in(job: &Job<'_>, outcome: &mut RebuildOutcome) -> Result<Ending, RebuildError> {
    let Job {
        config,
        recipe,
        opts,
        dirs,
        ..
    } = job;
    let Some(src) = recipe.source.clone() else {
        return Ok(unrebuildable(UnrebuildableReason::NoSource, "no source"));
    };
    (opts.progress)(&format!("fetching {} at {}", src.uri, src.commit));
    let source_config = config.source.clone();
    let source_subdir = recipe.build_type.conventions().source_subdir;
    let dest = dirs.path(JobDirs::WORKSPACE).join(source_subdir);
    let remapped = job.executor.userns_root().is_some();
    let checkout = tokio::task::spawn_blocking(move || {
        if remapped && source_subdir.is_empty() {
            // The checkout is the workspace itself, which was made for the step user: it is the daemon's
            // while git writes it (libgit2 refuses a repository another user owns), and handed back below.
            let me = rustix::process::getuid().as_raw();
            let group = rustix::process::getgid().as_raw();
            std::os::unix::fs::lchown(&dest, Some(me), Some(group)).map_err(|error| {
                SourceError::Io {
                    path: dest.display().to_string(),
                    error,
                }
            })?;
        }
        source::checkout(&source_config, &src.uri, &src.commit, &dest)
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("checkout task failed: {e}")))?;
    match checkout {
        Ok(c) => outcome.fetched_url = Some(c.fetched_url),
        Err(e) => return source_failure(e),
    }
    if let Some(owner) = job.executor.userns_root() {
        // The checkout is the steps' to write in (builds write their outputs beside the source).
        let source = dirs.path(JobDirs::WORKSPACE).join(source_subdir);
        tokio::task::spawn_blocking(move || jobdir::chown_tree(&source, owner))
            .await
            .map_err(|e| RebuildError::Infrastructure(e.to_string()))?
            .map_err(|e| {
                RebuildError::Infrastructure(format!("handing the checkout to the step user: {e}"))
            })?;
    }
    // Steps in the source, not the provenance (Cloud Build v1): read from the checkout, and said so.
    let checkout = dirs.path(JobDirs::WORKSPACE).join(source_subdir);
    let from_source = match config_source::steps_in_source(recipe, checkout, outcome).await? {
        Ok(found) => found,
        Err(ending) => return Ok(ending),
    };
    let recipe: &Recipe = from_source.as_ref().unwrap_or(recipe);
    // A BuildKit build request: one step of reprod's BuildKit builder, its base images fetched first.
    let from_plan = match buildkit::builder_step(job, recipe, outcome).await? {
        Ok(found) => found,
        Err(ending) => return Ok(ending),
    };
    let recipe: &Recipe = from_plan.as_ref().unwrap_or(recipe);
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
    let steps = steps::run_steps(job, recipe, &mut outcome.steps);
    match tokio::time::timeout_at(job.deadline.into(), steps).await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(ending))) => return Ok(ending),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Ok(Ending::build_failed(
                "job-timed-out",
                format!("the job exceeded its {}s wall-clock limit", limit.as_secs()),
            ))
        }
    }

    if recipe.buildkit.is_some() {
        buildkit::note_builder_version(job, outcome).await;
    }
    (opts.progress)("collecting outputs");
    let mut subjects = crate::verdict::subjects_of(job.admitted);
    let wanted: std::collections::HashSet<String> =
        subjects.iter().map(|s| s.digest.clone()).collect();
    let sink = dirs.path(network::SINK_DIR);
    let outputs = tokio::task::spawn_blocking(move || {
        let mut outputs =
            oci::collect_within(&root, limits.clone(), &wanted).without_inputs(&inputs);
        // What the build pushed is an output too: the sink is a layout of its own.
        if sink.join("index.json").is_file() {
            outputs.absorb(
                oci::collect_within(&sink, limits, &wanted),
                network::SINK_DIR,
            );
        }
        outputs
    })
    .await
    .map_err(|e| RebuildError::Infrastructure(format!("output scan failed: {e}")))?;
    if outputs.host_fault {
        return Err(RebuildError::Infrastructure(format!(
            "the output scan stopped on a fault of this host: {}",
            outputs.stopped.as_deref().unwrap_or("(unknown)")
        )));
    }
    outcome.claimed_results = results::read_results(&dirs.path(JobDirs::RESULTS), recipe);
    // Which subjects differ, to explain them (a scan that stopped early explains nothing: see decide).
    crate::verdict::judge_subjects(&mut subjects, &outputs);
    let differing: Vec<_> = subjects
        .into_iter()
        .filter(|s| {
            // Only images have originals a registry can serve to diff against.
            s.state == SubjectState::Differs
                && s.artifact == Some(crate::verdict::ArtifactKind::Image)
                && outputs.stopped.is_none()
        })
        .collect();
    let mut explanations = BTreeMap::new();
    if opts.explain && config.images.fetch_originals && !differing.is_empty() {
        // Explaining is best effort and bounded by the same deadline; the verdict stands without it (the
        // subjects left unexplained say how to see why).
        let explained = tokio::time::timeout_at(
            job.deadline.into(),
            explain::explain(job, &differing, &mut explanations),
        );
        if explained.await.is_err() {
            (opts.progress)("the job deadline came before every difference was explained");
        }
    }
    Ok(Ending::Built {
        outputs,
        explanations,
    })
}

fn unrebuildable(reason: UnrebuildableReason, detail: impl Into<String>) -> Ending {
    Ending::unrebuildable(reason.to_string(), detail)
}

fn source_failure(e: SourceError) -> Result<Ending, RebuildError> {
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
    Ok(unrebuildable(reason, e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests;
