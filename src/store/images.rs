//! Reading the store by image name, for the image-centric pages: the names in order, and what each name's
//! digests stand at. Both read the `by_image` index (`<name> NUL <seq>` → job id) and the records.

use super::{deciding, storage, Store, StoreError, VerdictRecord};
use crate::verdict::Status;

/// One digest under an image name, as its newest verdicts under that name decide it.
#[derive(Debug, Clone)]
pub struct DigestUnderName {
    pub digest: String,
    /// The verdict that decides the digest's status ([`deciding`], preferring verdicts under this name).
    pub decided_by: VerdictRecord,
    /// The newest verdict about the digest from the same document as [`DigestUnderName::decided_by`] (a
    /// recheck's, when one ran since): another document naming the digest cannot make it drift.
    pub latest: VerdictRecord,
    /// When the digest was first judged under the name (a sequence number): the order of "newest".
    pub first_seen: u64,
}

impl DigestUnderName {
    pub fn status(&self) -> Status {
        self.decided_by.status
    }

    /// Whether the digest drifted: it was rebuilt bit for bit, and a later rebuild of it (a recheck) differs
    /// or fails. The proof stands (the status stays `reproducible`); the drift says its toolchain no longer
    /// gives those bytes.
    pub fn drifted(&self) -> bool {
        self.decided_by.status == Status::Reproducible
            && self.latest.seq > self.decided_by.seq
            && matches!(
                self.latest.status,
                Status::Unreproducible | Status::BuildFailed
            )
    }
}

impl Store {
    /// Distinct image names after `after` (exclusive), in byte order, at most `limit`: one index seek
    /// each, whatever the number of verdicts per name.
    pub fn image_names(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        // Names hold no control characters (`is_image_name`), so `name \x01` sorts after every key of
        // `name` and before every longer name that starts with it.
        let mut from = after.map_or_else(Vec::new, |a| [a.as_bytes(), b"\x01"].concat());
        let mut names = Vec::new();
        while names.len() < limit {
            let Some((key, _)) = self
                .by_image
                .range(from.as_slice()..)
                .next()
                .transpose()
                .map_err(storage)?
            else {
                break;
            };
            let name = key
                .len()
                .checked_sub(9)
                .and_then(|n| key.get(..n))
                .ok_or_else(|| storage("malformed image index key"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            from = [name.as_bytes(), b"\x01"].concat();
            names.push(name);
        }
        Ok(names)
    }

    /// The digests recorded under `name` in its newest `scan` verdicts, newest first by when each was first
    /// judged under the name (a recheck of an old digest does not make it the newest), each with the
    /// verdict that decides it.
    pub fn digests_under(
        &self,
        name: &str,
        scan: usize,
    ) -> Result<Vec<DigestUnderName>, StoreError> {
        let records = self
            .list(
                &super::ListQuery {
                    image: Some(name.to_string()),
                    limit: scan,
                    ..super::ListQuery::default()
                },
                scan,
            )?
            .records;
        let mut digests: Vec<String> = Vec::new();
        for r in &records {
            for s in r.subjects.iter().filter(|s| s.name == name) {
                if crate::verdict::is_sha256(&s.digest) && !digests.contains(&s.digest) {
                    digests.push(s.digest.clone());
                }
            }
        }
        let mut out = Vec::new();
        for digest in digests {
            let history = self.history(&digest)?;
            let Some(decided) = deciding(&history, &digest, Some(name)) else {
                continue;
            };
            let latest = history
                .iter()
                .find(|r| r.provenance_sha256 == decided.provenance_sha256)
                .unwrap_or(decided);
            let first_seen = history
                .iter()
                .filter(|r| {
                    r.subjects
                        .iter()
                        .any(|s| s.name == name && s.digest == digest)
                })
                .map(|r| r.seq)
                .min()
                .unwrap_or(decided.seq);
            out.push(DigestUnderName {
                digest,
                decided_by: decided.clone(),
                latest: latest.clone(),
                first_seen,
            });
        }
        out.sort_by_key(|d| std::cmp::Reverse(d.first_seen));
        Ok(out)
    }
}

/// Whether the newest digest of a name (first in `digests`, newest first) regressed: it was rebuilt and
/// differs (`unreproducible`) while an older digest of the same name was reproducible. A failed or
/// impossible rebuild says nothing about the bytes, so it is not a regression.
pub fn regressed(digests: &[DigestUnderName]) -> bool {
    match digests.split_first() {
        Some((newest, older)) => {
            newest.status() == Status::Unreproducible
                && older.iter().any(|d| d.status() == Status::Reproducible)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_once_each_in_order_and_a_prefix_is_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (i, name) in ["b", "a", "ab", "a", "a/b", "c"].iter().enumerate() {
            store
                .by_image
                .insert(
                    super::super::image_key(name, i as u64 + 1),
                    b"job".as_slice(),
                )
                .unwrap();
        }
        assert_eq!(
            store.image_names(None, 10).unwrap(),
            ["a", "a/b", "ab", "b", "c"]
        );
        assert_eq!(store.image_names(Some("a"), 2).unwrap(), ["a/b", "ab"]);
        assert_eq!(store.image_names(Some("ab"), 10).unwrap(), ["b", "c"]);
        assert!(store.image_names(Some("c"), 10).unwrap().is_empty());
    }
}
