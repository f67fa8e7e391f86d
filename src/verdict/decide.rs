//! Deciding: the one place a rebuild's outcome becomes a verdict. The rebuild reports what ran and what
//! came out ([`RebuildOutcome`]); here each subject is matched against the outputs and the status, reason
//! and sentence are decided.

use crate::examine::Admitted;
use crate::oci::{Outputs, RebuiltFile, TopEntry};

use super::outcome::{Ending, RebuildOutcome};
use super::{ArtifactKind, ProvenanceInfo, Status, SubjectResult, SubjectState, Verdict};

/// The verdict on `admitted` that `outcome` supports, and nothing more.
pub fn decide(admitted: &Admitted, outcome: RebuildOutcome) -> Verdict {
    let mut verdict = skeleton(admitted, &outcome.origin);
    verdict.fetched_url = outcome.fetched_url;
    verdict.steps = outcome.steps;
    verdict.claimed_results = outcome.claimed_results;
    verdict.job_dir = outcome.job_dir;
    verdict.rebuilt_by = outcome.rebuilt_by;
    verdict.network = outcome.network;
    verdict.steps_from = outcome.steps_from;
    verdict.duration_ms = outcome.duration_ms;
    if let Some(reused) = outcome.reused {
        verdict.reused_rebuild = Some(reused.job);
        verdict.source = reused.source;
    }
    match outcome.ending {
        Ending::Refused { reason, detail } => {
            verdict.conclude_uncompared(Status::Rejected, &reason, detail)
        }
        Ending::Unrebuildable { reason, detail } => {
            verdict.conclude_uncompared(Status::Unrebuildable, &reason, detail)
        }
        Ending::BuildFailed { reason, detail } => {
            verdict.conclude_uncompared(Status::BuildFailed, &reason, detail)
        }
        Ending::Built {
            outputs,
            explanations,
        } => {
            judge_subjects(&mut verdict.subjects, &outputs);
            let stopped = outputs.stopped.clone();
            verdict.outputs = Some(outputs);
            verdict.decide_compared();
            match stopped {
                // A subject not found in a scan that stopped early may only not have been reached: that is
                // a limit of this rebuilder, not a finding about the artifact.
                Some(why) if verdict.status != Status::Reproducible => verdict.conclude_uncompared(
                    Status::BuildFailed,
                    "output-scan-limit",
                    format!("the outputs could not all be read ({why}); this is a limit of this rebuilder, not a finding about the artifact"),
                ),
                _ => {
                    for s in &mut verdict.subjects {
                        if let (SubjectState::Differs, Some(path)) = (s.state, &s.rebuilt_path) {
                            s.explanation = explanations.get(&(s.digest.clone(), path.clone())).cloned();
                        }
                    }
                }
            }
        }
    }
    verdict
}

/// The verdict for an admitted document before anything is known: every subject not compared.
fn skeleton(admitted: &Admitted, origin: &str) -> Verdict {
    let finding = admitted.finding();
    let mut verdict = Verdict::new(
        ProvenanceInfo {
            origin: origin.to_string(),
            sha256: admitted.sha256.clone(),
            signature: finding.verification.summary(),
            verification: finding.verification.clone(),
            container: finding.container.clone(),
            predicate_type: finding.predicate_type.clone().unwrap_or_default(),
        },
        finding.recipe.as_ref().and_then(|r| r.source.clone()),
        subjects_of(admitted),
    );
    // A pipeline's tasks and what the rebuild does with each: a skipped task is said, never silent.
    verdict.tasks = finding
        .recipe
        .iter()
        .flat_map(|r| &r.tasks)
        .map(|t| super::TaskReport {
            name: t.name.clone(),
            task_ref: t.task_ref.clone(),
            role: t.role.clone(),
        })
        .collect();
    verdict
}

/// The admitted statement's subjects, none compared yet (a subject without sha256 by its first digest).
pub fn subjects_of(admitted: &Admitted) -> Vec<SubjectResult> {
    admitted
        .finding()
        .subjects
        .iter()
        .map(|s| {
            SubjectResult::not_compared(
                &s.name,
                s.sha256().unwrap_or_else(|| {
                    s.digests
                        .iter()
                        .next()
                        .map_or_else(|| "(none)".into(), |(alg, hex)| format!("{alg}:{hex}"))
                }),
            )
        })
        .collect()
}

impl Verdict {
    /// Ends the verdict without a comparison (refused, unrebuildable, the build failed): no subject was
    /// compared, whatever an earlier stage noted about it.
    pub(super) fn conclude_uncompared(&mut self, status: Status, reason: &str, detail: String) {
        debug_assert!(!matches!(
            status,
            Status::Reproducible | Status::Unreproducible
        ));
        self.status = status;
        self.reason = Some(reason.to_string());
        self.detail = detail;
        for s in &mut self.subjects {
            s.set_state(SubjectState::NotCompared);
            s.artifact = None;
            s.rebuilt_digest = None;
            s.rebuilt_path = None;
            s.explanation = None;
        }
    }

    /// Decides the status of a rebuild that ran to completion from its subjects' states: the one place a
    /// comparison becomes `reproducible` or `unreproducible`. Subjects with digests other than sha256 stay
    /// `not-compared` and decide nothing.
    pub(super) fn decide_compared(&mut self) {
        let distinct = |state: Option<SubjectState>| {
            let mut d: Vec<&str> = self
                .subjects
                .iter()
                .filter(|s| state.is_none_or(|st| s.state == st) && s.state.compared())
                .map(|s| s.digest.as_str())
                .collect();
            d.sort_unstable();
            d.dedup();
            d.len()
        };
        let compared = distinct(None);
        let matched = distinct(Some(SubjectState::Matched));
        let differs = distinct(Some(SubjectState::Differs));
        let not_found = distinct(Some(SubjectState::NotFound));
        let uncompared = self.subjects.iter().filter(|s| !s.state.compared()).count();
        let also = if uncompared > 0 {
            format!("; {uncompared} subject(s) without a sha256 digest were not compared")
        } else {
            String::new()
        };
        if compared == 0 {
            self.status = Status::Unrebuildable;
            self.reason = Some("no-sha256-subject".into());
            self.detail = "no subject has a sha256 digest, so there is nothing to compare".into();
            return;
        }
        if matched == compared {
            self.status = Status::Reproducible;
            self.reason = None;
            self.detail = format!(
                "all {compared} distinct sha256 subject digest(s) were rebuilt bit for bit{also}"
            );
            return;
        }
        self.status = Status::Unreproducible;
        let incomplete = self
            .subjects
            .iter()
            .any(|s| s.state == SubjectState::NotFound && s.problem.is_some());
        let produced = self
            .outputs
            .as_ref()
            .map_or(0, |o| o.images.len() + o.files.len() + o.files_omitted);
        let nothing = differs == 0 && matched == 0;
        let (reason, detail) = if nothing && !incomplete {
            // Nothing the steps made corresponds to any subject: the recipe builds none of them (or they
            // were built elsewhere and only named here), which is not a list of differences.
            let claimed = self.subjects.iter().any(|s| {
                let hex = s.digest.trim_start_matches("sha256:");
                self.claimed_results.values().any(|v| v.contains(hex))
            });
            let made = if produced == 0 {
                "the steps produced no output at all".to_string()
            } else {
                format!(
                    "the steps produced {produced} output(s), none of them any subject or its counterpart"
                )
            };
            (
                "no-output",
                format!(
                    "{made}: nothing corresponds to the {compared} subject digest(s){}",
                    if claimed {
                        "; the build only claimed them in its results, which are not evidence"
                    } else {
                        ""
                    }
                ),
            )
        } else if nothing && incomplete {
            (
                "incomplete-image",
                format!(
                    "no subject digest was rebuilt whole: {}",
                    self.subjects
                        .iter()
                        .find_map(|s| s.problem.clone())
                        .unwrap_or_default()
                ),
            )
        } else {
            let first = self
                .subjects
                .iter()
                .find(|s| matches!(s.state, SubjectState::Differs | SubjectState::NotFound));
            (
                "digest-mismatch",
                format!(
                    "{} of {compared} distinct sha256 subject digest(s) were not rebuilt ({differs} differ, {not_found} not found){}",
                    compared - matched,
                    first.map_or(String::new(), |f| format!(
                        "; first: {} expected {}, rebuilt {}",
                        f.name,
                        f.digest,
                        f.rebuilt_digest.as_deref().unwrap_or("(nothing corresponding)")
                    ))
                ),
            )
        };
        // A subject a skipped task may have made: its absence is this rebuild's doing, and the verdict says so.
        let skipped: Vec<&str> = self
            .tasks
            .iter()
            .filter(|t| matches!(t.role, crate::provenance::TaskRole::Skipped { .. }))
            .map(|t| t.name.as_str())
            .collect();
        let skipped = if not_found > 0 && !skipped.is_empty() {
            format!(
                "; the pipeline's tasks {} were skipped, not run: a subject one of them made is not found \
                 for that reason alone",
                skipped.join(", ")
            )
        } else {
            String::new()
        };
        self.reason = Some(reason.into());
        self.detail = format!("{detail}{also}{skipped}");
    }
}

/// Sets each subject's state from what the rebuild produced: matched (an output whole, with exactly its
/// digest), differs (a whole counterpart image, or a file under the subject's name, with another
/// digest), not found (nothing corresponding, or only an image with missing or corrupt blobs), not
/// compared (not a sha256 digest).
pub fn judge_subjects(subjects: &mut [SubjectResult], outputs: &Outputs) {
    for subject in subjects {
        subject.rebuilt_digest = None;
        subject.rebuilt_path = None;
        subject.problem = None;
        if !subject.is_sha256() {
            subject.set_state(SubjectState::NotCompared);
            continue;
        }
        subject.artifact = None;
        if outputs.contains(&subject.digest) {
            subject.set_state(SubjectState::Matched);
            subject.artifact = Some(
                if outputs.files.iter().any(|f| f.digest == subject.digest) {
                    ArtifactKind::File
                } else {
                    ArtifactKind::Image
                },
            );
            subject.rebuilt_digest = Some(subject.digest.clone());
        } else if let Some((image, problem)) = outputs.incomplete(&subject.digest) {
            // The digest was written, but not everything beneath it: that image was not rebuilt.
            subject.set_state(SubjectState::NotFound);
            subject.artifact = Some(ArtifactKind::Image);
            subject.rebuilt_path = Some(image.path.clone());
            subject.problem = Some(format!(
                "{} holds {} but not whole: {problem}",
                image.path, subject.digest
            ));
        } else if let Some(file) = file_counterpart(&subject.name, outputs) {
            // A file the build made under the subject's name, with other bytes.
            subject.set_state(SubjectState::Differs);
            subject.artifact = Some(ArtifactKind::File);
            subject.rebuilt_digest = Some(file.digest.clone());
            subject.rebuilt_path = Some(file.path.clone());
        } else if let Some((entry, path)) = counterpart(&subject.name, outputs) {
            subject.artifact = Some(ArtifactKind::Image);
            subject.rebuilt_path = Some(path.clone());
            if entry.complete {
                subject.set_state(SubjectState::Differs);
                subject.rebuilt_digest = Some(entry.digest.clone());
            } else {
                // Not a rebuilt image: its digest is only what a file of the build says.
                subject.set_state(SubjectState::NotFound);
                subject.problem = Some(format!(
                    "the build's counterpart at {path} ({}) is not a whole image: a blob beneath it is missing or wrong",
                    entry.digest
                ));
            }
        } else {
            subject.set_state(SubjectState::NotFound);
        }
    }
}

/// The output file a subject name corresponds to: the one file at that path, or whose path ends in
/// `/<name>`, exactly one such; several equally good candidates are no counterpart.
fn file_counterpart<'a>(name: &str, outputs: &'a Outputs) -> Option<&'a RebuiltFile> {
    if name.is_empty() {
        return None;
    }
    let files = || outputs.files.iter().filter(|f| !f.image_document);
    if let Some(exact) = files().find(|f| f.path == name) {
        return Some(exact);
    }
    let suffix = format!("/{name}");
    let mut under = files().filter(|f| f.path.ends_with(&suffix));
    match (under.next(), under.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// The rebuilt image a subject name corresponds to (digest, path in the workspace): by the
/// `org.opencontainers.image.ref.name` annotation (full name, tag, or last path component), else the only
/// image built.
fn counterpart<'a>(name: &str, outputs: &'a Outputs) -> Option<(&'a TopEntry, String)> {
    // A subject named like an output file is a file subject, not an image.
    if outputs
        .files
        .iter()
        .any(|f| f.path == name || f.path.ends_with(&format!("/{name}")))
    {
        return None;
    }
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, Some(t)),
        _ => (name, None),
    };
    let entries = || {
        outputs
            .images
            .iter()
            .flat_map(|i| i.entries.iter().map(move |e| (i, e)))
    };
    let by_name = entries().find(|(_, e)| {
        e.ref_name.as_deref().is_some_and(|r| {
            r == name || r == repo || Some(r) == tag || repo.ends_with(&format!("/{r}"))
        })
    });
    let found = by_name.or_else(|| {
        let mut all = entries();
        match (all.next(), all.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    });
    found.map(|(image, e)| (e, image.path.clone()))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::oci::{ImageKind, RebuiltImage};
    use crate::rebuild::tests::{sha256_hex, Fixture};
    use crate::verdict::Explanation;

    fn image(path: &str, digest: &str) -> RebuiltImage {
        RebuiltImage {
            path: path.into(),
            kind: ImageKind::OciLayout,
            entries: vec![TopEntry {
                digest: digest.into(),
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                ref_name: None,
                complete: true,
            }],
            digests: BTreeSet::from([digest.to_string()]),
            incomplete: BTreeMap::new(),
            problems: Vec::new(),
            problems_omitted: 0,
        }
    }

    /// The verdict on `a` of a rebuild that ran to completion with these outputs.
    fn built(a: &Admitted, outputs: Outputs) -> Verdict {
        decide(
            a,
            RebuildOutcome::new(
                "t",
                Ending::Built {
                    outputs,
                    explanations: BTreeMap::new(),
                },
            ),
        )
    }

    fn explanation(original: &str) -> Explanation {
        Explanation {
            original: original.into(),
            error: None,
            summary: BTreeMap::new(),
            equivalent_after_normalization: false,
            normalizations: Vec::new(),
            total_differences: 1,
            first_differences: Vec::new(),
        }
    }

    #[test]
    fn a_refused_or_failed_outcome_compares_no_subject() {
        let f = Fixture::new();
        let a = f.admitted(&[("reg/app", &"a".repeat(64))]);
        for (ending, status) in [
            (
                Ending::Refused {
                    reason: "policy".into(),
                    detail: "d".into(),
                },
                Status::Rejected,
            ),
            (
                Ending::build_failed("step-failed", "d"),
                Status::BuildFailed,
            ),
            (
                Ending::unrebuildable("source-unavailable", "d"),
                Status::Unrebuildable,
            ),
        ] {
            let v = decide(&a, RebuildOutcome::new("t", ending));
            assert_eq!(v.status, status);
            assert!(v
                .subjects
                .iter()
                .all(|s| s.state == SubjectState::NotCompared && !s.matched));
        }
    }

    #[test]
    fn a_scan_that_stopped_early_finds_nothing_missing_but_can_still_match() {
        let f = Fixture::new();
        let hex = sha256_hex(b"x");
        let a = f.admitted(&[("reg/app", &hex)]);
        let stopped = |outputs: Outputs| {
            built(
                &a,
                Outputs {
                    stopped: Some("the job deadline".into()),
                    ..outputs
                },
            )
        };
        let v = stopped(Outputs::default());
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::BuildFailed, Some("output-scan-limit"))
        );
        let v = stopped(Outputs {
            images: vec![image("out/app", &format!("sha256:{hex}"))],
            ..Outputs::default()
        });
        assert_eq!(v.status, Status::Reproducible);
    }

    #[test]
    fn a_file_under_the_subjects_name_is_its_counterpart_and_an_ambiguous_name_is_none() {
        let file = |path: &str, digest: &str| crate::oci::RebuiltFile {
            path: path.into(),
            digest: digest.into(),
            size: 1,
            image_document: false,
        };
        let (want, got) = (sha256_hex(b"recorded"), sha256_hex(b"rebuilt"));
        let f = Fixture::new();
        let a = f.admitted(&[("hello.txt", &want), ("notes.txt", &want)]);
        let outputs = Outputs {
            files: vec![
                file("out/hello.txt", &format!("sha256:{got}")),
                file("a/notes.txt", &format!("sha256:{got}")),
                file("b/notes.txt", &format!("sha256:{got}")),
            ],
            ..Outputs::default()
        };
        let v = built(&a, outputs);
        let hello = &v.subjects[0];
        assert_eq!(hello.state, SubjectState::Differs);
        assert_eq!(hello.artifact, Some(ArtifactKind::File));
        assert_eq!(
            hello.rebuilt_digest.as_deref(),
            Some(format!("sha256:{got}").as_str())
        );
        assert_eq!(hello.rebuilt_path.as_deref(), Some("out/hello.txt"));
        // Two files could be it: neither is named as its counterpart.
        assert_eq!(v.subjects[1].state, SubjectState::NotFound);
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Unreproducible, Some("digest-mismatch"))
        );
    }

    #[test]
    fn an_explanation_is_attached_only_to_the_differing_subject_it_explains() {
        let f = Fixture::new();
        let a = f.admitted(&[("reg/app", &"a".repeat(64))]);
        let rebuilt = format!("sha256:{}", "b".repeat(64));
        let digest = format!("sha256:{}", "a".repeat(64));
        let explanations = BTreeMap::from([
            (
                (digest.clone(), "out/app".to_string()),
                explanation("right"),
            ),
            (
                (digest.clone(), "elsewhere".to_string()),
                explanation("wrong"),
            ),
        ]);
        let outcome = RebuildOutcome::new(
            "t",
            Ending::Built {
                outputs: Outputs {
                    images: vec![image("out/app", &rebuilt)],
                    ..Outputs::default()
                },
                explanations,
            },
        );
        let v = decide(&a, outcome);
        assert_eq!(v.status, Status::Unreproducible);
        let s = &v.subjects[0];
        assert_eq!(s.state, SubjectState::Differs);
        assert_eq!(s.rebuilt_digest.as_deref(), Some(rebuilt.as_str()));
        assert_eq!(
            s.explanation.as_ref().map(|x| x.original.as_str()),
            Some("right")
        );
    }
}
