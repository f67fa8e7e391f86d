//! What an operator does to the queue by hand: list the jobs in a state, send a job that is waiting to
//! the dead letters (cancel), and give a dead job its attempts back (retry). Each change is one
//! transaction over the record and its index, flushed before it returns, as every queue write.

use sled::transaction::Transactional;

use crate::keys;
use crate::record::{JobInfo, JobState};
use crate::sled_queue::{abort, decode, encode, storage, tx_err, SledQueue};
use crate::{JobId, QueueError};

/// The most jobs one [`Operate::list`] call returns.
pub const MAX_LIST: usize = 1000;

/// Operator actions on the queue.
pub trait Operate {
    /// Jobs whose state is `state` (every job with `None`), in id order, after the id `after`, at most
    /// `limit` (capped at [`MAX_LIST`]).
    fn list(
        &self,
        state: Option<&str>,
        after: Option<&JobId>,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError>;

    /// A job waiting to run (ready, or delayed for a retry) to the dead letters, with `reason`. A leased
    /// job is running and a done or dead one has ended: [`QueueError::WrongState`].
    fn cancel(&self, id: &JobId, reason: &str) -> Result<JobInfo, QueueError>;

    /// A dead job back to ready, its attempts counted from zero again (its last error kept). Any other
    /// state: [`QueueError::WrongState`] (a done job has its verdict, which stands).
    fn retry(&self, id: &JobId) -> Result<JobInfo, QueueError>;
}

impl Operate for SledQueue {
    fn list(
        &self,
        state: Option<&str>,
        after: Option<&JobId>,
        limit: usize,
    ) -> Result<Vec<JobInfo>, QueueError> {
        let limit = limit.min(MAX_LIST);
        let mut out = Vec::new();
        let start = match after {
            // The first key after `after`: the id with a NUL appended.
            Some(id) => [id.0.as_bytes(), &[0]].concat(),
            None => Vec::new(),
        };
        for item in self.jobs.range(start..) {
            if out.len() >= limit {
                break;
            }
            let (_, bytes) = item.map_err(storage)?;
            let info = decode(&bytes, &self.path)?;
            if state.is_none_or(|s| s == info.state.name()) {
                out.push(info);
            }
        }
        Ok(out)
    }

    fn cancel(&self, id: &JobId, reason: &str) -> Result<JobInfo, QueueError> {
        let now = self.now();
        let info = (&self.jobs, &self.ready, &self.delayed)
            .transaction(|(jobs, ready, delayed)| {
                let mut info = self.load(jobs, id)?;
                match &info.state {
                    JobState::Ready => {
                        ready.remove(keys::ready(info.priority, info.seq))?;
                    }
                    JobState::Delayed { until_ms } => {
                        delayed.remove(keys::timed(*until_ms, &id.0))?;
                    }
                    other => return abort(wrong_state(id, other.name(), "ready or delayed")),
                }
                info.state = JobState::Dead {
                    reason: format!("cancelled by an operator: {reason}"),
                };
                info.updated_ms = now;
                jobs.insert(id.0.as_bytes(), encode(&info)?)?;
                Ok(info)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(info)
    }

    fn retry(&self, id: &JobId) -> Result<JobInfo, QueueError> {
        let now = self.now();
        // A new place at the back of its priority: a retried job does not jump the queue.
        let seq = self.db.generate_id().map_err(storage)?;
        let info = (&self.jobs, &self.ready)
            .transaction(|(jobs, ready)| {
                let mut info = self.load(jobs, id)?;
                if !matches!(info.state, JobState::Dead { .. }) {
                    return abort(wrong_state(id, info.state.name(), "dead"));
                }
                info.state = JobState::Ready;
                info.attempt = 0;
                info.seq = seq;
                info.updated_ms = now;
                ready.insert(keys::ready(info.priority, seq), id.0.as_bytes())?;
                jobs.insert(id.0.as_bytes(), encode(&info)?)?;
                Ok(info)
            })
            .map_err(tx_err)?;
        self.flush()?;
        Ok(info)
    }
}

fn wrong_state(id: &JobId, state: &str, wanted: &'static str) -> QueueError {
    QueueError::WrongState {
        job: id.clone(),
        state: state.to_string(),
        wanted,
    }
}
