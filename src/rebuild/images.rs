//! The step images reprod pulled, kept within a byte budget: least recently used first out.
//!
//! The engine keeps every image it pulled forever; a rebuilder that pulls whatever provenance names would
//! fill its disk. Each job records the images its steps ran in (`<data_dir>/step-images.json`, under a
//! file lock so concurrent jobs and processes agree), and afterwards the least recently used are removed
//! until what reprod pulled fits `images.cache_bytes`. An image a running container uses is kept (the
//! engine refuses to remove it), and images are removed by the reference reprod pulled, so an image the
//! host also holds under another name stays.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;

use reprod_sandbox::Executor;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Cache {
    /// Reference (`name@sha256:…`) → (last used, seconds since the epoch; size in bytes).
    images: BTreeMap<String, (u64, i64)>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records `used` (references and sizes) and returns the references to remove to get within `budget`,
/// oldest first, forgetting them. Blocking (a file lock).
fn record(data_dir: &Path, used: &[(String, i64)], budget: u64) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(data_dir)?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(data_dir.join("step-images.json"))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    let mut cache: Cache = serde_json::from_str(&text).unwrap_or_default();
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
        // What this job just ran in stays: the next step of the same recipe most likely needs it.
        if used.iter().any(|(r, _)| *r == reference) {
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
    let evict = match tokio::task::spawn_blocking(move || record(&dir, &sized, budget)).await {
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
        assert!(record(dir.path(), &[r("a")], 250).unwrap().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(record(dir.path(), &[r("b")], 250).unwrap().is_empty());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        // a, b and c are 300 bytes: the oldest, a, goes.
        assert_eq!(record(dir.path(), &[r("c")], 250).unwrap(), vec![r("a").0]);
        // Over budget with only what this job used: nothing it used is removed.
        assert!(record(dir.path(), &[r("b"), r("c")], 50)
            .unwrap()
            .is_empty());
    }
}
