//! The inbox directory: a file dropped there is ingested, then moved to `processed/`, or to `rejected/`
//! beside `<name>.reason`.
//!
//! Partial writes are never read: writers must create the file under a name starting with `.` or ending
//! in `.tmp` or `.part` and rename it into place when complete (rename is atomic on one filesystem). The
//! file is moved only after its job is durably queued, so a crash in between ingests it again, which the
//! queue deduplicates.
//!
//! Whoever can write the inbox is not trusted by the root daemon that reads it. Each file is opened once,
//! without following a symbolic link and without blocking (a FIFO would block a reader forever), and the
//! opened descriptor must be a regular file; anything else is moved to `rejected/` unread. Moves never
//! replace an entry and reasons are created new, so a link placed in `rejected/` is never written through.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{ingest, Intake, IntakeError};
use crate::daemon::shared::Shared;
use crate::text::inert_line;

/// Names tried for one moved file or reason (`name`, `name.1`, ...) before giving up.
const MAX_NAMES: usize = 1000;

/// Why an inbox file is not read.
#[derive(Debug, thiserror::Error)]
pub enum Unread {
    #[error("a symbolic link: links in the inbox are not followed")]
    Link,
    #[error("not a regular file (a FIFO, device, socket or directory)")]
    NotRegular,
    #[error("over the {0}-byte limit (max_document_bytes)")]
    TooLarge(usize),
    #[error("unreadable: {0}")]
    Io(io::Error),
}

pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let dir = shared.config.server.inbox_dir.clone();
    if let Err(e) = prepare(&dir) {
        tracing::error!(dir = %dir.display(), error = %e, "inbox disabled");
        return;
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

/// Creates the inbox and its two subdirectories; each of those must be a real directory, not a link a
/// writer of the inbox put there to have files and reasons land elsewhere.
pub fn prepare(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for sub in ["processed", "rejected"] {
        let path = dir.join(sub);
        match std::fs::create_dir(&path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        if !std::fs::symlink_metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", path.display()),
            ));
        }
    }
    Ok(())
}

/// Names in the inbox that are ready to be read, in order: not hidden, not a partial write, not one of
/// the two subdirectories. Their type is not looked at here: it is checked on the opened file.
fn ready_names(dir: &Path) -> Vec<OsString> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<OsString> = entries
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| {
            let name = n.to_string_lossy();
            !(name.starts_with('.')
                || name.ends_with(".tmp")
                || name.ends_with(".part")
                || name == "processed"
                || name == "rejected")
        })
        .collect();
    names.sort();
    names
}

/// Opens `path` once, without following a link or blocking, and reads at most `limit` bytes from the
/// opened descriptor, which must be a regular file.
fn read_document(path: &Path, limit: usize) -> Result<Vec<u8>, Unread> {
    let file = crate::safe_fs::open_regular(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            Unread::Link
        } else if e.kind() == io::ErrorKind::InvalidInput
            || e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
        {
            Unread::NotRegular
        } else {
            Unread::Io(e)
        }
    })?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(Unread::Io)?;
    if bytes.len() > limit {
        return Err(Unread::TooLarge(limit));
    }
    Ok(bytes)
}

fn sweep(shared: &Shared, dir: &Path) {
    for name in ready_names(dir) {
        let shown = inert_line(&name.to_string_lossy()).into_owned();
        let bytes = match read_document(&dir.join(&name), shared.config.max_document_bytes) {
            Ok(b) => b,
            Err(e) => {
                reject(dir, &name, &shown, &e.to_string());
                continue;
            }
        };
        match ingest(shared, &bytes) {
            Ok(Intake::Queued { job, duplicate_of }) => {
                tracing::info!(file = %shown, %job, duplicate = duplicate_of.is_some(), "inbox: queued");
                if let Err(e) = move_to(dir, &name, &dir.join("processed")) {
                    tracing::error!(file = %shown, error = %e, "inbox: cannot move the file");
                }
            }
            Ok(Intake::Rejected { reason, detail }) => {
                reject(dir, &name, &shown, &format!("{reason}: {detail}"))
            }
            Err(IntakeError::Parse(msg)) => {
                reject(dir, &name, &shown, &format!("cannot be parsed: {msg}"))
            }
            Err(IntakeError::Storage(msg)) => {
                // Leave the file where it is: nothing was acknowledged, it is tried again next time.
                tracing::error!(file = %shown, error = %msg, "inbox: intake stopped, the data directory cannot be written");
                return;
            }
        }
    }
}

fn reject(dir: &Path, name: &OsStr, shown: &str, reason: &str) {
    let reason = inert_line(reason);
    tracing::warn!(file = %shown, %reason, "inbox: rejected");
    match move_to(dir, name, &dir.join("rejected")) {
        Ok(target) => write_reason(&target, &reason),
        Err(e) => tracing::error!(file = %shown, error = %e, "inbox: cannot move the file"),
    }
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `name` from `dir` into `to` under a name at which nothing is yet, nor at its `.reason`:
/// `name`, else `name.1`, `name.2`, ... The rename never replaces an entry (`RENAME_NOREPLACE`).
fn move_to(dir: &Path, name: &OsStr, to: &Path) -> io::Result<PathBuf> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let from = dir.join(name);
    for n in 0..MAX_NAMES {
        let target = if n == 0 {
            to.join(name)
        } else {
            with_suffix(&to.join(name), &format!(".{n}"))
        };
        if std::fs::symlink_metadata(with_suffix(&target, ".reason")).is_ok() {
            continue;
        }
        match renameat_with(CWD, &from, CWD, &target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(target),
            Err(rustix::io::Errno::EXIST) => continue,
            // A filesystem without RENAME_NOREPLACE: look first, then rename (a race, not a follow:
            // rename replaces a link itself, never what it points at).
            Err(rustix::io::Errno::INVAL) => {
                if std::fs::symlink_metadata(&target).is_ok() {
                    continue;
                }
                std::fs::rename(&from, &target)?;
                return Ok(target);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other(format!(
        "{} names taken in {}",
        MAX_NAMES,
        to.display()
    )))
}

/// Writes `<target>.reason` as a new file (never through a link or over anything); if that name is
/// taken, `<target>.reason.1`, ...
fn write_reason(target: &Path, reason: &str) {
    for n in 0..MAX_NAMES {
        let path = if n == 0 {
            with_suffix(target, ".reason")
        } else {
            with_suffix(target, &format!(".reason.{n}"))
        };
        match crate::safe_fs::create_new(&path, 0o644) {
            Ok(mut f) => {
                if let Err(e) = f.write_all(format!("{reason}\n").as_bytes()) {
                    tracing::error!(file = %path.display(), error = %e, "inbox: cannot write the reason");
                }
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "inbox: cannot write the reason");
                return;
            }
        }
    }
}
