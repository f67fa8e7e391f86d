//! reprod-jobs: the durable rebuild work queue.
//!
//! Jobs are opaque payloads: the queue knows nothing of Docker or provenance. The engine is sled
//! ([`SledQueue`]); everything else is written against the [`Queue`] trait, so the engine is a choice made in
//! one place. Every method that returns `Ok` has made its effect durable (flushed) first: a `kill -9` at any
//! moment loses nothing acknowledged.

mod backoff;
pub mod clock;
mod keys;
mod operate;
mod record;
mod sled_queue;

use std::time::{Duration, SystemTime};

pub use backoff::backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use operate::{Operate, MAX_LIST};
pub use record::{JobInfo, JobState};
pub use sled_queue::{SledQueue, SCHEMA_VERSION};

/// Identifies a job; derived by the caller from what makes work identical (e.g. the provenance digest), so
/// enqueuing the same work twice yields the same id.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct JobId(pub String);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Proof of holding a lease: unguessable, new for every lease; completion is accepted only with the current one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LeaseToken(pub String);

/// Work to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    /// Other names of the same work (e.g. "source commit + recipe digest"): a job whose id or any alias is
    /// already known is a duplicate.
    pub aliases: Vec<String>,
    pub payload: Vec<u8>,
    /// Higher runs first; equal priorities run in enqueue order.
    pub priority: i32,
}

/// A job handed to a worker for a bounded time.
#[derive(Debug, Clone)]
pub struct Lease {
    pub job: JobId,
    pub token: LeaseToken,
    pub payload: Vec<u8>,
    /// 1 for the first lease of this job, 2 for the second, ...
    pub attempt: u32,
    pub expires_at: SystemTime,
}

/// How a leased job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// A verdict was reached (whatever it says about the artifact).
    Done,
    /// An infrastructure failure: retry with backoff, dead-letter when the attempts are spent.
    Retry { reason: String },
}

/// Whether an enqueue created work or found it already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    New,
    /// The work is known under this id (the same id, or one sharing an alias).
    Duplicate(JobId),
}

/// Retry and lease settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Leases a job gets before it is dead-lettered (failed attempts and expired leases both count).
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles per attempt up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Fraction of the delay randomized (0.2 = ±20%), so retries of many jobs do not arrive together.
    pub jitter: f64,
    /// sled's page cache; the store's memory use grows with the queue up to about this much.
    pub cache_bytes: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_attempts: 5,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(3600),
            jitter: 0.2,
            cache_bytes: 64 << 20,
        }
    }
}

/// Jobs per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub done: u64,
    pub dead: u64,
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "job {0} is not leased by this token (the lease expired, was completed, or was taken over)"
    )]
    StaleLease(JobId),
    #[error("unknown job {0}")]
    UnknownJob(JobId),
    #[error("job {job} is {state}; only a {wanted} job can be")]
    WrongState {
        job: JobId,
        state: String,
        wanted: &'static str,
    },
    #[error("the queue store at {path} has schema version {found}; this reprod reads version {supported} and will not touch a newer store (upgrade reprod)")]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("the queue store at {path} is corrupt or not a reprod store ({detail}); restore it from a backup or move it aside")]
    Corrupt { path: String, detail: String },
    #[error("queue storage failed ({0}); nothing was acknowledged (check disk space and permissions of the data directory)")]
    Storage(String),
}

/// The queue's contract. Every method that returns `Ok` has made its effect durable first.
pub trait Queue: Send + Sync {
    /// Adds a job unless its id or an alias is known.
    fn enqueue(&self, job: NewJob) -> Result<Enqueued, QueueError>;
    /// Adds many jobs with one flush at the end (bulk ingest): all outcomes are durable when it returns.
    fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, QueueError>;
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
    fn complete(
        &self,
        job: &JobId,
        token: &LeaseToken,
        how: Completion,
    ) -> Result<JobState, QueueError>;
    /// Gives a lease back without counting an attempt (graceful shutdown).
    fn release(&self, job: &JobId, token: &LeaseToken) -> Result<(), QueueError>;
    /// Returns expired leases to the queue (or dead-letters them when their attempts are spent); returns how
    /// many.
    fn reap_expired(&self) -> Result<usize, QueueError>;
    /// A job's state.
    fn get(&self, job: &JobId) -> Result<Option<JobInfo>, QueueError>;
    fn stats(&self) -> Result<QueueStats, QueueError>;
}
