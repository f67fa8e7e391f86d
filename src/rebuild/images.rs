//! The step images reprod pulled, kept within a byte budget: least recently used first out.
//!
//! The engine keeps every image it pulled forever; a rebuilder that pulls whatever provenance names would
//! fill its disk. Each job records the images its steps ran in (`<data_dir>/step-images.json`, under a
//! file lock so concurrent jobs and processes agree), and afterwards the least recently used are removed
//! until what reprod pulled fits `images.cache_bytes`. An image a running container uses is kept (the
//! engine refuses to remove it), and images are removed by the reference reprod pulled, so an image the
//! host also holds under another name stays. An image a queued job will run in is kept too: the daemon
//! notes each queued document's step images ([`want`], before it is queued) and the note goes when that
//! document's rebuild ends or its verdict is recorded, whoever rebuilt it ([`settle`]), or after
//! [`WANTED_FOR`] (a job dead-lettered without a verdict).

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use reprod_sandbox::Executor;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Cache {
    /// Reference (`name@sha256:…`) → (last used, seconds since the epoch; size in bytes).
    images: BTreeMap<String, (u64, i64)>,
}

/// How long a queued document's images are kept for it at most (a job dead-lettered or never leased
/// would otherwise pin them forever).
pub const WANTED_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

const RECORD: &str = "step-images.json";
/// One small file per queued document naming its step images: intake writes one file, never the
/// shared record, so it does not queue behind the record's lock.
const WANTED_DIR: &str = "step-images.wanted";

/// Records that the queued document `document` (sha256 hex) will run in `references`, so that no
/// collection removes them before its rebuild has ended (blocking).
pub fn want(data_dir: &Path, document: &str, references: &[String]) -> std::io::Result<()> {
    if references.is_empty() || !document.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(());
    }
    let dir = data_dir.join(WANTED_DIR);
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{document}.{}", std::process::id()));
    std::fs::write(&tmp, references.join("\n"))?;
    std::fs::rename(&tmp, dir.join(document))
}

/// Drops the note [`want`] made for `document` (blocking; a note already gone is fine).
pub fn settle(data_dir: &Path, document: &str) {
    if document.bytes().all(|b| b.is_ascii_hexdigit()) {
        let _ = std::fs::remove_file(data_dir.join(WANTED_DIR).join(document));
    }
}

/// What queued documents will run in, other than `except`'s; wants older than [`WANTED_FOR`] and
/// `except`'s own are removed.
fn wanted(data_dir: &Path, except: Option<&str>) -> std::collections::BTreeSet<String> {
    let dir = data_dir.join(WANTED_DIR);
    let mut refs = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return refs;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > WANTED_FOR);
        if stale || Some(entry.file_name().to_string_lossy().as_ref()) == except {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        // Bounded: a want names a recipe's step images, a few hundred bytes.
        if let Ok(text) = std::fs::read_to_string(&path) {
            refs.extend(text.lines().map(str::to_string));
        }
    }
    refs
}

/// The references a recipe's steps are pulled by (pinned, after the image mirror map).
pub fn step_references(
    config: &crate::config::Config,
    recipe: &crate::provenance::Recipe,
) -> Vec<String> {
    let mut refs: Vec<String> = recipe
        .steps
        .iter()
        .filter_map(|s| reprod_sandbox::PinnedImage::parse(&s.image).ok())
        .filter_map(|image| super::steps::mirror_image(config, &image).ok())
        .map(|image| image.to_string())
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records `used` (references and sizes) by the rebuild of `document` (whose own want is then
/// settled) and returns the references to remove to get within `budget`, oldest first, forgetting them.
/// Nothing a queued document wants is removed. Blocking (a file lock).
fn record(
    data_dir: &Path,
    document: Option<&str>,
    used: &[(String, i64)],
    budget: u64,
) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(data_dir)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join(RECORD))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut cache: Cache = serde_json::from_str(&text).unwrap_or_default();
    let wanted = wanted(data_dir, document);
    let t = now();
    for (reference, size) in used {
        cache.images.insert(reference.clone(), (t, *size));
    }
    let mut by_age: Vec<(u64, String, i64)> = cache
        .images
        .iter()
        .map(|(r, (at, size))| (*at, r.clone(), *size))
        .collect();
    by_age.sort();
    let mut total: u64 = by_age.iter().map(|(_, _, s)| (*s).max(0) as u64).sum();
    let mut evict = Vec::new();
    for (_, reference, size) in by_age {
        if total <= budget {
            break;
        }
        // What this job just ran in stays (the next step of the same recipe most likely needs it), and
        // so does what a queued job will run in.
        if used.iter().any(|(r, _)| *r == reference) || wanted.contains(&reference) {
            continue;
        }
        total = total.saturating_sub(size.max(0) as u64);
        cache.images.remove(&reference);
        evict.push(reference);
    }
    let bytes = serde_json::to_vec(&cache).map_err(std::io::Error::other)?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(evict)
}

/// After a job: records the images its steps used and removes the least recently used beyond `budget`
/// bytes (0: keep everything). Failures are logged; they never change a verdict.
pub(super) async fn collect_garbage(
    sandbox: &dyn Executor,
    data_dir: &Path,
    document: &str,
    used: Vec<String>,
    budget: u64,
) {
    if budget == 0 {
        return;
    }
    let mut sized = Vec::new();
    for reference in used {
        let size = sandbox.image_size(&reference).await.unwrap_or(0);
        sized.push((reference, size));
    }
    let dir = data_dir.to_path_buf();
    let document = document.to_string();
    let evict =
        match tokio::task::spawn_blocking(move || record(&dir, Some(&document), &sized, budget))
            .await
        {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not update the step image cache record");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "step image cache task failed");
                return;
            }
        };
    for reference in evict {
        match sandbox.remove_image(&reference).await {
            Ok(true) => {
                tracing::info!(image = %reference, "removed a least recently used step image")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(image = %reference, error = %e, "could not remove a step image")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_first_and_what_a_job_used_stays() {
        let dir = tempfile::tempdir().unwrap();
        let r = |n: &str| (format!("reg/{n}@sha256:{}", n.repeat(64)), 100i64);
        assert!(record(dir.path(), None, &[r("a")], 250).unwrap().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(record(dir.path(), None, &[r("b")], 250).unwrap().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // a, b and c are 300 bytes: the oldest, a, goes.
        assert_eq!(
            record(dir.path(), None, &[r("c")], 250).unwrap(),
            vec![r("a").0]
        );
        // Over budget with only what this job used: nothing it used is removed.
        assert!(record(dir.path(), None, &[r("b"), r("c")], 50)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn what_a_queued_job_will_run_in_stays_until_its_rebuild_ends() {
        let dir = tempfile::tempdir().unwrap();
        let r = |n: &str| (format!("reg/{n}@sha256:{}", n.repeat(64)), 100i64);
        record(dir.path(), None, &[r("a")], 1000).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // A queued document will run in a, the oldest: another job over budget removes nothing of it.
        want(dir.path(), "d0c1", &[r("a").0]).unwrap();
        assert!(record(dir.path(), Some("d0c2"), &[r("b")], 50)
            .unwrap()
            .is_empty());
        // Once doc1's rebuild has ended, a is the least recently used again and goes.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(
            record(dir.path(), Some("d0c1"), &[r("c")], 250).unwrap(),
            vec![r("a").0]
        );
    }
}
