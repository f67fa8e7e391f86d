//! What the integration tests share.

use std::path::Path;

use reprod_sandbox::{PinnedImage, StepMount, StepSpec};

/// A step of `job_id` running `image`'s own command, with `workspace/<subdir>` mounted writable at
/// `/workspace` and nothing else set.
pub fn step(
    job_id: String,
    name: &str,
    image: PinnedImage,
    workspace: &Path,
    subdir: &str,
) -> StepSpec {
    StepSpec {
        mounts: vec![StepMount {
            workspace_subdir: subdir.into(),
            container_path: "/workspace".into(),
            read_only: false,
        }],
        ..StepSpec::new(&job_id, name, image, workspace.into())
    }
}
