//! Explaining differences: each differing subject's original image is fetched by digest (from a mirror,
//! or a registry on `images.originals_from`) and diffed against its rebuild.

use std::collections::BTreeMap;

use super::{Job, JobDirs};
use crate::verdict::{Explanation, SubjectResult};

/// The repository a subject names: BuildKit's package URL (`pkg:docker/NAME@TAG?platform=…`), or a name
/// with or without a tag.
pub(super) fn subject_repository(name: &str) -> String {
    if let Some(purl) = crate::provenance::purl::DockerPurl::parse(name) {
        return purl.repository();
    }
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => r.to_string(),
        _ => name.to_string(),
    }
}

/// Where an image the provenance named (an original, a published manifest) is read from: its image mirror
/// (the operator's choice, always allowed), or the registry it names, which must be on
/// `images.originals_from` or `extra` (registries the operator named otherwise), since the provenance chose
/// it.
pub(super) struct OriginalSource {
    pub repository: String,
    /// `None` through a mirror.
    allowed: Option<Vec<String>>,
}

impl OriginalSource {
    pub fn of(config: &crate::config::Config, repository: &str, extra: &[String]) -> Self {
        match config.images.mirrors.rewrite(repository) {
            Some(mirrored) => OriginalSource {
                repository: mirrored,
                allowed: None,
            },
            None => OriginalSource {
                repository: repository.to_string(),
                allowed: Some([config.images.originals_from.as_slice(), extra].concat()),
            },
        }
    }

    /// Whether it may be read from (for a named registry, a DNS lookup: blocking).
    pub fn check(&self) -> Result<(), String> {
        match &self.allowed {
            Some(allowed) => crate::oci::check_registry(&self.repository, allowed),
            None => Ok(()),
        }
    }
}

/// Differences shown in a verdict's explanation (the job directory's `diffs/` has them all).
const EXPLANATION_DIFFERENCES: usize = 10;

/// Fetches each differing subject's original image by digest and diffs it against its rebuild, into
/// `done` by (subject digest, rebuilt path). What is done stays when the caller's deadline cuts this short.
pub(super) async fn explain(
    job: &Job<'_>,
    differing: &[SubjectResult],
    done: &mut BTreeMap<(String, String), Explanation>,
) {
    for subject in differing {
        let Some(path) = subject.rebuilt_path.clone() else {
            continue;
        };
        let key = (subject.digest.clone(), path.clone());
        if done.contains_key(&key) {
            continue;
        }
        let source = OriginalSource::of(job.config, &subject_repository(&subject.name), &[]);
        let repository = source.repository.clone();
        let original = format!("{repository}@{}", subject.digest);
        (job.opts.progress)(&format!(
            "explaining {}: fetching the original {original}",
            crate::text::inert_line(&subject.name)
        ));
        let mut limits = job
            .config
            .images
            .fetch_limits(crate::oci::registry_of(&repository));
        // Everything here ends by the job deadline, also what runs on after this future is dropped.
        limits.timeout = limits.timeout.min(
            job.deadline
                .saturating_duration_since(std::time::Instant::now()),
        );
        let deadline = job.deadline;
        let n = done.len();
        // Made here, inside the job directory; the task below only makes entries in them, so one that
        // outlives the job (its directory removed) cannot recreate anything.
        for sub in ["originals", "diffs"] {
            let _ = std::fs::create_dir(job.dirs.root.join(sub));
        }
        let original_dir = job.dirs.root.join("originals").join(n.to_string());
        // An output path is the workspace's, except what the build pushed: the registry sink, beside it.
        let rebuilt = match path.split_once('/').map_or(path.as_str(), |(top, _)| top) {
            super::network::SINK_DIR => job.dirs.path(&path),
            _ => job.dirs.path(JobDirs::WORKSPACE).join(&path),
        };
        let report_path = job.dirs.root.join("diffs").join(format!("{n}.json"));
        let reference = original.clone();
        let result =
            tokio::task::spawn_blocking(move || -> Result<crate::diff::DiffReport, String> {
                source.check()?;
                crate::oci::fetch(&reference, &original_dir, &limits).map_err(|e| {
                    tracing::warn!(original = %reference, error = %e, "fetching the original failed");
                    summarize_fetch_error(&e.to_string())
                })?;
                let report = crate::diff::diff(
                    &original_dir,
                    &rebuilt,
                    &crate::diff::DiffOptions {
                        deadline: Some(deadline),
                        ..crate::diff::DiffOptions::default()
                    },
                )
                .map_err(|e| {
                    tracing::warn!(original = %reference, error = %e, "comparing the original failed");
                    "the original and the rebuild could not be compared (the job log says why)".to_string()
                })?;
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
        done.insert(key, x);
    }
}

/// What a verdict says of a failed fetch: a fixed phrase, never the registry's or skopeo's own words (a
/// public verdict must not carry internal error text); the whole error goes to the log.
fn summarize_fetch_error(error: &str) -> String {
    let e = error.to_ascii_lowercase();
    let what = if e.contains("manifest unknown") || e.contains("not found") || e.contains("404") {
        "the registry does not have it"
    } else if e.contains("unauthorized")
        || e.contains("denied")
        || e.contains("401")
        || e.contains("403")
    {
        "the registry refused access"
    } else if e.contains("over the") && e.contains("byte limit") {
        "it is over images.max_fetch_bytes"
    } else if e.contains("timeout") || e.contains("timed out") || e.contains("no answer within") {
        "the registry did not answer in time (images.fetch_timeout_secs)"
    } else if e.contains("connection refused")
        || e.contains("no such host")
        || e.contains("dial tcp")
    {
        "the registry could not be reached"
    } else if e.contains("x509")
        || e.contains("certificate")
        || e.contains("tls")
        || e.contains("http response to https")
    {
        "TLS to the registry failed (a plain-HTTP registry must be listed in images.insecure)"
    } else if e.contains("hash to") || e.contains("digest") {
        "what it served does not match the digest asked for"
    } else if e.contains("skopeo is needed") {
        "skopeo is not installed"
    } else {
        "the registry's answer could not be used"
    };
    format!("the original could not be fetched: {what}")
}

#[cfg(test)]
mod tests {
    use super::summarize_fetch_error;

    #[test]
    fn fetch_errors_are_summarized_not_copied() {
        let leaked = "fetching x: reading manifest sha256:aa in 10.1.2.3:5000/internal/secret-project: manifest unknown";
        let s = summarize_fetch_error(leaked);
        assert_eq!(
            s,
            "the original could not be fetched: the registry does not have it"
        );
        assert!(!s.contains("10.1.2.3") && !s.contains("secret"));
        assert!(summarize_fetch_error(
            "pinging container registry: http: server gave HTTP response to HTTPS client"
        )
        .contains("images.insecure"));
    }
}
