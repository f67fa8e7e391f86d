//! The inbox directory: a file dropped there is ingested, then moved to `processed/`, or to `rejected/`
//! beside `<name>.reason`.
//!
//! Partial writes are never read: writers must create the file under a name starting with `.` or ending
//! in `.tmp` or `.part` and rename it into place when complete (rename is atomic on one filesystem). Only
//! regular files are read; the file is moved only after its job is durably queued, so a crash in between
//! ingests it again, which the queue deduplicates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::ingest::{ingest, Intake, IntakeError};
use super::Shared;

pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let dir = shared.config.server.inbox_dir.clone();
    for sub in ["", "processed", "rejected"] {
        if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
            tracing::error!(dir = %dir.display(), error = %e, "inbox disabled: cannot create it");
            return;
        }
    }
    let poll = Duration::from_millis(shared.config.server.poll_ms);
    loop {
        let s = shared.clone();
        let d = dir.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sweep(&s, &d)).await {
            tracing::error!(error = %e, "inbox task failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn ready_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !(name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part"))
        })
        .collect();
    files.sort();
    files
}

fn sweep(shared: &Shared, dir: &Path) {
    for path in ready_files(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = match crate::rebuild::read_provenance(&path, shared.config.max_document_bytes) {
            Ok(b) => b,
            Err(e) => {
                reject(dir, &path, &name, &format!("unreadable: {e}"));
                continue;
            }
        };
        match ingest(shared, &bytes) {
            Ok(Intake::Queued { job, duplicate_of }) => {
                tracing::info!(file = %name, %job, duplicate = duplicate_of.is_some(), "inbox: queued");
                move_to(&path, &dir.join("processed"), &name);
            }
            Ok(Intake::Rejected { reason, detail }) => {
                reject(dir, &path, &name, &format!("{reason}: {detail}"))
            }
            Err(IntakeError::Parse(msg)) => {
                reject(dir, &path, &name, &format!("cannot be parsed: {msg}"))
            }
            Err(IntakeError::Storage(msg)) => {
                // Leave the file where it is: nothing was acknowledged, it is tried again next time.
                tracing::error!(file = %name, error = %msg, "inbox: intake stopped, the data directory cannot be written");
                return;
            }
        }
    }
}

fn reject(dir: &Path, path: &Path, name: &str, reason: &str) {
    tracing::warn!(file = %name, %reason, "inbox: rejected");
    let target = move_to(path, &dir.join("rejected"), name);
    let reason_file = target.with_file_name(format!(
        "{}.reason",
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    if let Err(e) = std::fs::write(&reason_file, format!("{reason}\n")) {
        tracing::error!(file = %reason_file.display(), error = %e, "inbox: cannot write the reason");
    }
}

/// Renames into `to`, never over an existing file. Returns where it went.
fn move_to(path: &Path, to: &Path, name: &str) -> PathBuf {
    let mut target = to.join(name);
    let mut n = 1;
    while target.exists() {
        target = to.join(format!("{name}.{n}"));
        n += 1;
    }
    if let Err(e) = std::fs::rename(path, &target) {
        tracing::error!(file = %path.display(), error = %e, "inbox: cannot move the file");
    }
    target
}
