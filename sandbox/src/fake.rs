//! An in-memory executor, so the rebuild can be tested without an engine (the `fake` feature).
//!
//! It runs nothing. A test scripts what each step does (the closure given to [`FakeExecutor::on_step`],
//! which may write the step's outputs into the job's real workspace directory) and afterwards reads what
//! the fake was asked to do. It enforces what Docker enforces before a step runs and what a caller could
//! get wrong unnoticed: mounts stay inside the workspace, images are pinned and within the size limit, the
//! wall-clock limit ends a slow step, the log is capped. It reads no policy back: there is no engine to
//! weaken one. Behind a feature because it is not a sandbox: production code must not be able to pick it.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::executor::{BoxFuture, Executor};
use crate::log::LogBuffer;
use crate::spec::{canonical, mount_source};
use crate::{PinnedImage, Policy, SandboxError, StepOutcome, StepSpec, Termination};

type Script = dyn Fn(&FakeStep<'_>) -> Result<StepOutcome, SandboxError> + Send + Sync;

/// An executor that records every request and answers from a script.
pub struct FakeExecutor {
    endpoint: String,
    policy: Policy,
    userns_root: Option<(u32, u32)>,
    pull_size: i64,
    step_time: Duration,
    script: Box<Script>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    unavailable: bool,
    runs: Vec<StepSpec>,
    /// Present images (reference → size).
    images: BTreeMap<String, i64>,
    refused: Vec<String>,
    removed_images: Vec<String>,
    /// Steps under way, or dropped mid-flight and not yet removed: (job id, step name, image).
    containers: Vec<(String, String, String)>,
    orphans: usize,
    sweeps: usize,
    removed_jobs: Vec<String>,
}

/// One step as the script sees it.
pub struct FakeStep<'a> {
    /// How many steps this fake was asked to run before this one (0 for the first).
    pub index: usize,
    pub spec: &'a StepSpec,
    policy: &'a Policy,
    workspace: PathBuf,
}

impl Default for FakeExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeExecutor {
    /// Every step exits 0 with no output; the default policy; root not remapped; pulled images are 1 MiB.
    pub fn new() -> Self {
        FakeExecutor {
            endpoint: "fake://executor".into(),
            policy: Policy::default(),
            userns_root: None,
            pull_size: 1 << 20,
            step_time: Duration::ZERO,
            script: Box::new(|step| Ok(step.exited(0, ""))),
            state: Mutex::default(),
        }
    }

    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_userns_root(mut self, root: Option<(u32, u32)>) -> Self {
        self.userns_root = root;
        self
    }

    /// How long each step takes (real time; a step longer than the policy's limit times out).
    pub fn with_step_time(mut self, time: Duration) -> Self {
        self.step_time = time;
        self
    }

    /// The size an image has once pulled.
    pub fn with_pull_size(mut self, bytes: i64) -> Self {
        self.pull_size = bytes;
        self
    }

    /// An image already present, of `bytes`.
    pub fn with_image(self, reference: &str, bytes: i64) -> Self {
        self.state().images.insert(reference.to_string(), bytes);
        self
    }

    /// An image the registry refuses to serve (unknown digest): an unrebuildable, not infrastructure.
    pub fn refusing_image(self, reference: &str) -> Self {
        self.state().refused.push(reference.to_string());
        self
    }

    /// How many orphans the next sweep finds.
    pub fn with_orphans(self, n: usize) -> Self {
        self.state().orphans = n;
        self
    }

    /// What each step does: called once the step's image, workspace and mounts have passed.
    pub fn on_step<F>(mut self, script: F) -> Self
    where
        F: Fn(&FakeStep<'_>) -> Result<StepOutcome, SandboxError> + Send + Sync + 'static,
    {
        self.script = Box::new(script);
        self
    }

    /// Takes the engine down (every request then fails as an unreachable engine does) or brings it back.
    pub fn set_available(&self, available: bool) {
        self.state().unavailable = !available;
    }

    /// Every step asked for, in order, including those refused before they ran.
    pub fn runs(&self) -> Vec<StepSpec> {
        self.state().runs.clone()
    }

    /// Present images and their sizes.
    pub fn images(&self) -> BTreeMap<String, i64> {
        self.state().images.clone()
    }

    /// Images removed through [`Executor::remove_image`], in order.
    pub fn removed_images(&self) -> Vec<String> {
        self.state().removed_images.clone()
    }

    /// (job id, step name) of each step container still in the fake engine: steps under way, and steps
    /// whose future was dropped mid-flight (as a job deadline does), until the job is cleaned up.
    pub fn containers(&self) -> Vec<(String, String)> {
        let state = self.state();
        let pairs = state
            .containers
            .iter()
            .map(|(j, n, _)| (j.clone(), n.clone()));
        pairs.collect()
    }

    /// Jobs whose containers were removed through [`Executor::remove_job_containers`], in order.
    pub fn removed_jobs(&self) -> Vec<String> {
        self.state().removed_jobs.clone()
    }

    /// How many times orphans were swept.
    pub fn sweeps(&self) -> usize {
        self.state().sweeps
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn available(&self, state: &State) -> Result<(), SandboxError> {
        if state.unavailable {
            return Err(SandboxError::DockerUnavailable {
                endpoint: self.endpoint.clone(),
                detail: "the fake engine was taken down".into(),
            });
        }
        Ok(())
    }

    /// What Docker's `ensure_image` does, in memory. The image id is the manifest digest.
    fn pull(&self, image: &PinnedImage) -> Result<String, SandboxError> {
        let reference = image.to_string();
        let mut state = self.state();
        self.available(&state)?;
        if state.refused.contains(&reference) {
            return Err(SandboxError::ImageUnavailable {
                image: reference,
                detail: "manifest unknown (refused by the fake registry)".into(),
            });
        }
        let size = state.images.get(&reference).copied();
        let size = size.unwrap_or(self.pull_size);
        if size > self.policy.max_image_bytes {
            state.images.remove(&reference);
            return Err(SandboxError::ImageTooLarge {
                image: reference,
                size,
                limit: self.policy.max_image_bytes,
                when: "as the fake engine reports it; it was removed again",
            });
        }
        state.images.insert(reference, size);
        Ok(image.digest().to_string())
    }

    async fn run(&self, spec: &StepSpec) -> Result<StepOutcome, SandboxError> {
        let index = {
            let mut state = self.state();
            state.runs.push(spec.clone());
            state.runs.len() - 1
        };
        let image_id = self.pull(&spec.image)?;
        let workspace = canonical(spec.workspace.local_dir())?;
        for m in &spec.mounts {
            mount_source(&workspace, m)?;
        }
        let container = (
            spec.job_id.clone(),
            spec.name.clone(),
            spec.image.to_string(),
        );
        self.state().containers.push(container.clone());
        let step = FakeStep {
            index,
            spec,
            policy: &self.policy,
            workspace,
        };
        // Dropped here (a job deadline), the step's container stays listed, as a Docker one can.
        let result = if self.step_time >= self.policy.step_timeout {
            tokio::time::sleep(self.policy.step_timeout).await;
            Ok(step.timed_out(""))
        } else {
            tokio::time::sleep(self.step_time).await;
            (self.script)(&step)
        };
        let mut state = self.state();
        if let Some(i) = state.containers.iter().position(|c| *c == container) {
            state.containers.remove(i);
        }
        let mut outcome = result?;
        outcome.image_id = image_id;
        Ok(outcome)
    }
}

impl Executor for FakeExecutor {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn policy(&self) -> &Policy {
        &self.policy
    }

    fn userns_root(&self) -> Option<(u32, u32)> {
        self.userns_root
    }

    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
    ) -> BoxFuture<'a, Result<StepOutcome, SandboxError>> {
        Box::pin(self.run(spec))
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a PinnedImage,
    ) -> BoxFuture<'a, Result<String, SandboxError>> {
        Box::pin(async move { self.pull(image) })
    }

    /// `Ok(false)` while a step container uses the image, or when it is absent, as Docker answers.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool, SandboxError>> {
        Box::pin(async move {
            let mut state = self.state();
            self.available(&state)?;
            let in_use = state
                .containers
                .iter()
                .any(|(_, _, image)| image == reference);
            if in_use || state.images.remove(reference).is_none() {
                return Ok(false);
            }
            state.removed_images.push(reference.to_string());
            Ok(true)
        })
    }

    fn image_size<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Option<i64>> {
        Box::pin(async move {
            let state = self.state();
            self.available(&state).ok()?;
            state.images.get(reference).copied()
        })
    }

    fn remove_job_containers<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, SandboxError>> {
        Box::pin(async move {
            let mut state = self.state();
            self.available(&state)?;
            let before = state.containers.len();
            state.containers.retain(|(job, _, _)| job != job_id);
            state.removed_jobs.push(job_id.to_string());
            Ok(before - state.containers.len())
        })
    }

    fn sweep_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        Box::pin(async move {
            let mut state = self.state();
            self.available(&state)?;
            state.sweeps += 1;
            Ok(std::mem::take(&mut state.orphans))
        })
    }

    fn remove_own_containers(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        Box::pin(async move {
            let mut state = self.state();
            self.available(&state)?;
            Ok(state.containers.drain(..).count())
        })
    }
}

impl FakeStep<'_> {
    /// The job workspace on this host (canonical).
    pub fn workspace_dir(&self) -> &Path {
        &self.workspace
    }

    /// Where a path inside the step's container is on this host, through the step's mounts (the deepest
    /// mount containing it), and whether that mount is read-only.
    pub fn host_path(&self, container_path: &str) -> Result<(PathBuf, bool), SandboxError> {
        let error = |kind: ErrorKind, why: &str| SandboxError::Io {
            action: "resolving a path of the (fake) step container",
            path: container_path.to_string(),
            error: std::io::Error::new(kind, why.to_string()),
        };
        let target = Path::new(container_path);
        if !target.is_absolute() || target.components().any(|c| c == Component::ParentDir) {
            return Err(error(
                ErrorKind::InvalidInput,
                "not an absolute path without `..`",
            ));
        }
        let mount = self
            .spec
            .mounts
            .iter()
            .filter(|m| target.starts_with(&m.container_path))
            .max_by_key(|m| Path::new(&m.container_path).components().count());
        let Some(m) = mount else {
            return Err(error(
                ErrorKind::ReadOnlyFilesystem,
                "outside every workspace mount: the read-only root filesystem or a tmpfs",
            ));
        };
        let rest = target.strip_prefix(&m.container_path).unwrap_or(target);
        Ok((mount_source(&self.workspace, m)?.join(rest), m.read_only))
    }

    /// Writes a file where the step would, at a path inside its container, creating its directories: as a
    /// build leaving outputs behind. Fails on a read-only mount or outside the mounts, as the step would.
    pub fn write(
        &self,
        container_path: &str,
        contents: impl AsRef<[u8]>,
    ) -> Result<(), SandboxError> {
        let (host, read_only) = self.host_path(container_path)?;
        let io = |error: std::io::Error| SandboxError::Io {
            action: "writing (fake step)",
            path: container_path.to_string(),
            error,
        };
        if read_only {
            return Err(io(std::io::Error::new(
                ErrorKind::ReadOnlyFilesystem,
                "a read-only mount",
            )));
        }
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&host, contents).map_err(io)
    }

    /// Reads a file the step sees (a script reprod wrote, an input), at a path inside its container.
    pub fn read(&self, container_path: &str) -> Result<String, SandboxError> {
        let (host, _) = self.host_path(container_path)?;
        std::fs::read_to_string(&host).map_err(|error| SandboxError::Io {
            action: "reading (fake step)",
            path: container_path.to_string(),
            error,
        })
    }

    /// The step exited by itself with `exit_code`, having written `output`.
    pub fn exited(&self, exit_code: i64, output: &str) -> StepOutcome {
        self.outcome(Termination::Exited, exit_code, output)
    }

    /// The step hit the policy's wall-clock limit and was killed.
    pub fn timed_out(&self, output: &str) -> StepOutcome {
        let mut outcome = self.outcome(Termination::TimedOut, 137, output);
        outcome.duration = self.policy.step_timeout;
        outcome
    }

    /// The step reached its memory limit and the OOM killer ended it.
    pub fn out_of_memory(&self, output: &str) -> StepOutcome {
        self.outcome(Termination::OutOfMemory, 137, output)
    }

    /// Something outside the build and its limits killed the step (an infrastructure failure).
    pub fn killed(&self, output: &str) -> StepOutcome {
        self.outcome(Termination::Killed, 137, output)
    }

    /// The log capped at the policy's limit, as Docker's capture caps it.
    fn outcome(&self, termination: Termination, exit_code: i64, output: &str) -> StepOutcome {
        let mut log = LogBuffer::new(self.policy.log_limit_bytes);
        log.push(output.as_bytes());
        StepOutcome {
            exit_code,
            termination,
            log: log.finish(),
            duration: Duration::ZERO,
            image_id: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::StepMount;

    const DIGEST: &str = "sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16";

    fn image(name: &str) -> PinnedImage {
        PinnedImage::parse(&format!("127.0.0.1:5000/{name}@{DIGEST}")).unwrap()
    }

    /// A job directory laid out as reprod's rebuild lays one out, and a step mounting it.
    fn job(name: &str) -> (tempfile::TempDir, StepSpec) {
        let dir = tempfile::tempdir().unwrap();
        let mount = |sub: &str, at: &str, read_only| {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            StepMount {
                workspace_subdir: sub.into(),
                container_path: at.into(),
                read_only,
            }
        };
        let mounts = vec![
            mount("workspace", "/workspace", false),
            mount("results", "/tekton/results", false),
            mount("scripts", "/tekton/scripts", true),
        ];
        let spec = StepSpec {
            mounts,
            ..StepSpec::new("job-1", name, image("builder"), dir.path().into())
        };
        (dir, spec)
    }

    #[tokio::test]
    async fn steps_are_recorded_and_answered_by_the_script() {
        let fake = Arc::new(FakeExecutor::new().on_step(|step| match step.index {
            0 => {
                assert_eq!(step.read("/tekton/scripts/build")?, "make\n");
                step.write("/workspace/out/image.tar", b"layers")?;
                Ok(step.exited(0, "built\n"))
            }
            1 => Ok(step.exited(2, "error: no rule\n")),
            2 => Ok(step.out_of_memory("")),
            _ => Err(SandboxError::Lost("removed by a test".into())),
        }));
        let executor: Arc<dyn Executor> = fake.clone();
        let (dir, mut spec) = job("build");
        std::fs::write(dir.path().join("scripts/build"), "make\n").unwrap();

        let outcome = executor.run_step(&spec).await.unwrap();
        assert!(outcome.succeeded());
        assert_eq!(outcome.log.text, "built\n");
        assert_eq!(outcome.image_id, DIGEST);
        let written = dir.path().join("workspace/out/image.tar");
        assert_eq!(std::fs::read(written).unwrap(), b"layers");

        spec.name = "test".into();
        let outcome = executor.run_step(&spec).await.unwrap();
        assert_eq!(
            (outcome.exit_code, outcome.termination),
            (2, Termination::Exited)
        );
        assert!(!outcome.succeeded());
        let outcome = executor.run_step(&spec).await.unwrap();
        assert_eq!(outcome.termination, Termination::OutOfMemory);
        let lost = executor.run_step(&spec).await.unwrap_err();
        assert!(matches!(lost, SandboxError::Lost(_)) && lost.is_infrastructure());

        let names: Vec<String> = fake.runs().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["build", "test", "test", "test"]);
        assert!(fake.containers().is_empty(), "finished steps leave nothing");
    }

    #[tokio::test]
    async fn a_step_writes_only_where_docker_would_let_it() {
        let fake = FakeExecutor::new().on_step(|step| {
            let refused = |path: &str| match step.write(path, "x") {
                Err(SandboxError::Io { error, .. }) => error.kind(),
                other => panic!("{path}: {other:?}"),
            };
            assert_eq!(refused("/tekton/scripts/x"), ErrorKind::ReadOnlyFilesystem);
            assert_eq!(refused("/usr/bin/x"), ErrorKind::ReadOnlyFilesystem);
            assert_eq!(refused("/workspace/../etc/x"), ErrorKind::InvalidInput);
            assert_eq!(refused("workspace/x"), ErrorKind::InvalidInput);
            // The deepest mount wins: /tekton/results is its own directory, not under another mount.
            step.write("/tekton/results/digest", "sha256:1")?;
            Ok(step.exited(0, ""))
        });
        let (dir, mut spec) = job("build");
        assert!(fake.run_step(&spec).await.unwrap().succeeded());
        let digest = dir.path().join("results/digest");
        assert_eq!(std::fs::read_to_string(digest).unwrap(), "sha256:1");

        spec.mounts[0].workspace_subdir = "../../etc".into();
        let escaped = fake.run_step(&spec).await.unwrap_err();
        assert!(
            matches!(escaped, SandboxError::MountOutsideWorkspace { .. }),
            "{escaped:?}"
        );
        assert_eq!(fake.runs().len(), 2, "a refused step is recorded too");
    }

    #[tokio::test]
    async fn an_unavailable_engine_fails_every_request_until_it_is_back() {
        let fake = FakeExecutor::new();
        let (_dir, spec) = job("build");
        fake.set_available(false);
        let err = fake.run_step(&spec).await.unwrap_err();
        assert!(matches!(err, SandboxError::DockerUnavailable { .. }) && err.is_infrastructure());
        assert!(fake.sweep_orphans().await.is_err());
        assert!(fake.remove_job_containers("job-1").await.is_err());
        assert_eq!(fake.image_size(&spec.image.to_string()).await, None);
        fake.set_available(true);
        assert!(fake.run_step(&spec).await.unwrap().succeeded());
        assert_eq!(fake.sweep_orphans().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn images_are_sized_refused_and_removed_as_the_cache_expects() {
        let (big, gone, small) = (image("big"), image("gone"), image("small"));
        let fake = FakeExecutor::new()
            .with_policy(Policy {
                max_image_bytes: 100,
                ..Policy::default()
            })
            .with_pull_size(60)
            .with_image(&big.to_string(), 1000)
            .refusing_image(&gone.to_string());
        let too_large = fake.ensure_image(&big).await.unwrap_err();
        assert!(matches!(
            too_large,
            SandboxError::ImageTooLarge {
                size: 1000,
                limit: 100,
                ..
            }
        ));
        assert_eq!(
            fake.image_size(&big.to_string()).await,
            None,
            "an oversized image is removed"
        );
        let refused = fake.ensure_image(&gone).await.unwrap_err();
        assert!(matches!(refused, SandboxError::ImageUnavailable { .. }));
        assert!(!refused.is_infrastructure());

        assert_eq!(fake.ensure_image(&small).await.unwrap(), DIGEST);
        let reference = small.to_string();
        assert_eq!(fake.image_size(&reference).await, Some(60));
        assert!(fake.remove_image(&reference).await.unwrap());
        assert!(
            !fake.remove_image(&reference).await.unwrap(),
            "already gone"
        );
        assert_eq!(fake.removed_images(), [reference]);
        assert!(fake.images().is_empty());
    }

    #[tokio::test]
    async fn a_step_dropped_mid_flight_stays_until_its_job_is_cleaned_up() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let fake = FakeExecutor::new()
            .with_step_time(Duration::from_secs(60))
            .on_step(move |step| {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(step.exited(0, ""))
            });
        let (_dir, spec) = job("build");
        let cut = tokio::time::timeout(Duration::from_millis(20), fake.run_step(&spec)).await;
        assert!(cut.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 0, "the build never finished");
        assert_eq!(
            fake.containers(),
            [("job-1".to_string(), "build".to_string())]
        );
        let reference = spec.image.to_string();
        assert!(!fake.remove_image(&reference).await.unwrap(), "in use");
        assert_eq!(fake.remove_job_containers("other-job").await.unwrap(), 0);
        assert_eq!(fake.remove_job_containers("job-1").await.unwrap(), 1);
        assert!(fake.containers().is_empty());
        assert_eq!(fake.removed_jobs(), ["other-job", "job-1"]);
        assert!(fake.remove_image(&reference).await.unwrap());
    }

    #[tokio::test]
    async fn a_step_slower_than_the_limit_times_out_without_running_its_script() {
        let fake = FakeExecutor::new()
            .with_policy(Policy {
                step_timeout: Duration::from_millis(30),
                ..Policy::default()
            })
            .with_step_time(Duration::from_secs(60))
            .on_step(|_| panic!("a timed-out step's script ran"));
        let (_dir, spec) = job("build");
        let started = std::time::Instant::now();
        let outcome = fake.run_step(&spec).await.unwrap();
        assert_eq!(
            (outcome.termination, outcome.exit_code),
            (Termination::TimedOut, 137)
        );
        assert_eq!(outcome.duration, Duration::from_millis(30));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(fake.containers().is_empty());
    }

    #[tokio::test]
    async fn the_log_is_capped_at_the_policy_limit_and_orphans_are_swept_once() {
        let fake = FakeExecutor::new()
            .with_policy(Policy {
                log_limit_bytes: 20,
                ..Policy::default()
            })
            .with_orphans(2)
            .with_userns_root(Some((100_000, 100_000)))
            .on_step(|step| Ok(step.killed(&"y".repeat(1000))));
        let (_dir, spec) = job("build");
        let outcome = fake.run_step(&spec).await.unwrap();
        assert_eq!(outcome.termination, Termination::Killed);
        assert_eq!(
            (outcome.log.total_bytes, outcome.log.omitted_bytes),
            (1000, 980)
        );
        assert!(outcome.log.text.contains("980 bytes of output omitted"));
        assert_eq!(fake.userns_root(), Some((100_000, 100_000)));
        assert_eq!(fake.sweep_orphans().await.unwrap(), 2);
        assert_eq!(fake.sweep_orphans().await.unwrap(), 0);
        assert_eq!(fake.sweeps(), 2);
    }
}
