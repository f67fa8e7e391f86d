//! reprod-sandbox: runs one build step in a fresh, hardened Docker container and reports what happened.
//!
//! This crate is reprod's trust boundary. It knows nothing of provenance: it is handed an image pinned by
//! digest, a command, an environment and a job workspace, and it guarantees the isolation policy documented
//! on [`Policy`]. Every guarantee that can be read back from the engine is read back ([`verify`]) before the
//! container is started, so a daemon that silently ignores a limit fails the step instead of weakening it.
//!
//! Callers that need not know the engine use the [`Executor`] trait, which [`Sandbox`] implements; the
//! `fake` feature adds `FakeExecutor` (not a sandbox: it runs nothing) for tests without an engine.

mod connect;
mod containers;
mod executor;
#[cfg(any(test, feature = "fake"))]
mod fake;
mod image;
mod log;
mod network;
mod policy;
mod pull;
mod run;
mod spec;
mod verify;
mod workspace;

pub use executor::{BoxFuture, Executor};
#[cfg(any(test, feature = "fake"))]
pub use fake::{FakeExecutor, FakeStep};

pub use image::{ImageRefError, PinnedImage};
pub use log::CapturedLog;

pub use connect::Sandbox;
pub use policy::{
    Policy, StepProfile, ALLOWED_CAPABILITIES, LABEL_JOB, LABEL_MANAGED, LABEL_OWNER,
    NESTED_CAPABILITIES, NESTED_SECCOMP, NESTED_STORAGE, TMPFS_PATHS,
};
pub use spec::{
    JobNetwork, NetworkHolder, StepMount, StepNetwork, StepOutcome, StepSpec, Termination,
};
pub use workspace::Workspace;

/// Why a step could not be run (as opposed to a step that ran and failed, which is a [`StepOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The Docker engine cannot be reached: an infrastructure failure, never a verdict on the artifact.
    /// Any [`Executor`] whose engine cannot be reached answers this (the name and the hint predate the
    /// executor seam; a backend-neutral `EngineUnavailable` is a follow-up).
    #[error("the Docker engine at {endpoint} does not answer ({detail}); start dockerd (scripts/setup.sh does) or set DOCKER_HOST")]
    DockerUnavailable { endpoint: String, detail: String },
    /// The step image is not pinned by digest; reprod never runs a mutable tag.
    #[error(transparent)]
    UnpinnedImage(#[from] ImageRefError),
    /// The pinned image is larger than this rebuilder runs (a limit of the rebuilder, not a finding about
    /// the artifact).
    #[error("image {image} is at least {size} bytes ({when}), over this rebuilder's {limit}-byte limit for step images (images.max_image_bytes)")]
    ImageTooLarge {
        image: String,
        size: i64,
        limit: i64,
        /// How the size was learned, and what became of the image.
        when: &'static str,
    },
    /// An engine whose API answers, but which cannot carry the policy (Podman's Docker-compatible API).
    #[error("the engine at {endpoint} is {engine}, which reprod does not run steps on: {why}; use Docker Engine (scripts/setup.sh starts one)")]
    UnsupportedEngine {
        endpoint: String,
        engine: String,
        why: String,
    },
    /// The engine does not run containers in a user namespace, and the policy requires one.
    #[error("the Docker engine at {endpoint} does not run containers in a user namespace, so root in a step would be root on this host; start dockerd with --userns-remap=default (scripts/setup.sh does), or set sandbox.require_userns = false to accept that")]
    NoUserNamespace { endpoint: String },
    /// The pinned image could not be pulled (unknown digest, unreachable or refusing registry).
    #[error("image {image} cannot be pulled: {detail}; check that its registry is reachable from dockerd, or map it with an image mirror")]
    ImageUnavailable { image: String, detail: String },
    /// A mount asked for a host path outside the job workspace.
    #[error(
        "mount {host} is outside the job workspace {workspace}: only the workspace may be mounted"
    )]
    MountOutsideWorkspace { host: String, workspace: String },
    /// The engine accepted the container but one of the isolation settings did not take effect.
    #[error("the Docker engine did not apply the isolation policy: {0}; refusing to run the step")]
    PolicyNotApplied(String),
    /// The engine still lists containers after repeated removal attempts.
    #[error("containers of {what} are still listed after 10 s of removal attempts; remove them with `docker rm -f $(docker ps -aq --filter label={label})`")]
    LeftBehind { what: String, label: String },
    /// The step's container ended in a way the build did not cause (removed, killed, or in an engine error
    /// state): an infrastructure failure.
    #[error("the step container was lost: {0}; the engine or something outside reprod ended it")]
    Lost(String),
    /// Any other engine error while creating, running or removing a container.
    #[error("Docker engine error while {action}: {error}")]
    Docker {
        action: &'static str,
        error: bollard::errors::Error,
    },
    /// The executor cannot do what the step asks of it (a job network on a backend without one).
    #[error("{0}")]
    Unsupported(String),
    /// Local I/O on the workspace failed.
    #[error("{action} {path}: {error}")]
    Io {
        action: &'static str,
        path: String,
        error: std::io::Error,
    },
}

impl SandboxError {
    /// True when the failure says nothing about the artifact (engine down, engine error), so the job should be
    /// retried rather than given a verdict.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            SandboxError::DockerUnavailable { .. }
                | SandboxError::Docker { .. }
                | SandboxError::PolicyNotApplied(_)
                | SandboxError::LeftBehind { .. }
                | SandboxError::Lost(_)
                | SandboxError::NoUserNamespace { .. }
                | SandboxError::UnsupportedEngine { .. }
                | SandboxError::Io { .. }
                | SandboxError::Unsupported(_)
        )
    }
}
