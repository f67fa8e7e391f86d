//! What every part of the daemon shares: the configuration, the stores and queue, the signer, the
//! metrics, the workers seen; and [`blocking`], the one way store and queue work leaves the async threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reprod_jobs::{JobId, LeaseToken, SledQueue};
use tokio::sync::Notify;

use super::metrics;
use crate::attest::SigningKey;
use crate::config::Config;
use crate::store::Store;
use crate::trust::TrustMaterial;

/// What every part of the daemon shares.
pub struct Shared {
    pub config: Config,
    pub material: TrustMaterial,
    pub queue: SledQueue,
    pub store: Store,
    /// Signs every verdict recorded (only `record` uses it).
    pub signer: SigningKey,
    pub metrics: metrics::Metrics,
    /// Wakes idle workers when intake queued something.
    pub wake: Notify,
    /// Leases held by this process's workers, to give back on a forced shutdown.
    pub active: Mutex<HashMap<JobId, LeaseToken>>,
    /// Workers by name (`local-0`, `remote:<name>`): when each was last heard of and what it holds.
    pub workers: Mutex<BTreeMap<String, WorkerSeen>>,
    /// Serializes verdict recording (see `record::record_verdict`).
    pub record_lock: Mutex<()>,
    /// Completions read at once: each may be `server.max_completion_bytes` in memory while it is read
    /// and checked, so together they take at most this many times that.
    pub completions: tokio::sync::Semaphore,
    /// The newest output lines of the steps in-process workers are running, for the job pages.
    pub live: super::live::LiveTails,
}

/// How many remote workers' completions are read and checked at once.
pub const CONCURRENT_COMPLETIONS: usize = 4;

/// A worker as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct WorkerSeen {
    pub last_seen: Instant,
    /// The job it holds a lease on, if any.
    pub job: Option<String>,
}

impl Shared {
    pub fn new(
        config: Config,
        material: TrustMaterial,
        queue: SledQueue,
        store: Store,
        signer: SigningKey,
    ) -> Self {
        Shared {
            config,
            material,
            queue,
            store,
            signer,
            metrics: metrics::Metrics::new(),
            wake: Notify::new(),
            active: Mutex::new(HashMap::new()),
            workers: Mutex::new(BTreeMap::new()),
            record_lock: Mutex::new(()),
            completions: tokio::sync::Semaphore::new(CONCURRENT_COMPLETIONS),
            live: Default::default(),
        }
    }

    /// Notes that `worker` was heard from, holding `job` (or nothing).
    pub fn saw_worker(&self, worker: &str, job: Option<String>) {
        if let Ok(mut w) = self.workers.lock() {
            w.insert(
                worker.to_string(),
                WorkerSeen {
                    last_seen: Instant::now(),
                    job,
                },
            );
        }
    }

    /// Workers to show: every in-process one, and remote ones heard from within a lease period.
    pub fn live_workers(&self) -> Vec<(String, WorkerSeen)> {
        let horizon = Duration::from_secs(self.config.server.lease_secs.max(60));
        self.workers
            .lock()
            .map(|w| {
                w.iter()
                    .filter(|(name, seen)| {
                        !name.starts_with("remote:") || seen.last_seen.elapsed() <= horizon
                    })
                    .map(|(n, s)| (n.clone(), s.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A blocking operation's failure: its own error, or the task died.
#[derive(Debug, thiserror::Error)]
pub enum Blocking<E: std::fmt::Display> {
    #[error("{0}")]
    Op(E),
    #[error("background task failed: {0}")]
    Task(String),
}

/// Runs store and queue work (flushes, fsync) off the async threads.
pub async fn blocking<T, E, F>(shared: &Arc<Shared>, f: F) -> Result<T, Blocking<E>>
where
    F: FnOnce(&Shared) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let shared = shared.clone();
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(r) => r.map_err(Blocking::Op),
        Err(e) => Err(Blocking::Task(e.to_string())),
    }
}
