//! How a step is launched. A faithful rebuild launches every step as recorded ([`Faithful`]); `reprod
//! rebuild --vary` launches them in a varied environment by implementing [`StepEnvironment`] over its
//! variations, so rebuild knows nothing of variations.

use reprod_sandbox::StepSpec;

use crate::provenance::tekton;

/// The step environment hook: where the workspace is mounted, and what changes in each step's launch.
pub trait StepEnvironment: Send + Sync {
    /// Where the job workspace is mounted in the step containers; the steps' scripts, commands, arguments
    /// and working directories are moved with it ([`move_workspace`]).
    fn workspace_root(&self) -> &str {
        tekton::WORKSPACE_ROOT
    }

    /// Changes one step's launch (environment, entrypoint, user, CPUs, hostname) just before it runs.
    fn adjust(&self, _step: &mut StepSpec) {}
}

/// Every step exactly as recorded.
pub struct Faithful;

impl StepEnvironment for Faithful {}

/// Replaces the workspace root in a step's text (whole path components only).
pub fn move_workspace(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let boundary = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
        out.push_str(&rest[..i]);
        out.push_str(if boundary { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::move_workspace;

    #[test]
    fn only_whole_path_components_move() {
        let moved = move_workspace(
            "cd /workspace/source && cp x /workspace-old/ /workspace",
            "/workspace",
            "/build/w",
        );
        assert_eq!(moved, "cd /build/w/source && cp x /workspace-old/ /build/w");
    }
}
