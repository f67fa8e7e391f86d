//! The verdict model: what reprod concludes about one provenance document and one rebuild.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod decide;
mod human;
mod network;
mod outcome;

pub use decide::{decide, judge_subjects, subjects_of};
pub use network::{refused_sentence, NetworkRecord, TlsRecord};
pub use outcome::{Ending, RebuildOutcome, Reused};

use crate::oci::Outputs;
use crate::provenance::{Container, SourceRef};

/// What a rebuild concluded about a document (README, "Verdicts").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Every status, in the order lists, metrics and pages show them.
    pub const ALL: [Status; 5] = [
        Status::Reproducible,
        Status::Unreproducible,
        Status::BuildFailed,
        Status::Unrebuildable,
        Status::Rejected,
    ];

    /// The status a wire name (`build-failed`) stands for.
    pub fn from_name(name: &str) -> Option<Status> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True for the statuses of a rebuild that ran to a comparison (only these are findings about the
    /// artifact).
    pub fn compared(self) -> bool {
        matches!(self, Status::Reproducible | Status::Unreproducible)
    }

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

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rebuild learned about one subject digest. Only `matched` and `differs`/`not-found` are
/// findings about the artifact; `not-compared` says nothing about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectState {
    /// A rebuilt image (every blob read and verified) or file has exactly this digest.
    Matched,
    /// The rebuild produced a counterpart (told apart by name, or the only image built) with another digest.
    Differs,
    /// The rebuild ran to completion but produced nothing that corresponds to this subject (or only an
    /// image with missing or corrupt blobs, named in `problem`).
    NotFound,
    /// Never compared: the build failed, was refused or never ran, or the digest is not sha256.
    NotCompared,
}

impl SubjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectState::Matched => "matched",
            SubjectState::Differs => "differs",
            SubjectState::NotFound => "not-found",
            SubjectState::NotCompared => "not-compared",
        }
    }

    /// True for the states that are a finding about the artifact (it was compared).
    pub fn compared(self) -> bool {
        self != SubjectState::NotCompared
    }
}

/// What kind of output a subject was found as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// An image (index or manifest digest) in an OCI layout or archive.
    Image,
    /// A plain file, by the sha256 of its bytes.
    File,
}

/// One subject of the provenance and what the rebuild made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectResult {
    pub name: String,
    /// The recorded digest, `sha256:<hex>` (or `<alg>:<hex>` for subjects that have no sha256).
    pub digest: String,
    pub state: SubjectState,
    /// What it was found as, when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactKind>,
    /// `state == matched`, kept for readers of the earlier schema.
    #[serde(default)]
    pub matched: bool,
    /// The rebuilt image or file this subject corresponds to, when one can be told apart.
    pub rebuilt_digest: Option<String>,
    /// Where that rebuilt image is, relative to the job workspace (for `reprod diff`), when it differs.
    pub rebuilt_path: Option<String>,
    /// Why a rebuilt image with this digest does not count (a missing, unreadable or corrupt blob), or why
    /// the subject was not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Why it differs: the original image, fetched by digest, compared with the rebuilt one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl SubjectResult {
    /// A subject nothing is known about yet.
    pub fn not_compared(name: &str, digest: String) -> Self {
        SubjectResult {
            name: name.to_string(),
            digest,
            state: SubjectState::NotCompared,
            artifact: None,
            matched: false,
            rebuilt_digest: None,
            rebuilt_path: None,
            problem: None,
            explanation: None,
        }
    }

    /// Sets the state, keeping `matched` in step with it.
    pub fn set_state(&mut self, state: SubjectState) {
        self.state = state;
        self.matched = state == SubjectState::Matched;
    }

    /// True for `sha256:<64 lowercase hex>`: the only digests a rebuild compares.
    pub fn is_sha256(&self) -> bool {
        is_sha256(&self.digest)
    }
}

pub use crate::oci::digest::is_sha256;

/// The diff between an unreproducible subject's original image and its rebuild, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// One line for the human summary: [`Explanation::summary_line`] and the first difference.
    pub fn line(&self) -> String {
        let mut line = self.summary_line();
        if self.error.is_none() {
            if let Some(d) = self.first_differences.first() {
                line.push_str(&format!("; first: {} {}", d.location, d.field));
            }
        }
        line
    }

    /// How many differences of which classes, from which original; or why there is no comparison.
    pub fn summary_line(&self) -> String {
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
        line
    }
}

/// How a step ended, as far as the verdict is concerned. Only endings the build itself or reprod's own
/// limits caused are here: anything else (a container killed from outside, an engine fault) is an
/// infrastructure failure, retried and never judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepTermination {
    /// The step's main process exited by itself, with `exit_code`.
    Exited,
    /// reprod's step wall-clock limit killed it.
    TimedOut,
    /// The kernel's OOM killer ended it at the container's own memory limit.
    OutOfMemory,
}

impl StepTermination {
    pub fn as_str(self) -> &'static str {
        match self {
            StepTermination::Exited => "exited",
            StepTermination::TimedOut => "timed-out",
            StepTermination::OutOfMemory => "out-of-memory",
        }
    }
}

/// One step as it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    pub image: String,
    /// The image reference actually pulled (after registry mirror rewrites).
    pub pulled_image: String,
    pub exit_code: i64,
    pub termination: StepTermination,
    pub duration_ms: u64,
    pub log_bytes: u64,
    pub log_truncated: bool,
    /// The captured log's name among the job's artifacts (`logs/NN-name.log`), when it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_artifact: Option<String>,
    /// sha256 of that log's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_sha256: Option<String>,
    /// The last lines of the log.
    pub log_tail: String,
    /// `nested` when a trust rule let the step run its own containers (the nested step profile); absent
    /// for the plain profile every other step has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// About the input document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// A PipelineRun's tasks, in run order, each with what the rebuild did with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskReport>,
    pub outputs: Option<Outputs>,
    /// What the build claimed in its Tekton results (`IMAGES`, `IMAGE_DIGEST`, ...): reported, never evidence.
    pub claimed_results: BTreeMap<String, String>,
    /// The job directory (workspace, results, scripts, `logs/` with each step's captured log), when kept
    /// with `--keep-workspace`.
    pub job_dir: Option<String>,
    /// When the work (same source commit and steps) had already been rebuilt for another document: the job
    /// whose rebuild this document's subjects were compared with. Nothing was run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_rebuild: Option<String>,
    /// Who ran the steps and reported the per-subject results, when not this process (`remote:<name>`):
    /// those parts are that worker's claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilt_by: Option<String>,
    /// The build network the steps had, with every exchange; absent when they had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRecord>,
    /// Where the steps came from when the provenance does not record them (Cloud Build v1: the build
    /// config in the recorded commit): the steps are the source's word, not the provenance's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_from: Option<String>,
    pub reprod_version: String,
    pub duration_ms: u64,
}

/// One task of a pipeline and what the rebuild did with it: ran its steps, stood in for it with reprod's
/// own checkout, or skipped it (and why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ref: Option<String>,
    #[serde(flatten)]
    pub role: crate::provenance::TaskRole,
}

impl Verdict {
    /// A verdict about `provenance` that has compared nothing yet (`unrebuildable` until a stage decides).
    pub fn new(
        provenance: ProvenanceInfo,
        source: Option<SourceRef>,
        subjects: Vec<SubjectResult>,
    ) -> Self {
        Verdict {
            status: Status::Unrebuildable,
            reason: None,
            detail: String::new(),
            provenance,
            source,
            fetched_url: None,
            subjects,
            steps: Vec::new(),
            tasks: Vec::new(),
            outputs: None,
            claimed_results: BTreeMap::new(),
            job_dir: None,
            reused_rebuild: None,
            rebuilt_by: None,
            network: None,
            steps_from: None,
            reprod_version: env!("CARGO_PKG_VERSION").to_string(),
            duration_ms: 0,
        }
    }

    /// Whether this verdict holds a rebuild this process can stand behind for other documents of the same
    /// work: it ran here (not a remote worker's claim, not itself a reuse), to completion, and its outputs
    /// were scanned and listed whole (a file left off the list could be another document's subject).
    pub fn holds_reusable_rebuild(&self) -> bool {
        self.reused_rebuild.is_none()
            && self.rebuilt_by.is_none()
            && self.status.compared()
            && self
                .outputs
                .as_ref()
                .is_some_and(|o| o.stopped.is_none() && o.files_omitted == 0)
    }

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
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A verdict with `status` over `subjects` (name, digest, state), for tests.
    pub fn verdict(status: Status, subjects: &[(&str, &str, SubjectState)]) -> Verdict {
        let provenance = ProvenanceInfo {
            origin: "test".into(),
            sha256: "ab".repeat(32),
            container: Container::BareStatement,
            signature: "unsigned".into(),
            verification: crate::trust::Verification::Unsigned { reason: "r".into() },
            predicate_type: "https://slsa.dev/provenance/v0.2".into(),
        };
        let source = Some(SourceRef {
            uri: "file:///src".into(),
            commit: "c0ffee".into(),
        });
        let subjects = subjects
            .iter()
            .map(|(n, d, st)| {
                let mut s = SubjectResult::not_compared(n, d.to_string());
                s.set_state(*st);
                if *st == SubjectState::Matched {
                    s.rebuilt_digest = Some(d.to_string());
                }
                s
            })
            .collect();
        let mut v = Verdict::new(provenance, source, subjects);
        v.status = status;
        v.detail = "d".into();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::testing::verdict;
    use super::*;

    fn sha(c: &str) -> String {
        format!("sha256:{}", c.repeat(64))
    }

    #[test]
    fn the_names_shown_are_the_names_serialized() {
        let serialized = |v: serde_json::Value| v.as_str().unwrap().to_string();
        for s in Status::ALL {
            assert_eq!(serialized(serde_json::to_value(s).unwrap()), s.as_str());
            assert_eq!(Status::from_name(s.as_str()), Some(s));
        }
        for s in [
            SubjectState::Matched,
            SubjectState::Differs,
            SubjectState::NotFound,
            SubjectState::NotCompared,
        ] {
            assert_eq!(serialized(serde_json::to_value(s).unwrap()), s.as_str());
        }
        for t in [
            StepTermination::Exited,
            StepTermination::TimedOut,
            StepTermination::OutOfMemory,
        ] {
            assert_eq!(serialized(serde_json::to_value(t).unwrap()), t.as_str());
        }
        for v in crate::vary::Variation::ALL {
            assert_eq!(serialized(serde_json::to_value(v).unwrap()), v.name());
        }
        for c in crate::diff::Class::ALL {
            assert_eq!(serialized(serde_json::to_value(c).unwrap()), c.as_str());
        }
    }

    #[test]
    fn the_status_follows_the_subject_states() {
        let (a, b) = (sha("a"), sha("b"));
        let mut v = verdict(Status::Unrebuildable, &[("x", &a, SubjectState::Matched)]);
        v.decide_compared();
        assert_eq!(v.status, Status::Reproducible);

        let mut v = verdict(
            Status::Unrebuildable,
            &[
                ("x", &a, SubjectState::Matched),
                ("y", &b, SubjectState::Differs),
            ],
        );
        v.decide_compared();
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (Status::Unreproducible, Some("digest-mismatch"))
        );

        let mut v = verdict(
            Status::Unrebuildable,
            &[
                ("x", &a, SubjectState::NotFound),
                ("y", "sha512:00", SubjectState::NotCompared),
            ],
        );
        v.claimed_results
            .insert("IMAGES".into(), format!("reg/x@{a}"));
        v.decide_compared();
        assert_eq!(v.reason.as_deref(), Some("no-output"));
        assert!(v.detail.contains("only claimed them"), "{}", v.detail);
        assert!(v.detail.contains("were not compared"), "{}", v.detail);

        // Outputs, but none of them a subject or its counterpart: still nothing corresponds.
        let mut v = verdict(Status::Unrebuildable, &[("x", &a, SubjectState::NotFound)]);
        v.outputs = Some(crate::oci::Outputs {
            files_omitted: 2,
            ..Default::default()
        });
        v.decide_compared();
        assert_eq!(v.reason.as_deref(), Some("no-output"));
        assert!(
            v.detail.contains("produced 2 output(s), none of them"),
            "{}",
            v.detail
        );
        assert!(!v.detail.contains("only claimed"), "{}", v.detail);

        let mut v = verdict(Status::Unrebuildable, &[("x", &a, SubjectState::NotFound)]);
        v.subjects[0].problem = Some("layer sha256:… is missing".into());
        v.decide_compared();
        assert_eq!(v.reason.as_deref(), Some("incomplete-image"));
    }

    #[test]
    fn a_verdict_that_compared_nothing_marks_every_subject_not_compared() {
        let mut v = verdict(
            Status::Unrebuildable,
            &[("x", &sha("a"), SubjectState::Matched)],
        );
        v.conclude_uncompared(Status::BuildFailed, "step-failed", "step 1 exited 1".into());
        assert_eq!(v.subjects[0].state, SubjectState::NotCompared);
        assert!(!v.subjects[0].matched && v.subjects[0].rebuilt_digest.is_none());
        let human = v.human();
        assert!(human.contains("not-compared"), "{human}");
        assert!(
            !human.contains("DIFF") && !human.contains("differs "),
            "{human}"
        );
    }

    #[test]
    fn verdicts_round_trip_through_json() {
        let v = verdict(
            Status::Reproducible,
            &[("x", &sha("a"), SubjectState::Matched)],
        );
        let back: Verdict = serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
        assert_eq!(back.subjects, v.subjects);
        assert_eq!(
            serde_json::to_value(&back).unwrap()["subjects"][0]["state"],
            "matched"
        );
    }
}
