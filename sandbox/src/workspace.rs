//! The job workspace as a handle rather than a host path.
//!
//! Docker bind-mounts a directory of this host, so today a workspace is always one. A backend whose steps
//! run elsewhere (a Kubernetes node: docs/kubernetes-executor.md) cannot take a host path; it needs a
//! volume it can attach to the step. Naming the workspace through this type lets that kind be added
//! without every caller of the sandbox passing paths around. `StepMount::workspace_subdir` is already
//! relative to the workspace, so it stays as it is.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a job's steps read and write: the root whose subdirectories [`StepMount`](crate::StepMount)s
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workspace {
    kind: Kind,
}

// Private, so that a new kind is an addition rather than a breaking change to matches outside the crate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Kind {
    /// A directory on this host (bind-mounted by the Docker executor).
    Local(PathBuf),
}

impl Workspace {
    /// A directory on this host.
    pub fn local(dir: impl Into<PathBuf>) -> Self {
        Workspace {
            kind: Kind::Local(dir.into()),
        }
    }

    /// The host directory. Infallible while local is the only kind; when a remote kind is added this
    /// becomes an `Option`, and each executor states which kinds it accepts.
    pub fn local_dir(&self) -> &Path {
        match &self.kind {
            Kind::Local(dir) => dir,
        }
    }
}

impl From<PathBuf> for Workspace {
    fn from(dir: PathBuf) -> Self {
        Workspace::local(dir)
    }
}

impl From<&Path> for Workspace {
    fn from(dir: &Path) -> Self {
        Workspace::local(dir)
    }
}

impl fmt::Display for Workspace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_converts_to_a_local_workspace() {
        let from_buf: Workspace = PathBuf::from("/data/jobs/j1").into();
        let from_ref = Workspace::from(Path::new("/data/jobs/j1"));
        assert_eq!(from_buf, from_ref);
        assert_eq!(from_buf, Workspace::local("/data/jobs/j1"));
        assert_eq!(from_buf.local_dir(), Path::new("/data/jobs/j1"));
        assert_eq!(from_buf.to_string(), "/data/jobs/j1");
    }
}
