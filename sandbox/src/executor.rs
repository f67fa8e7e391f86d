//! The executor seam: what a rebuild needs from whatever engine runs its steps.
//!
//! [`Sandbox`] (Docker) is today's only real implementation; `FakeExecutor` (the
//! `fake` feature) runs nothing and lets the rebuild be tested without an engine; a Kubernetes backend is
//! designed in docs/kubernetes-executor.md.
//!
//! Why the trait has the shape it has:
//!
//! - **Built once per process and passed in.** An executor is connected (and its engine checked, e.g. for
//!   user namespaces) when the process starts, then handed to every job as `&dyn Executor` or
//!   `Arc<dyn Executor>` (reprod's `serve`, `worker` and `rebuild` connect and sweep orphans once, at
//!   start); a rebuild takes the executor it is given, which is also what lets a test hand it a fake. Construction (`connect`) is
//!   therefore not part of the trait: it is backend-specific, and only `main` and the daemon do it.
//! - **Reading the policy back is each backend's duty**, not the caller's. The caller only sees
//!   [`Executor::policy`]; an implementation must not start a step until it has read back from its engine
//!   that every setting of that policy took effect, and must fail the step with
//!   [`SandboxError::PolicyNotApplied`] otherwise. Docker does it in `verify.rs` by inspecting the created
//!   container; Kubernetes would read the Pod back while a scheduling gate holds it.
//! - **The workspace is a handle.** A step names its workspace and the subdirectories it mounts
//!   ([`StepMount`](crate::StepMount) paths are relative); only the backend knows whether that is a host
//!   directory to bind-mount or a volume to attach ([`Workspace`](crate::Workspace)).
//! - **Dyn-compatible async.** Methods return a boxed `Send` future ([`BoxFuture`]) instead of being
//!   `async fn`, so `dyn Executor` works without another dependency and the futures can be spawned on a
//!   multi-threaded runtime.

use std::future::Future;
use std::pin::Pin;

use crate::{
    JobNetwork, NetworkHolder, PinnedImage, Policy, Sandbox, SandboxError, StepOutcome, StepSpec,
    Workspace,
};

/// A boxed future that can be sent between threads, borrowing for `'a`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An engine that runs build steps under the isolation [`Policy`].
pub trait Executor: Send + Sync {
    /// Where the engine is (a socket, a cluster and namespace), for messages.
    fn endpoint(&self) -> &str;

    /// The policy every step gets: limits and hardening the backend guarantees and reads back.
    fn policy(&self) -> &Policy;

    /// The host uid and gid that root in a step is, when steps run in a user namespace (job directories a
    /// step writes are handed to this owner); `None` when root is not remapped.
    fn userns_root(&self) -> Option<(u32, u32)>;

    /// Runs one step to completion under the policy; whatever happens, nothing of it keeps running. `Err`
    /// is a step that could not be run; a step that ran and failed is an `Ok` outcome.
    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
    ) -> BoxFuture<'a, Result<StepOutcome, SandboxError>>;

    /// Opens a job's own network namespace (loopback only) for its steps to share
    /// ([`StepNetwork::Job`](crate::StepNetwork)); it goes with the job's containers
    /// ([`Executor::remove_job_containers`]). A backend without one answers
    /// [`SandboxError::Unsupported`], which is the default.
    fn open_job_network<'a>(
        &'a self,
        job_id: &'a str,
        holder: &'a NetworkHolder,
        hostname: &'a str,
        workspace: &'a Workspace,
    ) -> BoxFuture<'a, Result<JobNetwork, SandboxError>> {
        let _ = (job_id, holder, hostname, workspace);
        Box::pin(async move {
            Err(SandboxError::Unsupported(format!(
                "the executor at {} has no job networks, so it runs steps with no network only",
                self.endpoint()
            )))
        })
    }

    /// Makes sure the pinned image is available to steps (pulling it by digest if need be), within the
    /// policy's image size. Returns the engine's image id.
    fn ensure_image<'a>(
        &'a self,
        image: &'a PinnedImage,
    ) -> BoxFuture<'a, Result<String, SandboxError>>;

    /// Removes an image from the engine's cache: `Ok(false)` when it is in use or already gone.
    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool, SandboxError>>;

    /// The size of a present image, if it is present (for the image cache's budget).
    fn image_size<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Option<i64>>;

    /// Removes everything of one job still in the engine (a step cut short by the job deadline leaves its
    /// container behind). Returns how many were removed.
    fn remove_job_containers<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, SandboxError>>;

    /// Removes what reprod processes that no longer run left behind; a live process's steps are kept.
    fn sweep_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>>;

    /// Removes everything this process started (shutting down after a grace period).
    fn remove_own_containers(&self) -> BoxFuture<'_, Result<usize, SandboxError>>;
}

/// Docker: every method is the inherent one of the same name, unchanged. (`Sandbox::name` paths resolve
/// to the inherent method, which takes precedence over the trait's.)
impl Executor for Sandbox {
    fn endpoint(&self) -> &str {
        Sandbox::endpoint(self)
    }

    fn policy(&self) -> &Policy {
        Sandbox::policy(self)
    }

    fn userns_root(&self) -> Option<(u32, u32)> {
        Sandbox::userns_root(self)
    }

    fn run_step<'a>(
        &'a self,
        spec: &'a StepSpec,
    ) -> BoxFuture<'a, Result<StepOutcome, SandboxError>> {
        Box::pin(Sandbox::run_step(self, spec))
    }

    fn ensure_image<'a>(
        &'a self,
        image: &'a PinnedImage,
    ) -> BoxFuture<'a, Result<String, SandboxError>> {
        Box::pin(Sandbox::ensure_image(self, image))
    }

    fn open_job_network<'a>(
        &'a self,
        job_id: &'a str,
        holder: &'a NetworkHolder,
        hostname: &'a str,
        workspace: &'a Workspace,
    ) -> BoxFuture<'a, Result<JobNetwork, SandboxError>> {
        Box::pin(Sandbox::open_job_network(
            self, job_id, holder, hostname, workspace,
        ))
    }

    fn remove_image<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<bool, SandboxError>> {
        Box::pin(Sandbox::remove_image(self, reference))
    }

    fn image_size<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Option<i64>> {
        Box::pin(Sandbox::image_size(self, reference))
    }

    fn remove_job_containers<'a>(
        &'a self,
        job_id: &'a str,
    ) -> BoxFuture<'a, Result<usize, SandboxError>> {
        Box::pin(Sandbox::remove_job_containers(self, job_id))
    }

    fn sweep_orphans(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        Box::pin(Sandbox::sweep_orphans(self))
    }

    fn remove_own_containers(&self) -> BoxFuture<'_, Result<usize, SandboxError>> {
        Box::pin(Sandbox::remove_own_containers(self))
    }
}
