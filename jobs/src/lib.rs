//! reprod-jobs: the durable rebuild work queue.
//!
//! This crate fixes the queue's interface so the rest of reprod can be written against it. The sled-backed
//! engine (flush-before-acknowledge, lease reaper, backoff, dead-letter) lands with the daemon; until then the
//! one-shot `reprod rebuild` needs no queue. Jobs are opaque payloads: the queue knows nothing of Docker or
//! provenance.

use std::time::{Duration, SystemTime};

/// Identifies a job; derived by the caller from what makes work identical (e.g. the provenance digest), so
/// enqueuing the same work twice yields the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub String);

/// Proof of holding a lease; completion is accepted only with the current token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken(pub String);

/// A job handed to a worker for a bounded time.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: JobId,
    pub token: LeaseToken,
    pub payload: Vec<u8>,
    pub attempt: u32,
    pub expires_at: SystemTime,
}

/// How a leased job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// A verdict was reached (whatever it says about the artifact).
    Done,
    /// An infrastructure failure: retry with backoff, dead-letter when retries are spent.
    Retry { reason: String },
}

/// Whether an enqueue created work or found it already known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New,
    Duplicate,
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("job {0:?} is not leased by this token (the lease expired or was taken over)")]
    StaleLease(JobId),
    #[error("unknown job {0:?}")]
    UnknownJob(JobId),
    #[error("queue storage failed: {0}")]
    Storage(String),
}

/// The queue's contract. Every method that returns `Ok` has made its effect durable first.
pub trait Queue: Send + Sync {
    /// Adds a job unless one with the same id exists.
    fn enqueue(&self, id: JobId, payload: Vec<u8>, priority: i32) -> Result<Enqueued, QueueError>;
    /// Leases the most urgent ready job, if any, for `ttl`.
    fn lease(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, QueueError>;
    /// Extends a lease; fails with [`QueueError::StaleLease`] if it is no longer held.
    fn heartbeat(
        &self,
        job: &JobId,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<SystemTime, QueueError>;
    /// Finishes a lease; fails with [`QueueError::StaleLease`] if it is no longer held.
    fn complete(&self, job: &JobId, token: &LeaseToken, how: Completion) -> Result<(), QueueError>;
    /// Returns expired leases to the queue; returns how many.
    fn reap_expired(&self, now: SystemTime) -> Result<usize, QueueError>;
}
