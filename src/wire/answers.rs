//! The answers of the public read side and of submitting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::verdict::{Status, SubjectState, Verdict};

/// `POST /v1/provenance` → 202: the job the document became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitAnswer {
    pub jobs: Vec<SubmittedJob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedJob {
    pub id: String,
    pub status: Submission,
    /// `GET /v1/jobs/{id}`, absolute.
    #[serde(default)]
    pub url: String,
    /// The job's page, absolute.
    #[serde(default)]
    pub page: String,
}

/// Whether a submission made a job or found this very document already queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Submission {
    New,
    Duplicate,
}

/// One subject of a verdict, as lists and lookups show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectSummary {
    pub name: String,
    pub digest: String,
    /// `state == matched`, kept for readers of the earlier schema.
    pub matched: bool,
    pub state: SubjectState,
}

/// A verdict in short (what lists, lookups and feeds show), with where to find more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordView {
    pub job: String,
    /// Order of recording; list cursors are these.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub recorded_at: String,
    pub status: Status,
    pub reason: Option<String>,
    pub detail: String,
    pub provenance_sha256: Option<String>,
    /// What was checked of the provenance's signature, in one line.
    pub signature: Option<String>,
    /// The first distinct subjects (at most [`crate::store::MAX_RECORD_SUBJECTS`]).
    pub subjects: Vec<SubjectSummary>,
    /// How many distinct subjects the verdict has.
    pub subjects_total: usize,
    /// Kinds of the signed attestations kept (`vsa-passed`, `vsa-failed`, `provenance`).
    pub attestations: Vec<String>,
    pub duration_ms: Option<u64>,
    pub links: Links,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// `<base>/v1/jobs/<job>` (every link is absolute: `server.public_url`, or the address the client used)
    pub job: String,
    /// `<base>/jobs/<job>`, the HTML page.
    pub page: String,
    /// `<base>/v1/provenance/sha256:…`, the document exactly as received.
    pub provenance: Option<String>,
    pub attestations: AttestationLinks,
}

/// Attestation kind → `/v1/jobs/<job>/attestations/<kind>`.
pub type AttestationLinks = BTreeMap<String, String>;

/// `GET /v1/verdicts`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictList {
    pub verdicts: Vec<RecordView>,
    /// Give as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// `GET /v1/verdicts/{digest}`: the verdict that decides the digest, the latest, and the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestAnswer {
    pub digest: String,
    /// The deciding verdict's status.
    pub status: Status,
    pub decided_by: RecordView,
    pub latest: RecordView,
    /// Newest first, at most [`crate::daemon::http::read::MAX_HISTORY`].
    pub history: Vec<RecordView>,
    pub history_total: usize,
}

/// `GET /v1/jobs/{id}`. The server passes a stored verdict through as kept (`V` is raw JSON there, so a
/// verdict written by an older reprod is served as it was); clients read it as a [`Verdict`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView<V = Verdict> {
    pub id: String,
    /// The queue's state: `queued`, `leased`, `done`, `failed`, …
    pub state: String,
    pub attempt: u32,
    pub last_error: Option<String>,
    pub record: Option<RecordView>,
    pub verdict: Option<V>,
    /// Stored step logs and diff reports (`logs/…`, `diffs/…`).
    pub artifacts: Vec<String>,
    /// Where the verdict's publication to registries stands (`[publish]`); null when it was never taken
    /// up.
    #[serde(default)]
    pub publication: Option<super::Publication>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub queue: reprod_jobs::QueueStats,
}

/// `GET /v1/keys`: the keys verdicts are signed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub keyid: String,
    pub keytype: String,
    pub scheme: String,
    pub pem: String,
}

/// A job as an operator sees it in the queue (`/v1/admin/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub id: String,
    /// `ready`, `delayed`, `leased`, `done` or `dead`.
    pub state: String,
    /// Leases handed out so far (since the last retry).
    pub attempt: u32,
    pub last_error: Option<String>,
    /// Why a dead job is dead (attempts spent, or cancelled by an operator).
    pub dead_reason: Option<String>,
    /// The worker holding a leased job.
    pub worker: Option<String>,
    pub updated: String,
    /// The job's page.
    pub url: String,
}

/// `GET /v1/admin/jobs`: a page of jobs in id order; `next` continues after the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJobs {
    pub jobs: Vec<QueuedJob>,
    pub next: Option<String>,
}
