//! Running the recorded steps, in order, with the job's executor.

use std::path::Path;

use reprod_sandbox::{PinnedImage, SandboxError, StepProfile, StepSpec, Termination};

use super::{move_workspace, Job, JobDirs, RebuildError};
use crate::config::Config;
use crate::provenance::{tekton, Recipe, UnrebuildableReason};
use crate::verdict::{Ending, StepReport, StepTermination};

/// Lines of a failed step's log carried in the verdict.
const LOG_TAIL_LINES: usize = 40;

/// Runs the steps in order, reporting each into `reports`; stops at the first that does not succeed.
/// `None` when every step succeeded; otherwise how the rebuild ended (a failed step, or a step image that
/// cannot be had).
pub(super) async fn run_steps(
    job: &Job<'_>,
    recipe: &Recipe,
    reports: &mut Vec<StepReport>,
) -> Result<Option<Ending>, RebuildError> {
    let Job {
        config,
        opts,
        executor,
        dirs,
        ..
    } = job;
    let total = recipe.steps.len();
    let grant = super::network::grant(job);
    if let Some(rule) = &grant.withheld {
        (opts.progress)(&format!(
            "warning: the build network rule for {rule:?} is not applied: the document's signature \
             does not verify under the trust policy, so its steps get no network"
        ));
    }
    let unrebuildable = |reason: UnrebuildableReason, detail: String| {
        Ok(Some(super::unrebuildable(reason, detail)))
    };
    let conventions = recipe.build_type.conventions();
    let mut nested = job.admitted.nested_steps(config);
    nested.extend(super::buildkit::nested_builder(job, recipe));
    let home_at = conventions.home.unwrap_or(tekton::HOME_DIR);
    for (i, step) in recipe.steps.iter().enumerate() {
        let recorded = PinnedImage::parse(&step.image)
            .map_err(|e| RebuildError::Infrastructure(e.to_string()))?;
        let image = mirror_image(config, &recorded)?;
        // A pipeline task has a results directory of its own, and reads what earlier tasks wrote.
        let results = match &step.task {
            Some(task) => {
                let index = recipe
                    .tasks
                    .iter()
                    .position(|t| &t.name == task)
                    .unwrap_or(i);
                dirs.task_results(index, task, executor.userns_root())
                    .map_err(RebuildError::Infrastructure)?
            }
            None => std::path::PathBuf::from(JobDirs::RESULTS),
        };
        let step = match with_task_results(job, recipe, step) {
            Ok(step) => step,
            Err((task, result)) => {
                return Ok(Some(Ending::build_failed(
                    "missing-task-result",
                    format!(
                        "step {}/{total} {:?} reads $(tasks.{task}.results.{result}), which task {task:?} did \
                         not write (Tekton fails such a pipeline too)",
                        i + 1,
                        step.name
                    ),
                )))
            }
        };
        // The environment may mount the workspace elsewhere; the step's own texts move with it.
        let workspace_at = opts.environment.workspace_root();
        let place = |text: &str| move_workspace(text, tekton::WORKSPACE_ROOT, workspace_at);
        let step_args: Vec<String> = step.args.iter().map(|a| place(a)).collect();
        let (entrypoint, args) = match (&step.script, &step.command) {
            (Some(script), _) => {
                let file = format!("{i:02}-{}", sanitize(&step.name));
                write_script(&dirs.path(JobDirs::SCRIPTS).join(&file), &place(script)).map_err(
                    |e| RebuildError::Infrastructure(format!("writing the step script: {e}")),
                )?;
                (
                    Some(vec![format!("{}/{file}", tekton::SCRIPTS_DIR)]),
                    Some(step_args),
                )
            }
            (None, Some(cmd)) => (Some(vec![place(cmd)]), Some(step_args)),
            (None, None) => (None, (!step_args.is_empty()).then_some(step_args)),
        };
        let mut env = Vec::new();
        if let Some(home) = conventions.home {
            env.push(("HOME".to_string(), home.to_string()));
        }
        env.extend(step.env.iter().cloned());
        // A relative directory is below the workspace (Cloud Build's `dir`); a step naming none starts
        // where its family starts steps.
        let working_dir = match step.working_dir.as_deref() {
            Some(dir) if !dir.starts_with('/') => Some(format!(
                "{}/{}",
                tekton::WORKSPACE_ROOT,
                dir.trim_start_matches("./")
            )),
            Some(dir) => Some(dir.to_string()),
            None => conventions.working_dir.map(str::to_string),
        };
        let mut spec = StepSpec {
            entrypoint,
            args,
            env,
            working_dir: working_dir.as_deref().map(place),
            mounts: JobDirs::mounts(workspace_at, &results, home_at),
            profile: profile_for(&recorded, &nested),
            ..StepSpec::new(&job.id, &step.name, image.clone(), dirs.root.clone().into())
        };
        opts.environment.adjust(&mut spec);
        if executor.userns_root().is_some() {
            // runc cannot set a domain name inside a remapped user namespace (it opens
            // /proc/sys/kernel/domainname without the right): a varied hostname varies the hostname only.
            spec.domainname = None;
        }
        let recorded_before = if super::network::wanted(&grant) {
            let mut network = job.network.lock().await;
            if network.is_none() {
                let hostname = spec
                    .hostname
                    .clone()
                    .unwrap_or_else(|| executor.policy().hostname.clone());
                (opts.progress)(&format!(
                    "opening the build network ({} mode, {} allow-list entries)",
                    grant.mode.as_str(),
                    grant.allow.len()
                ));
                *network =
                    Some(super::network::BuildNetwork::open(job, grant.clone(), &hostname).await?);
            }
            network.as_ref().map(|n| {
                n.admit(&mut spec);
                n.recorded()
            })
        } else {
            None
        };
        (opts.progress)(&format!(
            "step {}/{total} {}: running in {image}",
            i + 1,
            crate::text::inert_line(&step.name)
        ));
        if let Ok(mut used) = job.used_images.lock() {
            if !used.contains(&image.to_string()) {
                used.push(image.to_string());
            }
        }
        // The step's log file is made before the step runs, so that a step that uses up the job
        // filesystem's inodes cannot leave its own log without one (the logs are not in the step's reach).
        let log_file = format!("{i:02}-{}.log", sanitize(&step.name));
        let log_path = dirs.path(JobDirs::LOGS).join(&log_file);
        let log_handle = crate::safe_fs::create_new(&log_path, 0o600);
        let label = format!(
            "step {}/{total} {}",
            i + 1,
            crate::text::inert_line(&step.name)
        );
        let outcome = match run_watched(*executor, &mut spec, opts.watch, &label).await {
            Ok(o) => o,
            Err(e @ SandboxError::ImageUnavailable { .. }) => {
                return unrebuildable(
                    UnrebuildableReason::ImageUnavailable,
                    format!("step {:?}: {e}", step.name),
                )
            }
            Err(e @ SandboxError::ImageTooLarge { .. }) => {
                return unrebuildable(
                    UnrebuildableReason::Other("image-too-large".into()),
                    format!("step {:?}: {e}", step.name),
                )
            }
            Err(SandboxError::UnpinnedImage(e)) => {
                return unrebuildable(UnrebuildableReason::UnpinnedImage, e.to_string())
            }
            Err(e) => return Err(RebuildError::Infrastructure(e.to_string())),
        };
        let termination = match outcome.termination {
            Termination::Exited => StepTermination::Exited,
            Termination::TimedOut => StepTermination::TimedOut,
            Termination::OutOfMemory => StepTermination::OutOfMemory,
            Termination::Killed => {
                return Err(RebuildError::Infrastructure(format!(
                    "step {}/{total} {:?} was ended by SIGKILL that neither the build nor reprod's limits \
                     explain (exit 137, not OOM-killed at its own memory limit): a container killed from \
                     outside, an engine restart or the host's OOM killer; not a verdict on the artifact",
                    i + 1,
                    step.name
                )))
            }
        };
        (opts.progress)(&format!(
            "step {}/{total} {}: {}, exit {} after {:.1}s",
            i + 1,
            crate::text::inert_line(&step.name),
            termination.as_str(),
            outcome.exit_code,
            outcome.duration.as_secs_f64()
        ));
        let (log_artifact, log_sha256) = match write_log(log_handle, outcome.log.text.clone()).await
        {
            Ok(()) => (
                Some(format!("{}/{log_file}", JobDirs::LOGS)),
                Some(crate::oci::sha256_bytes(outcome.log.text.as_bytes())),
            ),
            Err(e) => {
                tracing::warn!(path = %log_path.display(), error = %e, "could not write the step log");
                (None, None)
            }
        };
        reports.push(StepReport {
            name: step.name.clone(),
            image: step.image.clone(),
            pulled_image: image.to_string(),
            exit_code: outcome.exit_code,
            termination,
            duration_ms: outcome.duration.as_millis() as u64,
            log_bytes: outcome.log.total_bytes,
            log_truncated: outcome.log.truncated(),
            log_artifact,
            log_sha256,
            log_tail: outcome.log.tail_lines(LOG_TAIL_LINES),
            profile: (spec.profile == StepProfile::Nested).then(|| "nested".to_string()),
        });
        if !outcome.succeeded() {
            let (reason, what) = match termination {
                StepTermination::TimedOut => (
                    "step-timed-out",
                    format!(
                        "was killed at the {}s step limit",
                        config.sandbox.step_timeout_secs
                    ),
                ),
                StepTermination::OutOfMemory => (
                    "step-out-of-memory",
                    format!(
                        "was killed at the {}-byte memory limit",
                        config.sandbox.memory_bytes
                    ),
                ),
                StepTermination::Exited if out_of_disk(dirs, &outcome) => (
                    "step-out-of-disk",
                    format!(
                        "exited with code {} on reaching a disk limit of this rebuilder (workspace {} bytes, \
                         tmpfs {} bytes each, files up to {} bytes; sandbox.workspace_bytes, tmpfs_bytes, \
                         file_size_bytes), not a finding about the artifact",
                        outcome.exit_code,
                        config.sandbox.workspace_bytes,
                        config.sandbox.tmpfs_bytes,
                        config.sandbox.file_size_bytes
                    ),
                ),
                StepTermination::Exited => match refused_during(job, recorded_before).await {
                    Some(refused) => (
                        "network-denied",
                        format!(
                            "exited with code {} after {refused}: a limit of this rebuilder, not a \
                             finding about the artifact (allow it in sandbox.network.allow, or a \
                             [[sandbox.network.rules]] entry for its images)",
                            outcome.exit_code
                        ),
                    ),
                    None => (
                        "step-failed",
                        format!(
                            "exited with code {}{}",
                            outcome.exit_code,
                            super::network::withheld_note(&grant)
                        ),
                    ),
                },
            };
            return Ok(Some(Ending::build_failed(
                reason,
                format!("step {}/{total} {:?} {what}", i + 1, step.name),
            )));
        }
    }
    Ok(None)
}

/// The step with every `$(tasks.X.results.Y)` replaced by what task X wrote (or, for the task reprod's
/// checkout stands in for, the commit and URL checked out); `Err((X, Y))` names the first result missing.
fn with_task_results(
    job: &Job<'_>,
    recipe: &Recipe,
    step: &crate::provenance::Step,
) -> Result<crate::provenance::Step, (String, String)> {
    use crate::provenance::TaskRole;
    if step.task.is_none() {
        return Ok(step.clone());
    }
    let lookup = |task: &str, result: &str| -> Option<String> {
        let (index, t) = recipe
            .tasks
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == task)?;
        match (&t.role, result) {
            (TaskRole::SourceFetch { commit }, "commit") => Some(commit.clone()),
            (TaskRole::SourceFetch { .. }, "url") => recipe.source.as_ref().map(|s| s.uri.clone()),
            (TaskRole::Run, _) => super::results::read_result(
                &job.dirs
                    .root
                    .join(JobDirs::task_results_path(index, task))
                    .join(result),
            ),
            _ => None,
        }
    };
    let missing = std::cell::RefCell::new(None);
    let resolve = |text: &str| -> String {
        tekton::resolve_task_results(text, &lookup).unwrap_or_else(|var| {
            if let Some((t, r)) = tekton::task_result(&var) {
                missing
                    .borrow_mut()
                    .get_or_insert((t.to_string(), r.to_string()));
            }
            text.to_string()
        })
    };
    let mut out = step.clone();
    out.script = step.script.as_deref().map(resolve);
    out.command = step.command.as_deref().map(resolve);
    out.args = step.args.iter().map(|a| resolve(a)).collect();
    out.env = step
        .env
        .iter()
        .map(|(k, v)| (k.clone(), resolve(v)))
        .collect();
    match missing.into_inner() {
        Some(m) => Err(m),
        None => Ok(out),
    }
}

/// The nested profile for a step whose recorded image's repository matches a pattern a trust rule
/// granted; the plain one otherwise.
/// Runs a step, handing its output to `watch` as it comes when someone watches.
async fn run_watched(
    executor: &dyn reprod_sandbox::Executor,
    spec: &mut StepSpec,
    watch: Option<super::Watch<'_>>,
    label: &str,
) -> Result<reprod_sandbox::StepOutcome, SandboxError> {
    let Some(watch) = watch else {
        return executor.run_step(spec).await;
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    spec.live = Some(tx);
    let outcome = {
        let run = executor.run_step(spec);
        tokio::pin!(run);
        loop {
            tokio::select! {
                o = &mut run => break o,
                Some(chunk) = rx.recv() => watch(label, &chunk),
            }
        }
    };
    spec.live = None;
    while let Ok(chunk) = rx.try_recv() {
        watch(label, &chunk);
    }
    outcome
}

fn profile_for(recorded: &PinnedImage, nested: &[String]) -> StepProfile {
    let granted = nested
        .iter()
        .any(|pattern| glob::Pattern::new(pattern).is_ok_and(|p| p.matches(recorded.repository())));
    if granted {
        StepProfile::Nested
    } else {
        StepProfile::Plain
    }
}

/// The proxy's refusals during a step that began when `from` exchanges were recorded, as a sentence.
async fn refused_during(job: &Job<'_>, from: Option<usize>) -> Option<String> {
    let from = from?;
    let network = job.network.lock().await;
    let record = network.as_ref()?.record();
    crate::verdict::refused_sentence(record.refusals_since(from))
}

/// Writes a step's full log (up to `sandbox.log_limit_bytes`) off the async threads.
/// Writes a step's log into the file made for it before the step ran.
async fn write_log(file: std::io::Result<std::fs::File>, text: String) -> std::io::Result<()> {
    let mut file = file?;
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Whether a failed step ran into one of the rebuilder's disk limits: its workspace filesystem is full (of
/// bytes or inodes), it was killed by SIGXFSZ at the file-size limit (exit 153), or a write failed with
/// ENOSPC in a tmpfs (which is gone with the container, so the log says it).
fn out_of_disk(dirs: &JobDirs, outcome: &reprod_sandbox::StepOutcome) -> bool {
    const SIGXFSZ_EXIT: i64 = 128 + 25;
    dirs.full()
        || outcome.exit_code == SIGXFSZ_EXIT
        || outcome.log.text.contains("No space left on device")
        || outcome.log.text.contains("Disk quota exceeded")
}

/// Applies the image mirror map (longest prefix); the digest is kept.
pub(super) fn mirror_image(
    config: &Config,
    image: &PinnedImage,
) -> Result<PinnedImage, RebuildError> {
    match config.images.mirrors.rewrite(image.repository()) {
        None => Ok(image.clone()),
        Some(repository) => image.with_repository(&repository).map_err(|e| {
            RebuildError::Infrastructure(format!(
                "images.mirrors rewrites {} badly: {e}",
                image.repository()
            ))
        }),
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

fn write_script(path: &Path, script: &str) -> std::io::Result<()> {
    write_new(path, script.as_bytes(), 0o555)
}

/// Writes a new file in the job directory; anything already there (a build's symlink or FIFO) is refused,
/// never followed.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = crate::safe_fs::create_new(path, mode)?;
    f.write_all(bytes)?;
    f.sync_all()
}
