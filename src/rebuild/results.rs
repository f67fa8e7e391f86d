//! Tekton results read back from the job: claims of the build, never evidence, each bounded and never
//! read through a symlink.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::provenance::Recipe;

/// Largest Tekton result read back from the workspace.
const MAX_RESULT_BYTES: u64 = 64 << 10;

/// Tekton results the build wrote (claims, not evidence), each bounded. A pipeline's are per task
/// (`results/NN-task/NAME`), named `task.NAME`.
pub(super) fn read_results(dir: &Path, recipe: &Recipe) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let name = e.file_name().to_string_lossy().into_owned();
        if meta.is_dir() && !recipe.tasks.is_empty() {
            // `NN-name`: the task is found by its index, not by the (sanitized) name.
            let task = name
                .split_once('-')
                .and_then(|(n, _)| n.parse::<usize>().ok())
                .and_then(|n| recipe.tasks.get(n));
            if let Some(task) = task {
                for (result, text) in read_flat(&e.path()) {
                    out.insert(format!("{}.{result}", task.name), text);
                }
            }
        } else if let Some(text) = read_result(&e.path()) {
            out.insert(name, text);
        }
    }
    out
}

/// The result files directly in `dir`.
fn read_flat(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let text = read_result(&e.path())?;
            Some((e.file_name().to_string_lossy().into_owned(), text))
        })
        .collect()
}

/// One result file, bounded, never through a symlink.
pub(super) fn read_result(path: &Path) -> Option<String> {
    if !path.symlink_metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    let f = std::fs::File::open(path).ok()?;
    f.take(MAX_RESULT_BYTES).read_to_string(&mut text).ok()?;
    Some(text)
}
