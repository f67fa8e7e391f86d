//! The directory of one job, and the filesystem it lives on.
//!
//! Everything a step can see lives under the job's root: `workspace/`, `results/`, `home/` and `scripts/`
//! (read-only). The root is 0700 and the daemon's, so no local user can reach what a step leaves there
//! (a setuid binary, say). When the engine remaps users, the directories a step writes belong to the
//! host uid that root in the step is, not to host root. With `sandbox.workspace_bytes` set, the root is a
//! filesystem of its own, a loop-mounted ext4 image of that size beside it (`<id>.img`): a build that
//! fills its disk or its inodes fills only that.

use std::path::{Path, PathBuf};
use std::process::Command;

use reprod_sandbox::StepMount;

use crate::provenance::tekton;

/// Marks a job directory a worker keeps only until it has collected the logs: `<id>.collected` beside it,
/// made before the directory (and before its filesystem is mounted), so a process killed at any moment
/// leaves it marked.
const COLLECTED_SUFFIX: &str = "collected";

/// The marker of the job directory `root`.
fn marker_of(root: &Path) -> PathBuf {
    let mut m = root.as_os_str().to_owned();
    m.push(".");
    m.push(COLLECTED_SUFFIX);
    PathBuf::from(m)
}

/// Below this many free bytes (or no free inode) after a failed step, the step ran out of disk.
const FULL_BELOW_BYTES: u64 = 1 << 20;

/// The directories of one job. Dropped without [`JobDirs::keep`] or [`JobDirs::release`] (the rebuild was
/// cancelled: a signal, a deadline), it removes itself.
pub(super) struct JobDirs {
    pub root: PathBuf,
    /// The filesystem image mounted at `root`, when the job has one.
    image: Option<PathBuf>,
    armed: bool,
}

impl Drop for JobDirs {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.remove() {
                tracing::warn!(path = %self.root.display(), error = %e, "could not remove the job directory");
            }
        }
    }
}

impl JobDirs {
    pub const WORKSPACE: &'static str = "workspace";
    pub const RESULTS: &'static str = "results";
    pub const HOME: &'static str = "home";
    pub const SCRIPTS: &'static str = "scripts";
    /// Full captured step logs; not mounted into any step.
    pub const LOGS: &'static str = "logs";

    /// Creates the job's directories (on a filesystem of `quota` bytes of their own when `quota > 0`),
    /// handing the ones steps write to `owner` (the host uid and gid of root in a step).
    ///
    /// With `collected`, the directory is marked as only waiting for this process to collect its logs
    /// (see [`sweep_abandoned`]); a directory kept for a person never is.
    pub fn create(
        data_dir: &Path,
        job_id: &str,
        quota: u64,
        owner: Option<(u32, u32)>,
        collected: bool,
    ) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let jobs = data_dir.join("jobs");
        std::fs::create_dir_all(&jobs).map_err(|e| format!("creating {}: {e}", jobs.display()))?;
        let root = jobs.join(job_id);
        if collected {
            std::fs::write(marker_of(&root), b"")
                .map_err(|e| format!("marking the job directory: {e}"))?;
        }
        if let Err(e) = std::fs::create_dir(&root) {
            let _ = std::fs::remove_file(marker_of(&root));
            return Err(format!("creating {}: {e}", root.display()));
        }
        let mut dirs = JobDirs {
            root,
            image: None,
            armed: true,
        };
        if quota > 0 {
            let image = jobs.join(format!("{job_id}.img"));
            // Recorded before mounting, so a failure half-way is cleaned up by `remove`.
            dirs.image = Some(image.clone());
            if let Err(e) = mount_image(&image, &dirs.root, quota) {
                let _ = dirs.remove();
                return Err(e);
            }
        }
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("chmod {}: {e}", p.display()))
        };
        chmod(&dirs.root, 0o700)?;
        let mk =
            |p: &Path| std::fs::create_dir(p).map_err(|e| format!("creating {}: {e}", p.display()));
        mk(&dirs.root.join(Self::LOGS))?;
        for sub in [Self::WORKSPACE, Self::RESULTS, Self::HOME, Self::SCRIPTS] {
            let p = dirs.root.join(sub);
            mk(&p)?;
            // Steps may run as any user the image chooses; like Tekton's emptyDir volumes, these are
            // writable. Only steps reach them: the root above is 0700.
            chmod(&p, 0o777)?;
            if let (Some((uid, gid)), true) = (owner, sub != Self::SCRIPTS) {
                std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        Ok(dirs)
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.root.join(sub)
    }

    /// What a step sees: the workspace at `workspace_at`, its results directory (`results`, a path
    /// below the job root: a pipeline task has its own) at `/tekton/results`, `$HOME` at `home_at`, and
    /// the scripts read-only.
    pub fn mounts(workspace_at: &str, results: &Path, home_at: &str) -> Vec<StepMount> {
        let m = |sub: &Path, at: &str, read_only: bool| StepMount {
            workspace_subdir: sub.to_path_buf(),
            container_path: at.to_string(),
            read_only,
        };
        vec![
            m(Path::new(Self::WORKSPACE), workspace_at, false),
            m(results, tekton::RESULTS_DIR, false),
            m(Path::new(Self::HOME), home_at, false),
            m(Path::new(Self::SCRIPTS), tekton::SCRIPTS_DIR, true),
        ]
    }

    /// Where the `index`-th task's results are, relative to the job root.
    pub fn task_results_path(index: usize, task: &str) -> PathBuf {
        let safe: String = task
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        Path::new(Self::RESULTS).join(format!("{index:02}-{safe}"))
    }

    /// The results directory of the `index`-th task of a pipeline (`results/NN-name`), made for the
    /// step user; returned relative to the job root.
    pub fn task_results(
        &self,
        index: usize,
        task: &str,
        owner: Option<(u32, u32)>,
    ) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let rel = Self::task_results_path(index, task);
        let path = self.root.join(&rel);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !path.is_symlink() => {}
            Err(e) => return Err(format!("creating {}: {e}", path.display())),
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(rel)
    }

    /// True when the job's filesystem is (nearly) out of space or inodes: what a failed step ran into.
    pub fn full(&self) -> bool {
        rustix::fs::statvfs(&self.root).is_ok_and(|s| {
            s.f_bavail.saturating_mul(s.f_frsize) < FULL_BELOW_BYTES || s.f_favail == 0
        })
    }

    /// Where the filesystem image is, when the job has one (to say how to clean up a kept directory).
    pub fn image(&self) -> Option<&Path> {
        self.image.as_deref()
    }

    /// Unmounts (if mounted) and removes the job directory and its filesystem image. Blocking.
    pub fn remove(&self) -> std::io::Result<()> {
        remove_at(&self.root)
    }

    /// The directory stays (kept for a person, or for the caller to remove): returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        self.root.clone()
    }
}

/// Removes a job directory, unmounting it first when it is a mount point, and its `<dir>.img` beside it.
/// Blocking.
pub fn remove_at(root: &Path) -> std::io::Result<()> {
    // Unmount until nothing is mounted there (a mount can be stacked); a busy one (a shell kept in it) is
    // detached, and the kernel frees it when its last user leaves.
    for _ in 0..8 {
        if !is_mount_point(root) {
            break;
        }
        let out = Command::new("umount").arg(root).output()?;
        if !out.status.success() {
            if String::from_utf8_lossy(&out.stderr).contains("not mounted") {
                break;
            }
            let lazy = Command::new("umount").arg("-l").arg(root).output()?;
            if !lazy.status.success() {
                return Err(std::io::Error::other(format!(
                    "umount {}: {}",
                    root.display(),
                    String::from_utf8_lossy(&lazy.stderr).trim()
                )));
            }
        }
    }
    if is_mount_point(root) {
        return Err(std::io::Error::other(format!(
            "{} is still mounted after unmounting it",
            root.display()
        )));
    }
    match std::fs::remove_dir_all(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut image = root.as_os_str().to_owned();
    image.push(".img");
    for file in [PathBuf::from(image), marker_of(root)] {
        match std::fs::remove_file(file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `path` is a mount point: another device than its parent's (a filesystem mounted there), or
/// listed as one in this process's mountinfo (a bind mount of the same device).
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::symlink_metadata(path).map(|m| m.dev());
    let parent = path.parent().map(|p| std::fs::metadata(p).map(|m| m.dev()));
    if let (Ok(a), Some(Ok(b))) = (&own, &parent) {
        if a != b {
            return true;
        }
    }
    let Ok(canonical) = std::fs::canonicalize(path) else {
        return false;
    };
    let wanted = canonical.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|mp| unescape_mountinfo(mp) == wanted)
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as octal escapes (`\040`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the job filesystem keeps for reprod's own writes (the step logs), beyond any step's reach.
const RESERVED_FOR_LOGS: u64 = 16 << 20;

/// Makes a sparse ext4 image of `bytes` and mounts it at `at` (`nosuid,nodev`). Needs root (mount) and
/// `mkfs.ext4` (e2fsprogs).
fn mount_image(image: &Path, at: &Path, bytes: u64) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(|e| format!("creating {}: {e}", image.display()))?;
    file.set_len(bytes)
        .map_err(|e| format!("sizing {}: {e}", image.display()))?;
    drop(file);
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| {
            format!("{what}: cannot run it ({e}); scripts/setup.sh installs e2fsprogs and mount")
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    // Blocks reserved for root: reprod (root) can still write the step logs when a step (a remapped,
    // unprivileged uid) has filled the rest.
    let reserved = (RESERVED_FOR_LOGS as f64 / bytes.max(1) as f64 * 100.0).min(10.0);
    let reserved = format!("{reserved:.4}");
    run(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-m",
                &reserved,
                "-O",
                "^has_journal",
                "-E",
                "nodiscard,lazy_itable_init=1",
            ])
            .arg(image),
        "mkfs.ext4 for the job's workspace quota",
    )?;
    run(
        Command::new("mount")
            .args(["-o", "loop,nosuid,nodev"])
            .arg(image)
            .arg(at),
        "mounting the job's workspace filesystem (sandbox.workspace_bytes; reprod must run as root to \
         mount it, or set sandbox.workspace_bytes = 0 to leave the workspace unbounded)",
    )?;
    // mkfs leaves lost+found in the new root; it is reprod's, not the build's.
    Ok(())
}

/// Hands a checked-out tree to `owner`, never following a symlink in it (the tree is the repository's).
pub fn chown_tree(root: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1))?;
        if std::fs::symlink_metadata(&p)?.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

/// Removes the marked job directories of worker processes that no longer run (killed before they
/// collected and removed them), unmounting their filesystems. Job directory names carry the creating
/// process id. Blocking. Returns how many were removed.
pub fn sweep_abandoned(data_dir: &Path) -> std::io::Result<usize> {
    let jobs = data_dir.join("jobs");
    let entries = match std::fs::read_dir(&jobs) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = std::collections::HashSet::new();
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // `<id>`, or what is beside it: `<id>.img` and `<id>.collected`.
        let (id, beside) = match name.rsplit_once('.') {
            Some((id, ext)) if ext == "img" || ext == COLLECTED_SUFFIX => (id, true),
            _ => (name, false),
        };
        let Some(pid) = id.split('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let dead = pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists();
        if !dead {
            continue;
        }
        let root = jobs.join(id);
        let orphaned = if beside {
            // The process died making or removing its directory: what it left beside it goes too.
            std::fs::symlink_metadata(&root).is_err()
        } else {
            marker_of(&root).exists()
        };
        if orphaned && removed.insert(id.to_string()) {
            remove_at(&root)?;
        }
    }
    Ok(removed.len())
}

/// A kept job directory's full step logs and diff reports, as `(logs/<file>, bytes)` pairs, for the
/// daemon's store. Blocking.
pub fn artifacts(job_dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in [JobDirs::LOGS, "diffs"] {
        let Ok(entries) = std::fs::read_dir(job_dir.join(sub)) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .collect();
        files.sort_by_key(|e| e.file_name());
        for e in files {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push((format!("{sub}/{}", e.file_name().to_string_lossy()), bytes));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_a_dead_process_left_beside_a_missing_directory_is_swept() {
        let data = tempfile::tempdir().unwrap();
        let jobs = data.path().join("jobs");
        std::fs::create_dir_all(&jobs).unwrap();
        // Above any pid_max Linux allows: no such process.
        let marker_only = "0123456789ab-4194399-1";
        let image_and_marker = "0123456789ab-4194399-2";
        let mine = format!("0123456789ab-{}-3", std::process::id());
        for file in [
            format!("{marker_only}.collected"),
            format!("{image_and_marker}.img"),
            format!("{image_and_marker}.collected"),
            format!("{mine}.collected"),
        ] {
            std::fs::write(jobs.join(file), b"").unwrap();
        }
        assert_eq!(super::sweep_abandoned(data.path()).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(&jobs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [format!("{mine}.collected")],
            "a live process's marker stays"
        );
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            super::unescape_mountinfo("/data\\040dir/jobs"),
            "/data dir/jobs"
        );
        assert_eq!(super::unescape_mountinfo("/plain"), "/plain");
        assert_eq!(super::unescape_mountinfo("/a\\134b"), "/a\\b");
    }
}
