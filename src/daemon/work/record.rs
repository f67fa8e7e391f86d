//! Recording a verdict: sign its attestations, then keep verdict, record, indexes and envelopes in one
//! transaction. The one path both in-process and remote workers' verdicts take.

use crate::attest::{self, AttestError, Publication};
use crate::examine::Admitted;
use crate::store::{now_rfc3339, StoreError, VerdictRecord};
use crate::verdict::{
    decide, Ending, RebuildOutcome, Status, StepTermination, SubjectState, Verdict,
};

use crate::daemon::shared::Shared;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sign(#[from] AttestError),
}

/// Signs and stores `verdict` for `job` unless the job has one. `work_key` names the work its rebuild did,
/// so later documents for the same work can be judged against it. Blocking (signing, flush): call it from
/// `spawn_blocking`. Returns the record when this call wrote it.
pub fn record_verdict(
    shared: &Shared,
    job: &str,
    verdict: &Verdict,
    work_key: Option<&str>,
) -> Result<Option<VerdictRecord>, RecordError> {
    if shared.store.has_verdict(job)? {
        return Ok(None);
    }
    // One recording at a time: sequence numbers then follow recording times, which lists and
    // Last-Modified rely on. Signing and one flush are short next to a rebuild.
    let _one_at_a_time = shared
        .record_lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let at = now_rfc3339();
    let base = shared.config.server.base_url();
    let publication = Publication {
        job,
        recorded_at: &at,
        base_url: &base,
    };
    let signed = attest::attest(verdict, &publication, &shared.signer)?;
    let envelopes: Vec<(&str, Vec<u8>)> =
        signed.into_iter().map(|a| (a.kind, a.envelope)).collect();
    let record = shared
        .store
        .put_verdict_once(job, verdict, &at, &envelopes, work_key)?;
    if let Some(r) = &record {
        shared.metrics.verdict_recorded(r.status, r.duration_ms);
        tracing::info!(target: crate::daemon::JOBS, job, status = r.status.as_str(), attestations = ?r.attestations, "verdict recorded");
    }
    // The job has its verdict (whoever rebuilt it, or reused a rebuild, or found it could not): the step
    // images it was going to run in are no longer held for it.
    crate::rebuild::images::settle(
        &shared.config.data_dir,
        super::recheck::document_of(job).trim_start_matches("sha256:"),
    );
    Ok(record)
}

/// The stored document of `job`, admitted as the server admits it.
pub fn admit_stored(shared: &Shared, job: &str) -> Result<Admitted, String> {
    let document = shared
        .store
        .provenance(super::recheck::document_of(job))
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("job {job} has no stored document"))?;
    crate::examine::admit(
        &shared.config,
        &document,
        &crate::provenance::container::NoBlobs,
        &shared.material,
    )
    .map_err(|e| format!("the job's document no longer parses: {e}"))
}

/// Reasons a remote worker may give for a document it could not rebuild (what only its run can tell).
const RUNTIME_UNREBUILDABLE: &[&str] = &[
    "source-unavailable",
    "commit-not-found",
    "disallowed-source-scheme",
    "image-unavailable",
    "unpinned-image",
];

/// What a rebuild can also find when the steps are in the source (Cloud Build v1): only a checkout shows
/// the build config.
const CONFIG_UNREBUILDABLE: &[&str] = &[
    "no-build-config",
    "bad-build-config",
    "needs-secrets",
    "needs-docker-daemon",
];

/// What a BuildKit rebuild can also find: its worker's builder, platform and network, the published
/// image's manifest.
const BUILDKIT_UNREBUILDABLE: &[&str] = &[
    "exporter-unknown",
    "needs-build-network",
    "platform-unavailable",
    "builder-not-granted",
];

/// Turns a remote worker's report into the verdict the server signs. The server never signs the worker's
/// words about the document: the provenance, its digest, the source, the steps and their images, and the
/// subjects are re-derived from the stored document, and the status is decided here from the per-subject
/// results. What only the worker can know (exit codes, logs, outputs, rebuilt digests) is kept as its
/// claim, named in the verdict (`rebuilt_by`) and in the signed rebuild provenance (its builder).
/// Returns the verdict and the work key of the document's recipe.
pub fn check_remote_verdict(
    shared: &Shared,
    job: &str,
    worker: &str,
    claimed: Verdict,
) -> Result<(Verdict, Option<String>), String> {
    let admitted = admit_stored(shared, job)?;
    let work_key = admitted
        .finding()
        .recipe
        .as_ref()
        .map(crate::provenance::Recipe::work_key);
    // A BuildKit build request is run as one step of reprod's builder: the one this server configures,
    // which the worker's report is checked against as a recorded step would be.
    let builder = &shared.config.builders.buildkit.image;
    let as_run = as_run_by_builder(&admitted, builder);
    let mut verdict = checked(as_run.as_ref().unwrap_or(&admitted), job, worker, claimed)?;
    if as_run.is_some() && !verdict.steps.is_empty() {
        verdict.steps_from = Some(format!(
            "the BuildKit build request of the provenance, run by remote:{worker} with the builder \
             {builder}"
        ));
    }
    Ok((verdict, work_key))
}

/// `admitted` with its BuildKit recipe's one step: reprod's builder in `builder` (its image as this
/// server configures it). `None` for any other document, or one nothing is run for.
fn as_run_by_builder(admitted: &Admitted, builder: &str) -> Option<Admitted> {
    let finding = admitted.finding();
    let recipe = finding.recipe.as_ref()?;
    if recipe.buildkit.is_none() || admitted.refusal.is_some() || finding.unrebuildable.is_some() {
        return None;
    }
    let mut run = admitted.clone();
    let chosen = run.chosen;
    if let Some(r) = run.findings[chosen].recipe.as_mut() {
        r.steps = vec![crate::provenance::Step {
            name: "buildkit".into(),
            image: builder.to_string(),
            script: None,
            command: None,
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            task: None,
        }];
    }
    Some(run)
}

fn checked(
    admitted: &Admitted,
    job: &str,
    worker: &str,
    claimed: Verdict,
) -> Result<Verdict, String> {
    let origin = format!("job {job}");
    let finding = admitted.finding();
    // What the document itself decides is the server's own finding, whatever the worker says.
    if let Some(refusal) = &admitted.refusal {
        let ending = Ending::Refused {
            reason: refusal.reason.clone(),
            detail: refusal.detail.clone(),
        };
        return Ok(decide(admitted, RebuildOutcome::new(origin, ending)));
    }
    let recipe = match (&finding.recipe, &finding.unrebuildable) {
        (Some(r), None) => r,
        (_, Some(p)) => {
            let ending = Ending::unrebuildable(p.reason.clone(), p.detail.clone());
            return Ok(decide(admitted, RebuildOutcome::new(origin, ending)));
        }
        (None, None) => return Err("the job's document yields no recipe".into()),
    };
    // Subjects: every claimed one must be the document's.
    let subjects = crate::verdict::subjects_of(admitted);
    for c in &claimed.subjects {
        if !subjects
            .iter()
            .any(|s| s.name == c.name && s.digest == c.digest)
        {
            return Err(format!(
                "the verdict names subject {:?} {}, which the document does not",
                c.name, c.digest
            ));
        }
    }
    let digest = |image: &str| image.rsplit_once('@').map(|(_, d)| d.to_string());
    // Steps in the source (Cloud Build v1): the worker read them from its checkout, which the server has
    // not; they are its claim, and each must run an image the provenance resolved.
    if let Some(config) = &recipe.config_source {
        for (i, c) in claimed.steps.iter().enumerate() {
            let resolved = config
                .pinned_images
                .iter()
                .any(|p| digest(p) == digest(&c.image) && digest(&c.pulled_image) == digest(p));
            if !resolved {
                return Err(format!(
                    "step {}: the verdict reports {:?} in {}, an image the provenance did not resolve",
                    i + 1,
                    c.name,
                    c.image
                ));
            }
        }
        // A build that ran (compared, or failed in a step) ran the config's steps: a report of none, or
        // one that does not say it read them, is not a rebuild of this document.
        let ran = matches!(
            claimed.status,
            Status::Reproducible | Status::Unreproducible | Status::BuildFailed
        );
        if ran && (claimed.steps.is_empty() || claimed.steps_from.is_none()) {
            return Err(
                "the verdict reports a build of a document that records no steps, without the steps \
                 it read from the source and where"
                    .into(),
            );
        }
    }
    // Steps: the recorded ones, in order, in the recorded images (a mirror may change the repository,
    // never the digest).
    let config_sourced = recipe.config_source.is_some();
    if !config_sourced && claimed.steps.len() > recipe.steps.len() {
        return Err(format!(
            "the verdict reports {} steps; the document records {}",
            claimed.steps.len(),
            recipe.steps.len()
        ));
    }
    for (i, (c, r)) in claimed.steps.iter().zip(&recipe.steps).enumerate() {
        if c.name != r.name || c.image != r.image || digest(&c.pulled_image) != digest(&r.image) {
            return Err(format!(
                "step {}: the verdict reports {:?} in {} (pulled {}); the document records {:?} in {}",
                i + 1,
                c.name,
                c.image,
                c.pulled_image,
                r.name,
                r.image
            ));
        }
    }
    // What this server would call an infrastructure failure is not signed as the build's doing.
    if claimed
        .steps
        .iter()
        .any(|s| s.termination == StepTermination::Exited && s.exit_code == 128 + 9)
    {
        return Err(
            "a step ended by SIGKILL (exit 137) that its limits do not explain is an infrastructure failure: report `retry`".into(),
        );
    }
    let ran_all = (config_sourced || claimed.steps.len() == recipe.steps.len())
        && claimed
            .steps
            .iter()
            .all(|s| s.termination == StepTermination::Exited && s.exit_code == 0);
    let found_by_running: &[&str] = if config_sourced {
        CONFIG_UNREBUILDABLE
    } else if recipe.buildkit.is_some() {
        BUILDKIT_UNREBUILDABLE
    } else {
        &[]
    };
    let ending = claimed_ending(&claimed, ran_all, found_by_running)?;
    let outcome = RebuildOutcome {
        // Said by the server, from the document: the worker's own words are not signed.
        steps_from: recipe
            .config_source
            .as_ref()
            .filter(|_| !claimed.steps.is_empty())
            .map(|config| {
                format!(
                    "{} in the recorded commit {}, as remote:{worker} read it",
                    config.path,
                    recipe.source.as_ref().map_or("", |s| s.commit.as_str())
                )
            }),
        fetched_url: claimed.fetched_url.clone(),
        steps: claimed.steps.clone(),
        claimed_results: claimed.claimed_results.clone(),
        network: claimed.network.clone(),
        rebuilt_by: Some(format!("remote:{worker}")),
        duration_ms: claimed.duration_ms,
        ..RebuildOutcome::new(origin, ending)
    };
    // The states and the status are the server's own reading of the claimed facts; the claim must agree.
    let verdict = decide(admitted, outcome);
    if claimed.status.compared() {
        agrees(&verdict, &claimed)?;
    }
    Ok(verdict)
}

/// How the worker's rebuild ended, as far as its report holds together.
fn claimed_ending(
    claimed: &Verdict,
    ran_all: bool,
    found_by_running: &[&str],
) -> Result<Ending, String> {
    match claimed.status {
        Status::Rejected => Err(
            "the server admitted this document; a worker reports `retry`, not `rejected`".into(),
        ),
        Status::Unrebuildable => {
            let reason = claimed.reason.clone().unwrap_or_default();
            let runtime = RUNTIME_UNREBUILDABLE.contains(&reason.as_str())
                || found_by_running.contains(&reason.as_str());
            if !runtime {
                return Err(format!(
                    "unrebuildable reason {reason:?} is not one a rebuild can find that the server cannot (one of {})",
                    RUNTIME_UNREBUILDABLE.join(", ")
                ));
            }
            Ok(Ending::unrebuildable(reason, claimed.detail.clone()))
        }
        Status::BuildFailed => {
            let last = claimed.steps.last();
            let reason = match (claimed.reason.as_deref(), last) {
                (Some("job-timed-out"), _) => "job-timed-out",
                (Some("output-scan-limit"), _) if ran_all => "output-scan-limit",
                (Some("step-out-of-disk"), Some(s)) if s.exit_code != 0 => "step-out-of-disk",
                // Only with a refusal in the worker's own record to show for it.
                (Some("network-denied"), Some(s))
                    if s.exit_code != 0
                        && claimed
                            .network
                            .as_ref()
                            .is_some_and(|n| n.refusals_since(0).next().is_some()) =>
                {
                    "network-denied"
                }
                (_, Some(s)) if s.termination == StepTermination::TimedOut => "step-timed-out",
                (_, Some(s)) if s.termination == StepTermination::OutOfMemory => {
                    "step-out-of-memory"
                }
                (_, Some(s)) if s.exit_code != 0 => "step-failed",
                _ => return Err(
                    "a build-failed verdict whose last step did not fail (nor the job time out)"
                        .into(),
                ),
            };
            Ok(Ending::build_failed(reason, claimed.detail.clone()))
        }
        Status::Reproducible | Status::Unreproducible => {
            if !ran_all {
                return Err(
                    "a comparison is claimed, but not every recorded step ran and exited 0".into(),
                );
            }
            let outputs = claimed
                .outputs
                .clone()
                .ok_or("a comparison is claimed without the outputs it compared")?;
            if outputs.stopped.is_some() && claimed.status != Status::Reproducible {
                return Err("a comparison over outputs whose scan stopped early is a limit, not a finding: report build-failed / output-scan-limit".into());
            }
            // Explanations are the worker's words about its own diff; they are kept for the subjects the
            // server also finds differing, at the same rebuilt image.
            let explanations = claimed
                .subjects
                .iter()
                .filter(|c| c.state == SubjectState::Differs)
                .filter_map(|c| {
                    let x = c.explanation.clone()?;
                    Some(((c.digest.clone(), c.rebuilt_path.clone()?), x))
                })
                .collect();
            Ok(Ending::Built {
                outputs,
                explanations,
            })
        }
    }
}

/// The worker's per-subject results and status must be what its claimed outputs make them.
fn agrees(verdict: &Verdict, claimed: &Verdict) -> Result<(), String> {
    // A comparison the server's reading turns into a limit (an early-stopped scan that did not match
    // everything) is not the comparison claimed.
    let compared = verdict
        .subjects
        .iter()
        .filter(|s| verdict.status.compared() && s.is_sha256());
    for s in compared {
        let Some(c) = claimed
            .subjects
            .iter()
            .find(|c| c.name == s.name && c.digest == s.digest)
        else {
            return Err(format!(
                "the verdict says nothing of subject {:?} {}",
                s.name, s.digest
            ));
        };
        if c.state != s.state
            || (c.state != SubjectState::NotFound && c.rebuilt_digest != s.rebuilt_digest)
        {
            return Err(format!(
                "subject {:?} {} is claimed {} (rebuilt {:?}), but the claimed outputs make it {} (rebuilt {:?})",
                s.name,
                s.digest,
                c.state.as_str(),
                c.rebuilt_digest,
                s.state.as_str(),
                s.rebuilt_digest
            ));
        }
    }
    if verdict.status != claimed.status {
        return Err(format!(
            "the verdict claims {} but its per-subject results make it {}",
            claimed.status.as_str(),
            verdict.status.as_str()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{StepReport, SubjectResult};

    const IMAGE: &str =
        "127.0.0.1:5000/builder@sha256:3333333333333333333333333333333333333333333333333333333333333333";

    fn sha(c: &str) -> String {
        format!("sha256:{}", c.repeat(64))
    }

    fn admitted() -> Admitted {
        let doc = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://tekton.dev/chains/provenance",
            "subject": [{"name": "reg/app", "digest": {"sha256": "a".repeat(64)}}],
            "predicate": {
                "invocation": {"parameters": [], "recipe_uri": "task://t", "builder.id": "t"},
                "recipe": {"steps": [{"entryPoint": "#!/bin/sh\n./build.sh\n", "arguments": null,
                    "environment": {"container": "build", "image": IMAGE}, "annotations": null}]},
                "materials": [{"uri": "https://git.example/app", "digest": {"revision": "c".repeat(40)}}]
            }
        });
        admit(&doc)
    }

    /// `doc` admitted with the default configuration and no trust material.
    fn admit(doc: &serde_json::Value) -> Admitted {
        admit_with(&crate::config::Config::default(), doc)
    }

    fn admit_with(config: &crate::config::Config, doc: &serde_json::Value) -> Admitted {
        crate::examine::admit(
            config,
            &serde_json::to_vec(doc).unwrap(),
            &crate::provenance::container::NoBlobs,
            &crate::trust::TrustMaterial::default(),
        )
        .unwrap()
    }

    /// A worker's BuildKit rebuild is checked as a recorded step would be, against the builder this server
    /// configures: one step, named `buildkit`, in that image; a report from another builder is refused,
    /// what only a BuildKit run can find is taken for a BuildKit document only, and without a builder the
    /// server's own answer (`no-builder`) stands whatever the worker says.
    #[test]
    fn a_buildkit_report_is_checked_against_this_servers_builder() {
        let doc = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "reg/app", "digest": {"sha256": "a".repeat(64)}}],
            "predicate": {
                "builder": {"id": "https://github.com/docker/buildx"},
                "buildType": "https://mobyproject.org/buildkit@v1",
                "invocation": {
                    "configSource": {"uri": "https://git.example/app.git#main",
                                     "digest": {"sha1": "c".repeat(40)}, "entryPoint": "Dockerfile"},
                    "parameters": {"frontend": "dockerfile.v0", "args": {}},
                    "environment": {"platform": "linux/amd64"}
                },
                "buildConfig": {"llbDefinition": []},
                "materials": []
            }
        });
        let mut config = crate::config::Config::default();
        config.builders.buildkit.image = IMAGE.into();
        let a = admit_with(&config, &doc);
        assert_eq!(a.finding().unrebuildable, None);
        let run = as_run_by_builder(&a, IMAGE).unwrap();
        let mut claimed = honest(&run);
        claimed.steps[0].name = "buildkit".into();
        let v = checked(&run, "sha256:job", "w1", claimed.clone()).unwrap();
        assert_eq!(v.status, Status::Reproducible);
        let mut elsewhere = claimed.clone();
        let other = format!("127.0.0.1:5000/builder@{}", sha("4"));
        elsewhere.steps[0].image = other.clone();
        elsewhere.steps[0].pulled_image = other;
        assert!(checked(&run, "sha256:job", "w1", elsewhere).is_err());
        let mut more = claimed.clone();
        more.steps.push(claimed.steps[0].clone());
        assert!(checked(&run, "sha256:job", "w1", more).is_err());
        let mut exporter = claimed.clone();
        exporter.status = Status::Unrebuildable;
        exporter.reason = Some("exporter-unknown".into());
        exporter.steps.clear();
        let v = checked(&run, "sha256:job", "w1", exporter.clone()).unwrap();
        assert_eq!(v.reason.as_deref(), Some("exporter-unknown"));
        assert!(checked(&admitted(), "sha256:job", "w1", exporter).is_err());
        let without = admit(&doc);
        assert!(as_run_by_builder(&without, "").is_none());
        let v = checked(&without, "sha256:job", "w1", claimed).unwrap();
        assert_eq!(v.reason.as_deref(), Some("no-builder: buildkit"));
    }

    /// What an honest worker reports after a reproducible rebuild.
    fn honest(a: &Admitted) -> Verdict {
        let step = StepReport {
            name: "build".into(),
            image: IMAGE.into(),
            pulled_image: IMAGE.into(),
            exit_code: 0,
            termination: StepTermination::Exited,
            duration_ms: 1,
            log_bytes: 0,
            log_truncated: false,
            log_artifact: None,
            log_sha256: None,
            log_tail: String::new(),
            profile: None,
        };
        let mut outputs = crate::oci::Outputs::default();
        outputs.files.push(crate::oci::RebuiltFile {
            path: "out/app".into(),
            digest: sha("a"),
            size: 1,
            image_document: false,
        });
        let ending = Ending::Built {
            outputs,
            explanations: Default::default(),
        };
        let v = decide(
            a,
            RebuildOutcome {
                steps: vec![step],
                ..RebuildOutcome::new("worker", ending)
            },
        );
        assert_eq!(v.status, Status::Reproducible);
        v
    }

    /// A Cloud Build v1 document: no steps, its config in the source, `IMAGE` resolved.
    fn config_sourced() -> Admitted {
        let hex = IMAGE.rsplit_once("sha256:").unwrap().1;
        let doc = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": [{"name": "reg/app", "digest": {"sha256": "a".repeat(64)}}],
            "predicate": {"buildDefinition": {
                "buildType": "https://cloud.google.com/build/gcb-buildtypes/google-worker/v1",
                "externalParameters": {"buildConfigSource": {"path": "cloudbuild.yaml"}},
                "resolvedDependencies": [
                    {"uri": "git+https://git.example/app", "digest": {"gitCommit": "c".repeat(40)}},
                    {"uri": "127.0.0.1:5000/builder", "digest": {"sha256": hex}}
                ]
            }, "runDetails": {"builder": {"id": "b"}}}
        });
        admit(&doc)
    }

    /// Steps read from the source are the worker's claim: kept when they say where they came from and
    /// run what the provenance resolved, refused otherwise; and a config the worker found missing is a
    /// verdict the server could not have reached itself, so it is taken, for such a document only.
    #[test]
    fn steps_a_worker_read_from_the_source_must_run_what_the_provenance_resolved() {
        let a = config_sourced();
        let mut claimed = honest(&a);
        claimed.steps_from = Some("cloudbuild.yaml in the recorded commit".into());
        // Where the steps came from is the server's sentence, from the document, not the worker's.
        let server_said = |v: &Verdict| {
            assert_eq!(
                v.steps_from.as_deref(),
                Some(
                    format!(
                        "cloudbuild.yaml in the recorded commit {}, as remote:w1 read it",
                        "c".repeat(40)
                    )
                    .as_str()
                )
            );
        };
        let v = checked(&a, "sha256:job", "w1", claimed.clone()).unwrap();
        assert_eq!(v.status, Status::Reproducible);
        server_said(&v);
        let mut unsaid = claimed.clone();
        unsaid.steps_from = None;
        assert!(checked(&a, "sha256:job", "w1", unsaid).is_err());
        // A comparison with no steps at all is no rebuild of a document whose steps are in the source.
        let mut none = claimed.clone();
        none.steps.clear();
        let e = checked(&a, "sha256:job", "w1", none).unwrap_err();
        assert!(e.contains("records no steps"), "{e}");
        let mut boastful = claimed.clone();
        boastful.steps_from = Some("the provenance itself, verified".into());
        server_said(&checked(&a, "sha256:job", "w1", boastful).unwrap());
        let mut elsewhere = claimed.clone();
        let other = format!("127.0.0.1:5000/builder@{}", sha("4"));
        elsewhere.steps[0].image = other.clone();
        elsewhere.steps[0].pulled_image = other;
        let e = checked(&a, "sha256:job", "w1", elsewhere).unwrap_err();
        assert!(e.contains("did not resolve"), "{e}");
        let mut missing = claimed;
        missing.status = Status::Unrebuildable;
        missing.reason = Some("no-build-config".into());
        missing.steps.clear();
        assert_eq!(
            checked(&a, "sha256:job", "w1", missing.clone())
                .unwrap()
                .reason
                .as_deref(),
            Some("no-build-config")
        );
        // A document whose steps it records cannot be missing a build config.
        assert!(checked(&admitted(), "sha256:job", "w1", missing).is_err());
    }

    #[test]
    fn an_honest_report_is_kept_as_the_workers_claim() {
        let a = admitted();
        let mut claimed = honest(&a);
        // What the worker says about the document itself is not taken: the server re-derives it.
        claimed.provenance.sha256 = "ff".repeat(32);
        claimed.source = None;
        let v = checked(&a, "sha256:job", "w1", claimed).unwrap();
        assert_eq!(v.status, Status::Reproducible);
        assert_eq!(v.rebuilt_by.as_deref(), Some("remote:w1"));
        assert_eq!(v.provenance.sha256, a.sha256);
        assert_eq!(
            v.source.as_ref().map(|s| s.uri.as_str()),
            Some("https://git.example/app")
        );
    }

    #[test]
    fn claims_the_document_or_the_outputs_contradict_are_refused() {
        let a = admitted();
        let refused = |claimed: Verdict| checked(&a, "sha256:job", "w1", claimed).unwrap_err();

        let mut no_digest = honest(&a);
        no_digest.subjects[0].rebuilt_digest = None;
        assert!(refused(no_digest).contains("the claimed outputs make it matched"));

        let mut not_in_outputs = honest(&a);
        not_in_outputs.outputs = Some(crate::oci::Outputs::default());
        assert!(refused(not_in_outputs).contains("the claimed outputs make it not-found"));

        let mut other_image = honest(&a);
        other_image.steps[0].pulled_image = format!("127.0.0.1:5000/builder@{}", sha("4"));
        assert!(refused(other_image).contains("the document records"));

        let mut extra = honest(&a);
        extra
            .subjects
            .push(SubjectResult::not_compared("evil/app", sha("e")));
        assert!(refused(extra).contains("which the document does not"));

        let mut inconsistent = honest(&a);
        inconsistent.subjects[0].set_state(SubjectState::Differs);
        inconsistent.subjects[0].rebuilt_digest = Some(sha("b"));
        assert!(refused(inconsistent).contains("the claimed outputs make it matched"));

        let mut wrong_status = honest(&a);
        wrong_status.status = Status::Unreproducible;
        assert!(refused(wrong_status).contains("make it reproducible"));

        let mut killed = honest(&a);
        killed.status = Status::BuildFailed;
        killed.steps[0].exit_code = 137;
        assert!(refused(killed).contains("infrastructure failure"));

        let mut failed_step = honest(&a);
        failed_step.steps[0].exit_code = 1;
        assert!(refused(failed_step).contains("not every recorded step ran"));

        let mut rejected = honest(&a);
        rejected.status = Status::Rejected;
        assert!(refused(rejected).contains("retry"));

        let mut stopped = honest(&a);
        let mut outputs = stopped.outputs.take().unwrap();
        outputs.files.clear();
        outputs.stopped = Some("the job deadline".into());
        stopped.outputs = Some(outputs);
        assert!(refused(stopped)
            .contains("claims reproducible but its per-subject results make it build-failed"));

        let mut made_up_reason = honest(&a);
        made_up_reason.status = Status::Unrebuildable;
        made_up_reason.reason = Some("no-steps".into());
        assert!(refused(made_up_reason).contains("not one a rebuild can find"));
    }
}
