//! The verdict model: what reprod concludes about one provenance document and one rebuild.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::oci::Outputs;
use crate::provenance::{Container, SourceRef};

/// The verdict statuses of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Every subject digest was rebuilt bit for bit.
    Reproducible,
    /// The rebuild succeeded but some subject digest differs.
    Unreproducible,
    /// A recorded step failed or ran out of time.
    BuildFailed,
    /// The provenance lacks what a rebuild needs, or its source or images cannot be had.
    Unrebuildable,
    /// The provenance failed signature or policy checks.
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reproducible => "reproducible",
            Status::Unreproducible => "unreproducible",
            Status::BuildFailed => "build-failed",
            Status::Unrebuildable => "unrebuildable",
            Status::Rejected => "rejected",
        }
    }
}

/// One subject of the provenance and what the rebuild made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectResult {
    pub name: String,
    /// The recorded digest, `sha256:<hex>` (or `<alg>:<hex>` for subjects that have no sha256).
    pub digest: String,
    pub matched: bool,
    /// The rebuilt image or file this subject corresponds to, when one can be told apart.
    pub rebuilt_digest: Option<String>,
    /// Where that rebuilt image is, relative to the job workspace (for `reprod diff`), when it differs.
    pub rebuilt_path: Option<String>,
    /// Why it differs: the original image, fetched by digest, compared with the rebuilt one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

/// The diff between an unreproducible subject's original image and its rebuild, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The reference fetched (`name@sha256:…`, after registry mirror rewrites).
    pub original: String,
    /// Why no comparison could be made (the original could not be fetched, or not be read).
    pub error: Option<String>,
    pub summary: BTreeMap<crate::diff::Class, usize>,
    pub equivalent_after_normalization: bool,
    pub normalizations: Vec<crate::diff::Class>,
    pub total_differences: usize,
    /// The first differences (the whole report is in the job directory's `diffs/`).
    pub first_differences: Vec<crate::diff::Difference>,
}

impl Explanation {
    /// One line for the human summary.
    pub fn line(&self) -> String {
        if let Some(e) = &self.error {
            return format!("not explained: {e}");
        }
        let counts: Vec<String> = self
            .summary
            .iter()
            .map(|(c, n)| format!("{}: {n}", c.as_str()))
            .collect();
        let mut line = format!(
            "{} difference(s) from {} ({})",
            self.total_differences,
            self.original,
            counts.join(", ")
        );
        if self.equivalent_after_normalization {
            line.push_str("; equivalent after normalization");
        }
        if let Some(d) = self.first_differences.first() {
            line.push_str(&format!("; first: {} {}", d.location, d.field));
        }
        line
    }
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepReport {
    pub name: String,
    pub image: String,
    /// The image reference actually pulled (after registry mirror rewrites).
    pub pulled_image: String,
    pub exit_code: i64,
    /// `exited`, `timed-out` or `out-of-memory`.
    pub termination: &'static str,
    pub duration_ms: u64,
    pub log_bytes: u64,
    pub log_truncated: bool,
    /// The last lines of the log.
    pub log_tail: String,
}

/// About the input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenanceInfo {
    pub origin: String,
    /// sha256 of the document's bytes exactly as received.
    pub sha256: String,
    pub container: Container,
    /// What was (not) checked about signatures, in one line.
    pub signature: String,
    pub verification: crate::trust::Verification,
    pub predicate_type: String,
}

/// The outcome of one rebuild.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub status: Status,
    /// Machine-readable reason for every status but `reproducible`.
    pub reason: Option<String>,
    /// One or two sentences for humans.
    pub detail: String,
    pub provenance: ProvenanceInfo,
    pub source: Option<SourceRef>,
    pub fetched_url: Option<String>,
    pub subjects: Vec<SubjectResult>,
    pub steps: Vec<StepReport>,
    pub outputs: Option<Outputs>,
    /// What the build claimed in its Tekton results (`IMAGES`, `IMAGE_DIGEST`, ...): reported, never evidence.
    pub claimed_results: BTreeMap<String, String>,
    /// The job directory (workspace, results, scripts, `logs/` with each step's captured log), when kept
    /// with `--keep-workspace`.
    pub job_dir: Option<String>,
    pub reprod_version: &'static str,
    pub duration_ms: u64,
}

impl Verdict {
    /// `reprod` exit code for this verdict: 0 only for reproducible.
    pub fn exit_code(&self) -> i32 {
        if self.status == Status::Reproducible {
            0
        } else {
            1
        }
    }

    /// Number of distinct subject digests.
    pub fn distinct_subjects(&self) -> usize {
        let mut d: Vec<&str> = self.subjects.iter().map(|s| s.digest.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d.len()
    }

    /// The human summary printed by `reprod rebuild`.
    pub fn human(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "verdict: {}", self.status.as_str());
        if let Some(reason) = &self.reason {
            let _ = writeln!(s, "reason:  {reason}");
        }
        let _ = writeln!(s, "         {}", self.detail);
        let _ = writeln!(
            s,
            "provenance: {} (sha256:{}; {})",
            self.provenance.origin, self.provenance.sha256, self.provenance.signature
        );
        if let Some(src) = &self.source {
            let _ = writeln!(s, "source:  {} @ {}", src.uri, src.commit);
        }
        for st in &self.steps {
            let _ = writeln!(
                s,
                "step {}: {} in {:.1}s, exit {} ({}){}",
                st.name,
                st.image,
                st.duration_ms as f64 / 1000.0,
                st.exit_code,
                st.termination,
                if st.log_truncated {
                    ", log truncated"
                } else {
                    ""
                }
            );
        }
        if self.status == Status::BuildFailed {
            if let Some(st) = self.steps.last() {
                let _ = writeln!(s, "log tail of step {}:", st.name);
                for line in st.log_tail.lines() {
                    let _ = writeln!(s, "  | {line}");
                }
            }
        }
        let _ = writeln!(
            s,
            "subjects: {} listed, {} distinct, {} matched",
            self.subjects.len(),
            self.distinct_subjects(),
            self.subjects.iter().filter(|x| x.matched).count()
        );
        for sub in &self.subjects {
            let mark = if sub.matched { "ok  " } else { "DIFF" };
            let _ = write!(s, "  {mark} {} {}", sub.name, sub.digest);
            if !sub.matched {
                match &sub.rebuilt_digest {
                    Some(d) => {
                        let _ = write!(s, "\n         rebuilt: {d}");
                        if let Some(p) = &sub.rebuilt_path {
                            let _ = write!(s, " (workspace/{p})");
                        }
                        if let Some(x) = &sub.explanation {
                            let _ = write!(s, "\n         why: {}", x.line());
                        }
                    }
                    None if self.outputs.is_some() => {
                        let _ = write!(s, "\n         rebuilt: (no corresponding output)");
                    }
                    None => {}
                }
            }
            s.push('\n');
        }
        let unexplained = self
            .subjects
            .iter()
            .any(|x| !x.matched && x.explanation.as_ref().is_none_or(|e| e.error.is_some()));
        if self.status == Status::Unreproducible && unexplained {
            let _ = writeln!(
                s,
                "to see why: rerun with --keep-workspace, then `reprod diff ORIGINAL <job_dir>/workspace/<path>` \
                 with the original image as an OCI layout (e.g. `skopeo copy docker://NAME@DIGEST oci:ORIGINAL`)"
            );
        }
        if !self.claimed_results.is_empty() {
            let _ = writeln!(s, "claimed by the build (not evidence):");
            for (k, v) in &self.claimed_results {
                let _ = writeln!(s, "  {k} = {}", v.trim());
            }
        }
        s
    }
}
