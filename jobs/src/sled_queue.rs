//! The sled engine. Each operation is one transaction over the trees it touches, followed by a flush
//! before it returns: what a caller was told happened survives `kill -9` and power loss.
//!
//! Trees: `meta` (schema version), `jobs` (id → [`JobInfo`] JSON), `payloads` (id → bytes, written once),
//! `aliases` (alias → id), and three indexes whose byte order is the queue's order: `ready` (priority,
//! sequence → id), `delayed` (due time, id → id) and `leases` (expiry, id → id).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

use crate::clock::{to_system_time, Clock, SystemClock};
use crate::record::{JobInfo, JobState};
use crate::{
    backoff, keys, Completion, Enqueued, JobId, Lease, LeaseToken, NewJob, Queue, QueueConfig,
    QueueError, QueueStats,
};

/// The store layout this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// A durable queue in one sled database.
pub struct SledQueue {
    pub(crate) db: sled::Db,
    pub(crate) path: String,
    pub(crate) meta: sled::Tree,
    pub(crate) jobs: sled::Tree,
    pub(crate) payloads: sled::Tree,
    pub(crate) aliases: sled::Tree,
    pub(crate) ready: sled::Tree,
    pub(crate) delayed: sled::Tree,
    pub(crate) leases: sled::Tree,
    pub(crate) config: QueueConfig,
    pub(crate) clock: Arc<dyn Clock>,
}

pub(crate) type TxResult<T> = Result<T, ConflictableTransactionError<QueueError>>;

pub(crate) fn abort<T>(e: QueueError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

pub(crate) fn storage(e: impl std::fmt::Display) -> QueueError {
    QueueError::Storage(e.to_string())
}

pub(crate) fn tx_err(e: TransactionError<QueueError>) -> QueueError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => storage(e),
    }
}

pub(crate) fn encode(info: &JobInfo) -> TxResult<Vec<u8>> {
    serde_json::to_vec(info).map_err(|e| ConflictableTransactionError::Abort(storage(e)))
}

pub(crate) fn decode(bytes: &[u8], path: &str) -> Result<JobInfo, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Corrupt {
        path: path.to_string(),
        detail: format!("a job record does not decode: {e}"),
    })
}

fn new_token() -> Result<LeaseToken, QueueError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| storage(format!("no randomness for a lease token: {e}")))?;
    Ok(LeaseToken(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

impl SledQueue {
    /// Opens (or creates) the queue in `dir`, refusing a store of a newer schema or one that is not a queue.
    pub fn open(dir: &Path, config: QueueConfig) -> Result<Self, QueueError> {
        Self::open_with_clock(dir, config, Arc::new(SystemClock))
    }

    pub fn open_with_clock(
        dir: &Path,
        config: QueueConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, QueueError> {
        let path = dir.display().to_string();
        // sled opens a directory of garbage as an empty database; a non-empty directory without our schema
        // key is therefore refused below rather than silently started afresh.
        let existed = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(config.cache_bytes)
            .open()
            .map_err(|e| match e {
                sled::Error::Corruption { .. } => QueueError::Corrupt {
                    path: path.clone(),
                    detail: e.to_string(),
                },
                sled::Error::Io(io) => QueueError::Storage(format!("cannot open {path}: {io}")),
                other => QueueError::Corrupt {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let q = SledQueue {
            meta: tree("meta")?,
            jobs: tree("jobs")?,
            payloads: tree("payloads")?,
            aliases: tree("aliases")?,
            ready: tree("ready")?,
            delayed: tree("delayed")?,
            leases: tree("leases")?,
            db,
            path,
            config,
            clock,
        };
        q.check_schema(existed)?;
        Ok(q)
    }

    fn check_schema(&self, existed: bool) -> Result<(), QueueError> {
        match self.meta.get(SCHEMA_KEY).map_err(storage)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| QueueError::Corrupt {
                        path: self.path.clone(),
                        detail: "the schema version key is malformed".into(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(QueueError::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                Ok(())
            }
            None if !existed && self.jobs.is_empty() => {
                self.meta
                    .insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(storage)?;
                self.flush()
            }
            None => Err(QueueError::Corrupt {
                path: self.path.clone(),
                detail: "the directory holds files but no queue schema version; if its very first start was interrupted it holds no jobs and can be removed".into(),
            }),
        }
    }

    pub(crate) fn flush(&self) -> Result<(), QueueError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn load(&self, tree: &TransactionalTree, id: &JobId) -> TxResult<JobInfo> {
        match tree.get(id.0.as_bytes())? {
            Some(bytes) => decode(&bytes, &self.path).or_else(abort),
            None => abort(QueueError::UnknownJob(id.clone())),
        }
    }

    /// Moves delayed jobs whose backoff is over back to the ready index.
    fn promote_due(&self) -> Result<(), QueueError> {
        let now = self.now();
        let due: Vec<(sled::IVec, sled::IVec)> = self
            .delayed
            .range(..keys::timed_until(now))
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        for (key, id) in due {
            let id = JobId(String::from_utf8_lossy(&id).into_owned());
            (&self.jobs, &self.delayed, &self.ready)
                .transaction(|(jobs, delayed, ready)| {
                    if delayed.remove(&key)?.is_none() {
                        return Ok(()); // promoted concurrently
                    }
                    let mut info = self.load(jobs, &id)?;
                    info.state = JobState::Ready;
                    info.updated_ms = now;
                    ready.insert(keys::ready(info.priority, info.seq), id.0.as_bytes())?;
                    jobs.insert(id.0.as_bytes(), encode(&info)?)?;
                    Ok(())
                })
                .map_err(tx_err)?;
        }
        Ok(())
    }

    /// Checks a lease token inside a transaction; returns the record and its expiry.
    fn held(
        &self,
        jobs: &TransactionalTree,
        id: &JobId,
        token: &LeaseToken,
    ) -> TxResult<(JobInfo, u64)> {
        let info = self.load(jobs, id)?;
        match &info.state {
            JobState::Leased {
                token: t,
                expires_ms,
                ..
            } if t == token => {
                let e = *expires_ms;
                Ok((info, e))
            }
            _ => abort(QueueError::StaleLease(id.clone())),
        }
    }

    /// Sends a job that failed (or whose lease expired) to its next attempt or the dead letters.
    /// One enqueue transaction; the caller flushes before acknowledging.
    fn enqueue_unflushed(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let now = self.now();
        let seq = self.db.generate_id().map_err(storage)?;
        let outcome = (&self.jobs, &self.payloads, &self.aliases, &self.ready)
            .transaction(|(jobs, payloads, aliases, ready)| {
                if jobs.get(job.id.0.as_bytes())?.is_some() {
                    return Ok(Enqueued::Duplicate(job.id.clone()));
                }
                for alias in &job.aliases {
                    if let Some(existing) = aliases.get(alias.as_bytes())? {
                        return Ok(Enqueued::Duplicate(JobId(
                            String::from_utf8_lossy(&existing).into_owned(),
                        )));
                    }
                }
                let info = JobInfo {
                    id: job.id.clone(),
                    priority: job.priority,
                    seq,
                    attempt: 0,
                    state: JobState::Ready,
                    created_ms: now,
                    updated_ms: now,
                    last_error: None,
                    aliases: job.aliases.clone(),
                };
                for alias in &job.aliases {
                    aliases.insert(alias.as_bytes(), job.id.0.as_bytes())?;
                }
                payloads.insert(job.id.0.as_bytes(), job.payload.as_slice())?;
                ready.insert(keys::ready(job.priority, seq), job.id.0.as_bytes())?;
                jobs.insert(job.id.0.as_bytes(), encode(&info)?)?;
                Ok(Enqueued::New)
            })
            .map_err(tx_err)?;
        Ok(outcome)
    }

    /// Returns the delayed-index key when the job is to be retried.
    fn fail(&self, info: &mut JobInfo, reason: String, now: u64) -> Option<Vec<u8>> {
        info.last_error = Some(reason.clone());
        info.updated_ms = now;
        if info.attempt >= self.config.max_attempts {
            info.state = JobState::Dead {
                reason: format!("{} attempts spent; last: {reason}", info.attempt),
            };
            return None;
        }
        let delay = backoff(info.attempt, &self.config, random_unit());
        let until_ms = now.saturating_add(delay.as_millis() as u64);
        info.state = JobState::Delayed { until_ms };
        Some(keys::timed(until_ms, &info.id.0))
    }
}

impl Queue for SledQueue {
    fn enqueue(&self, job: NewJob) -> Result<Enqueued, QueueError> {
        let outcome = self.enqueue_unflushed(job)?;
        if outcome == Enqueued::New {
            self.flush()?;
        }
        Ok(outcome)
    }

    fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, QueueError> {
        let outcomes = jobs
            .into_iter()
            .map(|j| self.enqueue_unflushed(j))
            .collect::<Result<Vec<_>, _>>()?;
        self.flush()?;
        Ok(outcomes)
    }

    fn lease(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, QueueError> {
        self.promote_due()?;
        loop {
            let Some(first) = self.ready.iter().next() else {
                return Ok(None);
            };
            let (key, id) = first.map_err(storage)?;
            let id = JobId(String::from_utf8_lossy(&id).into_owned());
            let now = self.now();
            let expires_ms = now.saturating_add(ttl.as_millis() as u64);
            let token = new_token()?;
            let taken = (&self.jobs, &self.ready, &self.leases)
                .transaction(|(jobs, ready, leases)| {
                    if ready.remove(&key)?.is_none() {
                        return Ok(None); // another worker took it
                    }
                    let mut info = self.load(jobs, &id)?;
                    info.attempt += 1;
                    info.updated_ms = now;
                    info.state = JobState::Leased {
                        token: token.clone(),
                        worker: worker.to_string(),
                        expires_ms,
                    };
                    leases.insert(keys::timed(expires_ms, &id.0), id.0.as_bytes())?;
                    jobs.insert(id.0.as_bytes(), encode(&info)?)?;
                    Ok(Some(info.attempt))
                })
                .map_err(tx_err)?;
            let Some(attempt) = taken else { continue };
            self.flush()?;
            let payload = self
                .payloads
                .get(id.0.as_bytes())
                .map_err(storage)?
                .map(|p| p.to_vec())
                .ok_or_else(|| QueueError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("job {id} has no payload"),
                })?;
            return Ok(Some(Lease {
                job: id,
                token,
                payload,
                attempt,
                expires_at: to_system_time(expires_ms),
            }));
        }
    }

    fn heartbeat(
        &self,
        job: &JobId,
        token: &LeaseToken,
        ttl: Duration,
    ) -> Result<SystemTime, QueueError> {
        let now = self.now();
        let expires_ms = now.saturating_add(ttl.as_millis() as u64);
        (&self.jobs, &self.leases)
            .transaction(|(jobs, leases)| {
                let (mut info, old) = self.held(jobs, job, token)?;
                if old < now {
                    // Expired but not yet reaped: the lease is gone all the same.
                    return abort(QueueError::StaleLease(job.clone()));
                }
                leases.remove(keys::timed(old, &job.0))?;
                leases.insert(keys::timed(expires_ms, &job.0), job.0.as_bytes())?;
                if let JobState::Leased { expires_ms: e, .. } = &mut info.state {
                    *e = expires_ms;
                }
                info.updated_ms = now;
                jobs.insert(job.0.as_bytes(), encode(&info)?)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(to_system_time(expires_ms))
    }

    fn complete(
        &self,
        job: &JobId,
        token: &LeaseToken,
        how: Completion,
    ) -> Result<JobState, QueueError> {
        let now = self.now();
        let state = (&self.jobs, &self.leases, &self.delayed)
            .transaction(|(jobs, leases, delayed)| {
                let (mut info, expires) = self.held(jobs, job, token)?;
                leases.remove(keys::timed(expires, &job.0))?;
                match &how {
                    Completion::Done => {
                        info.state = JobState::Done;
                        info.updated_ms = now;
                    }
                    Completion::Retry { reason } => {
                        if let Some(key) = self.fail(&mut info, reason.clone(), now) {
                            delayed.insert(key, job.0.as_bytes())?;
                        }
                    }
                }
                jobs.insert(job.0.as_bytes(), encode(&info)?)?;
                Ok(info.state)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(state)
    }

    fn release(&self, job: &JobId, token: &LeaseToken) -> Result<(), QueueError> {
        let now = self.now();
        (&self.jobs, &self.leases, &self.ready)
            .transaction(|(jobs, leases, ready)| {
                let (mut info, expires) = self.held(jobs, job, token)?;
                leases.remove(keys::timed(expires, &job.0))?;
                // Not the job's fault: the attempt is given back.
                info.attempt = info.attempt.saturating_sub(1);
                info.state = JobState::Ready;
                info.updated_ms = now;
                ready.insert(keys::ready(info.priority, info.seq), job.0.as_bytes())?;
                jobs.insert(job.0.as_bytes(), encode(&info)?)?;
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    fn reap_expired(&self) -> Result<usize, QueueError> {
        let now = self.now();
        let expired: Vec<(sled::IVec, sled::IVec)> = self
            .leases
            .range(..keys::timed_until(now.saturating_sub(1)))
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        let mut reaped = 0;
        for (key, id) in expired {
            let id = JobId(String::from_utf8_lossy(&id).into_owned());
            let done = (&self.jobs, &self.leases, &self.ready)
                .transaction(|(jobs, leases, ready)| {
                    if leases.remove(&key)?.is_none() {
                        return Ok(false); // completed or reaped meanwhile
                    }
                    let mut info = self.load(jobs, &id)?;
                    let worker = match &info.state {
                        JobState::Leased { worker, .. } => worker.clone(),
                        _ => return Ok(false),
                    };
                    let reason = format!("lease held by {worker} expired without completion");
                    if info.attempt >= self.config.max_attempts {
                        // Attempts spent: `fail` dead-letters (it delays only when attempts remain).
                        self.fail(&mut info, reason, now);
                    } else {
                        // The worker died, not (necessarily) the job: run it again at once.
                        info.last_error = Some(reason);
                        info.state = JobState::Ready;
                        info.updated_ms = now;
                        ready.insert(keys::ready(info.priority, info.seq), id.0.as_bytes())?;
                    }
                    jobs.insert(id.0.as_bytes(), encode(&info)?)?;
                    Ok(true)
                })
                .map_err(tx_err)?;
            reaped += usize::from(done);
        }
        if reaped > 0 {
            self.flush()?;
        }
        Ok(reaped)
    }

    fn get(&self, job: &JobId) -> Result<Option<JobInfo>, QueueError> {
        self.jobs
            .get(job.0.as_bytes())
            .map_err(storage)?
            .map(|b| decode(&b, &self.path))
            .transpose()
    }

    fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut s = QueueStats::default();
        for item in self.jobs.iter() {
            let (_, v) = item.map_err(storage)?;
            match decode(&v, &self.path)?.state {
                JobState::Ready => s.ready += 1,
                JobState::Delayed { .. } => s.delayed += 1,
                JobState::Leased { .. } => s.leased += 1,
                JobState::Done => s.done += 1,
                JobState::Dead { .. } => s.dead += 1,
            }
        }
        Ok(s)
    }
}
