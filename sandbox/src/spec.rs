//! What a step is: the request an executor runs ([`StepSpec`] and its mounts and network) and what came
//! of it ([`StepOutcome`]). Shared by every executor, so it knows no engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::log::CapturedLog;
use crate::{PinnedImage, SandboxError, StepProfile};

/// A directory of the job workspace made visible to the step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    /// Path relative to the workspace root (no `..`, no absolute paths).
    pub workspace_subdir: PathBuf,
    /// Absolute path inside the container.
    pub container_path: String,
    pub read_only: bool,
}

/// One step to run.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Job identifier, recorded as a container label.
    pub job_id: String,
    /// Human name of the step (for logs and the container name).
    pub name: String,
    pub image: PinnedImage,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Arguments (the image's `CMD` when `None`).
    pub args: Option<Vec<String>>,
    /// Environment, in the order given.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// The job workspace: the only place whose subdirectories may be mounted (a host directory for
    /// Docker).
    pub workspace: crate::Workspace,
    pub mounts: Vec<StepMount>,
    /// Loopback only, either the step's own or its job's ([`StepNetwork`]).
    pub network: StepNetwork,
    /// Overrides the policy's fixed hostname (environment-variation builds). A step in its job's network
    /// has the holder's hostname ([`Sandbox::open_job_network`](crate::Sandbox::open_job_network)): the engine sets no other there.
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// `uid[:gid]` to run as instead of the image's user.
    pub user: Option<String>,
    /// CPUs the step may run on (`0`, `0-1`), which is what `nproc` reports.
    pub cpuset_cpus: Option<String>,
    /// What the step is trusted with ([`StepProfile::Plain`] unless a trust rule grants more).
    pub profile: StepProfile,
    /// Where the step's output goes as it is written, for a person watching, besides the captured log.
    /// Bounded and lossy: when the watcher lags, chunks are dropped here (never from the log).
    pub live: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
}

impl StepSpec {
    /// A step of `job_id` named `name` that runs `image` with its own entrypoint and command, in its own
    /// loopback-only network, mounting nothing of `workspace`: set what the step needs beside it.
    pub fn new(job_id: &str, name: &str, image: PinnedImage, workspace: crate::Workspace) -> Self {
        StepSpec {
            job_id: job_id.to_string(),
            name: name.to_string(),
            image,
            entrypoint: None,
            args: None,
            env: Vec::new(),
            working_dir: None,
            workspace,
            mounts: Vec::new(),
            network: StepNetwork::None,
            hostname: None,
            domainname: None,
            user: None,
            cpuset_cpus: None,
            profile: StepProfile::Plain,
            live: None,
        }
    }
}

/// How a step's container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The main process exited by itself (any exit code).
    Exited,
    /// The wall-clock limit was reached and the container was killed with SIGKILL.
    TimedOut,
    /// The kernel's OOM killer ended a process because the memory limit was reached.
    OutOfMemory,
    /// Ended by SIGKILL that neither the step's own limits nor the build explain (`docker kill`, an engine
    /// restart, the host's OOM killer outside the container's limit): not the build's doing, so never a
    /// verdict on it. A build that itself exits with status 137 looks the same and is treated the same:
    /// when in doubt, reprod does not judge.
    Killed,
}

/// What happened when a step ran.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    pub exit_code: i64,
    pub termination: Termination,
    pub log: CapturedLog,
    pub duration: Duration,
    /// The engine's image id (`sha256:` of the config) the container ran.
    pub image_id: String,
}

impl StepOutcome {
    /// True when the step exited 0 on its own.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited && self.exit_code == 0
    }
}

/// What holds a job's network namespace: an image pinned by digest and a command that waits forever
/// (`/pause` in Kubernetes' pause image, `sleep 2147483647` in busybox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkHolder {
    pub image: PinnedImage,
    pub command: Vec<String>,
}

/// A job's network namespace, held by a running container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobNetwork {
    /// The holder container's id.
    pub holder: String,
    /// The holder's process on this host, whose `/proc/<pid>/ns/net` is the namespace.
    pub pid: u32,
}

/// Where a step's network namespace comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StepNetwork {
    /// A namespace of its own with loopback only (`--network none`).
    #[default]
    None,
    /// The job's namespace: loopback only, where the caller's proxy listens.
    Job(JobNetwork),
}

impl StepNetwork {
    /// The engine's network mode for this network.
    pub(crate) fn mode(&self) -> String {
        match self {
            StepNetwork::None => "none".to_string(),
            StepNetwork::Job(n) => format!("container:{}", n.holder),
        }
    }
}

pub(crate) fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(path).map_err(|error| SandboxError::Io {
        action: "resolving the job workspace",
        path: path.display().to_string(),
        error,
    })
}

/// Resolves a workspace mount to an absolute host path and proves it stays inside the workspace
/// (symlinks included), and that its target is an absolute container path. `workspace` is canonical.
/// Shared with the fake executor, so a test cannot pass a mount Docker would refuse.
pub(crate) fn mount_source(workspace: &Path, m: &StepMount) -> Result<PathBuf, SandboxError> {
    let outside = || SandboxError::MountOutsideWorkspace {
        host: m.workspace_subdir.display().to_string(),
        workspace: workspace.display().to_string(),
    };
    if m.workspace_subdir.is_absolute()
        || m.workspace_subdir
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(outside());
    }
    let host = canonical(&workspace.join(&m.workspace_subdir))?;
    if !host.starts_with(workspace) {
        return Err(outside());
    }
    if !m.container_path.starts_with('/') {
        return Err(SandboxError::PolicyNotApplied(format!(
            "mount target {:?} is not an absolute container path",
            m.container_path
        )));
    }
    Ok(host)
}
