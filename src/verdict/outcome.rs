//! What a rebuild reports: facts about what ran and what came out, and no judgement. [`super::decide`]
//! turns an outcome into a verdict; nothing else decides a status.

use std::collections::BTreeMap;

use super::{Explanation, StepReport};
use crate::oci::Outputs;
use crate::provenance::SourceRef;

/// One rebuild (or reuse of an earlier one), as it happened.
#[derive(Debug, Clone)]
pub struct RebuildOutcome {
    /// Where the document came from (a path, a URL, `job <id>`).
    pub origin: String,
    /// The URL the source was fetched from (after mirror rewrites).
    pub fetched_url: Option<String>,
    /// The steps that ran, in order (the last one may have failed).
    pub steps: Vec<StepReport>,
    /// What the build claimed in its results: reported, never evidence.
    pub claimed_results: BTreeMap<String, String>,
    /// The kept job directory, when kept.
    pub job_dir: Option<String>,
    /// Set when nothing ran: the subjects are judged against this earlier rebuild of the same work.
    pub reused: Option<Reused>,
    /// Who ran the steps, when not this process (`remote:<name>`): those facts are its claim.
    pub rebuilt_by: Option<String>,
    /// The build network the steps had (its proxy's record), when they had one.
    pub network: Option<super::NetworkRecord>,
    /// Where the steps were read from, when not from the provenance.
    pub steps_from: Option<String>,
    pub ending: Ending,
    pub duration_ms: u64,
}

/// An earlier rebuild of the same work (source commit, steps, conventions) that a document is judged
/// against.
#[derive(Debug, Clone)]
pub struct Reused {
    pub job: String,
    /// The source that rebuild checked out.
    pub source: Option<SourceRef>,
}

/// How the rebuild ended.
#[derive(Debug, Clone)]
pub enum Ending {
    /// Nothing ran: the document was refused at admission (signature, policy).
    Refused { reason: String, detail: String },
    /// Nothing was compared: the document, its source or its images cannot be rebuilt from.
    Unrebuildable { reason: String, detail: String },
    /// A recorded step failed, or the job or a step ran out of a limit.
    BuildFailed { reason: String, detail: String },
    /// The steps ran to completion and their outputs were read.
    Built {
        outputs: Outputs,
        /// Why differing subjects differ, by (subject digest, rebuilt image path).
        explanations: BTreeMap<(String, String), Explanation>,
    },
}

impl RebuildOutcome {
    /// An outcome with nothing run yet.
    pub fn new(origin: impl Into<String>, ending: Ending) -> Self {
        RebuildOutcome {
            origin: origin.into(),
            fetched_url: None,
            steps: Vec::new(),
            claimed_results: BTreeMap::new(),
            job_dir: None,
            reused: None,
            rebuilt_by: None,
            network: None,
            steps_from: None,
            ending,
            duration_ms: 0,
        }
    }
}

impl Ending {
    pub fn unrebuildable(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Ending::Unrebuildable {
            reason: reason.into(),
            detail: detail.into(),
        }
    }

    pub fn build_failed(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Ending::BuildFailed {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}
