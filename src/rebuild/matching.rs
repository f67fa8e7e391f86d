//! Matching subjects against what the rebuild produced, and explaining the ones that differ.

use std::collections::BTreeMap;

use super::{Job, JobDirs};
use crate::oci::Outputs;
use crate::provenance::Recipe;
use crate::verdict::{Explanation, Status, Verdict};

/// Matches subjects against the outputs and sets the verdict status.
pub(super) fn compare(recipe: &Recipe, outputs: &Outputs, verdict: &mut Verdict) {
    for subject in &mut verdict.subjects {
        if !subject.digest.starts_with("sha256:") {
            continue;
        }
        subject.matched = outputs.contains(&subject.digest);
        if subject.matched {
            subject.rebuilt_digest = Some(subject.digest.clone());
        } else if let Some((digest, path)) = counterpart(&subject.name, outputs) {
            subject.rebuilt_digest = Some(digest);
            subject.rebuilt_path = Some(path);
        }
    }
    let compared: Vec<_> = verdict
        .subjects
        .iter()
        .filter(|s| s.digest.starts_with("sha256:"))
        .collect();
    let differing: Vec<_> = compared.iter().filter(|s| !s.matched).collect();
    if differing.is_empty() {
        verdict.status = Status::Reproducible;
        verdict.reason = None;
        verdict.detail = format!(
            "all {} distinct sha256 subject digest(s) were rebuilt bit for bit",
            recipe.distinct_sha256().len()
        );
    } else {
        verdict.status = Status::Unreproducible;
        verdict.reason = Some("digest-mismatch".into());
        let first = differing[0];
        verdict.detail = format!(
            "{} of {} subject(s) differ; first: {} expected {}, rebuilt {}",
            differing.len(),
            compared.len(),
            first.name,
            first.digest,
            first
                .rebuilt_digest
                .as_deref()
                .unwrap_or("(nothing corresponding)")
        );
    }
}

/// The rebuilt image a subject name corresponds to (digest, path in the workspace): by the
/// `org.opencontainers.image.ref.name` annotation (full name, tag, or last path component), else the only
/// image built.
fn counterpart(name: &str, outputs: &Outputs) -> Option<(String, String)> {
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
    found.map(|(image, e)| (e.digest.clone(), image.path.clone()))
}

/// Differences shown in a verdict's explanation (the job directory's `diffs/` has them all).
const EXPLANATION_DIFFERENCES: usize = 10;

/// Fetches each differing subject's original image by digest and diffs it against its rebuild.
pub(super) async fn explain(job: &Job<'_>, verdict: &mut Verdict) {
    let mut done: BTreeMap<(String, String), Explanation> = BTreeMap::new();
    for subject in verdict.subjects.iter_mut().filter(|s| !s.matched) {
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
