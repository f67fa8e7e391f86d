//! What the daemon keeps besides the queue: the provenance as received, one verdict per job with its signed
//! attestations, intake rejections, and the indexes the query API reads. Every write is flushed before it is
//! acknowledged, and a verdict with everything about it is one transaction.
//!
//! Trees: `meta` (schema version), `provenance` (document sha256 → exact bytes), `verdicts` (job id →
//! verdict JSON, written at most once), `records` (job id → [`VerdictRecord`], the summary lists return),
//! `timeline` (sequence number, big-endian → job id), `by_image` (`<name> NUL <seq>` → job id), `by_subject`
//! (`<digest> <job id>` → ()), `counts` (status → u64), `attestations` (`<job> <kind>` → DSSE envelope
//! exactly as signed), `rejections` (document sha256 → reason JSON), `artifacts` (`<job> <logs/…|diffs/…>`
//! → zstd bytes: full step logs and diff reports), `watched` (`registry/repo@digest` whose attestations were
//! ingested), `rebuilds` (work key, `recipe:sha256:…` → the job whose verdict holds a completed rebuild of
//! that work, which later documents for the same work are judged against), `publications` and
//! `publish_due` (each verdict's publication to registries: [`publications`]).

use std::path::Path;

use crate::verdict::{Status, Verdict};

mod images;
mod publications;
mod record;

pub use images::{regressed, DigestUnderName};
pub use record::{
    deciding, is_image_name, SubjectRecord, VerdictRecord, MAX_IMAGE_NAME, MAX_RECORD_SUBJECTS,
};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};

/// The layout this code reads and writes. Version 1 had no records, timeline, image index, counts or
/// attestations; opening it adds them (the migration is one transaction).
pub const SCHEMA_VERSION: u32 = 2;
const SCHEMA_KEY: &[u8] = b"schema_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} has schema version {found}; this reprod reads version {SCHEMA_VERSION} and will not touch a newer store (upgrade reprod)")]
    NewerSchema { path: String, found: u32 },
    #[error("the store at {path} is corrupt or not a reprod store ({detail}); restore it from a backup or move it aside")]
    Corrupt { path: String, detail: String },
    #[error("store write failed ({0}); nothing was acknowledged (check disk space and permissions of the data directory)")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn tx_storage(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => storage(e),
    }
}

/// Which verdicts a list wants. Times are RFC 3339 in [`VerdictRecord::recorded_at`]'s form.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub image: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// The cursor: only verdicts recorded before this sequence number.
    pub before: Option<u64>,
    pub limit: usize,
}

/// One page of a list, newest first. `next` is the cursor of the following page, if there may be one.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub records: Vec<VerdictRecord>,
    pub next: Option<u64>,
}

pub struct Store {
    db: sled::Db,
    provenance: sled::Tree,
    verdicts: sled::Tree,
    records: sled::Tree,
    timeline: sled::Tree,
    by_image: sled::Tree,
    by_subject: sled::Tree,
    counts: sled::Tree,
    attestations: sled::Tree,
    rejections: sled::Tree,
    watched: sled::Tree,
    artifacts: sled::Tree,
    rebuilds: sled::Tree,
    publications: sled::Tree,
    publish_due: sled::Tree,
}

fn image_key(name: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 9);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A record, its timeline and image index entries, and its status count, inside a transaction.
fn write_record(
    records: &TransactionalTree,
    timeline: &TransactionalTree,
    by_image: &TransactionalTree,
    counts: &TransactionalTree,
    record: &VerdictRecord,
    bytes: &[u8],
) -> Result<(), ConflictableTransactionError<StoreError>> {
    records.insert(record.job.as_bytes(), bytes)?;
    timeline.insert(&record.seq.to_be_bytes(), record.job.as_bytes())?;
    for name in record.images() {
        by_image.insert(image_key(name, record.seq), record.job.as_bytes())?;
    }
    let n = counts
        .get(record.status.as_str())?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes);
    counts.insert(record.status.as_str(), &(n + 1).to_be_bytes())?;
    Ok(())
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

impl Store {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        // sled opens a directory of garbage as an empty database: refuse a non-empty directory without our
        // schema key instead of starting afresh over it.
        let existed = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some());
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(64 << 20)
            .open()
            .map_err(|e| match e {
                sled::Error::Io(io) => StoreError::Storage(format!("cannot open {path}: {io}")),
                other => StoreError::Corrupt {
                    path: path.clone(),
                    detail: other.to_string(),
                },
            })?;
        let tree = |n: &str| db.open_tree(n).map_err(storage);
        let meta = tree("meta")?;
        let store = Store {
            provenance: tree("provenance")?,
            verdicts: tree("verdicts")?,
            records: tree("records")?,
            timeline: tree("timeline")?,
            by_image: tree("by_image")?,
            by_subject: tree("by_subject")?,
            counts: tree("counts")?,
            attestations: tree("attestations")?,
            rejections: tree("rejections")?,
            watched: tree("watched")?,
            artifacts: tree("artifacts")?,
            rebuilds: tree("rebuilds")?,
            publications: tree("publications")?,
            publish_due: tree("publish_due")?,
            db,
        };
        match meta.get(SCHEMA_KEY).map_err(storage)? {
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        path: path.clone(),
                        detail: "malformed schema version".into(),
                    })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
                if found == 1 {
                    store.migrate_v1(&meta)?;
                }
            }
            None if !existed && store.verdicts.is_empty() && store.provenance.is_empty() => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(storage)?;
                store.flush()?;
            }
            None => {
                return Err(StoreError::Corrupt {
                    path,
                    detail: "the directory holds files but no store schema version; if its very first start was interrupted it holds nothing and can be removed".into(),
                })
            }
        }
        Ok(store)
    }

    /// Version 1 → 2: records and indexes for the verdicts already kept, one transaction per verdict (an
    /// interrupted migration resumes where it stopped). Their recording time is unknown, so it is the
    /// migration's, and their order is the job ids'; they have no attestations (they were never signed).
    fn migrate_v1(&self, meta: &sled::Tree) -> Result<(), StoreError> {
        let now = now_rfc3339();
        for entry in self.verdicts.iter() {
            let (job, bytes) = entry.map_err(storage)?;
            let job = String::from_utf8_lossy(&job).into_owned();
            if self.records.contains_key(&job).map_err(storage)? {
                continue;
            }
            let verdict: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    path: format!("verdict of {job}"),
                    detail: e.to_string(),
                })?;
            let seq = self.db.generate_id().map_err(storage)?;
            let Some(record) = VerdictRecord::of_version_1(&job, seq, &now, &verdict) else {
                // Kept, but not listed: a verdict without a status this reprod knows.
                tracing::warn!(job = %job, "a version 1 verdict without a known status is not indexed");
                continue;
            };
            self.index(&record)?;
        }
        meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())
            .map_err(storage)?;
        self.flush()
    }

    /// Writes a record and its index entries (no verdict, no attestations): the migration's part of
    /// [`Store::put_verdict_once`].
    fn index(&self, record: &VerdictRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(storage)?;
        (&self.records, &self.timeline, &self.by_image, &self.counts)
            .transaction(|(records, timeline, by_image, counts)| {
                write_record(records, timeline, by_image, counts, record, &bytes)
            })
            .map_err(tx_storage)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }

    /// Keeps the document exactly as received (idempotent).
    pub fn put_provenance(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.provenance.contains_key(sha256).map_err(storage)? {
            return Ok(());
        }
        self.provenance.insert(sha256, bytes).map_err(storage)?;
        self.flush()
    }

    pub fn provenance(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .provenance
            .get(sha256)
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Writes a job's verdict, its record and index entries and its signed attestations, unless the job has
    /// a verdict: a job never gets two. One transaction, flushed. Returns the record when this call wrote it.
    ///
    /// `work_key` names the work the verdict's rebuild did ([`crate::provenance::Recipe::work_key`]); when
    /// the rebuild ran to completion, later documents for the same work are judged against it.
    pub fn put_verdict_once(
        &self,
        job: &str,
        verdict: &Verdict,
        recorded_at: &str,
        attestations: &[(&str, Vec<u8>)],
        work_key: Option<&str>,
    ) -> Result<Option<VerdictRecord>, StoreError> {
        if self.verdicts.contains_key(job).map_err(storage)? {
            return Ok(None);
        }
        let reusable = work_key.filter(|_| verdict.holds_reusable_rebuild());
        let bytes = serde_json::to_vec(verdict).map_err(storage)?;
        let seq = self.db.generate_id().map_err(storage)?;
        let kinds = attestations.iter().map(|(k, _)| k.to_string()).collect();
        // Every subject digest is indexed, not only the record's first ones: lookups by digest read this.
        let mut digests: Vec<&str> = verdict
            .subjects
            .iter()
            .map(|s| s.digest.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        digests.sort_unstable();
        digests.dedup();
        let record = VerdictRecord::of(job, seq, recorded_at, verdict, kinds);
        let record_bytes = serde_json::to_vec(&record).map_err(storage)?;
        let written = (
            &self.verdicts,
            &self.records,
            &self.timeline,
            &self.by_image,
            &self.by_subject,
            &self.counts,
            &self.attestations,
            &self.rebuilds,
        )
            .transaction(
                |(verdicts, records, timeline, by_image, by_subject, counts, atts, rebuilds)| {
                    if verdicts.get(job)?.is_some() {
                        return Ok(false);
                    }
                    verdicts.insert(job, bytes.as_slice())?;
                    records.insert(job, record_bytes.as_slice())?;
                    timeline.insert(&seq.to_be_bytes(), job)?;
                    for name in record.images() {
                        by_image.insert(image_key(name, seq), job)?;
                    }
                    for digest in &digests {
                        by_subject.insert(format!("{digest} {job}").as_bytes(), &[])?;
                    }
                    let n = counts
                        .get(record.status.as_str())?
                        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                        .map_or(0, u64::from_be_bytes);
                    counts.insert(record.status.as_str(), &(n + 1).to_be_bytes())?;
                    for (kind, envelope) in attestations {
                        atts.insert(format!("{job} {kind}").as_bytes(), envelope.as_slice())?;
                    }
                    if let Some(key) = reusable {
                        if rebuilds.get(key)?.is_none() {
                            rebuilds.insert(key, job)?;
                        }
                    }
                    Ok::<bool, ConflictableTransactionError<StoreError>>(true)
                },
            )
            .map_err(tx_storage)?;
        if !written {
            return Ok(None);
        }
        self.flush()?;
        Ok(Some(record))
    }

    pub fn has_verdict(&self, job: &str) -> Result<bool, StoreError> {
        self.verdicts.contains_key(job).map_err(storage)
    }

    pub fn record(&self, job: &str) -> Result<Option<VerdictRecord>, StoreError> {
        self.records
            .get(job)
            .map_err(storage)?
            .map(|v| serde_json::from_slice(&v).map_err(storage))
            .transpose()
    }

    /// A signed attestation (`vsa`, `provenance`) exactly as signed.
    pub fn attestation(&self, job: &str, kind: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .attestations
            .get(format!("{job} {kind}"))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Verdicts naming this subject digest, newest first.
    pub fn history(&self, digest: &str) -> Result<Vec<VerdictRecord>, StoreError> {
        let mut out = Vec::new();
        for job in self.jobs_for_subject(digest)? {
            if let Some(r) = self.record(&job)? {
                out.push(r);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.seq));
        Ok(out)
    }

    /// One page of verdicts, newest first, filtered. At most `max_scan` index entries are read per call: a
    /// filter that matches little returns a short page with a cursor to go on from, rather than reading
    /// everything.
    pub fn list(&self, q: &ListQuery, max_scan: usize) -> Result<Page, StoreError> {
        let before = q.before.unwrap_or(u64::MAX);
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            match &q.image {
                Some(name) => Box::new(
                    self.by_image
                        .range(image_key(name, 0)..image_key(name, before))
                        .rev(),
                ),
                None => Box::new(self.timeline.range(..before.to_be_bytes()).rev()),
            };
        let mut page = Page::default();
        let mut entries = entries.peekable();
        let mut scanned = 0usize;
        while let Some(entry) = entries.next() {
            let (key, job) = entry.map_err(storage)?;
            scanned += 1;
            let seq = seq_of(&key).ok_or_else(|| storage("malformed index key"))?;
            let job = String::from_utf8_lossy(&job);
            let Some(record) = self.record(&job)? else {
                continue;
            };
            if q.since.as_ref().is_some_and(|t| record.recorded_at < *t) {
                // Newest first: everything after this is older still.
                return Ok(page);
            }
            let wanted = q.status.as_ref().is_none_or(|s| record.status == *s)
                && q.image
                    .as_ref()
                    .is_none_or(|i| record.images().contains(&i.as_str()))
                && q.until.as_ref().is_none_or(|t| record.recorded_at <= *t);
            if wanted {
                page.records.push(record);
            }
            let more = entries.peek().is_some();
            if page.records.len() >= q.limit || scanned >= max_scan {
                page.next = more.then_some(seq);
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// Verdicts recorded, per status.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.counts
            .iter()
            .map(|e| {
                let (k, v) = e.map_err(storage)?;
                let n = <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| storage("malformed count"))?;
                Ok((String::from_utf8_lossy(&k).into_owned(), n))
            })
            .collect()
    }

    /// The most recently recorded verdict.
    pub fn latest(&self) -> Result<Option<VerdictRecord>, StoreError> {
        match self.timeline.last().map_err(storage)? {
            Some((_, job)) => self.record(&String::from_utf8_lossy(&job)),
            None => Ok(None),
        }
    }

    /// A completed rebuild of this work (a [`crate::provenance::Recipe::work_key`]), if one is kept: the job
    /// and its verdict.
    pub fn prior_rebuild(&self, work_key: &str) -> Result<Option<(String, Verdict)>, StoreError> {
        let Some(job) = self.rebuilds.get(work_key).map_err(storage)? else {
            return Ok(None);
        };
        let job = String::from_utf8_lossy(&job).into_owned();
        Ok(self.verdict_of(&job)?.map(|v| (job, v)))
    }

    /// A job's verdict, typed. `Ok(None)` also for a verdict written by an older reprod that does not read
    /// as one (it is still served as it was kept).
    pub fn verdict_of(&self, job: &str) -> Result<Option<Verdict>, StoreError> {
        Ok(self
            .verdicts
            .get(job)
            .map_err(storage)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// A job's verdict exactly as kept (JSON), for serving it as it was recorded.
    pub fn verdict_json(
        &self,
        job: &str,
    ) -> Result<Option<Box<serde_json::value::RawValue>>, StoreError> {
        self.verdicts
            .get(job)
            .map_err(storage)?
            .map(|v| serde_json::from_slice(&v).map_err(storage))
            .transpose()
    }

    /// Job ids with a verdict naming this subject digest.
    pub fn jobs_for_subject(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        self.by_subject
            .scan_prefix(format!("{digest} "))
            .keys()
            .map(|k| {
                k.map_err(storage)
                    .map(|k| String::from_utf8_lossy(&k[digest.len() + 1..]).into_owned())
            })
            .collect()
    }

    pub fn verdict_count(&self) -> usize {
        self.verdicts.len()
    }

    /// Keeps a job's full step logs and diff reports, zstd-compressed, replacing any earlier attempt's. The
    /// worker stores them before the verdict, so a verdict's artifacts are those of the run that made it.
    pub fn put_artifacts(&self, job: &str, files: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        for old in self.artifacts.scan_prefix(format!("{job} ")).keys() {
            self.artifacts
                .remove(old.map_err(storage)?)
                .map_err(storage)?;
        }
        for (name, bytes) in files {
            let packed = zstd::encode_all(bytes.as_slice(), 3).map_err(storage)?;
            self.artifacts
                .insert(format!("{job} {name}"), packed)
                .map_err(storage)?;
        }
        self.flush()
    }

    /// Names of a job's stored artifacts (`logs/00-build.log`, `diffs/0.json`, …).
    pub fn artifact_names(&self, job: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{job} ");
        self.artifacts
            .scan_prefix(&prefix)
            .keys()
            .map(|k| {
                k.map_err(storage)
                    .map(|k| String::from_utf8_lossy(&k[prefix.len()..]).into_owned())
            })
            .collect()
    }

    pub fn artifact(&self, job: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.artifacts
            .get(format!("{job} {name}"))
            .map_err(storage)?
            .map(|v| zstd::decode_all(v.as_ref()).map_err(storage))
            .transpose()
    }

    /// Whether the registry watcher has ingested the attestations of `image` (`registry/repo@digest`).
    pub fn watched(&self, image: &str) -> Result<bool, StoreError> {
        self.watched.contains_key(image).map_err(storage)
    }

    pub fn mark_watched(&self, image: &str) -> Result<(), StoreError> {
        self.watched.insert(image, &[]).map_err(storage)?;
        self.flush()
    }

    /// Records why a document was refused at intake (`{reason, detail}`).
    pub fn put_rejection(
        &self,
        sha256: &str,
        reason: &impl serde::Serialize,
    ) -> Result<(), StoreError> {
        self.rejections
            .insert(sha256, serde_json::to_vec(reason).map_err(storage)?)
            .map_err(storage)?;
        self.flush()
    }
}

/// Now, in the form [`VerdictRecord::recorded_at`] uses.
pub fn now_rfc3339() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_time(
        chrono::DateTime::from_timestamp(since.as_secs() as i64, since.subsec_nanos())
            .unwrap_or_default(),
    )
}

/// RFC 3339, UTC, milliseconds, `Z`: one width, so that string order is time order.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::SubjectState;
    use serde_json::json;

    fn verdict(status: &str, name: &str, digest: &str) -> serde_json::Value {
        json!({"status": status, "detail": "d", "subjects": [{"name": name, "digest": digest, "matched": status == "reproducible"}]})
    }

    fn typed(status: &str, name: &str, digest: &str) -> Verdict {
        use crate::verdict::{testing, Status};
        let st: Status = serde_json::from_value(json!(status)).unwrap();
        let state = if st == Status::Reproducible {
            SubjectState::Matched
        } else {
            SubjectState::NotCompared
        };
        testing::verdict(st, &[(name, digest, state)])
    }

    #[test]
    fn a_version_1_store_gets_records_and_indexes_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("meta")
                .unwrap()
                .insert(SCHEMA_KEY, &1u32.to_be_bytes())
                .unwrap();
            let v = db.open_tree("verdicts").unwrap();
            v.insert(
                "job-a",
                serde_json::to_vec(&verdict("reproducible", "app", "sha256:aa")).unwrap(),
            )
            .unwrap();
            v.insert(
                "job-b",
                serde_json::to_vec(&verdict("unreproducible", "app", "sha256:bb")).unwrap(),
            )
            .unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let page = store
            .list(
                &ListQuery {
                    limit: 10,
                    image: Some("app".into()),
                    ..ListQuery::default()
                },
                100,
            )
            .unwrap();
        assert_eq!(page.records.len(), 2);
        let mut counts = store.counts().unwrap();
        counts.sort();
        assert_eq!(
            counts,
            vec![("reproducible".into(), 1), ("unreproducible".into(), 1)]
        );
        assert!(store
            .record("job-a")
            .unwrap()
            .unwrap()
            .attestations
            .is_empty());
        drop(store);
        // Opening again neither fails nor indexes twice.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.counts().unwrap().iter().map(|(_, n)| n).sum::<u64>(),
            2
        );
    }

    #[test]
    fn lists_page_newest_first_and_a_reproducible_verdict_decides_a_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (i, status) in ["reproducible", "unreproducible", "build-failed"]
            .iter()
            .enumerate()
        {
            let t = format!("2026-11-28T00:00:0{i}.000Z");
            let written = store
                .put_verdict_once(
                    &format!("job-{i}"),
                    &typed(status, "app", "sha256:aa"),
                    &t,
                    &[("vsa", b"{}".to_vec())],
                    None,
                )
                .unwrap();
            assert!(written.is_some());
        }
        assert!(
            store
                .put_verdict_once(
                    "job-0",
                    &typed("rejected", "app", "sha256:aa"),
                    "t",
                    &[],
                    None
                )
                .unwrap()
                .is_none(),
            "a job never gets a second verdict"
        );
        let q = |before, since: Option<&str>| ListQuery {
            limit: 2,
            before,
            since: since.map(str::to_string),
            ..ListQuery::default()
        };
        let first = store.list(&q(None, None), 100).unwrap();
        let jobs: Vec<&str> = first.records.iter().map(|r| r.job.as_str()).collect();
        assert_eq!(jobs, ["job-2", "job-1"]);
        let rest = store.list(&q(first.next, None), 100).unwrap();
        assert_eq!(rest.records[0].job, "job-0");
        assert_eq!(rest.next, None);
        let recent = store
            .list(&q(None, Some("2026-11-28T00:00:01.000Z")), 100)
            .unwrap();
        assert_eq!(recent.records.len(), 2);
        let history = store.history("sha256:aa").unwrap();
        assert_eq!(history[0].job, "job-2", "newest first");
        assert_eq!(deciding(&history, "sha256:aa", None).unwrap().job, "job-0");
        assert_eq!(
            store.attestation("job-1", "vsa").unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        let sparse = store
            .list(
                &ListQuery {
                    limit: 10,
                    status: Some(Status::Reproducible),
                    ..ListQuery::default()
                },
                1,
            )
            .unwrap();
        assert!(
            sparse.records.is_empty() && sparse.next.is_some(),
            "a bounded scan returns a cursor to go on"
        );
    }
}
