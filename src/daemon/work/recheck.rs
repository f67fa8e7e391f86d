//! Rechecks: a fresh rebuild of a document that was already judged, as a job of its own
//! (`sha256:<document>.recheck-<UTC time>`), so that its verdict joins the history of the digests beside the
//! first rather than replacing it. Periodic rechecks are how a status page catches a toolchain that drifted.
//! A recheck never reuses an earlier rebuild of the same work: rebuilding again is its point.

/// What separates the document from the recheck's time in its job id.
const MARK: &str = ".recheck-";

/// The job id of a recheck of `document` (`sha256:<hex>`) asked for at `at`. Two asked for within the same
/// second are the same job (the queue keeps one).
pub fn job_id(document: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{document}{MARK}{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// The document a job rebuilds: its id, or for a recheck the id it rechecks.
pub fn document_of(job: &str) -> &str {
    job.split_once(MARK).map_or(job, |(doc, _)| doc)
}

pub fn is_recheck(job: &str) -> bool {
    job.contains(MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recheck_names_its_document_and_its_time() {
        let doc = format!("sha256:{}", "ab".repeat(32));
        let at = chrono::DateTime::from_timestamp(1_796_000_000, 0).unwrap();
        let id = job_id(&doc, at);
        assert_eq!(id, format!("{doc}.recheck-20261130T005320Z"));
        assert!(is_recheck(&id) && !is_recheck(&doc));
        assert_eq!(document_of(&id), doc);
        assert_eq!(document_of(&doc), doc);
    }
}
