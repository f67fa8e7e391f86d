//! The rebuild against an in-memory executor ([`FakeExecutor`]): real git checkouts, real job
//! directories and output scans, scripted steps. What needs a real engine (isolation, pulls, logs) is
//! tested in `tests/` and `sandbox/tests/`.

use std::process::Command;

use reprod_sandbox::{Executor, FakeExecutor, SandboxError};

use super::*;
use crate::verdict::{decide, Status};

pub(crate) const IMAGE: &str =
    "127.0.0.1:5000/builder@sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// A git repository with one commit, and the config that may check it out.
pub(crate) struct Fixture {
    /// Holds the repository and the data directory.
    _dir: tempfile::TempDir,
    pub config: Config,
    pub url: String,
    pub commit: String,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("build.sh"), "#!/bin/sh\necho build\n").unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(&src)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "one"]);
        let commit = git(&["rev-parse", "HEAD"]).trim().to_string();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.source.allow_file = true;
        config.source.cache_dir = config.data_dir.join("git");
        // A plain directory: no loop-mounted filesystem per job.
        config.sandbox.workspace_bytes = 0;
        config.images.fetch_originals = false;
        config.images.cache_bytes = 0;
        Fixture {
            url: format!("file://{}", src.display()),
            commit,
            config,
            _dir: dir,
        }
    }

    /// A Tekton Chains document: one script step in [`IMAGE`] from this repository, with `subjects`
    /// (name, sha256 hex).
    pub fn admitted(&self, subjects: &[(&str, &str)]) -> Admitted {
        let subjects: Vec<_> = subjects
            .iter()
            .map(|(n, hex)| serde_json::json!({"name": n, "digest": {"sha256": hex}}))
            .collect();
        let doc = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://tekton.dev/chains/provenance",
            "subject": subjects,
            "predicate": {
                "invocation": {"parameters": [], "recipe_uri": "task://t", "builder.id": "t"},
                "recipe": {"steps": [{"entryPoint": "#!/bin/sh\ncd /workspace/source && ./build.sh\n",
                    "arguments": null, "environment": {"container": "build", "image": IMAGE},
                    "annotations": null}]},
                "materials": [{"uri": self.url, "digest": {"revision": self.commit}}]
            }
        });
        crate::examine::admit(
            &self.config,
            &serde_json::to_vec(&doc).unwrap(),
            &crate::provenance::container::NoBlobs,
            &crate::trust::TrustMaterial::default(),
        )
        .unwrap()
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    crate::oci::sha256_bytes(bytes)
        .trim_start_matches("sha256:")
        .to_string()
}

pub(crate) fn quiet(_: &str) {}

pub(crate) fn options<'a>(environment: &'a dyn StepEnvironment) -> RebuildOptions<'a> {
    RebuildOptions {
        origin: "test".into(),
        keep_workspace: false,
        progress: &quiet,
        environment,
        explain: false,
        collected: false,
        watch: None,
    }
}

async fn rebuilt(
    f: &Fixture,
    a: &Admitted,
    executor: &dyn Executor,
) -> Result<Verdict, RebuildError> {
    let outcome = rebuild(&f.config, a, executor, &options(&Faithful), None).await?;
    Ok(decide(a, outcome))
}

#[tokio::test]
async fn a_step_that_writes_the_subject_rebuilds_it_bit_for_bit() {
    let f = Fixture::new();
    let a = f.admitted(&[("app.bin", &sha256_hex(b"hello"))]);
    let fake = FakeExecutor::new().on_step(|step| {
        // The checkout is there, at the recorded path, before the step runs.
        step.read("/workspace/source/build.sh")?;
        step.write("/workspace/source/out/app.bin", b"hello")?;
        Ok(step.exited(0, "built\n"))
    });
    let v = rebuilt(&f, &a, &fake).await.unwrap();
    assert_eq!(v.status, Status::Reproducible, "{}", v.detail);
    assert_eq!(v.subjects[0].state, SubjectState::Matched);
    assert_eq!(v.steps.len(), 1);
    assert_eq!(v.steps[0].log_tail, "built");
    let runs = fake.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].image.to_string(), IMAGE);
    assert!(runs[0]
        .env
        .contains(&("HOME".into(), crate::provenance::tekton::HOME_DIR.into())));
    // The caller built the executor and swept it; a rebuild does neither again.
    assert_eq!(fake.sweeps(), 0);
    assert_eq!(
        fake.removed_jobs().len(),
        1,
        "the job's containers are removed"
    );
    assert!(
        std::fs::read_dir(f.config.data_dir.join("jobs"))
            .unwrap()
            .next()
            .is_none(),
        "the job directory is gone"
    );
}

#[tokio::test]
async fn a_failing_step_is_build_failed_and_compares_nothing() {
    let f = Fixture::new();
    let a = f.admitted(&[("app.bin", &sha256_hex(b"hello"))]);
    let fake = FakeExecutor::new().on_step(|step| {
        step.write("/workspace/source/out/app.bin", b"hello")?;
        Ok(step.exited(3, "error: no\n"))
    });
    let v = rebuilt(&f, &a, &fake).await.unwrap();
    assert_eq!(
        (v.status, v.reason.as_deref()),
        (Status::BuildFailed, Some("step-failed"))
    );
    assert_eq!(v.subjects[0].state, SubjectState::NotCompared);
    assert!(
        v.outputs.is_none(),
        "the outputs of a failed build are not read"
    );
}

#[tokio::test]
async fn a_step_over_its_time_limit_is_build_failed_not_a_difference() {
    let f = Fixture::new();
    let a = f.admitted(&[("app.bin", &sha256_hex(b"hello"))]);
    let fake = FakeExecutor::new().on_step(|step| Ok(step.timed_out("slow\n")));
    let v = rebuilt(&f, &a, &fake).await.unwrap();
    assert_eq!(v.reason.as_deref(), Some("step-timed-out"));
    assert_eq!(v.subjects[0].state, SubjectState::NotCompared);
}

#[tokio::test]
async fn an_engine_fault_is_no_verdict() {
    let f = Fixture::new();
    let a = f.admitted(&[("app.bin", &sha256_hex(b"hello"))]);
    let killed = FakeExecutor::new().on_step(|step| Ok(step.killed("")));
    assert!(matches!(
        rebuilt(&f, &a, &killed).await,
        Err(RebuildError::Infrastructure(_))
    ));
    let down = FakeExecutor::new();
    down.set_available(false);
    assert!(matches!(
        rebuilt(&f, &a, &down).await,
        Err(RebuildError::Infrastructure(_))
    ));
    let lost = FakeExecutor::new().on_step(|_| Err(SandboxError::Lost("removed".into())));
    assert!(matches!(
        rebuilt(&f, &a, &lost).await,
        Err(RebuildError::Infrastructure(_))
    ));
}

#[tokio::test]
async fn an_image_the_registry_will_not_serve_is_unrebuildable() {
    let f = Fixture::new();
    let a = f.admitted(&[("app.bin", &sha256_hex(b"hello"))]);
    let fake = FakeExecutor::new().refusing_image(IMAGE);
    let v = rebuilt(&f, &a, &fake).await.unwrap();
    assert_eq!(
        (v.status, v.reason.as_deref()),
        (Status::Unrebuildable, Some("image-unavailable"))
    );
}

#[tokio::test]
async fn other_bytes_are_not_the_subject_and_the_source_is_never_an_output() {
    let f = Fixture::new();
    // build.sh is in the checkout: naming it as a subject must not make it "rebuilt".
    let a = f.admitted(&[
        ("app.bin", &sha256_hex(b"hello")),
        ("build.sh", &sha256_hex(b"#!/bin/sh\necho build\n")),
    ]);
    let fake = FakeExecutor::new().on_step(|step| {
        step.write("/workspace/source/out/app.bin", b"HELLO")?;
        Ok(step.exited(0, ""))
    });
    let v = rebuilt(&f, &a, &fake).await.unwrap();
    assert_eq!(v.status, Status::Unreproducible, "{}", v.detail);
    // app.bin was made with other bytes: its counterpart, not a match.
    let app = &v.subjects[0];
    assert_eq!(app.state, SubjectState::Differs);
    assert_eq!(
        app.rebuilt_digest.as_deref(),
        Some(format!("sha256:{}", sha256_hex(b"HELLO")).as_str())
    );
    // build.sh is only the source the build was given: nothing made it.
    assert_eq!(v.subjects[1].state, SubjectState::NotFound);
}

#[tokio::test]
async fn a_prior_rebuild_of_the_same_work_is_reused_without_running_anything() {
    let f = Fixture::new();
    let hello = sha256_hex(b"hello");
    let a = f.admitted(&[("app.bin", &hello)]);
    let fake = FakeExecutor::new().on_step(|step| {
        step.write("/workspace/source/out/app.bin", b"hello")?;
        Ok(step.exited(0, ""))
    });
    let first = rebuilt(&f, &a, &fake).await.unwrap();
    assert!(first.holds_reusable_rebuild());
    // Another document for the same work, claiming another digest too.
    let b = f.admitted(&[("app.bin", &hello), ("other", &"1".repeat(64))]);
    let prior = Prior {
        job: "job-1",
        verdict: &first,
    };
    let outcome = rebuild(&f.config, &b, &fake, &options(&Faithful), Some(prior))
        .await
        .unwrap();
    let v = decide(&b, outcome);
    assert_eq!(fake.runs().len(), 1, "nothing ran again");
    assert_eq!(v.reused_rebuild.as_deref(), Some("job-1"));
    assert_eq!(v.status, Status::Unreproducible);
    assert_eq!(v.subjects[0].state, SubjectState::Matched);
    assert_eq!(v.subjects[1].state, SubjectState::NotFound);
}

#[test]
fn only_marked_job_directories_of_dead_processes_are_swept() {
    let data = tempfile::tempdir().unwrap();
    let jobs = data.path().join("jobs");
    // Above any pid_max Linux allows: no such process.
    let dead = "0123456789ab-4194399-1";
    let kept_by_a_person = "0123456789ab-4194398-1";
    let mine = format!("0123456789ab-{}-1", std::process::id());
    for name in [dead, kept_by_a_person, &mine] {
        std::fs::create_dir_all(jobs.join(name).join("workspace")).unwrap();
    }
    std::fs::write(jobs.join(format!("{dead}.collected")), b"").unwrap();
    std::fs::write(jobs.join(format!("{mine}.collected")), b"").unwrap();
    assert_eq!(sweep_abandoned_job_dirs(data.path()).unwrap(), 1);
    assert!(!jobs.join(dead).exists());
    assert!(
        jobs.join(kept_by_a_person).exists(),
        "--keep-workspace directories stay"
    );
    assert!(
        jobs.join(&mine).exists(),
        "a running process's directory stays"
    );
    assert_eq!(
        sweep_abandoned_job_dirs(&data.path().join("none")).unwrap(),
        0
    );
}
