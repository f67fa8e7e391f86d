//! What lists, pages and feeds show of a verdict without reading the verdict ([`VerdictRecord`]), which
//! names can be indexed, and which verdict decides a digest.

use serde::{Deserialize, Serialize};

use crate::verdict::{Status, SubjectState, Verdict};

/// Subjects a record keeps: lists, pages and feeds read records by the page, and a document may name
/// thousands of subjects. Lookups by digest use the subject index, which has them all.
pub const MAX_RECORD_SUBJECTS: usize = 256;
/// Longest image name indexed (and accepted as a filter).
pub const MAX_IMAGE_NAME: usize = 1024;

/// What lists, pages and feeds show of a verdict, without reading the verdict itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub job: String,
    /// Order of recording; lists are newest first and their cursors are these.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds: strings of this form sort as the times they name.
    pub recorded_at: String,
    pub status: Status,
    pub reason: Option<String>,
    pub detail: String,
    pub provenance_sha256: Option<String>,
    /// What was checked of the provenance's signature, in one line.
    pub signature: Option<String>,
    /// The first [`MAX_RECORD_SUBJECTS`] distinct subjects (the verdict has them all).
    pub subjects: Vec<SubjectRecord>,
    /// How many distinct subjects the verdict has.
    #[serde(default)]
    pub subjects_total: usize,
    /// Kinds of the signed attestations kept (`vsa`, `provenance`).
    pub attestations: Vec<String>,
    pub duration_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectRecord {
    pub name: String,
    pub digest: String,
    pub matched: bool,
    /// Absent in records written before subject states existed; see [`SubjectRecord::state`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SubjectState>,
}

impl SubjectRecord {
    /// The subject's state; for records written before states existed, derived from what they kept (a
    /// subject of a verdict that never compared anything was not compared, whatever `matched` says).
    pub fn state(&self, status: Status) -> SubjectState {
        if let Some(s) = self.state {
            return s;
        }
        match (self.matched, status) {
            (true, _) => SubjectState::Matched,
            (false, Status::Unreproducible) if crate::verdict::is_sha256(&self.digest) => {
                SubjectState::Differs
            }
            _ => SubjectState::NotCompared,
        }
    }
}

impl VerdictRecord {
    /// The summary of a verdict.
    pub fn of(
        job: &str,
        seq: u64,
        recorded_at: &str,
        verdict: &Verdict,
        attestations: Vec<String>,
    ) -> Self {
        let subjects = verdict.subjects.iter().map(|s| SubjectRecord {
            name: s.name.clone(),
            digest: s.digest.clone(),
            matched: s.state == SubjectState::Matched,
            state: Some(s.state),
        });
        let (subjects, subjects_total) = first_distinct(subjects);
        VerdictRecord {
            job: job.to_string(),
            seq,
            recorded_at: recorded_at.to_string(),
            status: verdict.status,
            reason: verdict.reason.clone(),
            detail: verdict.detail.clone(),
            provenance_sha256: Some(verdict.provenance.sha256.clone()),
            signature: Some(verdict.provenance.signature.clone()),
            subjects,
            subjects_total,
            attestations,
            duration_ms: Some(verdict.duration_ms),
        }
    }

    /// The summary of a verdict kept by schema version 1, read field by field (those verdicts predate
    /// most of today's fields), or `None` when it has no status this reprod knows.
    pub(super) fn of_version_1(
        job: &str,
        seq: u64,
        recorded_at: &str,
        verdict: &serde_json::Value,
    ) -> Option<Self> {
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let status: Status = serde_json::from_value(verdict["status"].clone()).ok()?;
        let subjects = verdict["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| SubjectRecord {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                digest: s["digest"].as_str().unwrap_or_default().to_string(),
                matched: s["matched"].as_bool().unwrap_or(false),
                state: serde_json::from_value(s["state"].clone()).ok(),
            });
        let (subjects, subjects_total) = first_distinct(subjects);
        Some(VerdictRecord {
            job: job.to_string(),
            seq,
            recorded_at: recorded_at.to_string(),
            status,
            reason: text(&verdict["reason"]),
            detail: text(&verdict["detail"]).unwrap_or_default(),
            provenance_sha256: text(&verdict["provenance"]["sha256"]),
            signature: text(&verdict["provenance"]["signature"]),
            subjects,
            subjects_total,
            attestations: Vec::new(),
            duration_ms: verdict["duration_ms"].as_u64(),
        })
    }

    /// The distinct image (subject) names, in order: those that can be image names (no control characters,
    /// at most [`MAX_IMAGE_NAME`] bytes). Only these are indexed, so no name can reach into another's keys.
    pub fn images(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.subjects {
            if is_image_name(&s.name) && !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
        names
    }
}

/// Whether `name` can be indexed and shown as an image name.
pub fn is_image_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_IMAGE_NAME
        && !name.chars().any(char::is_control)
}

/// The first [`MAX_RECORD_SUBJECTS`] distinct subjects, and how many distinct ones there are.
fn first_distinct(all: impl Iterator<Item = SubjectRecord>) -> (Vec<SubjectRecord>, usize) {
    let mut kept: Vec<SubjectRecord> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in all {
        if seen.insert((r.name.clone(), r.digest.clone(), r.state))
            && kept.len() < MAX_RECORD_SUBJECTS
        {
            kept.push(r);
        }
    }
    (kept, seen.len())
}

/// The verdict that decides a digest's status, from its history (newest first): a `reproducible` one if any
/// (a bit-for-bit rebuild is proof, and a failed rebuild of some other claim about the same bytes does not
/// undo it), else the latest. With `name`, verdicts that name the digest under that image name are
/// considered first.
pub fn deciding<'a>(
    history: &'a [VerdictRecord],
    digest: &str,
    name: Option<&str>,
) -> Option<&'a VerdictRecord> {
    let named: Vec<&VerdictRecord> = match name {
        Some(n) => history
            .iter()
            .filter(|r| r.subjects.iter().any(|s| s.name == n && s.digest == digest))
            .collect(),
        None => Vec::new(),
    };
    let candidates: Vec<&VerdictRecord> = if named.is_empty() {
        history.iter().collect()
    } else {
        named
    };
    // A reproducible verdict matched every sha256 subject; the check below holds a record to that.
    let reproduced = |r: &&&VerdictRecord| {
        r.status == Status::Reproducible
            && r.subjects
                .iter()
                .filter(|s| s.digest == digest)
                .all(|s| s.state(r.status) == SubjectState::Matched)
    };
    candidates
        .iter()
        .find(reproduced)
        .or_else(|| candidates.first())
        .copied()
}
