//! Matching subjects against what the rebuild produced, and explaining the ones that differ.

use std::collections::BTreeMap;

use super::{Job, JobDirs};
use crate::oci::{Outputs, TopEntry};
use crate::verdict::{ArtifactKind, Explanation, SubjectState, Verdict};

/// Matches subjects against the outputs, sets each one's state, keeps the outputs in the verdict and
/// decides it.
pub(super) fn compare(outputs: Outputs, verdict: &mut Verdict) {
    for subject in &mut verdict.subjects {
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
        } else if let Some((entry, path)) = counterpart(&subject.name, &outputs) {
            subject.set_state(SubjectState::Differs);
            subject.artifact = Some(ArtifactKind::Image);
            subject.rebuilt_digest = Some(entry.digest.clone());
            subject.rebuilt_path = Some(path);
            if !entry.complete {
                subject.problem = Some(format!(
                    "the rebuilt counterpart {} is itself incomplete (a blob beneath it is missing or wrong)",
                    entry.digest
                ));
            }
        } else {
            subject.set_state(SubjectState::NotFound);
        }
    }
    verdict.outputs = Some(outputs);
    verdict.decide();
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

/// Differences shown in a verdict's explanation (the job directory's `diffs/` has them all).
const EXPLANATION_DIFFERENCES: usize = 10;

/// Fetches each differing subject's original image by digest and diffs it against its rebuild.
pub(super) async fn explain(job: &Job<'_>, verdict: &mut Verdict) {
    let mut done: BTreeMap<(String, String), Explanation> = BTreeMap::new();
    for subject in verdict
        .subjects
        .iter_mut()
        .filter(|s| s.state == SubjectState::Differs)
    {
        let Some(path) = subject.rebuilt_path.clone() else {
            continue;
        };
        let key = (subject.digest.clone(), path.clone());
        if let Some(x) = done.get(&key) {
            subject.explanation = Some(x.clone());
            continue;
        }
        let repository = match subject.name.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => r,
            _ => subject.name.as_str(),
        };
        let repository = crate::config::rewrite_prefix(&job.config.images.mirrors, repository)
            .unwrap_or_else(|| repository.to_string());
        let original = format!("{repository}@{}", subject.digest);
        (job.opts.progress)(&format!(
            "explaining {}: fetching the original {original}",
            subject.name
        ));
        let n = done.len();
        let original_dir = job.dirs.root.join("originals").join(n.to_string());
        let rebuilt = job.dirs.path(JobDirs::WORKSPACE).join(&path);
        let report_path = job.dirs.root.join("diffs").join(format!("{n}.json"));
        let reference = original.clone();
        let result =
            tokio::task::spawn_blocking(move || -> Result<crate::diff::DiffReport, String> {
                crate::oci::fetch(&reference, &original_dir).map_err(|e| e.to_string())?;
                let report = crate::diff::diff(
                    &original_dir,
                    &rebuilt,
                    &crate::diff::DiffOptions::default(),
                )
                .map_err(|e| e.to_string())?;
                if let Some(dir) = report_path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::write(
                    &report_path,
                    serde_json::to_vec_pretty(&report).unwrap_or_default(),
                );
                Ok(report)
            })
            .await
            .unwrap_or_else(|e| Err(format!("the comparison task failed: {e}")));
        let x = match result {
            Ok(r) => Explanation {
                original,
                error: None,
                summary: r.summary,
                equivalent_after_normalization: r.equivalent_after_normalization,
                normalizations: r.normalizations,
                total_differences: r.differences.len(),
                first_differences: r
                    .differences
                    .into_iter()
                    .take(EXPLANATION_DIFFERENCES)
                    .collect(),
            },
            Err(error) => Explanation {
                original,
                error: Some(error),
                summary: BTreeMap::new(),
                equivalent_after_normalization: false,
                normalizations: Vec::new(),
                total_differences: 0,
                first_differences: Vec::new(),
            },
        };
        subject.explanation = Some(x.clone());
        done.insert(key, x);
    }
}
