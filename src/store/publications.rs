//! Where each verdict's publication to registries stands: `publications` (job id → [`Publication`]; and
//! [`CURSOR`], how far along the timeline verdicts have been taken up) and `publish_due` (`<due unix
//! seconds, big-endian> <job id>` → (), the retries in the order they are due). Taking verdicts up from the
//! timeline, rather than from the verdict's own write, keeps the verdict's transaction as it was and
//! publishes the verdicts recorded before publishing was turned on. The record is kept as the API shows it
//! ([`crate::wire::Publication`]).

use sled::transaction::{ConflictableTransactionError, Transactional};

use super::{storage, tx_storage, Store, StoreError};
use crate::wire::Publication;

/// Not a job id (those start with `sha256:`).
const CURSOR: &[u8] = b"\0cursor";

fn due_key(due: u64, job: &str) -> Vec<u8> {
    let mut k = due.to_be_bytes().to_vec();
    k.extend_from_slice(job.as_bytes());
    k
}

impl Store {
    /// Takes up to `limit` verdicts recorded since the last call as pending publications, due `now`.
    /// Returns how many.
    pub fn take_up_publications(&self, now: u64, limit: usize) -> Result<usize, StoreError> {
        let after = self
            .publications
            .get(CURSOR)
            .map_err(storage)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes);
        let from = after.map_or(0, |s| s.saturating_add(1));
        let mut jobs = Vec::new();
        let mut last = None;
        for entry in self.timeline.range(from.to_be_bytes()..).take(limit) {
            let (seq, job) = entry.map_err(storage)?;
            last = super::seq_of(&seq);
            jobs.push(String::from_utf8_lossy(&job).into_owned());
        }
        let Some(last) = last else {
            return Ok(0);
        };
        let pending = serde_json::to_vec(&Publication {
            due: Some(now),
            ..Publication::default()
        })
        .map_err(storage)?;
        (&self.publications, &self.publish_due)
            .transaction(|(publications, due)| {
                for job in &jobs {
                    if publications.get(job.as_bytes())?.is_none() {
                        publications.insert(job.as_bytes(), pending.as_slice())?;
                        due.insert(due_key(now, job), &[])?;
                    }
                }
                publications.insert(CURSOR, &last.to_be_bytes())?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_storage)?;
        self.flush()?;
        Ok(jobs.len())
    }

    /// Jobs whose publication is due at `now`, the longest-waiting first.
    pub fn due_publications(&self, now: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.publish_due
            .range(..due_key(now.saturating_add(1), ""))
            .keys()
            .take(limit)
            .map(|k| {
                let k = k.map_err(storage)?;
                Ok(String::from_utf8_lossy(k.get(8..).unwrap_or_default()).into_owned())
            })
            .collect()
    }

    pub fn publication(&self, job: &str) -> Result<Option<Publication>, StoreError> {
        self.publications
            .get(job.as_bytes())
            .map_err(storage)?
            .map(|v| serde_json::from_slice(&v).map_err(storage))
            .transpose()
    }

    /// Records where `job`'s publication stands; its retry is due at `record.due`, if any.
    pub fn put_publication(&self, job: &str, record: &Publication) -> Result<(), StoreError> {
        let old = self.publication(job)?.and_then(|p| p.due);
        let bytes = serde_json::to_vec(record).map_err(storage)?;
        (&self.publications, &self.publish_due)
            .transaction(|(publications, due)| {
                if let Some(at) = old {
                    due.remove(due_key(at, job))?;
                }
                if let Some(at) = record.due {
                    due.insert(due_key(at, job), &[])?;
                }
                publications.insert(job.as_bytes(), bytes.as_slice())?;
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_storage)?;
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PublicationState;

    #[test]
    fn verdicts_are_taken_up_once_in_order_and_retries_come_due_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (i, job) in ["sha256:a", "sha256:b", "sha256:c"].iter().enumerate() {
            store
                .timeline
                .insert((i as u64 + 1).to_be_bytes(), *job)
                .unwrap();
        }
        assert_eq!(store.take_up_publications(100, 2).unwrap(), 2);
        assert_eq!(store.take_up_publications(100, 10).unwrap(), 1);
        assert_eq!(store.take_up_publications(100, 10).unwrap(), 0);
        assert_eq!(
            store.due_publications(100, 10).unwrap(),
            ["sha256:a", "sha256:b", "sha256:c"]
        );
        assert!(store.due_publications(99, 10).unwrap().is_empty());
        let mut p = store.publication("sha256:b").unwrap().unwrap();
        assert_eq!(p.state, PublicationState::Pending);
        p.attempts = 1;
        p.due = Some(160);
        store.put_publication("sha256:b", &p).unwrap();
        assert_eq!(
            store.due_publications(100, 10).unwrap(),
            ["sha256:a", "sha256:c"]
        );
        p.due = None;
        p.state = PublicationState::Published;
        store.put_publication("sha256:b", &p).unwrap();
        assert_eq!(store.due_publications(1000, 10).unwrap().len(), 2);
        // Reopened: what was recorded is there, and nothing is taken up twice.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.take_up_publications(100, 10).unwrap(), 0);
        assert_eq!(
            store.publication("sha256:b").unwrap().unwrap().state,
            PublicationState::Published
        );
    }
}
