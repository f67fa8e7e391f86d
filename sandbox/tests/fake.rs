//! The fake executor as the reprod crate sees it: from outside the crate, behind `&dyn Executor`.
#![cfg(feature = "fake")]

use std::sync::Arc;

use reprod_sandbox::{Executor, FakeExecutor, PinnedImage, SandboxError, StepSpec, Termination};

mod common;

/// What rebuild's step loop does, reduced: run steps in order, stop at the first that does not succeed.
async fn run_all(executor: &dyn Executor, specs: &[StepSpec]) -> Result<usize, SandboxError> {
    for (i, spec) in specs.iter().enumerate() {
        if !executor.run_step(spec).await?.succeeded() {
            return Ok(i);
        }
    }
    Ok(specs.len())
}

#[tokio::test]
async fn a_job_runs_against_the_fake_through_the_trait() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("workspace")).unwrap();
    let image = PinnedImage::parse(
        "127.0.0.1:5000/b@sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16",
    )
    .unwrap();
    let spec = |name: &str| common::step("j".into(), name, image.clone(), dir.path(), "workspace");
    let fake = Arc::new(FakeExecutor::new().on_step(|step| {
        if step.spec.name == "build" {
            step.write("/workspace/out.tar", "rebuilt")?;
            return Ok(step.exited(0, ""));
        }
        Ok(step.timed_out("still testing"))
    }));
    let executor: Arc<dyn Executor> = fake.clone();
    let steps = [spec("build"), spec("test"), spec("never")];
    assert_eq!(run_all(executor.as_ref(), &steps).await.unwrap(), 1);
    let names: Vec<String> = fake.runs().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["build", "test"], "stopped at the timed-out step");
    let out = std::fs::read_to_string(dir.path().join("workspace/out.tar")).unwrap();
    assert_eq!(out, "rebuilt");
    let last = executor.run_step(&steps[1]).await.unwrap();
    assert_eq!(last.termination, Termination::TimedOut);
}
