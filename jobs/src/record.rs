//! What the queue stores about a job (the payload lives in its own tree, written once).

use serde::{Deserialize, Serialize};

use crate::{JobId, LeaseToken};

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum JobState {
    Ready,
    /// Waiting out a retry backoff until `until_ms`.
    Delayed {
        until_ms: u64,
    },
    Leased {
        token: LeaseToken,
        worker: String,
        expires_ms: u64,
    },
    Done,
    /// Attempts spent; kept for inspection.
    Dead {
        reason: String,
    },
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Delayed { .. } => "delayed",
            JobState::Leased { .. } => "leased",
            JobState::Done => "done",
            JobState::Dead { .. } => "dead",
        }
    }
}

/// A job's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: JobId,
    pub priority: i32,
    /// Enqueue order, for fairness among equal priorities.
    pub seq: u64,
    /// Leases handed out so far.
    pub attempt: u32,
    pub state: JobState,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_error: Option<String>,
    pub aliases: Vec<String>,
}
